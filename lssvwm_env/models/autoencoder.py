"""Frame autoencoder (docs/design.md, "Frames to tokens"): a small convolutional VAE that maps a 64x64 RGB
frame to a latent grid (8x8xC by default); each latent cell becomes one token of the dynamics model.
Its reconstruction PSNR is the ceiling of generated frames (on average: a single generated frame
can land a little above its reconstruction by chance)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class AutoencoderConfig:
    image_size: int = 64
    latent_channels: int = 8
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # one stride-2 stage each
    kl_weight: float = 1e-6  # small: we want a sharp, smooth latent space, not a generative prior

    @property
    def grid(self) -> tuple[int, int]:
        side = self.image_size // 2 ** len(self.channels)
        return (side, side)


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def build_decoder(latent_channels: int, channels: list[int]) -> nn.Sequential:
    """Latents (N, C, h, w) -> images (N, 3, H, W) in [-1, 1]: one stride-2 stage per entry of
    `channels` (the encoder's order, so the decoder runs them reversed). The autoencoder's, and a
    student's with fewer channels (training/student_decoder.py)."""
    ch = channels
    dec: list[nn.Module] = [nn.Conv2d(latent_channels, ch[-1], 3, padding=1), ResBlock(ch[-1])]
    for c, next_c in zip(reversed(ch), list(reversed(ch))[1:]):
        dec += [ResBlock(c), nn.GroupNorm(8, c), nn.SiLU(), nn.ConvTranspose2d(c, next_c, 4, stride=2, padding=1)]
    dec += [ResBlock(ch[0]), nn.GroupNorm(8, ch[0]), nn.SiLU(), nn.ConvTranspose2d(ch[0], 3, 4, stride=2, padding=1)]
    return nn.Sequential(*dec)


class FrameAutoencoder(nn.Module):
    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        # Downsample first, then compute: no convolution runs at full 64x64 resolution with many
        # channels, which keeps stage 0 trainable on two CPU cores.
        enc: list[nn.Module] = []
        prev = 3
        for c in ch:
            enc += [nn.Conv2d(prev, c, 4, stride=2, padding=1), ResBlock(c)]
            prev = c
        enc += [ResBlock(prev), nn.GroupNorm(8, prev), nn.SiLU(), nn.Conv2d(prev, 2 * config.latent_channels, 1)]
        self.encoder = nn.Sequential(*enc)
        self.decoder = build_decoder(config.latent_channels, ch)

    @staticmethod
    def frames_to_input(frames: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, H, W) in [-1, 1]."""
        return frames.permute(0, 3, 1, 2).to(dtype).div(127.5).sub(1.0)

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder[0].weight.dtype

    @staticmethod
    def output_to_frames(images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
        return images.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)

    def encode_distribution(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames: (N, H, W, 3) uint8 -> (mean, logvar), each (N, C, h, w)."""
        mean, logvar = self.encoder(self.frames_to_input(frames, self.dtype)).chunk(2, dim=1)
        return mean, logvar.clamp(-20, 10)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: (N, H, W, 3) uint8 -> latents (N, h, w, C): the posterior mean."""
        return self.encode_distribution(frames)[0].permute(0, 2, 3, 1)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents: (N, h, w, C) -> frames (N, H, W, 3) uint8."""
        return self.output_to_frames(self.decoder(latents.permute(0, 3, 1, 2).to(self.dtype)))

    def loss(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction (L1 + MSE, in [-1, 1] pixel units) plus a small KL to N(0, I)."""
        target = self.frames_to_input(frames, self.dtype)
        mean, logvar = self.encoder(target).chunk(2, dim=1)
        logvar = logvar.clamp(-20, 10)
        sample = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        recon = self.decoder(sample)
        mse = F.mse_loss(recon.float(), target)
        l1 = F.l1_loss(recon.float(), target)
        kl = 0.5 * (mean.float().pow(2) + logvar.float().exp() - 1 - logvar.float()).mean()
        loss = mse + l1 + self.config.kl_weight * kl
        return loss, {"ae_mse": mse.item(), "ae_l1": l1.item(), "ae_kl": kl.item()}

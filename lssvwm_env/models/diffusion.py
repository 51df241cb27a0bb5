"""Diffusion forcing (Chen et al. 2024) with a flow-matching parameterisation.

Every frame gets its own noise level sigma in [0, 1]: x_sigma = (1 - sigma) x_0 + sigma * eps. The
network predicts the velocity eps - x_0 (or, with prediction="x0", x_0 itself). Why flow matching:
its paths are straight, so a few Euler steps already land close to the data, which matters when
every environment step pays for `sampling_steps` network passes on a CPU; and sigma in [0, 1] is a
natural "how noisy is this frame" input for per-frame conditioning.

Long-context training (Po et al. 2025, §4.2): with probability `long_context_prob` a clean prefix
longer than half the window is kept (sigma = 0) and only the noised suffix is in the loss, so the
model learns to use long clean context as it will at inference; otherwise plain diffusion forcing.
Generation always has a clean past, however short: an env reset on one real frame generates its
second frame after one clean frame, which the paper's prefix (> half the window) never trains.
`long_context_min_prefix` lowers the shortest prefix (a fraction of the window; 0: one frame) for
models served from short contexts, such as MiniGrid's, whose episodes start from their first frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DiffusionConfig:
    prediction: str = "velocity"  # "velocity" or "x0"
    sampling_steps: int = 4
    long_context_prob: float = 0.5
    long_context_min_prefix: float = 0.5  # shortest clean prefix, as a fraction of the window (paper: > 1/2)
    logit_normal_mean: float = 0.0  # training noise levels: sigmoid(N(mean, std)) (Esser et al. 2024)
    logit_normal_std: float = 1.0
    # Share of the noised training frames put at noise level 1 (pure noise) instead: where sampling
    # starts, and where only the context can tell what the frame holds. Logit-normal(0, 1) puts 0.2% of
    # its mass above 0.95, so a sampler's first step, which decides what the frame shows, is barely
    # trained (issue 39).
    pure_noise_prob: float = 0.0
    # Generation commits each generated frame to the state at this noise level, re-noised to it, instead
    # of clean: diffusion forcing trains on context frames at every noise level, and telling the model
    # that its own frames are not exact keeps their errors from compounding (Chen et al. 2024, §3.4).
    commit_noise: float = 0.0
    # Clean-context training: the past frames each frame is denoised from are noised, each at a level
    # drawn from [0, context_noise], and the model is told the level; so that at generation a frame
    # committed at commit_noise (<= context_noise) is a past it was trained on, and its own small errors
    # are not copied on as if they were exact (GameNGen's noise augmentation, Valevski et al. 2024).
    context_noise: float = 0.0

    def __post_init__(self) -> None:
        if self.prediction not in ("velocity", "x0"):
            raise ValueError(f"diffusion.prediction must be 'velocity' or 'x0', got {self.prediction!r}")
        if not 0.0 <= self.long_context_min_prefix < 1.0:
            raise ValueError(f"diffusion.long_context_min_prefix must be in [0, 1), got {self.long_context_min_prefix}")
        if self.sampling_steps < 1:
            raise ValueError(f"diffusion.sampling_steps must be >= 1, got {self.sampling_steps}")
        if not 0.0 <= self.pure_noise_prob <= 1.0:
            raise ValueError(f"diffusion.pure_noise_prob must be in [0, 1], got {self.pure_noise_prob}")
        if not 0.0 <= self.commit_noise < 1.0:
            raise ValueError(f"diffusion.commit_noise must be in [0, 1), got {self.commit_noise}")
        if not 0.0 <= self.context_noise < 1.0:
            raise ValueError(f"diffusion.context_noise must be in [0, 1), got {self.context_noise}")


def sample_training_noise(
    batch: int, frames: int, config: DiffusionConfig, device: torch.device | str,
    generator: torch.Generator | None = None, long_context: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame noise levels and the mask of frames in the loss, each (B, T).
    long_context: force the scheme on or off (None: draw per sample with long_context_prob)."""
    gauss = torch.randn(batch, frames, generator=generator, device=device)
    sigma = torch.sigmoid(config.logit_normal_mean + config.logit_normal_std * gauss)
    if config.pure_noise_prob > 0:  # drawn only then, so runs without it keep their random stream
        pure = torch.rand(batch, frames, generator=generator, device=device) < config.pure_noise_prob
        sigma = sigma.masked_fill(pure, 1.0)
    in_loss = torch.ones(batch, frames, dtype=torch.bool, device=device)
    if frames >= 3:
        if long_context is None:
            use = torch.rand(batch, generator=generator, device=device) < config.long_context_prob
        else:
            use = torch.full((batch,), long_context, dtype=torch.bool, device=device)
        # Prefix length in (min_prefix T, T): by default strictly longer than half the window; at
        # least one clean and one noised frame.
        low = max(int(frames * config.long_context_min_prefix) + 1, 1)
        prefix = torch.randint(low, frames, (batch,), generator=generator, device=device)
        clean = (torch.arange(frames, device=device).unsqueeze(0) < prefix.unsqueeze(1)) & use.unsqueeze(1)
        sigma = sigma.masked_fill(clean, 0.0)
        in_loss &= ~clean
    return sigma, in_loss


def add_noise(clean: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """clean, noise: (B, T, ...); sigma: (B, T)."""
    s = sigma.view(*sigma.shape, *([1] * (clean.dim() - 2)))
    return (1 - s) * clean + s * noise


def training_target(clean: torch.Tensor, noise: torch.Tensor, config: DiffusionConfig) -> torch.Tensor:
    return noise - clean if config.prediction == "velocity" else clean


def denoised_estimate(noisy: torch.Tensor, prediction: torch.Tensor, sigma: torch.Tensor,
                      config: DiffusionConfig) -> torch.Tensor:
    """The network's estimate of x_0 from its output."""
    if config.prediction == "x0":
        return prediction
    s = sigma.view(*sigma.shape, *([1] * (noisy.dim() - 2)))
    return noisy - s * prediction


def sampling_schedule(steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Noise levels 1 -> 0 visited by the sampler: (steps + 1,)."""
    return torch.linspace(1.0, 0.0, steps + 1, device=device)


def euler_step(noisy: torch.Tensor, prediction: torch.Tensor, sigma: float, next_sigma: float,
               config: DiffusionConfig) -> torch.Tensor:
    """One step of the flow ODE from sigma to next_sigma (both scalars)."""
    sig = torch.full(noisy.shape[:2], sigma, device=noisy.device, dtype=noisy.dtype)
    x0 = denoised_estimate(noisy, prediction, sig, config)
    if next_sigma == 0.0:
        return x0
    velocity = (noisy - x0) / sigma
    return x0 + next_sigma * velocity

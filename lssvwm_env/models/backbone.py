"""The dynamics backbone: layers that interleave the block-wise SSM scan, dense local attention and an
MLP, each under adaptive normalisation by the frame's noise level and action (Po et al. 2025, Fig. 2).
The paper's ablations are variants of one config (`VARIANTS`), not separate code."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from lssvwm_env.models.blockwise_scan import BlockwiseScan
from lssvwm_env.models.conditioning import ActionConfig, AdaptiveNorm, FrameConditioning
from lssvwm_env.models.local_attention import AttentionConfig, LocalAttention
from lssvwm_env.models.ssm_mixer import SSMConfig
from lssvwm_env.models.state import WorldModelState


@dataclass
class BackboneConfig:
    latent_channels: int = 8
    grid: tuple[int, int] = (8, 8)  # the autoencoder's latent grid per frame (height, width)
    # Latent cells per token side: 2 makes each token a 2x2 patch of the latent grid (as DiT patchifies),
    # 4x fewer tokens for the attention and the scans, the autoencoder (and its ceiling) unchanged.
    patch: int = 1
    d_model: int = 128
    n_layers: int = 4
    mlp_ratio: int = 4
    use_ssm: bool = True
    use_attention: bool = True
    # Block size per layer, cycled: small blocks keep memory close, large ones make frames coherent.
    block_sizes: list[tuple[int, int]] = field(default_factory=lambda: [(2, 2), (4, 4)])
    ssm: SSMConfig = field(default_factory=SSMConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    action: ActionConfig = field(default_factory=ActionConfig)

    def __post_init__(self) -> None:
        if self.patch < 1 or self.grid[0] % self.patch or self.grid[1] % self.patch:
            raise ValueError(f"backbone.patch={self.patch} must be >= 1 and divide the latent grid {tuple(self.grid)}")

    @property
    def tokens(self) -> tuple[int, int]:
        """The token grid the layers see: the latent grid in patches."""
        return (self.grid[0] // self.patch, self.grid[1] // self.patch)

    def block_size(self, layer: int) -> tuple[int, int]:
        return tuple(self.block_sizes[layer % len(self.block_sizes)])  # type: ignore[return-value]


def apply_variant(config: BackboneConfig, variant: str, causal_window: int | None = None) -> BackboneConfig:
    """The model variants of the paper's ablations, from one config:
    ours        block-wise SSM + local attention
    causal_attn causal attention over all past frames (or the last `causal_window`), KV cache, no SSM
    local_attn  local attention only
    ssm         SSM scanning the whole frame (no block-wise split) + local attention
    ssm_only    SSM scanning the whole frame, no attention (the paper's "Mamba2" baseline)
    block1      block-wise SSM with 1x1 blocks + local attention
    """
    if variant == "ours":
        return config
    if variant == "causal_attn":
        return replace(config, use_ssm=False, attention=replace(config.attention, window=causal_window, chunk=1))
    if variant == "local_attn":
        return replace(config, use_ssm=False)
    if variant == "ssm":
        return replace(config, block_sizes=[config.tokens])
    if variant == "ssm_only":
        return replace(config, block_sizes=[config.tokens], use_attention=False)
    if variant == "block1":
        return replace(config, block_sizes=[(1, 1)])
    raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


VARIANTS = ("ours", "causal_attn", "local_attn", "ssm", "ssm_only", "block1")


class BackboneLayer(nn.Module):
    def __init__(self, config: BackboneConfig, layer: int) -> None:
        super().__init__()
        d = config.d_model
        self.scan = BlockwiseScan(d, config.tokens, config.block_size(layer), config.ssm) if config.use_ssm else None
        self.scan_norm = AdaptiveNorm(d) if config.use_ssm else None
        self.attention = LocalAttention(d, config.attention, config.tokens) if config.use_attention else None
        self.attention_norm = AdaptiveNorm(d) if config.use_attention else None
        self.mlp_norm = AdaptiveNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, config.mlp_ratio * d), nn.GELU(approximate="tanh"),
                                 nn.Linear(config.mlp_ratio * d, d))

    def forward(
        self, tokens: torch.Tensor, cond: torch.Tensor, frame_index: torch.Tensor,
        ssm_state: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        noisy: torch.Tensor | None = None, noisy_cond: torch.Tensor | None = None, keep_state: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor | None]:
        """tokens: (B, T, H, W, D), cond: (B, T, D), frame_index: (B, T). With `noisy` tokens and their
        `noisy_cond` (clean-context training), each noisy frame also goes through the layer from the
        clean frames before it (Backbone.forward_clean_context). Returns (tokens, SSM state, cache, noisy);
        with keep_state=False (Backbone.forward) the SSM state returned is None."""
        if self.scan is not None:
            h, gate = self.scan_norm(tokens, cond)
            if noisy is None:
                h, ssm_state = self.scan(h, ssm_state, keep_state)
            else:
                noisy_h, noisy_gate = self.scan_norm(noisy, noisy_cond)
                h, ssm_state, noisy_h = self.scan.forward_clean_context(h, noisy_h, ssm_state)
                noisy = noisy + noisy_gate * noisy_h
            tokens = tokens + gate * h
        if self.attention is not None:
            b, t, hh, ww, d = tokens.shape
            h, gate = self.attention_norm(tokens, cond)
            noisy_h = noisy_gate = None
            if noisy is not None:
                noisy_h, noisy_gate = self.attention_norm(noisy, noisy_cond)
                noisy_h = noisy_h.reshape(b, t, hh * ww, d)
            h, cache, noisy_h = self.attention(h.reshape(b, t, hh * ww, d), frame_index, cache, noisy_h)
            tokens = tokens + gate * h.reshape(b, t, hh, ww, d)
            if noisy is not None:
                noisy = noisy + noisy_gate * noisy_h.reshape(b, t, hh, ww, d)
        h, gate = self.mlp_norm(tokens, cond)
        tokens = tokens + gate * self.mlp(h)
        if noisy is not None:
            h, gate = self.mlp_norm(noisy, noisy_cond)
            noisy = noisy + gate * self.mlp(h)
        return tokens, ssm_state, cache, noisy


class Backbone(nn.Module):
    """Noisy latents + noise levels + actions + state -> predicted target and features, new state."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        patch_channels = config.latent_channels * config.patch ** 2
        self.latent_in = nn.Linear(patch_channels, d)
        self.position = nn.Parameter(torch.randn(*config.tokens, d) * 0.02)
        self.conditioning = FrameConditioning(d, config.action)
        self.layers = nn.ModuleList(BackboneLayer(config, i) for i in range(config.n_layers))
        self.out_norm = AdaptiveNorm(d)
        self.latent_out = nn.Linear(d, patch_channels)
        nn.init.zeros_(self.latent_out.weight)
        nn.init.zeros_(self.latent_out.bias)

    def initial_state(self, batch: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                      cache_dtype: torch.dtype | None = None) -> WorldModelState:
        """dtype: the SSM states'; cache_dtype: the attention KV cache's (default: dtype)."""
        c = self.config
        cache_dtype = cache_dtype or dtype
        n_tokens = c.tokens[0] * c.tokens[1]
        window = c.attention.cache_frames() if c.use_attention else 0
        cache_frames = window or 0  # None (all past frames) starts empty and grows
        head_dim = c.d_model // c.attention.n_heads
        ssm, keys, values = [], [], []
        for layer in self.layers:
            if layer.scan is not None:
                ssm.append(torch.zeros(batch, *layer.scan.state_shape(), device=device, dtype=dtype))
            else:
                ssm.append(torch.zeros(batch, 0, device=device, dtype=dtype))
            if layer.attention is not None:
                shape = (batch, cache_frames, n_tokens, c.attention.n_heads, head_dim)
                keys.append(torch.zeros(shape, device=device, dtype=cache_dtype))
                values.append(torch.zeros(shape, device=device, dtype=cache_dtype))
            else:
                keys.append(torch.zeros(batch, 0, device=device, dtype=cache_dtype))
                values.append(torch.zeros(batch, 0, device=device, dtype=cache_dtype))
        return WorldModelState(
            ssm=ssm, keys=keys, values=values,
            key_index=torch.full((batch, cache_frames), -1, dtype=torch.long, device=device),
            frame_count=torch.zeros(batch, dtype=torch.long, device=device),
        )

    def forward(
        self, noisy_latents: torch.Tensor, noise_level: torch.Tensor, actions: torch.Tensor, state: WorldModelState,
        keep_state: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, WorldModelState | None]:
        """noisy_latents: (B, T, H, W, C); noise_level: (B, T) in [0, 1]; actions: (B, T) the action that
        led to each frame (NO_ACTION for an episode's first). Returns (prediction: (B, T, H, W, C),
        features: (B, T, D) per-frame pooled features for the heads, state after these T frames).
        keep_state=False: a pass that only reads the state (a denoising pass), which skips writing the
        SSM states, the costliest part of a frame's scan at inference; None stands for the state."""
        prediction, features, new_state, _ = self.run(noisy_latents, noise_level, actions, state,
                                                      keep_state=keep_state)
        return prediction, features, new_state

    def forward_clean_context(
        self, latents: torch.Tensor, noisy_latents: torch.Tensor, noise_level: torch.Tensor, actions: torch.Tensor,
        state: WorldModelState, context_level: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, WorldModelState]:
        """Clean-context training: every frame denoised as `imagine` denoises it, from the clean past.
        The clean latents (B, T, H, W, C) go through the layers at noise level 0 (the commit pass), and
        each noisy frame t (noisy_latents at noise_level) goes through them from the SSM states and
        attention keys the clean frames before t left, in one parallel pass (about twice the cost of
        `forward`). Returns (prediction for the noisy frames, their features, the clean frames'
        features (B, T, D), the state after the clean frames). context_level (B, T): the noise level the
        past frames `latents` carry (training with diffusion.context_noise); None: 0, clean."""
        if context_level is None:
            context_level = torch.zeros_like(noise_level)
        prediction, features, new_state, clean_features = self.run(
            latents, context_level, actions, state, noisy_latents, noise_level)
        return prediction, features, clean_features, new_state

    def run(self, latents: torch.Tensor, noise_level: torch.Tensor, actions: torch.Tensor, state: WorldModelState,
            noisy_latents: torch.Tensor | None = None, noisy_level: torch.Tensor | None = None,
            keep_state: bool = True) -> tuple[torch.Tensor, torch.Tensor, WorldModelState | None, torch.Tensor | None]:
        """The layers over `latents` at `noise_level`, and over `noisy_latents` from their clean past when
        given. Returns (prediction, features of the frames predicted from, state after `latents`, and
        with noisy latents the features of `latents`, else None)."""
        frames = latents.size(1)
        frame_index = state.frame_count.unsqueeze(1) + torch.arange(frames, device=latents.device)
        cond = self.conditioning(noise_level, actions)
        tokens = self.latent_in(self.to_patches(latents)) + self.position
        noisy = noisy_cond = None
        if noisy_latents is not None:
            noisy_cond = self.conditioning(noisy_level, actions)
            noisy = self.latent_in(self.to_patches(noisy_latents)) + self.position
        ssm, keys, values = [], [], []
        key_index = state.key_index
        for i, layer in enumerate(self.layers):
            cache = (state.keys[i], state.values[i], state.key_index)
            tokens, ssm_i, cache, noisy = layer(tokens, cond, frame_index, state.ssm[i], cache, noisy, noisy_cond,
                                                keep_state)
            ssm.append(ssm_i)
            keys.append(cache[0])
            values.append(cache[1])
            if layer.attention is not None:
                key_index = cache[2]
        new_state = WorldModelState(ssm=ssm, keys=keys, values=values, key_index=key_index,
                                    frame_count=state.frame_count + frames) if keep_state else None
        if noisy is None:
            h, _ = self.out_norm(tokens, cond)
            return self.from_patches(self.latent_out(h)), tokens.mean(dim=(2, 3)), new_state, None
        h, _ = self.out_norm(noisy, noisy_cond)
        return self.from_patches(self.latent_out(h)), noisy.mean(dim=(2, 3)), new_state, tokens.mean(dim=(2, 3))

    def to_patches(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, C) -> (B, T, H/p, W/p, p*p*C)."""
        p = self.config.patch
        if p == 1:
            return latents
        b, t, h, w, c = latents.shape
        patches = latents.reshape(b, t, h // p, p, w // p, p, c).permute(0, 1, 2, 4, 3, 5, 6)
        return patches.reshape(b, t, h // p, w // p, p * p * c)

    def from_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """The inverse of `to_patches`."""
        p = self.config.patch
        if p == 1:
            return patches
        b, t, hp, wp, _ = patches.shape
        latents = patches.reshape(b, t, hp, wp, p, p, -1).permute(0, 1, 2, 4, 3, 5, 6)
        return latents.reshape(b, t, hp * p, wp * p, -1)

"""The world model: frame autoencoder + dynamics backbone + reward/termination heads, with the
recurrent API the environment uses.

    state = model.initial_state(batch)
    state = model.observe(state, frames, actions)          # prime on real context, one parallel pass
    frame, reward, done, state = model.imagine(state, action)

`actions[:, t]` passed to `observe` is the action that led to `frames[:, t]` (NO_ACTION for an
episode's first frame); `imagine(state, a)` takes action `a` now and returns the next frame, so
`imagine` then `observe` of the same frame and action agree.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.profiler import record_function

from lssvwm_env.models.autoencoder import AutoencoderConfig, FrameAutoencoder
from lssvwm_env.models.backbone import Backbone, BackboneConfig, apply_variant
from lssvwm_env.models.diffusion import DiffusionConfig, euler_step, sampling_schedule
from lssvwm_env.models.heads import HeadsConfig, RewardTerminationHead
from lssvwm_env.models.state import WorldModelState


# The parts of an imagined step, as torch.profiler shows them (`lssvwm bench env --profile`).
PROFILE_DENOISE, PROFILE_COMMIT, PROFILE_DECODE = "denoising pass", "commit pass", "decode"


@dataclass
class WorldModelConfig:
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    variant: str = "ours"
    causal_window: int | None = None  # for variant causal_attn: frames of history kept (None: all)
    # bf16 autocast for the backbone's matmuls. `lssvwm train --precision auto` (the default) sets it
    # where the hardware computes bf16 natively (`native_bf16`): on an AMD EPYC with avx512_bf16 a
    # `cpu` preset training step ran 1.25x faster than in fp32 (nn.Linear 2048x128->512: 458 against
    # 155 GFLOP/s); CPUs without bf16 instructions emulate it, slower than fp32.
    bf16: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict) -> "WorldModelConfig":
        """From a saved config; fields added since it was written get the value they had then."""
        from lssvwm_env.config_io import dataclass_from_dict
        attention = data.get("backbone", {}).get("attention")
        if isinstance(attention, dict) and "temporal_encoding" not in attention:
            data = {**data, "backbone": {**data["backbone"],
                                         "attention": {**attention, "temporal_encoding": "offset_bias"}}}
        return dataclass_from_dict(WorldModelConfig, data)


def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes bf16 matmuls natively: a CUDA GPU that supports bf16, or a CPU with
    AVX512-BF16 or AMX instructions (what PyTorch's oneDNN kernels use)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu
        return any(getattr(cpu, probe, lambda: False)() for probe in
                   ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return False


@dataclass
class ModelStep:
    """One frame the model committed: its latent (B, h, w, C) and backbone features (B, D); for an
    imagined frame also the predicted reward (B,) and termination (B,) (None for a real frame)."""

    latent: torch.Tensor
    features: torch.Tensor
    reward: torch.Tensor | None
    terminated: torch.Tensor | None
    state: WorldModelState


class WorldModel(nn.Module):
    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        self.config = config
        if tuple(config.backbone.grid) != config.autoencoder.grid:
            raise ValueError(f"backbone.grid {tuple(config.backbone.grid)} must equal the autoencoder's "
                             f"latent grid {config.autoencoder.grid}")
        if config.backbone.latent_channels != config.autoencoder.latent_channels:
            raise ValueError("backbone.latent_channels must equal autoencoder.latent_channels")
        self.autoencoder = FrameAutoencoder(config.autoencoder)
        self.backbone = Backbone(apply_variant(config.backbone, config.variant, config.causal_window))
        self.heads = RewardTerminationHead(config.backbone.d_model, config.heads)
        # Latents are standardised per channel with statistics measured after stage 0, so the
        # diffusion model sees unit-variance data whatever the autoencoder learnt.
        self.register_buffer("latent_mean", torch.zeros(config.autoencoder.latent_channels))
        self.register_buffer("latent_std", torch.ones(config.autoencoder.latent_channels))

    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for the backbone's matmuls, when the config asks for it."""
        if not self.config.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def autoencoder_autocast(self) -> contextlib.AbstractContextManager:
        """The autoencoder runs in fp32 on CPU: PyTorch's bf16 convolutions there take a slow path
        (measured 25x slower than fp32 for a training step on this 2-core machine)."""
        if self.device.type == "cpu":
            return torch.autocast(device_type="cpu", enabled=False)
        return self.autocast()

    # ---- frames <-> standardised latents -------------------------------------------------------
    @torch.no_grad()
    def encode(self, frames: torch.Tensor, batch_frames: int = 256) -> torch.Tensor:
        """frames: (B, T, H, W, 3) uint8 -> latents (B, T, h, w, C), standardised."""
        b, t = frames.shape[:2]
        flat = frames.reshape(b * t, *frames.shape[2:]).to(self.device)
        with self.autoencoder_autocast():
            parts = [self.autoencoder.encode(flat[i:i + batch_frames])
                     for i in range(0, flat.size(0), batch_frames)]
        latents = (torch.cat(parts).to(self.latent_mean.dtype) - self.latent_mean) / self.latent_std
        return latents.reshape(b, t, *latents.shape[1:])

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch_frames: int = 256) -> torch.Tensor:
        """latents: (B, T, h, w, C) standardised -> frames (B, T, H, W, 3) uint8."""
        b, t = latents.shape[:2]
        flat = latents.reshape(b * t, *latents.shape[2:]).to(self.latent_std.dtype) * self.latent_std + self.latent_mean
        with self.autoencoder_autocast(), record_function(PROFILE_DECODE):
            parts = [self.autoencoder.decode(flat[i:i + batch_frames]) for i in range(0, flat.size(0), batch_frames)]
        frames = torch.cat(parts)
        return frames.reshape(b, t, *frames.shape[1:])

    # ---- recurrent API -------------------------------------------------------------------------
    def initial_state(self, batch: int) -> WorldModelState:
        dtype = torch.float32 if self.latent_mean.dtype in (torch.float16, torch.bfloat16) else self.latent_mean.dtype
        # Under bf16 autocast the attention's keys and values are computed in bf16: a cache of that
        # dtype holds them exactly, where an fp32 one cost two casts of the whole cache per pass.
        cache_dtype = torch.bfloat16 if self.config.bf16 else dtype
        return self.backbone.initial_state(batch, self.device, dtype, cache_dtype)

    def step_latents(self, state: WorldModelState, latents: torch.Tensor, actions: torch.Tensor,
                     noise_level: torch.Tensor | None = None, keep_state: bool = True,
                     ) -> tuple[torch.Tensor, torch.Tensor, WorldModelState | None]:
        """Run the backbone over latents (B, T, h, w, C) at `noise_level` (B, T) (default 0: commit).
        Returns (prediction, features (B, T, D), state after them; None with keep_state=False, a pass
        that only reads the state)."""
        if noise_level is None:
            noise_level = torch.zeros(latents.shape[:2], device=latents.device, dtype=latents.dtype)
        with self.autocast():
            prediction, features, new_state = self.backbone(latents, noise_level, actions, state, keep_state)
        return prediction.to(latents.dtype), features.to(latents.dtype), new_state

    @torch.no_grad()
    def observe(self, state: WorldModelState, frames: torch.Tensor, actions: torch.Tensor) -> WorldModelState:
        """Prime on real frames (B, T, H, W, 3) uint8 and the actions (B, T) that led to them."""
        return self.observe_step(state, frames, actions).state

    @torch.no_grad()
    def observe_step(self, state: WorldModelState, frames: torch.Tensor, actions: torch.Tensor) -> "ModelStep":
        """`observe`, also returning the last frame's latent (B, h, w, C) and committed features (B, D)."""
        latents = self.encode(frames)
        _, features, state = self.step_latents(state, latents, actions.to(self.device))
        return ModelStep(latents[:, -1], features[:, -1], None, None, state)

    def frame_actions(self, action: torch.Tensor) -> torch.Tensor:
        """One frame's actions, (B,) discrete or (B, n) continuous, as the backbone takes a window's:
        (B, 1) or (B, 1, n)."""
        action = action.to(self.device)
        if self.config.backbone.action.kind == "continuous":
            return action.reshape(action.shape[0], 1, self.config.backbone.action.n)
        return action.view(-1, 1)

    def sampling_schedule(self, sampling_steps: int | None) -> list[float]:
        steps = self.config.diffusion.sampling_steps if sampling_steps is None else sampling_steps
        if steps < 1:
            raise ValueError(f"sampling_steps must be >= 1, got {steps}")
        return sampling_schedule(steps).tolist()

    @torch.no_grad()
    def generate_latent(self, state: WorldModelState, action: torch.Tensor,
                        generator: torch.Generator | None = None, sampling_steps: int | None = None,
                        noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoise the next frame's latent (B, 1, h, w, C) given the state and action (B,) (or (B, n) for
        continuous actions); the state is
        only read: the past is clean, the new frame goes from noise level 1 to 0 (from `noise` when given,
        else drawn). Returns the latent and the features (B, 1, D) of the first pass, at pure noise: the
        past and the action only."""
        c = self.config
        schedule = self.sampling_schedule(sampling_steps)
        shape = (state.batch_size, 1, *c.autoencoder.grid, c.autoencoder.latent_channels)
        dtype = state.ssm[0].dtype if state.ssm else torch.float32
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=self.device, dtype=torch.float32)
        latent = noise.to(self.device, dtype)
        actions = self.frame_actions(action)
        prior_features = None
        for sigma, next_sigma in zip(schedule[:-1], schedule[1:]):
            noise_level = torch.full(shape[:2], sigma, device=self.device, dtype=dtype)
            with record_function(PROFILE_DENOISE):
                prediction, features, _ = self.step_latents(state, latent, actions, noise_level, keep_state=False)
            if prior_features is None:
                prior_features = features
            latent = euler_step(latent, prediction, sigma, next_sigma, c.diffusion)
        return latent, prior_features

    @torch.no_grad()
    def predict_each_next(self, state: WorldModelState, latents: torch.Tensor, actions: torch.Tensor,
                          generator: torch.Generator | None = None, sampling_steps: int | None = None,
                          noise: torch.Tensor | None = None) -> torch.Tensor:
        """One-step predictions, all at once: each frame t of the real `latents` (B, T, h, w, C) generated
        from noise, given `state` and the real frames before t, as `imagine` would generate it after
        `observe` of them (Backbone.forward_clean_context, `sampling_steps` parallel passes). actions:
        (B, T), the action that led to each frame. Returns (B, T, h, w, C)."""
        schedule = self.sampling_schedule(sampling_steps)
        if noise is None:
            noise = torch.randn(latents.shape, generator=generator, device=self.device, dtype=torch.float32)
        latent = noise.to(self.device, latents.dtype)
        for sigma, next_sigma in zip(schedule[:-1], schedule[1:]):
            noise_level = torch.full(latents.shape[:2], sigma, device=self.device, dtype=latents.dtype)
            with self.autocast():
                prediction, _, _, _ = self.backbone.forward_clean_context(latents, latent, noise_level, actions, state)
            latent = euler_step(latent, prediction.to(latent.dtype), sigma, next_sigma, self.config.diffusion)
        return latent

    @torch.no_grad()
    def imagine(self, state: WorldModelState, action: torch.Tensor, generator: torch.Generator | None = None,
                sampling_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, WorldModelState]:
        """Take `action` (B,) and return (frame (B, H, W, 3) uint8, reward (B,), terminated (B,) bool,
        new state): sample the next latent, then commit it at noise level 0 (one more pass), which
        advances the SSM states and the KV cache and gives the features for the heads (or, with
        heads.predict_from "prior", the heads read the first denoising pass: heads.py)."""
        step = self.imagine_step(state, action, generator, sampling_steps)
        return self.decode(step.latent[:, None])[:, 0], step.reward, step.terminated, step.state

    @torch.no_grad()
    def imagine_step(self, state: WorldModelState, action: torch.Tensor, generator: torch.Generator | None = None,
                     sampling_steps: int | None = None) -> "ModelStep":
        """`imagine` without the decoder: the new latent (B, h, w, C), the committed frame's features
        (B, D: what the heads read, and what the state recalls of the past), reward, termination."""
        latent, prior_features = self.generate_latent(state, action, generator, sampling_steps)
        committed, level = latent, None
        sigma = self.config.diffusion.commit_noise
        if sigma > 0:
            noise = torch.randn(latent.shape, generator=generator, device=self.device, dtype=torch.float32)
            committed = (1 - sigma) * latent + sigma * noise.to(latent.dtype)
            level = torch.full(latent.shape[:2], sigma, device=self.device, dtype=latent.dtype)
        with record_function(PROFILE_COMMIT):
            _, features, state = self.step_latents(state, committed, self.frame_actions(action), level)
        read = prior_features if self.config.heads.predict_from == "prior" else features
        reward, termination_logit = self.heads(read[:, 0])
        return ModelStep(latent[:, 0], features[:, 0], reward, termination_logit > 0, state)

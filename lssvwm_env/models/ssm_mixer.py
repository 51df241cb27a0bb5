"""The Mamba-2 mixer: projections and gating around the SSD scan, on plain sequences (N, L, D).

Differences from Mamba-2 (Dao & Gu 2024, Fig. 6), and why: the short causal depthwise conv is left
out, because in this model the dense local attention already mixes neighbouring tokens and the conv
would add a second kind of recurrent state to carry; B and C are shared by all heads (one group).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lssvwm_env.models.ssd import ssd_scan


@dataclass
class SSMConfig:
    d_state: int = 32
    expand: int = 2  # inner width = expand * d_model
    head_dim: int = 32
    chunk_size: int = 64  # SSD chunk (tokens): parallel inside, recurrent across
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    # Timescales in frames: the heads' state half-lives at initialisation, log-spaced over [low, high]
    # frames; None: Mamba's per-step init (dt log-uniform in [dt_min, dt_max]), whose half-lives in a
    # block-wise scan are under 10 frames (docs/memory-ablation/ssm_horizon.py).
    half_life_frames: tuple[float, float] | None = None
    # Keep those half-lives as floors: a head may learn to remember longer, never shorter. Trained
    # freely, the heads' half-lives fell back under a few frames (docs/memory-ablation).
    half_life_floor: bool = False

    def __post_init__(self) -> None:
        if self.half_life_floor and self.half_life_frames is None:
            raise ValueError("ssm.half_life_floor needs ssm.half_life_frames (the floors)")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Mamba2Mixer(nn.Module):
    def __init__(self, d_model: int, config: SSMConfig, steps_per_frame: int = 1) -> None:
        """steps_per_frame: scan steps per frame of video (the tokens of a block), so that
        `config.half_life_frames` is counted in frames."""
        super().__init__()
        self.config = config
        self.d_inner = config.expand * d_model
        if self.d_inner % config.head_dim:
            raise ValueError(f"ssm: expand*d_model={self.d_inner} must be a multiple of head_dim={config.head_dim}")
        self.n_heads = self.d_inner // config.head_dim
        # z (gate), x, B, C, dt in one projection.
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner + 2 * config.d_state + self.n_heads, bias=False)
        if config.half_life_frames is None:
            # dt log-uniform in [dt_min, dt_max] (Mamba's init): a spread of memory lengths in steps.
            dt = torch.exp(torch.rand(self.n_heads) * (math.log(config.dt_max) - math.log(config.dt_min))
                           + math.log(config.dt_min))
            a = torch.empty(self.n_heads).uniform_(1, 16)
        else:
            a = torch.empty(self.n_heads).uniform_(1, 16)
            # A frame scales the state by exp(-a * dt * steps_per_frame): dt gives each head its
            # half-life in frames. dt, not a, carries it, so a slow head also writes slowly and its
            # state stays of the size of a fast head's.
            low, high = config.half_life_frames
            half_life = torch.exp(torch.linspace(math.log(low), math.log(high), self.n_heads))
            dt = math.log(2) / (half_life * steps_per_frame * a)
        # The fastest decay per step each head may reach (the floor of its half-life), or none.
        self.register_buffer("max_decay", dt * a if config.half_life_floor else None, persistent=False)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(self.n_heads))
        self.norm = RMSNorm(self.d_inner)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def state_shape(self) -> tuple[int, int, int]:
        return (self.n_heads, self.config.head_dim, self.config.d_state)

    def step_sizes(self, dt_raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(dt (..., heads), A (heads,)) from in_proj's dt outputs: a step scales the state by
        exp(dt * A) and its input by dt."""
        dt = F.softplus(dt_raw.float() + self.dt_bias)
        A = -torch.exp(self.A_log.float())
        if self.max_decay is not None:
            dt = torch.minimum(dt, self.max_decay / -A)  # the step's decay dt * |A| stays under the floor's
        return dt, A

    def forward(self, sequences: torch.Tensor, state: torch.Tensor,
                states_every: int = 0, keep_state: bool = True) -> tuple[torch.Tensor, ...]:
        """sequences: (N, L, d_model); state: (N, heads, head_dim, d_state). Returns (out, final state),
        and with `states_every` = k the state after every k steps (N, L // k, heads, head_dim, d_state).
        keep_state=False: the state is only read, None stands for the final state (ssd.ssd_chunked)."""
        n, length, _ = sequences.shape
        z, xbc, dt = torch.split(
            self.in_proj(sequences), [self.d_inner, self.d_inner + 2 * self.config.d_state, self.n_heads], dim=-1)
        xbc = F.silu(xbc)
        x, B, C = torch.split(xbc, [self.d_inner, self.config.d_state, self.config.d_state], dim=-1)
        dt, A = self.step_sizes(dt)
        x_heads = x.reshape(n, length, self.n_heads, self.config.head_dim)
        y, *states = ssd_scan(x_heads, dt, A, B, C, self.config.chunk_size, state, states_every, keep_state)
        y = y + x_heads.to(y.dtype) * self.D.to(y.dtype)[:, None]
        y = y.reshape(n, length, self.d_inner).to(z.dtype)
        y = self.norm(y * F.silu(z))
        return (self.out_proj(y), *states)

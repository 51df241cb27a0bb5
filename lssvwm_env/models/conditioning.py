"""Conditioning on noise level and action (docs/design.md, "The model"): a per-frame vector
that every layer turns into adaptive-norm shifts, scales and gates (adaLN-Zero, Peebles & Xie 2023)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

NO_ACTION = -1  # the action "before" the first frame of an episode


@dataclass
class ActionConfig:
    kind: str = "discrete"  # "discrete" or "continuous"
    n: int = 6  # number of discrete actions, or the dimension of a continuous action


def sinusoidal_embedding(values: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """values: (...,) in [0, 1] -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=values.device, dtype=torch.float32) / half)
    angles = values.float().unsqueeze(-1) * 1000.0 * freqs
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class FrameConditioning(nn.Module):
    """noise level (B, T) in [0, 1] and the action that led to each frame -> (B, T, d_model)."""

    def __init__(self, d_model: int, action: ActionConfig) -> None:
        super().__init__()
        self.action = action
        self.noise_mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        if action.kind == "discrete":
            self.action_embedding = nn.Embedding(action.n + 1, d_model)  # last row: NO_ACTION
        elif action.kind == "continuous":
            self.action_mlp = nn.Sequential(nn.Linear(action.n, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        else:
            raise ValueError(f"action kind must be 'discrete' or 'continuous', got {action.kind!r}")

    def forward(self, noise_level: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        d_model = self.noise_mlp[0].in_features
        cond = self.noise_mlp(sinusoidal_embedding(noise_level, d_model).to(self.noise_mlp[0].weight.dtype))
        if self.action.kind == "discrete":
            index = torch.where(actions == NO_ACTION, torch.full_like(actions, self.action.n), actions)
            return cond + self.action_embedding(index)
        return cond + self.action_mlp(actions.to(cond.dtype))


class AdaptiveNorm(nn.Module):
    """LayerNorm whose shift, scale and output gate come from the frame's conditioning. Zero-initialised,
    so every residual branch starts as the identity."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(d_model, 3 * d_model))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, tokens: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: (B, T, ..., D), cond: (B, T, D). Returns (modulated tokens, gate) to apply as
        tokens + gate * branch(modulated)."""
        shift, scale, gate = self.modulation(cond).chunk(3, dim=-1)
        extra = tokens.dim() - cond.dim()
        shape = (*cond.shape[:2], *([1] * extra), cond.size(-1))
        shift, scale, gate = shift.view(shape), scale.view(shape), gate.view(shape)
        return self.norm(tokens) * (1 + scale) + shift, gate

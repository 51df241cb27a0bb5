"""Reward and termination heads: from a committed frame's pooled features (which carry the action that
led to the frame through adaptive normalisation) to the reward and termination of that transition."""

from __future__ import annotations

import torch
from torch import nn


class RewardTerminationHead(nn.Module):
    def __init__(self, d_model: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, hidden), nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features: (..., D) -> (reward (...), termination logit (...))."""
        out = self.net(features).float()
        return out[..., 0], out[..., 1]

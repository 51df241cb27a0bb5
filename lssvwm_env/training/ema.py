"""Exponential moving average of the trainable weights; the EMA weights are the ones saved for inference."""

from __future__ import annotations

import torch


class EMA:
    def __init__(self, parameters: dict[str, torch.nn.Parameter], decay: float) -> None:
        self.decay = decay
        self.shadow = {name: p.detach().clone() for name, p in parameters.items()}

    @torch.no_grad()
    def update(self, parameters: dict[str, torch.nn.Parameter], step: int) -> None:
        # Warm-up of the decay (as in timm / DIAMOND): early weights are not averaged in for long.
        decay = min(self.decay, (1 + step) / (10 + step))
        for name, p in parameters.items():
            self.shadow[name].lerp_(p.detach(), 1 - decay)

"""Reward and termination heads: from a committed frame's pooled features (which carry the action that
led to the frame through adaptive normalisation) to the reward and termination of that transition.

With `reward_gate`, a third output classifies "is there any reward": the predicted reward is the
regression (trained only where a reward was paid) times the gate's probability, the expected reward,
and exactly zero where that probability is below `reward_floor`. Sparse-reward envs (MiniGrid, Memory
Maze) pay nothing on almost every step; a plain regression leaves a small bias there, largest on the
frames the model generates, and an agent trained inside the model learns to farm it by making episodes
long (a MiniGrid-MemoryS7 agent collected 0.842 over 100-step imagined episodes that never ended).
Where the outcome is uncertain (an end of MiniGrid's hallway, which pays only if it matches an object
the model may not remember) the expected reward stays what a policy should be trained on.

Which features the heads read when imagining (`predict_from`): "committed", those of the sampled
frame once committed, so a reward is predicted only if the sampled frame shows it happen; or
"prior", those of the first denoising pass, where the new frame is still pure noise, so they hold
the past and the action only (Dreamer's reward from the prior state). Training is the same for both:
diffusion forcing trains the heads at every noise level. "prior" matters where the event that pays
is drawn rarely: a Memory Maze target touched changes the border to the next target's colour, a
random choice a generated frame seldom makes, so committed-frame rewards vanish after a few
generated frames although the model knows the agent walked into the ball. Measured there
(docs/agents/README.md), "prior" pays 0.73-0.76 at the data's arrivals against 0.21-0.29, and a
policy trained on it farmed what the model gets wrong (8.6 per 500 imagined steps, 0.13 in the real
maze): it is a choice to try, not the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


PREDICT_FROM = ("committed", "prior")


@dataclass
class HeadsConfig:
    hidden: int = 128
    # Off by default so that checkpoints saved before the gate existed load as they were trained.
    reward_gate: bool = False
    reward_floor: float = 0.05  # gate probabilities below this give a reward of exactly zero
    predict_from: str = "committed"  # or "prior"; "committed" is how checkpoints before it existed imagine

    def __post_init__(self) -> None:
        if self.predict_from not in PREDICT_FROM:
            raise ValueError(f"heads.predict_from is {self.predict_from!r}, expected one of {list(PREDICT_FROM)}")


def training_data_record(rewards: np.ndarray, terminated: np.ndarray) -> dict:
    """What a checkpoint records of the transitions it was trained on (all of them, flat): the reward
    range and, for a sparse env, its few values; the share of transitions that ended an episode."""
    values = np.unique(rewards)
    return {"reward_range": [float(rewards.min()), float(rewards.max())],
            "reward_values": [float(v) for v in values] if len(values) <= 16 else None,
            "termination_rate": float(terminated.mean()), "transitions": int(len(rewards))}


class RewardTerminationHead(nn.Module):
    def __init__(self, d_model: int, config: HeadsConfig | None = None) -> None:
        super().__init__()
        self.config = config or HeadsConfig()
        outputs = 3 if self.config.reward_gate else 2
        self.net = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, self.config.hidden), nn.SiLU(),
                                 nn.Linear(self.config.hidden, outputs))
        # The lowest and highest reward of the training data (checkpoint.py, "training_data"): predictions
        # stay inside them, so an agent never learns from a reward the real env could not pay (a
        # regression drifts outside on generated frames: -0.6 per 120 steps of a {0, 1} env was seen).
        self.register_buffer("reward_range", torch.tensor([-math.inf, math.inf]), persistent=False)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features: (..., D) -> (reward (...), termination logit (...)) as the env uses them."""
        out = self.net(features).float()
        reward = out[..., 0]
        if self.config.reward_gate:
            paid = torch.sigmoid(out[..., 2])
            reward = torch.where(paid >= self.config.reward_floor, paid * reward, torch.zeros_like(reward))
        return reward.clamp(self.reward_range[0], self.reward_range[1]), out[..., 1]

    def loss(self, features: torch.Tensor, rewards: torch.Tensor, terminated: torch.Tensor,
             mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reward loss, termination loss), means over the transitions where mask is 1.

        features (..., D); rewards, terminated, mask (...). With the gate, the regression learns the
        size of rewards that were paid and the gate learns whether one was.
        """
        out = self.net(features).float()
        count = mask.sum().clamp_min(1)
        termination = (F.binary_cross_entropy_with_logits(out[..., 1], terminated.float(), reduction="none")
                       * mask).sum() / count
        squared = (out[..., 0] - rewards).pow(2)
        if not self.config.reward_gate:
            return (squared * mask).sum() / count, termination
        paid = (rewards != 0).float()
        gate = (F.binary_cross_entropy_with_logits(out[..., 2], paid, reduction="none") * mask).sum() / count
        size = (squared * mask * paid).sum() / (mask * paid).sum().clamp_min(1)
        return gate + size, termination

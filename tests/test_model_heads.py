"""Reward/termination heads: the gated reward is exactly zero where nothing is paid and the expected
reward where payment is uncertain."""

from __future__ import annotations

import torch

from lssvwm_env.models.heads import HeadsConfig, RewardTerminationHead
from lssvwm_env.models.world_model import WorldModel, WorldModelConfig
from lssvwm_env.presets import preset


def _sparse_rewards(n: int, d: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features, rewards, terminations: a sixth of the transitions end, and half of those (by a coin
    the features do not show, as when the model cannot tell the right end of a hallway from the
    wrong one) pay a reward whose size another feature sets. Feature 0 tells ends from other steps
    with a margin: the test is about the gate, not a hard boundary."""
    features = torch.randn(n, d, generator=generator)
    ends = torch.rand(n, generator=generator) < 1 / 6
    features[:, 0] = torch.where(ends, 3.0, -1.0) + 0.3 * features[:, 0]
    paid = ends & (torch.rand(n, generator=generator) < 0.5)
    rewards = torch.where(paid, 0.6 + 0.3 * torch.tanh(features[:, 1]), torch.zeros(n))
    return features, rewards, ends


def _fit(config: HeadsConfig) -> tuple[RewardTerminationHead, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    head = RewardTerminationHead(16, config)
    features, rewards, ends = _sparse_rewards(2048, 16, generator)
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(400):
        reward_loss, termination_loss = head.loss(features, rewards, ends, torch.ones(len(rewards)))
        optimizer.zero_grad()
        (reward_loss + termination_loss).backward()
        optimizer.step()
    return head, *_sparse_rewards(1024, 16, generator)


def test_gated_reward_is_zero_off_the_ends_and_the_expected_reward_at_them():
    head, features, rewards, ends = _fit(HeadsConfig(reward_gate=True))
    with torch.no_grad():
        predicted, termination_logit = head(features)
    assert head.net[-1].out_features == 3
    assert (predicted[~ends] == 0).float().mean() > 0.98
    # Half the ends pay 0.6 + 0.3 tanh(feature 1): on average the head predicts half of that.
    expected = 0.5 * (0.6 + 0.3 * torch.tanh(features[ends, 1]))
    assert abs(predicted[ends].mean() - expected.mean()) < 0.05
    assert ((termination_logit > 0) == ends).float().mean() > 0.98


def test_plain_regression_leaves_a_bias_on_unpaid_steps():
    # What the gate is for: the same fit without it is almost never exactly zero.
    head, features, _, ends = _fit(HeadsConfig(reward_gate=False))
    with torch.no_grad():
        predicted, _ = head(features)
    assert head.net[-1].out_features == 2
    assert (predicted[~ends] == 0).float().mean() < 0.05


def test_checkpoint_config_without_heads_builds_the_ungated_head():
    saved = preset("tiny").model.to_dict()
    assert saved["heads"]["reward_gate"] is True  # the presets train with the gate
    del saved["heads"]  # as in config.json files written before the gate existed
    model = WorldModel(WorldModelConfig.from_dict(saved))
    assert model.config.heads.reward_gate is False
    assert model.heads.net[-1].out_features == 2

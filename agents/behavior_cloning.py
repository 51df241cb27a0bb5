"""Warm start for an agent that will train in imagination: before PPO, the policy learns from the
world model's own dataset. The actor imitates the dataset's actions (behaviour cloning,
cross-entropy) and the critic regresses the dataset's discounted returns-to-go, both from single
frames, as the CnnPolicy sees them.

Why: a PPO policy that starts uniform explores the model's weakest region (frames the data never
showed, such as a wall filling the view) and there finds rewards the model invents
(docs/agents/README.md, "rewards read before the frame is drawn"). Starting from the data's
behaviour starts imagined rollouts where the model was trained, and the critic starts with the
data's values instead of noise, which matters for short imagined episodes that bootstrap the value
at their step limit. The dataset costs no real env steps beyond those the model already counts.

Measured on Memory Maze 9x9 (docs/agents/README.md, "a warm start from the data's behaviour"):
the cloned policy alone beats random and model-free PPO in the real maze, and PPO in imagination
then loses most of that to the model's mistakes. The warm start alone does not keep PPO near the
data; --bc-anchor adds that limit (agents/anchor.py).

Only feed-forward PPO is warm-started: RecurrentPPO's LSTM would need whole sequences.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space_channels_first
from tqdm.auto import tqdm

from data_collection.dataset import Dataset, DatasetError


@dataclass
class CloneConfig:
    dataset: str
    split: str = "train"  # the episodes to learn from; the other split measures held-out accuracy
    epochs: int = 4
    batch_size: int = 256
    learning_rate: float = 3e-4
    value_coef: float = 0.5  # weight of the critic's squared error against the actor's cross-entropy
    gamma: float = 0.99  # discount of the returns the critic regresses (PPO's gamma)
    seed: int = 0


@dataclass
class Transitions:
    frames: np.ndarray  # (N, 64, 64, 3) uint8
    actions: np.ndarray  # (N,) int64, taken after seeing frames
    returns: np.ndarray  # (N,) float32, discounted return-to-go from frames

    def __len__(self) -> int:
        return len(self.actions)


def returns_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G[t] = rewards[t] + gamma * G[t + 1], zero after the episode's last step (a truncated episode
    undercounts its tail, by at most gamma ** steps_left of what followed)."""
    returns = np.zeros(len(rewards), np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        returns[t] = running
    return returns.astype(np.float32)


def frame_shape(policy: ActorCriticPolicy) -> tuple[int, int, int]:
    """(H, W, C) of the frames the policy takes (SB3 may hold its image space channels-first)."""
    shape = tuple(policy.observation_space.shape)
    return (shape[1], shape[2], shape[0]) if is_image_space_channels_first(policy.observation_space) else shape


def load_transitions(dataset: Dataset, split: str, gamma: float, num_actions: int,
                     frames_shape: tuple[int, int, int]) -> Transitions:
    entries = dataset.episodes(split)
    if not entries:
        raise DatasetError(f"{dataset.root}: no {split!r} episodes to learn the data's behaviour from")
    if dataset.manifest.num_actions != num_actions:
        raise DatasetError(f"{dataset.root}: its actions are Discrete({dataset.manifest.num_actions}) "
                           f"(manifest.json action_space), the policy's Discrete({num_actions})")
    if tuple(dataset.manifest.obs_shape) != frames_shape:
        raise DatasetError(f"{dataset.root}: its frames are {tuple(dataset.manifest.obs_shape)} (manifest.json "
                           f"obs_shape), the policy takes {frames_shape}")
    frames, actions, returns = [], [], []
    for entry in tqdm(entries, desc=f"loading {split} episodes", unit="episode", leave=False):
        arrays = dataset.load_episode(entry.index)
        frames.append(arrays["frames"])
        actions.append(arrays["actions"].astype(np.int64))
        returns.append(returns_to_go(arrays["rewards"], gamma))
    return Transitions(np.concatenate(frames), np.concatenate(actions), np.concatenate(returns))


def _batch_losses(policy: ActorCriticPolicy, data: Transitions, index: np.ndarray,
                  value_coef: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, cross-entropy, value squared error, correct actions) of one batch."""
    obs, _ = policy.obs_to_tensor(data.frames[index])  # channel order and device as the policy wants them
    actions = torch.as_tensor(data.actions[index], device=policy.device)
    returns = torch.as_tensor(data.returns[index], device=policy.device)
    distribution = policy.get_distribution(obs)
    values = policy.predict_values(obs).flatten()
    cross_entropy = -distribution.log_prob(actions).mean()
    value_error = torch.nn.functional.mse_loss(values, returns)
    correct = (distribution.distribution.probs.argmax(dim=1) == actions).float().sum()
    return cross_entropy + value_coef * value_error, cross_entropy, value_error, correct


@torch.no_grad()
def _measure(policy: ActorCriticPolicy, data: Transitions, batch_size: int, value_coef: float) -> dict[str, float]:
    totals = np.zeros(3)
    for start in range(0, len(data), batch_size):
        index = np.arange(start, min(start + batch_size, len(data)))
        _, cross_entropy, value_error, correct = _batch_losses(policy, data, index, value_coef)
        totals += [float(cross_entropy) * len(index), float(value_error) * len(index), float(correct)]
    cross_entropy, value_mse, correct = totals / len(data)
    return {"cross_entropy": cross_entropy, "accuracy": correct, "value_mse": value_mse}


def clone_behavior(policy: ActorCriticPolicy, config: CloneConfig, progress: bool = True) -> dict[str, Any]:
    """Train `policy` (in place) on the dataset; returns what happened, for summary.json: per epoch
    the train loss and the held-out split's cross-entropy, action accuracy and value error, next to
    the accuracy of always taking the data's most common action."""
    if config.epochs < 1:
        raise ValueError(f"behaviour cloning epochs must be >= 1, got {config.epochs}")
    dataset = Dataset.open(Path(config.dataset))
    num_actions, frames_shape = int(policy.action_space.n), frame_shape(policy)
    train_data = load_transitions(dataset, config.split, config.gamma, num_actions, frames_shape)
    held_out_split = "eval" if config.split == "train" else "train"
    held_out = load_transitions(dataset, held_out_split, config.gamma, num_actions, frames_shape) if (
        dataset.episodes(held_out_split)) else None
    counts = np.bincount(train_data.actions, minlength=num_actions)
    result: dict[str, Any] = {
        "config": asdict(config), "transitions": len(train_data), "held_out_split": held_out_split,
        "held_out_transitions": len(held_out) if held_out else 0,
        "action_frequencies": (counts / counts.sum()).round(4).tolist(),
        "majority_accuracy": float(np.mean(held_out.actions == counts.argmax())) if held_out else None,
        "epochs": []}
    rng = np.random.default_rng(config.seed)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    policy.set_training_mode(True)
    batches = -(-len(train_data) // config.batch_size)
    bar = tqdm(total=config.epochs * batches, desc="behaviour cloning", unit="batch", disable=not progress)
    for epoch in range(1, config.epochs + 1):
        order, total_loss = rng.permutation(len(train_data)), 0.0
        for start in range(0, len(order), config.batch_size):
            index = np.sort(order[start:start + config.batch_size])  # sorted: faster gathers, same batch
            loss, *_ = _batch_losses(policy, train_data, index, config.value_coef)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach()) * len(index)
            bar.update(1)
        record: dict[str, Any] = {"epoch": epoch, "train_loss": total_loss / len(train_data)}
        if held_out is not None:
            policy.set_training_mode(False)
            record["held_out"] = _measure(policy, held_out, config.batch_size, config.value_coef)
            policy.set_training_mode(True)
            bar.set_postfix(accuracy=f"{record['held_out']['accuracy']:.3f}")
        result["epochs"].append(record)
    bar.close()
    policy.set_training_mode(False)
    return result

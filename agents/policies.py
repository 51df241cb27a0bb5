"""The policies: SB3 PPO with a CNN, sb3-contrib RecurrentPPO with a CNN + LSTM, and a uniform
random policy, all behind SB3's `predict(obs, state, episode_start, deterministic)` so that one
evaluation harness serves them all.

A trained policy lives in a run directory (agents.train_ppo --out DIR):

    DIR/policy.zip            the final policy (SB3's own zip format: model.save / Algo.load)
    DIR/checkpoints/*.zip     periodic copies
    DIR/summary.json          settings ("algo" says which class loads the zip), eval results
    DIR/tensorboard/          TensorBoard logs
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm

POLICY_FILE = "policy.zip"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class Algo:
    cls: type[BaseAlgorithm]
    policy: str  # SB3 policy name for frames; NatureCNN features (64x64 frames -> 1024 -> 512) in both
    vector_policy: str  # for vector observations (the world model's latent or features): an MLP
    recurrent: bool

    def policy_for(self, obs_type: str) -> str:
        return self.policy if obs_type == "pixels" else self.vector_policy


ALGOS = {
    "ppo": Algo(PPO, "CnnPolicy", "MlpPolicy", recurrent=False),
    "recurrent_ppo": Algo(RecurrentPPO, "CnnLstmPolicy", "MlpLstmPolicy", recurrent=True),
}


class Policy(Protocol):
    """What the evaluation harness needs: SB3's predict. obs: (N, 64, 64, 3) uint8 -> actions (N,)."""

    observation_space: spaces.Space
    action_space: spaces.Space

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]: ...


class RandomPolicy:
    """Uniform random actions in Discrete(n) (an int n) or a Box (uniform within its bounds), from
    its own seeded generator."""

    def __init__(self, action_space: int | spaces.Space, seed: int | None = None) -> None:
        self.observation_space = spaces.Box(0, 255, (64, 64, 3), np.uint8)
        self.action_space = spaces.Discrete(action_space) if isinstance(action_space, int) else action_space
        self.rng = np.random.default_rng(seed)

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        if isinstance(self.action_space, spaces.Box):
            space = self.action_space
            return self.rng.uniform(space.low, space.high, (len(observation), *space.shape)).astype(space.dtype), None
        return self.rng.integers(self.action_space.n, size=len(observation)), None


class PolicyError(ValueError):
    """A policy could not be found or loaded; the message says what to pass instead."""


def read_summary(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / SUMMARY_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PolicyError(f"{run_dir / SUMMARY_FILE}: cannot read the run summary ({err})") from err


def run_dir_of(path: str | Path) -> Path | None:
    """The run directory a policy path belongs to (it, or the zip's folder or the folder above,
    holding summary.json), or None."""
    path = Path(path)
    candidates = [path] if path.is_dir() else [path.parent, path.parent.parent]
    return next((d for d in candidates if (d / SUMMARY_FILE).exists()), None)


def load_policy(path: str | Path, algo: str | None = None, device: str = "cpu") -> tuple[BaseAlgorithm, str]:
    """A saved policy and its algo name. path: a run directory (DIR/policy.zip, algo from
    DIR/summary.json) or a zip (algo from the summary.json of its run directory, or `algo`)."""
    path = Path(path)
    if path.is_dir():
        zip_path = path / POLICY_FILE
    elif path.suffix == ".zip" or path.with_suffix(".zip").exists():
        zip_path = path.with_suffix(".zip")
    else:
        raise PolicyError(f"policy {str(path)!r} does not exist: give a run directory of agents.train_ppo, "
                          "a policy zip, or 'random'")
    if not zip_path.exists():
        raise PolicyError(f"{path} holds no {POLICY_FILE}: the run has not finished; give one of its "
                          f"checkpoints ({path / 'checkpoints'}/*.zip) instead")
    if algo is None:
        run_dir = run_dir_of(path)
        if run_dir is None:
            raise PolicyError(f"{zip_path}: no {SUMMARY_FILE} beside it says which algorithm made it; pass "
                              f"--algo ({' or '.join(ALGOS)})")
        algo = read_summary(run_dir).get("algo")
    if algo not in ALGOS:
        raise PolicyError(f"unknown algo {algo!r} for {zip_path}; known: {', '.join(ALGOS)}")
    return ALGOS[algo].cls.load(zip_path, device=device), algo

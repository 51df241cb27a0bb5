"""One evaluation harness for every policy (PPO, RecurrentPPO, random) and every env (real or
imagined): K episodes on an SB3 VecEnv -> returns, lengths, and the frames of one episode.

The K episodes are split among the VecEnv's envs up front (env i runs (K + i) // N of them), as
SB3's evaluate_policy does, so that short episodes do not crowd out long ones. `venv.seed(seed)`
before the first reset makes the episodes (mazes, grids, context) the same for every policy
evaluated with the same seed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv

from agents.envs import make_imagined_vec_env, make_real_vec_env
from agents.policies import Policy

VIDEO_FPS = 15
VIDEO_SCALE = 4  # 64x64 frames are written as 256x256 (nearest neighbour), big enough to watch


@dataclass
class EvalResult:
    """K episodes of one policy in one env. env: the real env name, or "model:<checkpoint>" inside
    the world model; env_steps: steps taken in that env (for a real env: real env steps spent)."""

    env: str
    returns: list[float]
    lengths: list[int]
    env_steps: int
    seconds: float
    deterministic: bool
    seed: int | None
    frames: list[np.ndarray] = field(default_factory=list, repr=False)  # one episode: (64, 64, 3) uint8 each

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))

    @property
    def stderr_return(self) -> float:
        """Standard error of the mean return (sample std / sqrt(K); 0 for one episode): how far apart
        two agents' means must be before the episodes tell them apart."""
        n = len(self.returns)
        return float(np.std(self.returns, ddof=1) / np.sqrt(n)) if n > 1 else 0.0

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "frames"}
        out.update(episodes=len(self.returns), mean_return=self.mean_return, std_return=self.std_return,
                   mean_length=float(np.mean(self.lengths)))
        return out

    @staticmethod
    def from_json(data: dict[str, Any]) -> "EvalResult":
        """Inverse of to_json (without the video frames, which it does not hold)."""
        return EvalResult(data["env"], list(data["returns"]), list(data["lengths"]), data["env_steps"],
                          data["seconds"], data["deterministic"], data["seed"])

    def line(self) -> str:
        """`<env> (K episodes, mean length L): return M ± S`: mean ± std ends the line."""
        return (f"{self.env} ({len(self.returns)} episodes, mean length {np.mean(self.lengths):.1f}): "
                f"return {self.mean_return:.3f} ± {self.std_return:.3f}")


def run_episodes(policy: Policy, venv: VecEnv, episodes: int, env_label: str, seed: int | None = 0,
                 deterministic: bool = False, record: bool = False) -> EvalResult:
    """Run `episodes` episodes of `policy` in `venv` (obs (N, 64, 64, 3) uint8). seed: seeds the
    episodes and the sampled actions, so the same seed gives the same episodes. record: keep the
    frames of env 0's first episode (its first observation through its terminal one)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if seed is None:
        return _run_episodes(policy, venv, episodes, env_label, seed, deterministic, record)
    venv.seed(seed)
    # SB3 samples actions from torch's global generator: seed a forked copy, so that evaluating does
    # not disturb a training run's random stream.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _run_episodes(policy, venv, episodes, env_label, seed, deterministic, record)


def _run_episodes(policy: Policy, venv: VecEnv, episodes: int, env_label: str, seed: int | None,
                  deterministic: bool, record: bool) -> EvalResult:
    if record and len(venv.observation_space.shape) != 3:
        raise ValueError(f"{env_label}: a video records the observed frames, and this env observes vectors of shape "
                         f"{venv.observation_space.shape} (obs_type latent or features); evaluate without a video")
    n = venv.num_envs
    targets = np.array([(episodes + i) // n for i in range(n)])
    counts = np.zeros(n, dtype=int)
    episode_return, episode_length = np.zeros(n), np.zeros(n, dtype=int)
    returns: list[float] = []
    lengths: list[int] = []
    start, env_steps = time.perf_counter(), 0
    obs = venv.reset()
    frames = [obs[0].copy()] if record else []
    recording = record
    state, episode_start = None, np.ones(n, dtype=bool)
    while (counts < targets).any():
        actions, state = policy.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)
        obs, rewards, dones, infos = venv.step(actions)
        env_steps += n
        episode_return += rewards
        episode_length += 1
        if recording:
            frames.append((infos[0]["terminal_observation"] if dones[0] else obs[0]).copy())
            recording = not dones[0]
        for i in np.flatnonzero(dones):
            if counts[i] < targets[i]:
                returns.append(float(episode_return[i]))
                lengths.append(int(episode_length[i]))
                counts[i] += 1
            episode_return[i], episode_length[i] = 0.0, 0
        episode_start = dones
    return EvalResult(env=env_label, returns=returns, lengths=lengths, env_steps=env_steps,
                      seconds=round(time.perf_counter() - start, 3), deterministic=deterministic, seed=seed,
                      frames=frames)


def evaluate_in_real_env(policy: Policy, env_name: str, episodes: int, max_steps: int | None = None,
                         seed: int | None = 0, num_envs: int = 1, deterministic: bool = False,
                         record: bool = False, obs_type: str = "pixels", checkpoint: str | Path | None = None,
                         device: str = "cpu") -> EvalResult:
    """`policy` in the real env `env_name` (data_collection.envs names), episodes cut at max_steps;
    obs_type latent / features: the policy sees the real frames through the world model `checkpoint`."""
    venv = make_real_vec_env(env_name, num_envs, max_steps, obs_type=obs_type, checkpoint=checkpoint, device=device)
    try:
        check_fits(policy, venv, env_name)
        return run_episodes(policy, venv, episodes, env_name, seed, deterministic, record)
    finally:
        venv.close()


def evaluate_in_model(policy: Policy, env_id: str, checkpoint: str | Path | None, episodes: int,
                      max_steps: int | None = None, seed: int | None = 0, num_envs: int = 1,
                      deterministic: bool = False, record: bool = False, device: str = "cpu",
                      sampling_steps: int | None = None, context: int = 32,
                      dataset: str | Path | None = None, obs_type: str = "pixels") -> EvalResult:
    """`policy` inside the world model (the imagined env `env_id` with `checkpoint`): returns are the
    model's predicted rewards. Compared with evaluate_in_real_env this measures the imagination gap."""
    venv = make_imagined_vec_env(env_id, num_envs, checkpoint=checkpoint, device=device, sampling_steps=sampling_steps,
                                 context=context, max_episode_steps=max_steps, dataset=dataset, obs_type=obs_type)
    try:
        check_fits(policy, venv, env_id)
        label = f"model:{checkpoint if checkpoint is not None else 'default'}"
        return run_episodes(policy, venv, episodes, label, seed, deterministic, record)
    finally:
        venv.close()


def check_fits(policy: Policy, venv: VecEnv, env_name: str) -> None:
    """Raise a ValueError when the policy's action space is not the env's, or its frames differ."""
    if policy.action_space != venv.action_space:
        raise ValueError(f"the policy acts in {policy.action_space}, {env_name} takes {venv.action_space}: evaluate "
                         "it in the env (or a world model of the env) it was trained for")
    # SB3 keeps image spaces channel-first inside the policy; compare sizes, not layouts.
    if sorted(policy.observation_space.shape) != sorted(venv.observation_space.shape):
        raise ValueError(f"the policy sees frames of shape {policy.observation_space.shape}, {env_name} gives "
                         f"{venv.observation_space.shape}")


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = VIDEO_FPS, scale: int = VIDEO_SCALE) -> Path:
    """Write frames ((64, 64, 3) uint8 each) as an mp4 (or gif, by the suffix), upscaled `scale` x."""
    from data_collection import files

    big = [np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1) for frame in frames]
    return files.write_video(path, big, fps=fps)

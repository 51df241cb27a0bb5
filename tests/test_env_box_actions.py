"""Continuous actions end to end on tiny real data: a dm_control task from pixels, trained with the
model's `continuous` action kind, served as an env whose Box is the real env's, which passes
Gymnasium's and SB3's checkers; a random policy in the real task acts in the same Box."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import lssvwm_env  # noqa: F401  (registers the ids)
from lssvwm_env.cli import main as lssvwm

ENV = "dmc:cartpole-swingup:repeat=4"


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, run): 3 episodes of 16 steps, and the tiny preset trained on them."""
    root = tmp_path_factory.mktemp("cartpole")
    data, run = root / "data", root / "run"
    assert lssvwm(["collect", "--env", ENV, "--policy", "random:momentum=0.8", "--episodes", "3", "--steps", "16",
                   "--out", str(data), "--seed", "2", "--quiet"]) == 0
    assert lssvwm(["train", "--data", str(data), "--out", str(run), "--preset", "tiny", "--threads", "1"]) == 0
    return data, run


def test_training_takes_the_continuous_kind_and_records_the_box(cartpole_run):
    _, run = cartpole_run
    config = json.loads((run / "checkpoint" / "config.json").read_text())
    assert config["model"]["backbone"]["action"] == {"kind": "continuous", "n": 1}
    assert config["training_data"]["action_space"] == {"type": "box", "shape": [1], "low": [-1.0], "high": [1.0]}
    metrics = json.loads((run / "checkpoint" / "training.json").read_text())["metrics"][-1]
    assert np.isfinite(metrics["one_step_psnr"]) and np.isfinite(metrics["one_step_psnr_last_frame"])


def test_the_imagined_env_serves_the_real_box_and_passes_the_checkers(cartpole_run):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    data, run = cartpole_run
    env = gym.make("lssvwm_env:LSSVWM-Memory-v0", checkpoint=str(run), dataset=str(data), context=4,
                   max_episode_steps=6)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)
    obs, _ = env.reset(seed=0)
    rewards = []
    for action in (-1.0, 0.0, 1.0):
        obs, reward, terminated, truncated, _ = env.step(np.array([action], np.float32))
        assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
        rewards.append(reward)
    assert np.isfinite(rewards).all()
    with pytest.raises(ValueError, match=r"outside Box\(low=\[-1.0\], high=\[1.0\]\)"):
        env.step(np.array([1.5], np.float32))
    with pytest.raises(ValueError, match=r"expected shape \(1,\)"):
        env.step(np.array([0.1, 0.2], np.float32))
    env.close()


def test_a_batch_of_box_actions_imagines_each_env_from_its_own_action():
    """Several envs of a several-dimensional Box at once: each env's frame is what it would be alone,
    from its own action (the imagine step once flattened (B, n) actions into B * n numbers)."""
    import torch

    from lssvwm_env.models.world_model import WorldModel
    from lssvwm_env.presets import tiny

    config = tiny().model
    config.backbone.action.kind, config.backbone.action.n = "continuous", 2
    torch.manual_seed(0)
    model = WorldModel(config).eval()
    for p in model.backbone.parameters():  # past adaLN-Zero's zero gates, so that actions matter
        torch.nn.init.normal_(p, std=0.2)
    state = model.observe(model.initial_state(3), torch.randint(0, 255, (3, 2, 64, 64, 3), dtype=torch.uint8),
                          torch.zeros(3, 2, 2))
    actions = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [0.3, 0.0]])
    noise = torch.randn(3, 1, *config.autoencoder.grid, config.autoencoder.latent_channels)
    together, _ = model.generate_latent(state, actions, noise=noise)
    alone = torch.cat([model.generate_latent(state[i], actions[i:i + 1], noise=noise[i:i + 1])[0] for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)
    swapped, _ = model.generate_latent(state, actions.flip(1), noise=noise)
    assert not torch.allclose(swapped, together, atol=1e-3)  # each dimension of the action counts
    frame, _, _, after = model.imagine(state, actions)
    assert frame.shape == (3, 64, 64, 3) and after.batch_size == 3


def test_a_vector_env_of_box_actions(cartpole_run):
    from lssvwm_env.envs.sb3_vec_env import LSSVWMSB3VecEnv

    data, run = cartpole_run
    venv = LSSVWMSB3VecEnv(num_envs=2, checkpoint=str(run), dataset=str(data), context=4, max_episode_steps=3)
    assert venv.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    venv.reset()
    ends = []
    for _ in range(3):
        _, _, dones, infos = venv.step(np.array([[0.5], [-0.5]], np.float32))
        ends += [info["terminal_observation"].shape for done, info in zip(dones, infos) if done]
    assert len(ends) >= 2 and ends[-1] == (64, 64, 3)  # the step limit, if the model did not end them first
    venv.close()


def test_random_policy_in_the_real_task_acts_in_its_box():
    from agents.episodes import evaluate_in_real_env
    from agents.policies import RandomPolicy
    from data_collection.envs import env_spec

    space = env_spec(ENV).action_space.gymnasium()
    result = evaluate_in_real_env(RandomPolicy(space, seed=0), ENV, episodes=2, max_steps=5, seed=0, num_envs=1)
    assert len(result.returns) == 2 and np.isfinite(result.mean_return) and result.mean_return > 0


def test_ppo_trains_a_gaussian_policy_in_the_imagined_env(cartpole_run, tmp_path):
    from stable_baselines3.common.distributions import DiagGaussianDistribution

    from agents.policies import load_policy
    from agents.train_ppo import main as train_ppo

    data, run = cartpole_run
    out = tmp_path / "ppo"
    assert train_ppo(["--env", "LSSVWM-Memory-v0", "--checkpoint", str(run), "--real-env", ENV,
                      "--context-dataset", str(data), "--context-split", "train", "--context-start", "random",
                      "--context", "4", "--max-episode-steps", "8", "--num-envs", "1", "--n-steps", "32",
                      "--batch-size", "16", "--timesteps", "32", "--eval-episodes", "1", "--eval-max-steps", "4",
                      "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    policy, _ = load_policy(out)
    assert policy.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    assert isinstance(policy.policy.action_dist, DiagGaussianDistribution)
    final = json.loads((out / "summary.json").read_text())["final_eval"]
    assert final["episodes"] == 1 and final["env"] == ENV and np.isfinite(final["mean_return"])

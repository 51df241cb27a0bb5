"""The single imagined env: registration, Gymnasium and SB3 conformance, seeding, snapshots, errors,
and a long rollout at constant memory. Tiny real models saved as real checkpoints."""

import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import lssvwm_env  # noqa: F401  (registers the ids)
from lssvwm_env.bench import reset_peak_rss, rss_mb
from lssvwm_env.checkpoint import CheckpointError
from lssvwm_env.envs.context import CONTEXT_FILE, ContextError
from lssvwm_env.envs.world_model_env import LSSVWMEnv, ResetNeeded

from helpers import save_tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]
ENV_ID = "LSSVWM-Memory-v0"


def rollout(env, actions, seed=None):
    obs, _ = env.reset(seed=seed)
    frames, rewards = [obs], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        frames.append(obs)
        rewards.append(reward)
    return np.stack(frames), np.array(rewards)


def run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_registers_the_ids_without_importing_torch():
    run_python("import sys, gymnasium as gym, lssvwm_env\n"
               "assert 'torch' not in sys.modules, 'import lssvwm_env imported torch'\n"
               "assert {'LSSVWM-Memory-v0', 'LSSVWM-MiniGrid-v0'} <= set(gym.registry)\n")


def test_make_needs_no_prior_import(checkpoint):
    out = run_python("import gymnasium as gym\n"
                     f"env = gym.make('lssvwm_env:LSSVWM-Memory-v0', checkpoint={str(checkpoint)!r}, context=4)\n"
                     "obs, info = env.reset(seed=0)\n"
                     "print(type(env.unwrapped).__name__, obs.shape, obs.dtype, env.spec.max_episode_steps)\n")
    assert out.split() == ["LSSVWMEnv", "(64,", "64,", "3)", "uint8", "1000"]


def test_gymnasium_and_sb3_env_checkers_pass(checkpoint, monkeypatch):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # check_env also makes the env in render_mode "human"
    env = gym.make(ENV_ID, checkpoint=checkpoint, context=4, render_mode="rgb_array")
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Discrete(6)
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped, warn=True)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    env.close()


@pytest.mark.parametrize("env_id, shipped", [("LSSVWM-Memory-v0", "default"), ("LSSVWM-MiniGrid-v0", "minigrid")])
def test_the_shipped_models_as_the_readme_uses_them(env_id, shipped, monkeypatch):
    """gym.make with no arguments loads the id's model that ships with the package: both checkers pass,
    a short rollout gives finite frames and rewards the real env could pay, and its card has figures."""
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from lssvwm_env.checkpoint import SHIPPED_CHECKPOINTS, read_config

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    env = gym.make(f"lssvwm_env:{env_id}", render_mode="rgb_array")
    checkpoint_dir = SHIPPED_CHECKPOINTS / shipped
    assert env.unwrapped.core.checkpoint_dir == checkpoint_dir
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped, warn=True)
    low, high = read_config(checkpoint_dir)["training_data"]["reward_range"]
    env.reset(seed=0)
    for _ in range(12):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and np.isfinite(reward)
        assert low <= reward <= high, reward
    env.close()
    card = (checkpoint_dir / "model_card.md").read_text()
    assert "ae_psnr" in card and "next_frame_psnr" in card and "| dynamics |" in card


def test_predicted_rewards_stay_in_the_training_data_range():
    from lssvwm_env.models.heads import HeadsConfig, RewardTerminationHead, training_data_record
    head = RewardTerminationHead(8, HeadsConfig(reward_gate=False))
    with torch.no_grad():
        head.net[-1].bias.copy_(torch.tensor([-0.7, 0.0]))  # a regression that has drifted below 0
    features = torch.randn(5, 8)
    assert (head(features)[0] < 0).any()
    record = training_data_record(np.array([0.0, 1.0, 0.0]), np.array([False, False, True]))
    assert record == {"reward_range": [0.0, 1.0], "reward_values": [0.0, 1.0], "termination_rate": 1 / 3,
                      "transitions": 3}
    head.reward_range.copy_(torch.tensor(record["reward_range"]))
    reward = head(features)[0]
    assert (reward >= 0).all() and (reward <= 1).all()


def test_reset_starts_from_the_real_context(checkpoint):
    with np.load(checkpoint / CONTEXT_FILE) as data:
        context_frames = data["frames"]
    env = LSSVWMEnv(checkpoint=checkpoint, context=4)
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        # the last of the first 4 frames of one of the shipped episodes
        assert any(np.array_equal(obs, episode[3]) for episode in context_frames)
    # given arrays, in dataset alignment (the last action may be left out): the real past, primed
    # whole whatever context=, so the env goes on from their last frame (issue 38)
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    obs, _ = env.reset(options={"frames": frames, "actions": rng.integers(0, 6, 5)})
    assert np.array_equal(obs, frames[5])
    obs, _ = env.reset()  # the given arrays stay the source
    assert np.array_equal(obs, frames[5])
    env = LSSVWMEnv(checkpoint=checkpoint, context=100)  # more than the episodes hold: all of them
    obs, _ = env.reset(seed=0)
    assert any(np.array_equal(obs, episode[-1]) for episode in context_frames)


def test_seeded_resets_reproduce_the_same_frames(checkpoint):
    actions = [0, 1, 2, 3, 4, 5, 1, 1]
    env = LSSVWMEnv(checkpoint=checkpoint, context=4)
    frames_a, rewards_a = rollout(env, actions, seed=3)
    frames_b, rewards_b = rollout(env, actions, seed=3)
    frames_c, _ = rollout(LSSVWMEnv(checkpoint=checkpoint, context=4), actions, seed=3)
    frames_d, _ = rollout(env, actions, seed=4)
    assert np.array_equal(frames_a, frames_b) and np.array_equal(rewards_a, rewards_b)
    assert np.array_equal(frames_a, frames_c)
    assert not np.array_equal(frames_a[1:], frames_d[1:])  # another seed: other sampling noise


def test_get_state_set_state_branches_reproducibly(checkpoint):
    env = gym.make(ENV_ID, checkpoint=checkpoint, context=4).unwrapped
    rollout(env, [1, 1, 2], seed=0)
    snapshot = env.get_state()
    branch_a, _ = rollout_from(env, [1, 3, 3, 5])
    env.set_state(snapshot)
    branch_b, _ = rollout_from(env, [1, 3, 3, 5])
    env.set_state(snapshot)
    branch_c, _ = rollout_from(env, [0, 0, 0, 0])
    assert np.array_equal(branch_a, branch_b)
    assert not np.array_equal(branch_a, branch_c)  # the actions matter, so equality above means something
    later = env.get_state()
    assert later.nbytes() == snapshot.nbytes()  # constant size whatever the step


def rollout_from(env, actions):
    frames, rewards = [], []
    for action in actions:
        obs, reward, *_ = env.step(action)
        frames.append(obs)
        rewards.append(reward)
    return np.stack(frames), np.array(rewards)


def test_step_errors_speak_to_the_user(checkpoint):
    env = LSSVWMEnv(checkpoint=checkpoint, context=4)
    with pytest.raises(ResetNeeded, match=r"reset\(\) before step\(\)"):
        env.step(0)
    env.reset(seed=0)
    for bad in (6, -1):
        with pytest.raises(ValueError, match=rf"action {bad} is not in the action space Discrete\(6\)"):
            env.step(bad)
    with pytest.raises(ValueError, match=r"action 1.5 \(float64\) is not in the action space Discrete\(6\)"):
        env.step(1.5)
    with pytest.raises(ValueError, match=r"not in the action space Discrete\(6\)"):
        env.step([1, 2])
    env.step(np.int64(5))  # numpy integers are fine
    with pytest.raises(ContextError, match="'frames' must be uint8"):
        env.reset(options={"frames": np.zeros((5, 32, 32, 3), np.uint8), "actions": np.zeros(5, np.int64)})
    with pytest.raises(ContextError, match=r"outside the model's action space Discrete\(6\)"):
        env.reset(options={"frames": np.zeros((5, 64, 64, 3), np.uint8), "actions": np.full(5, 9)})
    with pytest.raises(ContextError, match="not understood"):
        env.reset(options={"frame": 1})


def test_checkpoint_errors_speak_to_the_user(checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        gym.make(ENV_ID, checkpoint=tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        gym.make(ENV_ID, checkpoint=tmp_path)
    corrupt = Path(shutil.copytree(checkpoint, tmp_path / "corrupt"))
    weights = (corrupt / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: cannot read the weights .*corrupt"):
        gym.make(ENV_ID, checkpoint=corrupt)
    (corrupt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: cannot read the checkpoint config"):
        gym.make(ENV_ID, checkpoint=corrupt)
    bare = save_tiny_checkpoint(tmp_path / "bare", context_shape=None)
    env = gym.make(ENV_ID, checkpoint=bare)
    with pytest.raises(ContextError, match=r"holds no context\.npz.*dataset=DIR"):
        env.reset(seed=0)


def test_bad_arguments_are_named_before_anything_runs(checkpoint, tmp_path):
    for bad in (-1, 0, 1.5, True):
        with pytest.raises(ValueError, match=rf"sampling_steps must be an int >= 1 .*got {bad}"):
            gym.make(ENV_ID, checkpoint=checkpoint, sampling_steps=bad)
    with pytest.raises(TypeError, match="unexpected keyword argument 'contxt'"):  # a typo is not ignored
        gym.make(ENV_ID, checkpoint=checkpoint, contxt=4)
    with pytest.raises(ValueError, match="dataset_split='train' .* pass dataset=DIR too"):
        LSSVWMEnv(checkpoint="does/not/matter", dataset_split="train")  # refused before the model loads
    if not torch.cuda.is_available():  # the error a CPU-only machine gives; a GPU machine runs on cuda
        with pytest.raises(ValueError, match=r"device='cuda': .*use device='cpu'"):
            gym.make(ENV_ID, checkpoint=checkpoint, device="cuda")
    resized = Path(shutil.copytree(checkpoint, tmp_path / "resized"))
    config = json.loads((resized / "config.json").read_text())
    config["model"]["backbone"]["d_model"] *= 2
    (resized / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor '[^']+' has shape .* but the config in "
                                              r".*config\.json makes it"):
        gym.make(ENV_ID, checkpoint=resized)


def test_long_rollout_has_constant_state_and_no_nan(endless_checkpoint):
    env = LSSVWMEnv(checkpoint=endless_checkpoint, context=4)
    env.reset(seed=0)
    state_bytes = env.core.state.nbytes()
    shapes = [t.shape for t in env.core.state.tensors()]
    rng = np.random.default_rng(0)
    rewards = []
    for step in range(300):
        obs, reward, terminated, truncated, _ = env.step(int(rng.integers(6)))
        rewards.append(reward)
        assert not (terminated or truncated)
        assert env.core.state.nbytes() == state_bytes
        if step in (49, 299):  # what can grow, unlike the preallocated cache: the process's memory
            gc.collect()
            reset_peak_rss()  # returns freed heap to the OS, so RSS counts what is still held
            rss = rss_mb()[0]
            if step == 49:
                rss_after_warmup = rss
    # 250 steps that each kept their state (172 KB) or frame would hold 40+ MB more.
    assert rss - rss_after_warmup < 8, (rss_after_warmup, rss)
    assert [t.shape for t in env.core.state.tensors()] == shapes
    assert all(torch.isfinite(t).all() for t in env.core.state.tensors() if t.is_floating_point())
    assert np.isfinite(rewards).all()
    assert int(env.core.state.frame_count[0]) == 4 + 300
    assert obs.dtype == np.uint8 and obs.shape == (64, 64, 3)


def test_make_kwargs_reach_the_env(endless_checkpoint):
    env = gym.make(ENV_ID, checkpoint=endless_checkpoint, context=4, sampling_steps=2, max_episode_steps=2)
    assert env.unwrapped.core.context == 4 and env.unwrapped.core.sampling_steps == 2
    env.reset(seed=0)
    assert env.step(0)[3] is False
    assert env.step(0)[3] is True  # Gymnasium's TimeLimit, from gym.make's max_episode_steps
    direct = LSSVWMEnv(checkpoint=endless_checkpoint, context=4, max_episode_steps=2)
    direct.reset(seed=0)
    assert [direct.step(0)[3] for _ in range(2)] == [False, True]


@pytest.mark.parametrize("obs_type", ["latent", "features"])
@pytest.mark.filterwarnings("ignore:.*Box observation space (minimum|maximum) value")  # unbounded by nature
def test_observations_that_skip_the_decoder(checkpoint, obs_type, monkeypatch):
    """obs_type latent / features: the same imagined episode as pixels (same seed, same actions), observed
    as the frame's latent or the committed frame's backbone features; the decoder runs for render()."""
    from gymnasium.utils.env_checker import check_env

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # check_env also makes the env in render_mode "human"
    pixels = gym.make(ENV_ID, checkpoint=checkpoint, context=4).unwrapped
    other = gym.make(ENV_ID, checkpoint=checkpoint, context=4, obs_type=obs_type, render_mode="rgb_array").unwrapped
    model = other.core.model.config
    shape = ((*model.autoencoder.grid, model.autoencoder.latent_channels) if obs_type == "latent"
             else (model.backbone.d_model,))
    assert other.observation_space == gym.spaces.Box(-np.inf, np.inf, shape, np.float32)
    check_env(other)
    frames, _ = rollout(pixels, [1, 2, 3], seed=7)
    observations, _ = rollout(other, [1, 2, 3], seed=7)
    assert observations.shape == (4, *shape) and observations.dtype == np.float32 and np.isfinite(observations).all()
    assert other.core.stale.all()  # nothing decoded yet
    assert np.array_equal(other.render(), frames[-1])  # decoded on demand: the frame pixels showed
    snapshot = other.get_state()
    branch_a, _ = rollout_from(other, [4, 4])
    other.set_state(snapshot)
    branch_b, _ = rollout_from(other, [4, 4])
    assert np.array_equal(branch_a, branch_b)
    with pytest.raises(ValueError, match="obs_type='rgb': choose from pixels, latent, features"):
        gym.make(ENV_ID, checkpoint=checkpoint, obs_type="rgb")

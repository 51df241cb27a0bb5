"""The envs agents meet: the real env as a Gymnasium Env (check_env, spaces equal to the imagined
env's, seeding, step limit) and the evaluation harness on real MiniGrid and on a tiny world model."""

import json
import os
import signal

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from agents.envs import REAL_ENV_OF_ID, RealImageEnv, WorkerDiedError, imagined_env_id, make_imagined_vec_env, make_real_vec_env
from agents.episodes import evaluate_in_model, evaluate_in_real_env, run_episodes
from agents.policies import RandomPolicy
from lssvwm_env.checkpoint import MINIGRID_CHECKPOINT

MINIGRID = "minigrid-memory"
MINIGRID_LEFT = 0  # turning in place never ends a MiniGrid episode


@pytest.fixture(scope="module")
def checkpoint(minigrid_endless_checkpoint):
    return minigrid_endless_checkpoint


@pytest.mark.filterwarnings("ignore:.*alternative render modes")  # the env is not made by gym.make
def test_real_env_passes_gymnasium_and_sb3_checks():
    env = RealImageEnv(MINIGRID, max_episode_steps=20)
    check_env(env, skip_render_check=True)
    sb3_check_env(env)
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Discrete(7)
    env.close()
    env = RealImageEnv(MINIGRID, render_mode="rgb_array")
    check_env(env)
    obs, _ = env.reset(seed=0)
    assert np.array_equal(env.render(), obs)


def test_real_env_has_the_imagined_env_spaces(checkpoint):
    real = RealImageEnv(MINIGRID)
    imagined = make_imagined_vec_env("LSSVWM-MiniGrid-v0", 2, checkpoint=checkpoint, context=4)
    assert real.observation_space == imagined.observation_space
    assert real.action_space == imagined.action_space
    imagined.close()


def test_real_env_seeding_step_limit_and_errors():
    env = RealImageEnv(MINIGRID, max_episode_steps=5)

    def trajectory(seed):
        frames = [env.reset(seed=seed)[0]]
        for action in (2, 0, 2, 1):
            frames.append(env.step(action)[0])
        return np.stack(frames)

    assert np.array_equal(trajectory(3), trajectory(3))
    assert not np.array_equal(trajectory(3)[0], trajectory(4)[0])  # another seed, another grid
    env.reset(seed=1)
    ends = [env.step(MINIGRID_LEFT)[2:4] for _ in range(5)]
    assert ends == [(False, False)] * 4 + [(False, True)]
    with pytest.raises(ValueError, match=r"action 7 is not in the action space Discrete\(7\)"):
        env.step(7)
    with pytest.raises(RuntimeError, match="call reset"):
        RealImageEnv(MINIGRID).step(0)
    with pytest.raises(ValueError, match="max_episode_steps"):
        RealImageEnv(MINIGRID, max_episode_steps=0)


def test_memory_maze_wrapper_has_the_memory_model_spaces():
    # One reset (seconds of MuJoCo set-up) and a few steps; the id's spaces are those of the model.
    env = RealImageEnv("memory-maze-9x9", max_episode_steps=3)
    assert env.action_space == gym.spaces.Discrete(6)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    ends = [env.step(1)[2:4] for _ in range(3)]
    assert ends == [(False, False), (False, False), (False, True)]
    env.close()


def test_imagined_env_id_tells_imagined_from_real_names():
    assert imagined_env_id("LSSVWM-Memory-v0") == "LSSVWM-Memory-v0"
    assert imagined_env_id("lssvwm_env:LSSVWM-MiniGrid-v0") == "LSSVWM-MiniGrid-v0"
    assert imagined_env_id("memory-maze-9x9") is None
    assert imagined_env_id("CartPole-v1") is None  # registered, but not a world model
    venv = make_imagined_vec_env("LSSVWM-MiniGrid-v0", 1)  # the id's shipped model, not the package default
    assert venv.core.checkpoint_dir == MINIGRID_CHECKPOINT and venv.core.max_episode_steps == 245
    venv.close()


def test_each_id_evaluates_in_the_env_its_shipped_model_was_trained_on():
    # LSSVWM-MiniGrid-v0's agents were once evaluated in MiniGrid-MemoryS13 ("minigrid-memory"),
    # while its shipped model was trained on MiniGrid-MemoryS7.
    from data_collection.envs import resolve_env
    from lssvwm_env.checkpoint import SHIPPED_CHECKPOINTS
    from lssvwm_env.pipeline import IMAGINED_ID, SHIPPED_MODEL

    for env_id, real_env in REAL_ENV_OF_ID.items():
        env_class = gym.envs.registration.load_env_creator(gym.spec(env_id).entry_point)
        trained_on = json.loads((env_class.shipped_checkpoint / "training.json").read_text())["env"]
        assert resolve_env(real_env)[1] == resolve_env(trained_on)[1], env_id
    for real_env, env_id in IMAGINED_ID.items():
        assert REAL_ENV_OF_ID[env_id] == real_env
        trained_on = json.loads((SHIPPED_CHECKPOINTS / SHIPPED_MODEL[real_env] / "training.json").read_text())["env"]
        assert resolve_env(real_env)[1] == resolve_env(trained_on)[1], real_env


def test_harness_splits_episodes_among_envs_and_records_one():
    venv = make_real_vec_env(MINIGRID, 2, max_episode_steps=6)
    result = run_episodes(RandomPolicy(7, seed=0), venv, 3, MINIGRID, seed=5)
    assert len(result.returns) == len(result.lengths) == 3
    assert all(1 <= n <= 6 for n in result.lengths)
    # env 0 runs (3 + 0) // 2 = 1 episode, env 1 runs 2; both step until the last one ends
    assert result.env_steps % 2 == 0 and result.env_steps >= sum(result.lengths)
    venv.close()
    one = evaluate_in_real_env(RandomPolicy(7, seed=0), MINIGRID, 2, max_steps=6, seed=5, record=True)
    assert len(one.frames) == one.lengths[0] + 1  # first observation through the terminal one
    assert all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in one.frames)
    again = evaluate_in_real_env(RandomPolicy(7, seed=0), MINIGRID, 2, max_steps=6, seed=5, record=True)
    assert np.array_equal(np.stack(one.frames), np.stack(again.frames))
    other = evaluate_in_real_env(RandomPolicy(7, seed=0), MINIGRID, 2, max_steps=6, seed=6, record=True)
    assert not np.array_equal(one.frames[0], other.frames[0])


def test_harness_inside_the_model_is_reproducible_and_leaves_torch_rng_alone(checkpoint):
    venv = make_imagined_vec_env("LSSVWM-MiniGrid-v0", 2, checkpoint=checkpoint, context=4, max_episode_steps=4)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = run_episodes(RandomPolicy(7, seed=1), venv, 2, "model", seed=9, record=True)
    assert torch.equal(torch.rand(1), expected_next)  # a training run's random stream is not disturbed
    assert first.lengths == [4, 4] and first.env_steps == 8
    assert len(first.frames) == 5
    venv.close()
    second = evaluate_in_model(RandomPolicy(7, seed=1), "LSSVWM-MiniGrid-v0", checkpoint, 2, max_steps=4, seed=9,
                               num_envs=2, record=True, context=4)
    assert second.env.startswith("model:")
    assert first.returns == second.returns
    assert np.array_equal(np.stack(first.frames), np.stack(second.frames))


def test_a_dead_worker_is_named_with_its_exit_code_and_close_still_works():
    venv = make_real_vec_env(MINIGRID, 2, max_episode_steps=20, seed=0, subprocesses=True)
    try:
        assert venv.reset().shape == (2, 64, 64, 3)
        os.kill(venv.processes[1].pid, signal.SIGKILL)  # what the out-of-memory killer does
        with pytest.raises(WorkerDiedError, match=r"minigrid-memory: worker 1 \(exit code -9\) of 2 died.*out-of-memory"):
            venv.step(np.zeros(2, dtype=np.int64))
    finally:
        venv.close()
    assert venv.closed and not any(p.is_alive() for p in venv.processes)


def test_the_world_model_observes_the_real_frames(checkpoint):
    """WorldModelObservations: the features a policy gets in the real env are the world model's features
    of the real frames, observed one by one with the actions that led to them; a finished episode starts
    from a fresh state."""
    import torch

    from agents.envs import WorldModelObservations
    from lssvwm_env.checkpoint import load_world_model
    from lssvwm_env.models.conditioning import NO_ACTION

    actions = [2, 1, 2, 0]
    plain = make_real_vec_env(MINIGRID, 2, max_episode_steps=3, seed=5)
    frames = [plain.reset()]
    for a in actions[:2]:
        frames.append(plain.step(np.array([a, a]))[0])
    plain.close()
    venv = make_real_vec_env(MINIGRID, 2, max_episode_steps=3, seed=5, obs_type="features", checkpoint=checkpoint)
    assert isinstance(venv, WorldModelObservations) and venv.observation_space.shape == (32,)
    observed = [venv.reset()] + [venv.step(np.array([a, a]))[0] for a in actions[:2]]
    model = load_world_model(checkpoint)
    state = model.initial_state(2)
    for t, (frame, a) in enumerate(zip(frames, [NO_ACTION] + actions[:2])):
        step = model.observe_step(state, torch.from_numpy(frame[:, None]), torch.full((2, 1), a))
        state = step.state
        assert np.allclose(observed[t], step.features.numpy(), atol=1e-5), t
    _, _, dones, infos = venv.step(np.array([2, 2]))  # the third step: the 3-step limit
    assert dones.all() and infos[0]["terminal_observation"].shape == (32,)
    venv.close()
    with pytest.raises(ValueError, match="takes 7 actions, the real env 6"):
        make_real_vec_env("memory-maze-9x9", 1, obs_type="features", checkpoint=checkpoint)

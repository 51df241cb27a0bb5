"""The batched envs: Gymnasium's VectorEnv through make_vec (next-step autoreset, partial resets,
snapshots) and the Stable-Baselines3 VecEnv (same-step reset, terminal_observation), PPO on it."""

import gymnasium as gym
import numpy as np
import pytest
from helpers import save_tiny_checkpoint

import lssvwm_env  # noqa: F401  (registers the ids)
from lssvwm_env.envs.context import CONTEXT_FILE
from lssvwm_env.envs.sb3_vec_env import LSSVWMSB3VecEnv
from lssvwm_env.envs.world_model_env import LSSVWMVectorEnv

ENV_ID = "LSSVWM-Memory-v0"


@pytest.fixture(scope="module")
def ending_checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ending"), termination_logit=50.0)


def context_last_frames(checkpoint, context):
    with np.load(checkpoint / CONTEXT_FILE) as data:
        return data["frames"][:, min(context, data["frames"].shape[1]) - 1]


def is_context_frame(obs, last_frames):
    return any(np.array_equal(obs, frame) for frame in last_frames)


def make_vec(num_envs, **kwargs):
    return gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", context=4, **kwargs)


def test_make_vec_builds_one_batched_env(endless_checkpoint):
    envs = make_vec(3, checkpoint=endless_checkpoint)
    assert isinstance(envs, LSSVWMVectorEnv)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    assert envs.single_observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert envs.single_action_space == gym.spaces.Discrete(6)
    assert envs.action_space == gym.spaces.MultiDiscrete([6, 6, 6])
    assert envs.core.max_episode_steps == 1000  # the registered step limit reaches the vector env
    obs, infos = envs.reset(seed=0)
    assert obs.shape == (3, 64, 64, 3) and obs.dtype == np.uint8 and infos == {}
    assert envs.core.state.batch_size == 3  # one model state: all envs in one forward pass
    obs, rewards, terminated, truncated, infos = envs.step(np.array([0, 1, 5]))
    assert obs.shape == (3, 64, 64, 3) and rewards.shape == (3,) and terminated.dtype == np.bool_
    assert envs.observation_space.contains(obs)
    with pytest.raises(ValueError, match=r"actions\[1\] = 6 is not in the action space Discrete\(6\)"):
        envs.step(np.array([0, 6, 1]))
    with pytest.raises(ValueError, match="expected 3 actions"):
        envs.step(np.array([0, 1]))
    envs.close()
    envs = make_vec(2, checkpoint=endless_checkpoint, render_mode="rgb_array")
    obs, _ = envs.reset(seed=0)
    frames = envs.render()
    assert len(frames) == 2 and np.array_equal(np.stack(frames), obs)


def test_next_step_autoreset_after_truncation(endless_checkpoint):
    envs = make_vec(3, checkpoint=endless_checkpoint, max_episode_steps=3)
    last_frames = context_last_frames(endless_checkpoint, 4)
    envs.reset(seed=1)
    envs.step(np.zeros(3, int))
    # env 0 starts again: the envs are now out of phase
    obs, _ = envs.reset(options={"reset_mask": np.array([True, False, False])})
    assert is_context_frame(obs[0], last_frames)
    for expected in ([False, False, False], [False, True, True]):
        obs, rewards, terminated, truncated, _ = envs.step(np.full(3, 1))
        assert truncated.tolist() == expected and not terminated.any()
    assert envs.core.steps.tolist() == [2, 3, 3]
    # the step after the end resets envs 1 and 2 (their actions are ignored), env 0 steps on and ends
    obs, rewards, terminated, truncated, _ = envs.step(np.array([1, 1, 1]))
    assert is_context_frame(obs[1], last_frames) and is_context_frame(obs[2], last_frames)
    assert rewards[1] == 0.0 and rewards[2] == 0.0 and rewards[0] != 0.0
    assert truncated.tolist() == [True, False, False]
    assert envs.core.steps.tolist() == [3, 0, 0]
    obs, rewards, terminated, truncated, _ = envs.step(np.array([1, 1, 1]))
    assert envs.core.steps.tolist() == [0, 1, 1] and rewards[0] == 0.0 and not truncated.any()
    assert is_context_frame(obs[0], last_frames)
    assert not any(is_context_frame(o, last_frames) for o in obs[1:])


def test_next_step_autoreset_after_termination(ending_checkpoint):
    envs = make_vec(2, checkpoint=ending_checkpoint)
    last_frames = context_last_frames(ending_checkpoint, 4)
    envs.reset(seed=0)
    for _ in range(2):
        _, rewards, terminated, truncated, _ = envs.step(np.array([2, 3]))
        assert terminated.tolist() == [True, True] and not truncated.any()
        obs, rewards, terminated, truncated, _ = envs.step(np.array([2, 3]))
        assert terminated.tolist() == [False, False] and rewards.tolist() == [0.0, 0.0]
        assert all(is_context_frame(o, last_frames) for o in obs)


def test_resetting_one_env_leaves_the_others_untouched(endless_checkpoint):
    envs = make_vec(2, checkpoint=endless_checkpoint)
    actions = [np.array([a, 5 - a]) for a in range(6)]

    def run(reset_env_0_at):
        envs.reset(seed=5)
        frames = []
        for t, action in enumerate(actions):
            if t == reset_env_0_at:
                envs.reset(options={"reset_mask": np.array([True, False])})
            frames.append(envs.step(action)[0])
        return np.stack(frames)

    plain, with_reset = run(None), run(3)
    assert np.array_equal(plain[:, 1], with_reset[:, 1])
    assert not np.array_equal(plain[3:, 0], with_reset[3:, 0])


def test_vector_snapshot_reproduces_the_batch(endless_checkpoint):
    envs = make_vec(2, checkpoint=endless_checkpoint, max_episode_steps=2)
    envs.reset(seed=2)
    envs.step(np.array([1, 2]))
    snapshot = envs.get_state()
    branch = [envs.step(np.array([a, a]))[:4] for a in (3, 4, 0)]  # crosses an autoreset
    envs.set_state(snapshot)
    again = [envs.step(np.array([a, a]))[:4] for a in (3, 4, 0)]
    for first, second in zip(branch, again):
        for a, b in zip(first, second):
            assert np.array_equal(a, b)


def test_sb3_vec_env_resets_in_the_same_step(endless_checkpoint, ending_checkpoint):
    venv = LSSVWMSB3VecEnv(num_envs=2, checkpoint=ending_checkpoint, context=4)
    last_frames = context_last_frames(ending_checkpoint, 4)
    venv.seed(0)
    obs = venv.reset()
    assert obs.shape == (2, 64, 64, 3)
    obs, rewards, dones, infos = venv.step(np.array([1, 2]))
    assert dones.tolist() == [True, True]
    for i in range(2):
        assert infos[i]["TimeLimit.truncated"] is False
        terminal = infos[i]["terminal_observation"]
        assert terminal.shape == (64, 64, 3) and not is_context_frame(terminal, last_frames)
        assert is_context_frame(obs[i], last_frames)  # already reset

    venv = LSSVWMSB3VecEnv(num_envs=2, checkpoint=endless_checkpoint, context=4, max_episode_steps=2)
    venv.reset()
    _, _, dones, infos = venv.step(np.array([1, 2]))
    assert dones.tolist() == [False, False] and infos == [{}, {}]
    _, _, dones, infos = venv.step(np.array([1, 2]))
    assert dones.tolist() == [True, True] and all(info["TimeLimit.truncated"] for info in infos)


def test_sb3_vec_env_serves_features_with_the_reset_observation_after_a_done(ending_checkpoint):
    """obs_type="features" through SB3: the terminal observation is the last imagined frame's features,
    the returned one the freshly primed context's; render frames are decoded on demand."""
    venv = LSSVWMSB3VecEnv(num_envs=2, checkpoint=ending_checkpoint, context=4, obs_type="features")
    size = venv.core.feature_size
    assert venv.observation_space.shape == (size,) and venv.observation_space.dtype == np.float32
    venv.seed(0)
    first = venv.reset()
    obs, _, dones, infos = venv.step(np.array([1, 2]))
    assert first.shape == obs.shape == (2, size) and dones.all()
    assert all(not np.array_equal(info["terminal_observation"], o) for info, o in zip(infos, obs))
    assert np.allclose(obs, venv.core.features) and not venv.core.stale.any()  # reset: real frames, no decode
    assert venv.get_images()[0].shape == (64, 64, 3)


def test_sb3_vec_env_seeding_reproduces_frames(endless_checkpoint):
    venv = LSSVWMSB3VecEnv(num_envs=2, checkpoint=endless_checkpoint, context=4)

    def run():
        venv.seed(11)
        frames = [venv.reset()]
        frames += [venv.step(np.array([a, 1]))[0] for a in range(3)]
        return np.stack(frames)

    assert np.array_equal(run(), run())


def test_ppo_trains_inside_the_model(endless_checkpoint):
    from stable_baselines3 import PPO

    venv = LSSVWMSB3VecEnv(num_envs=2, checkpoint=endless_checkpoint, context=4, max_episode_steps=6)
    model = PPO("CnnPolicy", venv, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=16)
    assert model.num_timesteps == 16
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (2,)

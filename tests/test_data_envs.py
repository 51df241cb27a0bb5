"""The real-env adapters: frames, pose conventions (verified against the envs), errors."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from data_collection.envs import (
    FRAME_SHAPE,
    KNOWN_ENVS,
    MEMORY_MAZE_NAVIGATION,
    MINIGRID_NAVIGATION,
    TERMINAL,
    EnvError,
    UnknownEnvError,
    env_spec,
    heading_deg,
    make_env,
    resize_frame,
)


def _turn(before: np.ndarray, after: np.ndarray) -> float:
    return (heading_deg(after) - heading_deg(before) + 180.0) % 360.0 - 180.0


def test_memory_maze_pose_indexes_the_layout_and_actions_turn_as_declared():
    env = make_env("memory-maze-9x9")
    first = step = env.reset(seed=11)
    layout = env.static["maze_layout"].copy()
    assert layout.shape == (9, 9) and layout.dtype == np.uint8
    assert step.frame.shape == FRAME_SHAPE and step.frame.dtype == np.uint8
    assert set(step.pose) == {"agent_pos", "agent_dir", "target_pos"}
    assert all(v.dtype == np.float32 and v.shape == (2,) for v in step.pose.values())

    rng = np.random.default_rng(0)
    nav = MEMORY_MAZE_NAVIGATION
    turns: dict[int, list[float]] = {nav.left: [], nav.right: []}
    advance = []
    cells = set()
    for _ in range(100):
        # Mostly forward so that the walk crosses several cells.
        action = int(rng.choice([nav.forward, nav.forward, nav.forward_left, nav.forward_right, nav.left, nav.right]))
        before = step
        step = env.step(action)
        x, y = step.pose["agent_pos"]
        cells.add((int(x), int(y)))
        # The convention envs.py documents: the agent stands in maze_layout[floor(y), floor(x)].
        assert layout[int(y), int(x)] == 1, f"agent at {(x, y)} is on a wall cell"
        if action in turns:
            turns[action].append(_turn(before.pose["agent_dir"], step.pose["agent_dir"]))
        if action == nav.forward:
            advance.append(float(np.dot(step.pose["agent_pos"] - before.pose["agent_pos"], before.pose["agent_dir"])))
    assert len(cells) >= 3
    # "left" turns counter-clockwise in the (x, y) frame of agent_pos, as Navigation declares.
    assert nav.left_increases_angle
    assert np.mean(turns[nav.left]) > 5 and np.mean(turns[nav.right]) < -5
    assert np.mean(advance) > 0.02  # forward moves along agent_dir

    # An episode is a function of its seed alone, whatever ran before it.
    again = env.reset(seed=11)
    assert np.array_equal(env.static["maze_layout"], layout)
    assert np.array_equal(again.frame, first.frame)
    assert np.array_equal(again.pose["agent_pos"], first.pose["agent_pos"])
    env.close()


def test_memory_maze_without_a_renderer_says_what_to_install():
    # GLFW needs a display; with none, MuJoCo cannot make a GL context, as with EGL libraries missing.
    code = (
        "from data_collection.envs import make_env, RenderingError\n"
        "try:\n    make_env('memory-maze-9x9').reset(0)\n"
        "except RenderingError as exc:\n    print('RENDERING ERROR:', exc)\n"
    )
    env = dict(os.environ, MUJOCO_GL="glfw")
    env.pop("DISPLAY", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert "RENDERING ERROR:" in done.stdout, done.stderr[-2000:]
    assert "apt-get install libegl1" in done.stdout and "MUJOCO_GL=osmesa" in done.stdout


def test_unknown_env_names_the_known_ones():
    for name in ("memory-maze-10x10", "NoSuchEnv-v0"):
        with pytest.raises(UnknownEnvError) as err:
            make_env(name)
        message = str(err.value)
        assert repr(name) in message
        assert all(known in message for known in KNOWN_ENVS)


def test_minigrid_egocentric_frames_pose_and_layout():
    with make_env("minigrid-memory", max_steps=40) as env:
        assert env.spec.name == "minigrid-memory" and env.action_space.n == 7
        step = env.reset(seed=3)
        assert step.frame.shape == FRAME_SHAPE and step.frame.dtype == np.uint8
        layout = env.static["maze_layout"]
        x, y = step.pose["agent_pos"]
        assert (x % 1, y % 1) == (0.5, 0.5)  # cell centres
        assert layout[int(y), int(x)] == 1
        assert (layout == TERMINAL).sum() == 2  # the two ends of the hallway
        direction = step.pose["agent_dir"]
        after = env.step(MINIGRID_NAVIGATION.left)
        # y points down in MiniGrid: a left turn decreases the atan2 angle, as Navigation declares.
        assert _turn(direction, after.pose["agent_dir"]) == -90.0
        assert not MINIGRID_NAVIGATION.left_increases_angle
        # max_steps replaces MiniGrid's own limit: turning in place for 39 more steps truncates.
        for _ in range(38):
            assert not env.step(MINIGRID_NAVIGATION.left).truncated
        assert env.step(MINIGRID_NAVIGATION.left).truncated


class _PixelEnv(gym.Env):
    """A Gymnasium env with grayscale Dict observations and actions numbered from 1."""

    observation_space = spaces.Dict({"pixels": spaces.Box(0, 255, (30, 40), np.uint8), "t": spaces.Discrete(10)})
    action_space = spaces.Discrete(3, start=1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        assert action in (1, 2, 3), action
        self.t += 1
        return self._obs(), float(action), False, False, {}

    def _obs(self):
        return {"pixels": np.full((30, 40), 10 * self.t, np.uint8), "t": self.t}


def test_generic_gymnasium_image_env():
    gym.register("LssvwmTestPixels-v0", entry_point=_PixelEnv, max_episode_steps=4)
    with make_env("LssvwmTestPixels-v0") as env:
        assert env.spec.kind == "gymnasium" and env.spec.navigation is None
        assert env.action_space.n == 3 and env_spec("LssvwmTestPixels-v0").action_space.n == 3
        step = env.reset(seed=0)
        assert step.frame.shape == FRAME_SHAPE and step.pose == {}
        step = env.step(0)  # dataset action 0 is the env's action 1
        assert step.reward == 1.0 and (step.frame == 10).all()
        for _ in range(3):
            step = env.step(2)
        assert step.truncated  # the registered TimeLimit


def test_non_image_env_is_refused_with_the_reason():
    with pytest.raises(EnvError, match="not an image"):
        make_env("CartPole-v1")


def test_resize_frame():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (56, 56, 3), dtype=np.uint8)
    up = resize_frame(small)
    assert up.shape == FRAME_SHAPE and up.dtype == np.uint8
    # Nearest neighbour: corners are kept and every output pixel is an input pixel.
    assert np.array_equal(up[0, 0], small[0, 0]) and np.array_equal(up[-1, -1], small[-1, -1])
    big = np.zeros((210, 160, 3), np.uint8)
    big[:, 80:] = 200
    down = resize_frame(big)
    assert down.shape == FRAME_SHAPE and down[:, :30].max() == 0 and down[:, 34:].min() == 200
    double = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)  # 2x: each pixel the mean of its 2x2 area
    areas = double.reshape(64, 2, 64, 2, 3).astype(float).mean(axis=(1, 3))
    assert np.abs(resize_frame(double).astype(float) - areas).max() <= 0.5 + 1e-9
    with pytest.raises(EnvError, match="uint8"):
        resize_frame(small.astype(np.float32))


def test_memory_maze_target_touch_test_matches_dm_controls():
    """The vectorised target-touch test (envs._target_touched) decides as dm_control's loop does, with a
    contact on the target and without, with and without the specific geoms it may require."""
    from data_collection.envs import DM_CONTROL_TARGET_TOUCHED, _target_touched
    env = make_env("memory-maze-9x9")
    env.reset(seed=3)
    for _ in range(20):
        env.step(MEMORY_MAZE_NAVIGATION.forward)
    physics, target = env._dm_env.physics, env._dm_env.task._targets[0]
    assert len(physics.data.contact) >= 1 and DM_CONTROL_TARGET_TOUCHED
    in_contact = int(physics.data.contact.geom1[0])
    original_geom = target._geom_id
    try:
        for geom, specific in [(in_contact, None), (original_geom, None), (in_contact, {in_contact}),
                               (in_contact, {original_geom}), (in_contact, {int(physics.data.contact.geom2[0])})]:
            decisions = []
            for update in (DM_CONTROL_TARGET_TOUCHED[0], _target_touched):
                target._geom_id, target._specific_collision_geom_ids, target._activated = geom, specific, False
                physics.bind(target._material).rgba[-1] = 1
                update(target, physics)
                decisions.append((target._activated, float(physics.bind(target._material).rgba[-1])))
            assert decisions[0] == decisions[1], (geom, specific, decisions)
        assert decisions[0] == (True, 0.0)  # the last case touches: both tests can say yes
    finally:
        target._geom_id, target._specific_collision_geom_ids, target._activated = original_geom, None, False
        physics.bind(target._material).rgba[-1] = 1
    env.close()

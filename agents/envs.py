"""The envs agents train and are evaluated in, with one observation and action space for all:
Box(0, 255, (64, 64, 3), uint8) frames and Discrete(n) actions.

    RealImageEnv            a real env (data_collection.envs.make_env) as a gymnasium.Env, with a
                            step limit, so SB3 can train and evaluate in the REAL env
    make_real_vec_env       M real envs as an SB3 VecEnv (DummyVecEnv, or RealEnvWorkers)
    RealEnvWorkers          SubprocVecEnv that names the dead worker and the likely cause when one dies
    make_imagined_vec_env   M imagined envs as one LSSVWMSB3VecEnv: one forward pass for all M
    imagined_env_id         "LSSVWM-Memory-v0" (or "lssvwm_env:LSSVWM-Memory-v0") -> the id; None
                            for a real env name

An env name is either a registered LSSVWM id (imagined) or a real env name for make_env
(memory-maze-9x9, minigrid-memory, minigrid-fourrooms or a Gymnasium id with image observations).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecEnvWrapper

from data_collection.envs import FRAME_SHAPE, RealEnv, make_env
from lssvwm_env.models.state import WorldModelState

# The real env an imagined id was trained on: the default env to evaluate its agents in.
REAL_ENV_OF_ID = {"LSSVWM-Memory-v0": "memory-maze-9x9", "LSSVWM-MiniGrid-v0": "minigrid-memory-s7"}


class RealImageEnv(gymnasium.Env):
    """A real env with the imagined env's spaces.

    Observation: the frame, Box(0, 255, (64, 64, 3), uint8). Action: Discrete(n), n from the env, or
    its Box (dm_control tasks: float32 (n,) within the env's bounds).
    Reward, termination: the real env's. Truncation: the real env's own limit (Memory Maze 9x9:
    1000 steps; MiniGrid-MemoryS13: 845) or `max_episode_steps`, whichever comes first.
    reset(seed=s) makes the episode reproducible (the maze/grid is built from a seed drawn from the
    env's np_random); render_mode "rgb_array" returns the current frame.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, name: str, max_episode_steps: int | None = None, render_mode: str | None = None) -> None:
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported; use 'rgb_array' or None")
        self.name, self.max_episode_steps, self.render_mode = name, max_episode_steps, render_mode
        self.real: RealEnv = make_env(name)
        self.observation_space = spaces.Box(0, 255, FRAME_SHAPE, np.uint8)
        self.action_space = self.real.action_space.gymnasium()
        self.frame: np.ndarray | None = None
        self.steps = 0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        # RealEnv.reset takes the seed that builds the episode; drawing it from np_random makes
        # reset(seed=s) reproducible and unseeded resets differ from each other.
        step = self.real.reset(int(self.np_random.integers(2**31 - 1)))
        self.frame, self.steps = np.array(step.frame, dtype=np.uint8), 0
        return self.frame.copy(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.frame is None:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        if self.real.action_space.continuous:
            action = np.asarray(action, np.float32)
            if not self.action_space.contains(action):
                raise ValueError(f"action {action!r} is not in the action space {self.action_space} of {self.name}")
        elif not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in the action space Discrete({self.action_space.n}) of "
                             f"{self.name} (valid actions: 0..{self.action_space.n - 1})")
        step = self.real.step(action if self.real.action_space.continuous else int(action))
        self.frame = np.array(step.frame, dtype=np.uint8)
        self.steps += 1
        truncated = step.truncated or (self.max_episode_steps is not None and self.steps >= self.max_episode_steps)
        terminated = bool(step.terminated)
        return self.frame.copy(), float(step.reward), terminated, bool(truncated and not terminated), {}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() was called without a render_mode; make the env with "
                                  "render_mode='rgb_array'")
            return None
        return None if self.frame is None else self.frame.copy()

    def close(self) -> None:
        self.real.close()


def imagined_env_id(name: str) -> str | None:
    """The registered LSSVWM id that `name` names ("LSSVWM-Memory-v0" or "lssvwm_env:LSSVWM-Memory-v0"),
    or None when `name` is a real env name."""
    import lssvwm_env  # noqa: F401  (registers the ids)

    env_id = name.split(":", 1)[1] if name.startswith("lssvwm_env:") else name
    if env_id not in gymnasium.registry:
        return None
    entry_point = gymnasium.registry[env_id].entry_point
    return env_id if isinstance(entry_point, str) and entry_point.startswith("lssvwm_env.") else None


def world_model_checkpoint(env_id: str, checkpoint: str | Path | None) -> str | Path:
    """The world model an imagined id serves: `checkpoint`, else the id's shipped model (each id
    ships its own: MiniGrid's is not the package default). A policy on its latent or features
    observes the real env through this same model."""
    if checkpoint is not None:
        return checkpoint
    spec = gymnasium.spec(env_id)
    return gymnasium.envs.registration.load_env_creator(spec.entry_point).shipped_checkpoint


def make_imagined_vec_env(env_id: str, num_envs: int, *, seed: int | None = None, **options: Any) -> VecEnv:
    """`num_envs` imagined envs of a registered LSSVWM id as one LSSVWMSB3VecEnv (one forward pass).
    options: the fields of ImaginedEnvOptions, by name; max_episode_steps None: the id's registered
    limit."""
    from lssvwm_env.envs.sb3_vec_env import LSSVWMSB3VecEnv

    spec = gymnasium.spec(env_id)
    options["checkpoint"] = world_model_checkpoint(env_id, options.get("checkpoint"))
    options["max_episode_steps"] = options.get("max_episode_steps") or spec.max_episode_steps
    venv = LSSVWMSB3VecEnv(num_envs=num_envs, **options)
    if seed is not None:
        venv.seed(seed)
    return venv


class WorkerDiedError(RuntimeError):
    pass


# What a pipe to a dead worker raises, on receive and on send.
PIPE_ERRORS = (EOFError, BrokenPipeError, ConnectionResetError)


class RealEnvWorkers(SubprocVecEnv):
    """One process per real env (SubprocVecEnv), for envs whose physics and rendering cost more than
    the policy. A worker that dies, most often to the kernel's out-of-memory killer (a Memory Maze
    env holds about 1.5 GiB in its process: 16 of them killed workers on this 24 GiB machine), would
    otherwise surface as a bare EOFError from a pipe; here it is a WorkerDiedError that says which
    worker, its exit code and what to change."""

    def __init__(self, env_fns: list, name: str):
        self.name = name
        super().__init__(env_fns, start_method="forkserver")

    def _died(self, error: Exception) -> WorkerDiedError:
        self.waiting = False  # the live workers' replies were read or will never come: close() must not wait
        for process in self.processes:
            process.join(timeout=1.0)  # a dying worker may still be exiting
        dead = [(i, p.exitcode) for i, p in enumerate(self.processes) if p.exitcode is not None]
        which = ", ".join(f"worker {i} (exit code {code})" for i, code in dead) or "a worker"
        killed = any(code == -9 for _, code in dead)
        return WorkerDiedError(
            f"{self.name}: {which} of {len(self.processes)} died"
            + (" (SIGKILL: usually the out-of-memory killer, see `dmesg`)" if killed else "")
            + f" after {type(error).__name__}; run fewer envs (--num-envs) or free memory")

    @contextmanager
    def _naming_dead_workers(self) -> Iterator[None]:
        try:
            yield
        except PIPE_ERRORS as error:
            raise self._died(error) from error

    def reset(self):  # type: ignore[override]
        with self._naming_dead_workers():
            return super().reset()

    def step_async(self, actions: np.ndarray) -> None:
        with self._naming_dead_workers():
            super().step_async(actions)

    def step_wait(self):  # type: ignore[override]
        with self._naming_dead_workers():
            return super().step_wait()

    def close(self) -> None:
        try:
            super().close()
        except PIPE_ERRORS:
            for process in self.processes:  # the pipes of dead workers are gone: stop the rest directly
                process.terminate()
                process.join()
            self.closed = True


class WorldModelObservations(VecEnvWrapper):
    """Real envs seen as an imagined env with obs_type "latent" or "features" sees itself: the world
    model observes every real frame (with the action that led to it, as `observe` primes it), and the
    policy gets that frame's latent or the backbone's features, which carry what the model's state
    recalls. So a policy trained in imagination on features acts in the real env unchanged. One
    batched forward pass per step; an env that finishes starts again from a fresh state."""

    def __init__(self, venv: VecEnv, checkpoint: str | Path | None, obs_type: str, device: str = "cpu") -> None:
        from lssvwm_env.checkpoint import load_world_model
        from lssvwm_env.envs.world_model_env import observation_space

        if obs_type == "pixels":
            raise ValueError("obs_type 'pixels' needs no world model: use the real VecEnv itself")
        self.model = load_world_model(checkpoint, device)
        self.obs_type = obs_type
        space = observation_space(self.model.config, obs_type)
        if venv.action_space.n != self.model.config.backbone.action.n:
            raise ValueError(f"the world model takes {self.model.config.backbone.action.n} actions, the real env "
                             f"{venv.action_space.n}: use a model trained on this env")
        super().__init__(venv, observation_space=space)
        self.state = None
        self.actions: np.ndarray | None = None

    def _observe(self, state, frames: np.ndarray, actions: np.ndarray):
        step = self.model.observe_step(state, torch.from_numpy(frames[:, None]), torch.from_numpy(actions[:, None]))
        values = step.latent if self.obs_type == "latent" else step.features
        return values.float().cpu().numpy(), step.state

    def _first(self, frames: np.ndarray):
        from lssvwm_env.models.conditioning import NO_ACTION

        no_action = np.full(len(frames), NO_ACTION, dtype=np.int64)
        return self._observe(self.model.initial_state(len(frames)), frames, no_action)

    def reset(self) -> np.ndarray:
        observations, self.state = self._first(self.venv.reset())
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        self.actions = np.asarray(actions, dtype=np.int64)
        self.venv.step_async(actions)

    def step_wait(self):
        frames, rewards, dones, infos = self.venv.step_wait()
        # A finished env's returned frame is already the next episode's first: its last frame is the
        # terminal observation, observed in the episode's state.
        last = frames.copy()
        for i in np.flatnonzero(dones):
            last[i] = infos[i]["terminal_observation"]
        observations, self.state = self._observe(self.state, last, self.actions)
        finished = np.flatnonzero(dones)
        if len(finished):
            for i in finished:
                infos[i]["terminal_observation"] = observations[i]
            # Only the finished envs start again: their fresh states replace theirs, the others' stay.
            fresh, fresh_state = self._first(frames[finished])
            rows = np.arange(len(dones))
            rows[finished] = len(dones) + np.arange(len(finished))
            index = torch.from_numpy(rows).to(self.model.device)
            self.state = WorldModelState.cat([self.state, fresh_state])[index]
            observations[finished] = fresh
        return observations, rewards, dones, infos


def make_real_vec_env(name: str, num_envs: int, max_episode_steps: int | None = None, seed: int | None = None,
                      subprocesses: bool = False, obs_type: str = "pixels",
                      checkpoint: str | Path | None = None, device: str = "cpu") -> VecEnv:
    """`num_envs` RealImageEnv of `name` as an SB3 VecEnv: DummyVecEnv (in this process), or
    RealEnvWorkers (one process per env: for Memory Maze, whose physics and rendering cost more than
    the policy). seed: env i's first reset uses seed + i. obs_type "latent" / "features": observed
    through the world model `checkpoint` (WorldModelObservations)."""
    def make() -> RealImageEnv:
        return RealImageEnv(name, max_episode_steps)

    if subprocesses:
        venv: VecEnv = RealEnvWorkers([make] * num_envs, name)
    else:
        venv = DummyVecEnv([make] * num_envs)
    if seed is not None:
        venv.seed(seed)
    if obs_type != "pixels":
        try:
            venv = WorldModelObservations(venv, checkpoint, obs_type, device)
        except Exception:
            venv.close()
            raise
    return venv


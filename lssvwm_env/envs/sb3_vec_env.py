"""The imagined envs as a Stable-Baselines3 VecEnv, so that `PPO("CnnPolicy", LSSVWMSB3VecEnv(...))`
trains inside the world model.

SB3's VecEnv is not Gymnasium's VectorEnv (docs/design.md, "The environment"): reset() returns observations only; step returns
one `done` (terminated or truncated); each finished env's info carries `terminal_observation` and
`TimeLimit.truncated`, and the env is reset inside the same step.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium
import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from lssvwm_env.envs.world_model_env import MAX_EPISODE_STEPS, EnvSnapshot, ImaginedBatch, ImaginedEnvOptions


class LSSVWMSB3VecEnv(VecEnv):
    """`num_envs` imagined envs in one forward pass. Keyword arguments: the fields of ImaginedEnvOptions;
    max_episode_steps defaults to MAX_EPISODE_STEPS, as the TimeLimit that gym.make adds to the
    Gymnasium ids (SB3 builds no wrapper of its own).
    Seeding: `seed(s)` before `reset()` seeds the context choices and the sampling noise of the
    batch (SB3 stores s, s+1, ... per env; the batch uses s). `set_options({...})` takes a context
    source as Gymnasium reset options do: given frames are primed whole, and every env resetting
    continues after their last frame (LSSVWMVectorEnv)."""

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **options: Any) -> None:
        self.core = ImaginedBatch(num_envs, ImaginedEnvOptions(**{"max_episode_steps": MAX_EPISODE_STEPS, **options}))
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported; use 'rgb_array' or None")
        self.render_mode = render_mode
        super().__init__(num_envs, self.core.single_observation_space, self.core.action_space.gymnasium())
        self.actions: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        self.core.set_source(self._options[0])  # checks the options before anything changes
        seed = self._seeds[0]
        if seed is not None or not self.core.noise_seeded:
            self.core.seed(seeding.np_random(seed)[0], reseed=True)
        self.core.reset(np.ones(self.num_envs, dtype=bool))
        self._reset_seeds()
        self._reset_options()
        return self.core.observations()

    def step_async(self, actions: np.ndarray) -> None:
        self.actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        observations, rewards, terminated, truncated = self.core.step(self.actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = observations[i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        if dones.any():
            self.core.reset(dones)
            observations = self.core.observations()
        return observations, rewards, dones, infos

    def get_state(self) -> EnvSnapshot:
        """A copy of everything that decides what the envs do next (constant size, cheap)."""
        return self.core.get_state()

    def set_state(self, snapshot: EnvSnapshot) -> None:
        self.core.set_state(snapshot)

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [frame.copy() for frame in self.core.frames]

    def close(self) -> None:
        self.core.close()

    # The envs share one model and one state: attributes and methods belong to the batch.
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError("the imagined envs share their attributes: set them for all envs (indices=None)")
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

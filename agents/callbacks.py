"""SB3 callbacks of agents.train_ppo: periodic evaluation in the REAL env, and a tqdm progress bar
(SB3's own ProgressBarCallback needs `rich`, which the project does not depend on)."""

from __future__ import annotations

from typing import Callable

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv
from tqdm.auto import tqdm

from agents.envs import make_real_vec_env
from agents.episodes import EvalResult, check_fits, run_episodes


class RealEnvEvalCallback(BaseCallback):
    """Every `every` timesteps (0: never; `evaluate()` may also be called directly), run the policy
    for `episodes` episodes in the real env `env_name` (cut at `max_steps`), always on the same
    episodes (`seed`), and log eval/real_* to TensorBoard. `on_result(result, timesteps)` receives
    each result. The real envs are built at the first evaluation and kept until close()."""

    def __init__(self, env_name: str, every: int, episodes: int, max_steps: int | None, seed: int,
                 num_envs: int = 1, deterministic: bool = False,
                 on_result: Callable[[EvalResult, int], None] | None = None, obs_type: str = "pixels",
                 checkpoint: str | None = None, device: str = "cpu") -> None:
        super().__init__()
        self.obs_type, self.checkpoint, self.device = obs_type, checkpoint, device  # see make_real_vec_env
        self.env_name, self.every, self.episodes, self.max_steps = env_name, every, episodes, max_steps
        self.seed, self.num_envs, self.deterministic, self.on_result = seed, num_envs, deterministic, on_result
        self.next_eval = every
        self.venv: VecEnv | None = None
        self.real_env_steps = 0
        self.seconds = 0.0

    def _on_step(self) -> bool:
        if self.every and self.num_timesteps >= self.next_eval:
            while self.next_eval <= self.num_timesteps:
                self.next_eval += self.every
            self.evaluate()
        return True

    def evaluate(self) -> EvalResult:
        if self.venv is None:
            self.venv = make_real_vec_env(self.env_name, self.num_envs, self.max_steps, obs_type=self.obs_type,
                                          checkpoint=self.checkpoint, device=self.device)
            check_fits(self.model, self.venv, self.env_name)
        result = run_episodes(self.model, self.venv, self.episodes, self.env_name, self.seed, self.deterministic)
        self.real_env_steps += result.env_steps
        self.seconds += result.seconds
        self.logger.record("eval/real_mean_return", result.mean_return)
        self.logger.record("eval/real_std_return", result.std_return)
        self.logger.record("eval/real_mean_length", float(sum(result.lengths) / len(result.lengths)))
        self.logger.record("eval/real_env_steps", self.real_env_steps)
        self.logger.dump(self.num_timesteps)
        if self.on_result is not None:
            self.on_result(result, self.num_timesteps)
        return result

    def close(self) -> None:
        if self.venv is not None:
            self.venv.close()
            self.venv = None


class TqdmProgressCallback(BaseCallback):
    """A tqdm bar over the timesteps of one learn() call."""

    def __init__(self, description: str = "train") -> None:
        super().__init__()
        self.description = description
        self.bar: tqdm | None = None

    def _on_training_start(self) -> None:
        total = self.locals["total_timesteps"] - self.model.num_timesteps
        self.bar = tqdm(total=total, desc=self.description, unit="step", dynamic_ncols=True)

    def _on_step(self) -> bool:
        assert self.bar is not None
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()

"""The world model served as a Gymnasium environment (docs/design.md, "The environment").

`ImaginedBatch` is the core: N imagined envs in one model state, stepped in one forward pass. The
public envs are views of it:

    LSSVWMVectorEnv   gymnasium.vector.VectorEnv, next-step autoreset (gym.make_vec, vector_entry_point)
    LSSVWMEnv         gymnasium.Env, the batch of one (gym.make)
    LSSVWMSB3VecEnv   stable-baselines3 VecEnv (sb3_vec_env.py)

reset primes the model on real frames (context.py), so every imagined episode starts from real
observations, and its observation is the last frame primed on; contexts that recur are primed once
(primed.py). Frames given to
reset(options={"frames", "actions"}) are the real past: all of them are primed, and the env
continues after the last; `context=` limits only the contexts the env draws itself (a dataset, the
checkpoint's context.npz, a live real env). step = sample the next frame, predict reward and
termination, commit the frame to the state. The state has a constant size (per layer an SSM state
per block and a k-frame KV cache), so the memory a step needs does not grow with the episode
(measured over 30,000 steps: README, Measured) and `get_state` is a cheap copy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from lssvwm_env.checkpoint import DEFAULT_CHECKPOINT, MINIGRID_CHECKPOINT
from lssvwm_env.checkpoint import action_space as checkpoint_action_space
from lssvwm_env.checkpoint import DECODERS, load_world_model, resolve_checkpoint_dir
from lssvwm_env.envs.context import (CONTEXT_FILE, ContextError, ContextSource, DatasetEpisodes, EpisodeArrays,
                                     RealEnvPrefix, context_from_options)
from lssvwm_env.envs.primed import PrimedCache, context_key
from lssvwm_env.models.state import WorldModelState
from lssvwm_env.models.world_model import ModelStep

RENDER_FPS = 15
MAX_EPISODE_STEPS = 1000  # LSSVWM-Memory-v0's step limit (lssvwm_env/__init__.py): a Memory Maze 9x9 episode

# (observations (N, ...), rewards (N,) float32, terminated (N,) bool, truncated (N,) bool)
BatchStep = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

# What an env observes (ImaginedEnvOptions.obs_type):
#   pixels    the frame, (H, W, 3) uint8
#   latent    the frame's latent, (h, w, C) float32: the decoder runs only for render()
#   features  the committed frame's backbone features, (D,) float32: what the reward head reads, and
#             what the model's state recalls of the past (agents that read the model's memory)
OBS_TYPES = ("pixels", "latent", "features")


def observation_space(config, obs_type: str) -> spaces.Box:
    """One env's observation space for a world model config (WorldModelConfig) and obs_type."""
    if obs_type not in OBS_TYPES:
        raise ValueError(f"obs_type={obs_type!r}: choose from {', '.join(OBS_TYPES)}")
    if obs_type == "pixels":
        size = config.autoencoder.image_size
        return spaces.Box(0, 255, (size, size, 3), np.uint8)
    shape = ((*config.autoencoder.grid, config.autoencoder.latent_channels) if obs_type == "latent"
             else (config.backbone.d_model,))
    return spaces.Box(-np.inf, np.inf, shape, np.float32)


class ResetNeeded(RuntimeError):
    """step() was called before reset()."""


@dataclass
class EnvSnapshot:
    """Everything that decides what the envs do next, for planning and branching; constant size.

    model_state: the world model's recurrent state (a clone); frames: (N, H, W, 3) current frames
    (where `stale`, not yet decoded from `latents`); latents (N, h, w, C) and features (N, D) of the
    current frames; steps: (N,) steps since each env's reset; needs_reset: (N,) the vector env's
    pending next-step autoresets; np_random_state / generator_state: the RNGs that choose context
    episodes and the sampling noise."""

    model_state: WorldModelState
    frames: np.ndarray
    stale: np.ndarray
    latents: np.ndarray
    features: np.ndarray
    steps: np.ndarray
    needs_reset: np.ndarray
    np_random_state: dict
    generator_state: torch.Tensor

    def nbytes(self) -> int:
        arrays = (self.frames, self.stale, self.latents, self.features, self.steps, self.needs_reset)
        return self.model_state.nbytes() + sum(a.nbytes for a in arrays) + self.generator_state.numel()


@dataclass(frozen=True)
class ImaginedEnvOptions:
    """The keyword arguments every imagined env takes (`gym.make(ID, **options)`, LSSVWMVectorEnv,
    LSSVWMEnv, LSSVWMSB3VecEnv), declared once and checked before the model loads.

    Context comes from `dataset` (a dataset directory: its `dataset_split` episodes, from their first
    frame or, with context_start="random", from anywhere in them), `real_env` (a live prefix of that
    real env under a random policy), or else CHECKPOINT/context.npz; a reset's options can replace the
    source (context.context_from_options), which then serves later resets too.
    """

    checkpoint: str | Path | None = None  # a checkpoint or run directory (None: the shipped model)
    device: str | torch.device = "cpu"
    sampling_steps: int | None = None  # denoising passes per imagined frame (None: the model's own)
    # frames of real context the env draws to prime an episode (fewer when the episode is shorter);
    # frames given to reset(options=) are all primed, however many
    context: int = 32
    max_episode_steps: int | None = None  # imagined steps before truncation (None: never)
    dataset: str | Path | None = None
    real_env: str | None = None
    dataset_split: str = "eval"
    context_start: str = "first"
    obs_type: str = "pixels"  # pixels | latent | features (OBS_TYPES)
    # "student": frames drawn by the checkpoint's cheaper student decoder (`lssvwm distill-decoder`)
    decoder: str = "full"

    def __post_init__(self) -> None:
        if self.obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type={self.obs_type!r}: choose from {', '.join(OBS_TYPES)}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder={self.decoder!r}: choose from {', '.join(DECODERS)}")
        if self.context < 1:
            raise ValueError(f"context must be >= 1 frame of real context, got {self.context}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {self.max_episode_steps}")
        steps = self.sampling_steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
            raise ValueError(f"sampling_steps must be an int >= 1 (denoising passes per imagined frame) or None "
                             f"for the model's own, got {steps!r}")
        if self.dataset is not None and self.real_env is not None:
            raise ValueError("give dataset= or real_env= as the context source, not both")
        if self.dataset is None and (self.dataset_split, self.context_start) != ("eval", "first"):
            raise ValueError(f"dataset_split={self.dataset_split!r} and context_start={self.context_start!r} choose "
                             "where in a dataset episodes start; pass dataset=DIR too")


class ImaginedBatch:
    """N imagined envs sharing one world model and one batched state (`options`: ImaginedEnvOptions)."""

    def __init__(self, num_envs: int, options: ImaginedEnvOptions) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        context, max_episode_steps, sampling_steps = options.context, options.max_episode_steps, options.sampling_steps
        self.checkpoint_dir = resolve_checkpoint_dir(options.checkpoint)
        self.model = load_world_model(self.checkpoint_dir, options.device, options.decoder)
        config = self.model.config
        backbone = self.model.backbone.config
        if backbone.use_attention and backbone.attention.cache_frames() is None:
            raise ValueError(f"{self.checkpoint_dir}: variant {config.variant!r} attends to all past frames, so "
                             "its state grows with every step; the env needs a bounded state (causal_window)")
        self.num_envs, self.context, self.max_episode_steps = num_envs, context, max_episode_steps
        self.sampling_steps = sampling_steps
        # Discrete(n), or a Box with the training data's bounds (checkpoint.action_space)
        self.action_space = checkpoint_action_space(self.checkpoint_dir, self.model)
        size = config.autoencoder.image_size
        self.frame_shape = (size, size, 3)
        self.obs_type = options.obs_type
        self.latent_shape = (*config.autoencoder.grid, config.autoencoder.latent_channels)
        self.feature_size = config.backbone.d_model

        self.source: ContextSource | None = None
        if options.dataset is not None:
            self.source = DatasetEpisodes(options.dataset, self.action_space, self.frame_shape, options.dataset_split,
                                          options.context_start)
        elif options.real_env is not None:
            self.source = RealEnvPrefix(options.real_env, self.action_space, self.frame_shape)
        elif (self.checkpoint_dir / CONTEXT_FILE).exists():
            self.source = EpisodeArrays.from_file(self.checkpoint_dir / CONTEXT_FILE, self.action_space,
                                                  self.frame_shape)

        self.primed = PrimedCache()
        self.np_random = np.random.default_rng()
        self.generator = torch.Generator(device=self.model.device)
        self.noise_seeded = False
        self.state: WorldModelState | None = None
        self._frames = np.zeros((num_envs, *self.frame_shape), dtype=np.uint8)
        self.stale = np.zeros(num_envs, dtype=bool)  # frames not decoded yet (latent / features observations)
        self.latents = np.zeros((num_envs, *self.latent_shape), dtype=np.float32)
        self.features = np.zeros((num_envs, self.feature_size), dtype=np.float32)
        self.steps = np.zeros(num_envs, dtype=np.int64)

    # ---- observations --------------------------------------------------------------------------
    @property
    def single_observation_space(self) -> spaces.Box:
        return observation_space(self.model.config, self.obs_type)

    def observations(self) -> np.ndarray:
        """(N, ...) a copy of the current observations, as obs_type says."""
        if self.obs_type == "latent":
            return self.latents.copy()
        if self.obs_type == "features":
            return self.features.copy()
        return self.frames.copy()

    @property
    def frames(self) -> np.ndarray:
        """(N, H, W, 3) uint8 current frames, decoded from their latents when first asked for."""
        if self.stale.any():
            envs = np.flatnonzero(self.stale)
            latents = torch.from_numpy(self.latents[envs]).to(self.model.device)
            with torch.no_grad():
                self._frames[envs] = self.model.decode(latents[:, None])[:, 0].cpu().numpy()
            self.stale[envs] = False
        return self._frames

    # ---- seeding and reset ---------------------------------------------------------------------
    def seed(self, np_random: np.random.Generator, reseed: bool) -> None:
        """Use `np_random` (the Gymnasium env's, just seeded or not) for context choices; reseed the
        sampling noise from it when the reset was seeded (and on the first reset)."""
        self.np_random = np_random
        if reseed or not self.noise_seeded:
            self.generator.manual_seed(int(np_random.integers(2**63 - 1)))
            self.noise_seeded = True

    def set_source(self, options: dict[str, Any] | None) -> None:
        source = context_from_options(dict(options or {}), self.action_space, self.frame_shape)
        if source is not None:
            if self.source is not None:
                self.source.close()
            self.source = source

    @torch.no_grad()
    def reset(self, mask: np.ndarray) -> None:
        """Prime the envs where mask (N,) is True on fresh real context (at most `context` frames drawn
        from a dataset, context.npz or a real env; all the frames of given arrays); the others keep
        their state. Each primed env observes the last frame it was primed on."""
        if self.source is None:
            raise ContextError(
                f"no real context to start from: {self.checkpoint_dir} holds no {CONTEXT_FILE}. Pass dataset=DIR "
                "(a dataset of the same env) or real_env=NAME when making the env, or reset(options={'frames': ..., "
                "'actions': ...}); lssvwm_env.envs.context.write_context_file ships context with a checkpoint")
        envs = np.flatnonzero(mask)
        if len(envs) == 0:
            return
        if self.state is None and len(envs) < self.num_envs:
            raise ResetNeeded("reset every env before resetting some of them")
        contexts = self.source.draw(self.np_random, len(envs), self.context, full_reset=len(envs) == self.num_envs)
        primed = self.prime(contexts)  # primed[j]: env envs[j]
        position = np.zeros(self.num_envs, dtype=np.int64)
        position[envs] = np.arange(len(envs))
        index = torch.from_numpy(position).to(self.model.device)
        fresh = WorldModelState.cat([p.state for p in primed])[index]
        if self.state is None:
            self.state = fresh
        else:
            self.state = self.state.where(torch.from_numpy(np.asarray(mask, bool)).to(self.model.device), fresh)
        latents = torch.cat([p.latent for p in primed]).float().cpu().numpy()
        features = torch.cat([p.features for p in primed]).float().cpu().numpy()
        for j, env in enumerate(envs):
            self._frames[env] = contexts[j][0][-1]  # the last real frame, shown as it is
            self.latents[env], self.features[env] = latents[j], features[j]
        self.stale[envs] = False
        self.steps[envs] = 0

    def prime(self, contexts: list[tuple[np.ndarray, np.ndarray]]) -> list[ModelStep]:
        """The model primed on each context: a ModelStep of batch 1 per context. Contexts of a source
        that recurs are primed once (one of each, however many envs drew it) and kept (primed.py); the
        rest are primed in one pass per length."""
        keys = [context_key(*context) for context in contexts] if self.source.recurs else None
        primed = [self.primed.get(key) for key in keys] if keys else [None] * len(contexts)
        missing = [j for j, step in enumerate(primed) if step is None]
        first = {keys[j]: j for j in reversed(missing)} if keys else {}  # key -> first context drawing it
        to_prime = [j for j in missing if not keys or first[keys[j]] == j]
        lengths = np.array([len(contexts[j][0]) for j in to_prime], dtype=np.int64)
        for length in np.unique(lengths):
            group = [to_prime[i] for i in np.flatnonzero(lengths == length)]
            frames = torch.from_numpy(np.stack([contexts[j][0] for j in group]))
            actions = torch.from_numpy(np.stack([contexts[j][1] for j in group]))
            step = self.model.observe_step(self.model.initial_state(len(group)), frames, actions)
            for k, j in enumerate(group):
                primed[j] = ModelStep(step.latent[k:k + 1].clone(), step.features[k:k + 1].clone(), None, None,
                                      step.state[k].clone())
                if keys:
                    self.primed.put(keys[j], primed[j])
        for j in missing:
            if primed[j] is None:
                primed[j] = primed[first[keys[j]]]
        return primed

    # ---- step ----------------------------------------------------------------------------------
    @property
    def num_actions(self) -> int:
        """The number of discrete actions (or a box's dimension)."""
        return self.action_space.n

    def check_actions(self, actions: Any, ignore: np.ndarray | None = None) -> np.ndarray:
        """actions (N,) integers in [0, n), or (N, n) float32 inside a box's bounds; entries where
        `ignore` is True are not used (set to 0)."""
        if self.action_space.continuous:
            return self.check_box_actions(actions, ignore)
        array = np.asarray(actions)
        if array.shape != (self.num_envs,):
            raise ValueError(f"expected {self.num_envs} actions (one per env), got shape {array.shape}: {actions!r}")
        if array.dtype.kind not in "iu":
            shown = f"action {array[0]}" if self.num_envs == 1 else f"actions {array}"
            raise ValueError(f"{shown} ({array.dtype}) is not in the action space Discrete({self.num_actions}): "
                             f"actions are integers 0..{self.num_actions - 1}")
        array = array.astype(np.int64)
        if ignore is not None:
            array = np.where(ignore, 0, array)
        bad = np.flatnonzero((array < 0) | (array >= self.num_actions))
        if len(bad):
            where = f"actions[{bad[0]}] = {array[bad[0]]}" if self.num_envs > 1 else f"action {array[0]}"
            raise ValueError(f"{where} is not in the action space Discrete({self.num_actions}) "
                             f"(valid actions: 0..{self.num_actions - 1})")
        return array

    def check_box_actions(self, actions: Any, ignore: np.ndarray | None) -> np.ndarray:
        space = self.action_space
        array = np.asarray(actions)
        if array.shape != (self.num_envs, space.n):
            raise ValueError(f"expected actions of shape ({self.num_envs}, {space.n}) (one per env) in {space}, got "
                             f"shape {array.shape}: {actions!r}")
        array = array.astype(np.float32)
        if ignore is not None:
            array = np.where(ignore[:, None], 0.0, array).astype(np.float32)
        problem = space.problem(array)
        if problem:
            raise ValueError(f"actions {array.tolist()} are not in the action space: the array {problem}")
        return array

    @torch.no_grad()
    def step(self, actions: Any, ignore: np.ndarray | None = None) -> BatchStep:
        """One imagined step of every env, in one forward pass. No reset happens here."""
        if self.state is None:
            raise ResetNeeded("call reset() before step(): the model must first be primed on real context")
        actions = self.check_actions(actions, ignore)
        step = self.model.imagine_step(self.state, torch.from_numpy(actions).to(self.model.device), self.generator,
                                       self.sampling_steps)
        self.state = step.state
        self.latents = step.latent.float().cpu().numpy()
        self.features = step.features.float().cpu().numpy()
        if self.obs_type == "pixels":  # decoded now: they are the observations
            self._frames = self.model.decode(step.latent[:, None])[:, 0].cpu().numpy()
            self.stale[:] = False
        else:
            self.stale[:] = True
        self.steps += 1
        truncated = (self.steps >= self.max_episode_steps if self.max_episode_steps is not None
                     else np.zeros(self.num_envs, dtype=bool))
        return self.observations(), step.reward.float().cpu().numpy(), step.terminated.cpu().numpy(), truncated

    # ---- snapshots -----------------------------------------------------------------------------
    def get_state(self, needs_reset: np.ndarray | None = None) -> EnvSnapshot:
        if self.state is None:
            raise ResetNeeded("call reset() before get_state()")
        return EnvSnapshot(
            model_state=self.state.clone(), frames=self._frames.copy(), stale=self.stale.copy(),
            latents=self.latents.copy(), features=self.features.copy(), steps=self.steps.copy(),
            needs_reset=np.zeros(self.num_envs, bool) if needs_reset is None else needs_reset.copy(),
            np_random_state=self.np_random.bit_generator.state, generator_state=self.generator.get_state())

    def set_state(self, snapshot: EnvSnapshot) -> np.ndarray:
        """Restore a snapshot (it stays usable: restoring it again branches again). Returns needs_reset."""
        if snapshot.steps.shape != (self.num_envs,):
            raise ValueError(f"the snapshot holds {len(snapshot.steps)} envs, this env has {self.num_envs}")
        self.state = snapshot.model_state.clone()
        self._frames, self.stale, self.steps = snapshot.frames.copy(), snapshot.stale.copy(), snapshot.steps.copy()
        self.latents, self.features = snapshot.latents.copy(), snapshot.features.copy()
        self.np_random.bit_generator.state = snapshot.np_random_state
        self.generator.set_state(snapshot.generator_state)
        self.noise_seeded = True
        return snapshot.needs_reset.copy()

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


class LSSVWMVectorEnv(VectorEnv):
    """N imagined envs stepped in one forward pass, with Gymnasium's next-step autoreset: the step
    after an env terminates or truncates resets it (its action is ignored; reward 0, not done) and
    returns its first observation.

    Observations: the generated frames, (N, 64, 64, 3) uint8. Actions: (N,) in Discrete(n), n from the
    model config; for a model of continuous actions (N, n) in the Box of its training data's bounds. Rewards and termination: predicted; truncation: `max_episode_steps`.
    Keyword arguments: the fields of ImaginedEnvOptions. reset(seed=) seeds the choice of context episodes and the
    sampling noise (the same seed and actions give the same frames); reset(options=) takes a context
    source ({"frames", "actions"} / {"dataset"[, "split", "start"]} / {"real_env"}) and Gymnasium's
    "reset_mask". Given frames (T, H, W, 3) or (E, T, H, W, 3) are the real past: every env resetting
    primes on all T frames of episode i % E (autoresets: a random one) and continues after the last.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS,
                                          "autoreset_mode": AutoresetMode.NEXT_STEP}
    shipped_checkpoint: ClassVar[Path] = DEFAULT_CHECKPOINT  # the model used when checkpoint= is not given

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **options: Any) -> None:
        _check_render_mode(self.metadata, render_mode)
        options = with_shipped_checkpoint(ImaginedEnvOptions(**options), self.shipped_checkpoint)
        self.core = ImaginedBatch(num_envs, options)
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.single_observation_space = self.core.single_observation_space
        self.single_action_space = self.core.action_space.gymnasium()
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.needs_reset = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int or None (one seed drives the whole batch), got {seed!r}")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        elif not (isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.shape == (self.num_envs,)):
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), got {mask!r}")
        self.core.set_source(options)  # checks the options before anything changes
        super().reset(seed=seed)
        self.core.seed(self.np_random, reseed=seed is not None)
        self.core.reset(mask)
        self.needs_reset[mask] = False
        return self.core.observations(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        resetting = self.needs_reset.copy()
        _, rewards, terminated, truncated = self.core.step(actions, ignore=resetting)
        if resetting.any():
            self.core.reset(resetting)
            rewards[resetting] = 0.0
            terminated[resetting] = False
            truncated[resetting] = False
        self.needs_reset = terminated | truncated
        return self.core.observations(), rewards, terminated, truncated, {}

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() was called without a render_mode; make the env with render_mode='rgb_array'")
            return None
        return tuple(frame.copy() for frame in self.core.frames)

    def get_state(self) -> EnvSnapshot:
        """A copy of everything that decides what the envs do next (constant size, cheap)."""
        return self.core.get_state(self.needs_reset)

    def set_state(self, snapshot: EnvSnapshot) -> None:
        self.needs_reset = self.core.set_state(snapshot)

    def close_extras(self, **kwargs: Any) -> None:
        self.core.close()


class LSSVWMEnv(gymnasium.Env):
    """One imagined env: the batch of one of LSSVWMVectorEnv's core.

    Observation: the generated frame, Box(0, 255, (64, 64, 3), uint8). Action: Discrete(n) from the
    model config, or the Box of a continuous model's training data (float32 (n,), the real env's bounds). Reward and termination: predicted by the model; truncation: `max_episode_steps`
    (gym.make's max_episode_steps= adds Gymnasium's TimeLimit instead). render_mode "rgb_array"
    returns the frame; "human" shows it in a pygame window. Keyword arguments: the fields of ImaginedEnvOptions.
    reset(options={"frames": (T, H, W, 3) uint8, "actions": (T,) or (T - 1,)}) primes on all T frames
    (the real past, actions[t] taken after frames[t]) whatever `context`, returns frames[-1] and
    continues after it: step(a) imagines the frame that action a leads to from there.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array", "human"], "render_fps": RENDER_FPS}
    shipped_checkpoint: ClassVar[Path] = DEFAULT_CHECKPOINT

    def __init__(self, render_mode: str | None = None, **options: Any) -> None:
        _check_render_mode(self.metadata, render_mode)
        options = with_shipped_checkpoint(ImaginedEnvOptions(**options), self.shipped_checkpoint)
        self.core = ImaginedBatch(1, options)
        self.render_mode = render_mode
        self.observation_space = self.core.single_observation_space
        self.action_space = self.core.action_space.gymnasium()
        self.viewer = None

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        self.core.set_source(options)  # checks the options before anything changes
        super().reset(seed=seed)
        self.core.seed(self.np_random, reseed=seed is not None)
        self.core.reset(np.ones(1, dtype=bool))
        if self.render_mode == "human":
            self.render()
        return self.core.observations()[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        space = self.core.action_space
        if space.continuous:
            if np.shape(action) != (space.n,):
                raise ValueError(f"action {action!r} is not in the action space {space}: expected shape ({space.n},)")
        elif np.ndim(action) != 0 and np.shape(action) != (1,):
            raise ValueError(f"action {action!r} is not in the action space Discrete({self.core.num_actions})")
        observations, rewards, terminated, truncated = self.core.step(np.reshape(action, (1, *space.step_shape)))
        if self.render_mode == "human":
            self.render()
        return observations[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), {}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() was called without a render_mode; make the env with render_mode='rgb_array'")
            return None
        if self.render_mode == "rgb_array":
            return self.core.frames[0].copy()
        if self.viewer is None:
            from lssvwm_env.envs.viewer import Viewer

            self.viewer = Viewer("LSSVWM")
        self.viewer.show(self.core.frames[0])
        return None

    def get_state(self) -> EnvSnapshot:
        """A copy of everything that decides what the env does next (constant size, cheap)."""
        return self.core.get_state()

    def set_state(self, snapshot: EnvSnapshot) -> None:
        self.core.set_state(snapshot)

    def close(self) -> None:
        if self.viewer is not None:
            self.viewer.close()
            self.viewer = None
        self.core.close()


class LSSVWMMiniGridEnv(LSSVWMEnv):
    """LSSVWM-MiniGrid-v0: LSSVWMEnv with the shipped MiniGrid-MemoryS7 model as its default."""

    shipped_checkpoint = MINIGRID_CHECKPOINT


class LSSVWMMiniGridVectorEnv(LSSVWMVectorEnv):
    """The vector form of LSSVWM-MiniGrid-v0."""

    shipped_checkpoint = MINIGRID_CHECKPOINT


def with_shipped_checkpoint(options: ImaginedEnvOptions, shipped: Path) -> ImaginedEnvOptions:
    """`options`, with the env id's shipped model where no checkpoint is given."""
    return options if options.checkpoint is not None else replace(options, checkpoint=shipped)


def _check_render_mode(metadata: dict[str, Any], render_mode: str | None) -> None:
    if render_mode is not None and render_mode not in metadata["render_modes"]:
        raise ValueError(f"render_mode {render_mode!r} is not supported; render modes: {metadata['render_modes']}")

"""Real context that primes the world model at every reset (docs/design.md, "The environment"): each
imagined episode starts from real frames and the actions between them, so the model's state holds a
real past before it generates anything.

Sources, all in dataset alignment (`actions[t]` is taken after seeing `frames[t]`, data_collection/
dataset.py), giving `length` frames of an episode (the env's `context=`), except arrays the caller
gives:

    EpisodeArrays   given arrays: frames (E, T, 64, 64, 3) uint8, actions (E, T) int64, the caller's
                    real past, primed whole: the env continues after their last frame (issue 38);
                    also the `context.npz` shipped beside a checkpoint (write_context_file makes it),
                    cut to `length` frames
    DatasetEpisodes the episodes of a dataset directory (held-out "eval" ones by default), loaded
                    when drawn; their first frames, or (start="random") a window anywhere in them
    RealEnvPrefix   a live prefix of a real env (data_collection.envs) under a scripted policy

Episode starts are what evaluation in the real env begins from. Random windows are what an agent
trained in imagination wants (as Dreamer imagines from replayed states): short imagined episodes
from every situation the data holds, so that the few steps the model predicts well cover more
than the first minutes of an episode.

A source returns the model's view: frames and, for each frame, the action that led to it
(`input_actions`: NO_ACTION for the first).
"""

from __future__ import annotations

import abc
import os
import zipfile
from pathlib import Path

import numpy as np

from data_collection.files import atomic_path
from data_collection.envs import ActionSpace
from lssvwm_env.training.data import input_actions

CONTEXT_FILE = "context.npz"

# (frames (T, H, W, 3) uint8, actions that led to them: (T,) int64, or (T, n) float32 for a box)
Context = tuple[np.ndarray, np.ndarray]


class ContextError(ValueError):
    """Real context is missing or does not fit the model; the message says what to pass instead."""


class ContextSource(abc.ABC):
    """Where reset takes its real context from."""

    recurs = False  # its contexts come from a fixed set, so the env keeps their primed states (primed.py)

    @abc.abstractmethod
    def draw(self, rng: np.random.Generator, count: int, length: int, full_reset: bool) -> list[Context]:
        """`count` contexts of at most `length` frames (given arrays: all their frames). full_reset:
        all envs reset together (the sources that hold several episodes then give different episodes
        to different envs)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free what the source holds open (a real env)."""


class EpisodeArrays(ContextSource):
    """Episodes held in memory: frames (E, T, H, W, 3) or (T, H, W, 3) uint8, actions (E, T) or (T,)
    (a box: (E, T, n) or (T, n)) in dataset alignment (T - 1 actions are accepted: the last one is
    never used).

    given: the caller's own real past (reset options). Every context is all T frames of an episode,
    whatever the env's `context=`, so the env continues after the last frame given (the state's size
    does not grow with T; priming costs one pass over the T frames); a full reset gives env i episode
    i % E, in the caller's order. Otherwise (the context.npz shipped beside a checkpoint) a context is
    an episode's first `length` frames, and a full reset starts from a random episode, then the
    following ones. Autoresets draw episodes at random."""

    recurs = True

    def __init__(self, frames: np.ndarray, actions: np.ndarray, action_space: ActionSpace,
                 frame_shape: tuple[int, int, int], where: str = "reset options", given: bool = True) -> None:
        frames, actions = _array(frames, "frames", where), _array(actions, "actions", where)
        shown = f"'frames' {frames.dtype} {frames.shape} and 'actions' {actions.dtype} {actions.shape}"
        one_episode = frames.ndim == 4
        if one_episode:
            frames, actions = frames[None], actions[None]
        if frames.ndim != 5 or tuple(frames.shape[2:]) != tuple(frame_shape) or frames.dtype != np.uint8:
            raise ContextError(f"{where}: 'frames' must be uint8 of shape (T, {', '.join(map(str, frame_shape))}) "
                               f"or (E, T, ...), got {shown}")
        if frames.shape[1] < 1:
            raise ContextError(f"{where}: 'frames' holds no frame, got {shown}")
        episodes, length = frames.shape[:2]
        step = action_space.step_shape
        if (actions.ndim != 2 + len(step) or actions.shape[0] != episodes or actions.shape[1] not in (length, length - 1)
                or actions.shape[2:] != step):
            expected = " or ".join(str((*lead, *step)) for lead in (
                [(length,), (length - 1,)] if one_episode else [(episodes, length), (episodes, length - 1)]))
            raise ContextError(f"{where}: 'actions' must have shape {expected} to go with the frames (actions[t] "
                               f"taken after frames[t]), got {shown}")
        problem = action_space.problem(actions)
        if problem:
            problem = problem.replace("outside ", "outside the model's action space ")
            raise ContextError(f"{where}: 'actions' {problem}, got {shown}")
        if actions.shape[1] == length - 1:
            actions = np.concatenate([actions, np.zeros((episodes, 1, *step), actions.dtype)], axis=1)
        self.frames, self.actions, self.given = frames, actions.astype(action_space.dtype), given

    @staticmethod
    def from_file(path: Path, action_space: ActionSpace, frame_shape: tuple[int, int, int]) -> EpisodeArrays:
        try:
            with np.load(path, allow_pickle=False) as data:
                frames, actions = data["frames"], data["actions"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise ContextError(f"{path}: cannot read the context episodes ({err}); rewrite it with "
                               "lssvwm_env.envs.context.write_context_file") from err
        return EpisodeArrays(frames, actions, action_space, frame_shape, where=str(path), given=False)

    def draw(self, rng: np.random.Generator, count: int, length: int, full_reset: bool) -> list[Context]:
        episodes = len(self.frames)
        if full_reset:
            start = 0 if self.given else int(rng.integers(episodes))
            chosen = (start + np.arange(count)) % episodes
        else:
            chosen = rng.integers(episodes, size=count)
        end = None if self.given else length
        return [(self.frames[e, :end], input_actions(self.actions[e])[:end]) for e in chosen]


def _array(value, name: str, where: str) -> np.ndarray:
    """`value` as an array; frames of unequal shapes (a ragged list) get an error naming the option."""
    try:
        return np.asarray(value)
    except ValueError as err:
        raise ContextError(f"{where}: '{name}' is not one array (items of unequal shapes?): {err}") from err


CONTEXT_STARTS = ("first", "random")


class DatasetEpisodes(ContextSource):
    """The `split` episodes of a dataset directory (data_collection.dataset), read when first drawn.

    start "first": each context is an episode's first frames (only those are kept, at most E x length
    frames); "random": a window of `length` frames at a uniformly drawn offset of a drawn episode
    (whole episodes are kept: a 500-step 64x64 episode holds 6 MB). Nothing is read again on
    autoresets."""

    def __init__(self, dataset_dir: str | os.PathLike[str], action_space: ActionSpace, frame_shape: tuple[int, int, int],
                 split: str = "eval", start: str = "first") -> None:
        from data_collection.dataset import SPLITS, Dataset, DatasetError

        if split not in SPLITS:
            raise ContextError(f"dataset split {split!r} is not one of {list(SPLITS)}")
        if start not in CONTEXT_STARTS:
            raise ContextError(f"context start {start!r} is not one of {list(CONTEXT_STARTS)}")
        self.start = start
        self.recurs = start == "first"
        try:
            self.dataset = Dataset.open(dataset_dir)
        except (DatasetError, OSError) as err:
            raise ContextError(f"dataset={str(dataset_dir)!r}: cannot open the dataset ({err})") from err
        self.indices = [entry.index for entry in self.dataset.episodes(split)]
        if not self.indices:
            raise ContextError(f"dataset={str(dataset_dir)!r} has no '{split}' episodes to take context from")
        manifest = self.dataset.manifest
        if not manifest.actions.same_actions(action_space) or tuple(manifest.obs_shape) != tuple(frame_shape):
            raise ContextError(f"dataset={str(dataset_dir)!r} has actions {manifest.actions} and frames of shape "
                               f"{tuple(manifest.obs_shape)} (env {manifest.env!r}), the model has {action_space} and "
                               f"{tuple(frame_shape)}: it was trained on another env")
        self.loaded: dict[tuple[int, int], Context] = {}  # start "first": (episode, length) -> context
        self.whole: dict[int, Context] = {}  # start "random": episode -> all its frames and input actions

    def draw(self, rng: np.random.Generator, count: int, length: int, full_reset: bool) -> list[Context]:
        episodes = len(self.indices)
        chosen = ((int(rng.integers(episodes)) + np.arange(count)) % episodes if full_reset
                  else rng.integers(episodes, size=count))
        if self.start == "random":
            return [self.window(int(e), length, rng) for e in chosen]
        for e in chosen:
            if (e, length) not in self.loaded:
                episode = self.dataset.load_episode(self.indices[e])
                self.loaded[e, length] = (episode["frames"][:length].copy(), input_actions(episode["actions"])[:length])
        return [self.loaded[e, length] for e in chosen]

    def window(self, e: int, length: int, rng: np.random.Generator) -> Context:
        """`length` frames (the whole episode if shorter) from a uniform offset of episode e; the first
        frame's action is the one that led to it, so a window primes the model as the episode did."""
        if e not in self.whole:
            episode = self.dataset.load_episode(self.indices[e])
            self.whole[e] = (episode["frames"], input_actions(episode["actions"]))
        frames, actions = self.whole[e]
        offset = int(rng.integers(max(len(frames) - length, 0) + 1))
        return frames[offset:offset + length], actions[offset:offset + length]


class RealEnvPrefix(ContextSource):
    """The first frames of a fresh real episode under a scripted policy (default: random actions).
    The env is built once and reseeded for every context; Memory Maze costs seconds per reset."""

    def __init__(self, env_name: str, action_space: ActionSpace, frame_shape: tuple[int, int, int],
                 policy: str = "random") -> None:
        from data_collection.envs import FRAME_SHAPE, EnvError, make_env
        from data_collection.policies import PolicySpecError, make_policy

        try:
            self.env = make_env(env_name)
            self.policy = make_policy(policy, self.env.spec)
        except (EnvError, PolicySpecError) as err:
            raise ContextError(f"real_env={env_name!r}: {err}") from err
        if not self.env.action_space.same_actions(action_space) or FRAME_SHAPE != tuple(frame_shape):
            self.env.close()
            raise ContextError(f"real_env={env_name!r} has actions {self.env.action_space} and frames of shape "
                               f"{FRAME_SHAPE}, the model has {action_space} and {tuple(frame_shape)}: it was "
                               "trained on another env")

    def draw(self, rng: np.random.Generator, count: int, length: int, full_reset: bool) -> list[Context]:
        from data_collection.collect import rollout

        out = []
        for _ in range(count):
            env_seed = int(rng.integers(2**31))
            episode = rollout(self.env, self.policy, env_seed, rng, max_steps=length)
            out.append((episode["frames"], input_actions(episode["actions"])))
        return out

    def close(self) -> None:
        self.env.close()


def context_from_options(options: dict, action_space: ActionSpace, frame_shape: tuple[int, int, int]) -> ContextSource | None:
    """The source a reset's options ask for, or None: {"frames", "actions"} arrays (primed whole),
    {"dataset": DIR [, "split": "eval"|"train", "start": "first"|"random"]} or {"real_env": NAME[,
    "policy": NAME]}."""
    known = {"frames", "actions", "dataset", "split", "start", "real_env", "policy"}
    unknown = set(options) - known
    if unknown:
        raise ContextError(f"reset options {sorted(unknown)} are not understood; options: {sorted(known)}")
    given = [k for k in ("frames", "dataset", "real_env") if k in options]
    if len(given) > 1:
        raise ContextError(f"reset options name several context sources ({given}); give one")
    if "frames" in options or "actions" in options:
        if not ("frames" in options and "actions" in options):
            raise ContextError("reset options need both 'frames' and 'actions' (actions[t] taken after frames[t])")
        return EpisodeArrays(options["frames"], options["actions"], action_space, frame_shape)
    if "dataset" in options:
        return DatasetEpisodes(options["dataset"], action_space, frame_shape, options.get("split", "eval"),
                               options.get("start", "first"))
    if "real_env" in options:
        return RealEnvPrefix(options["real_env"], action_space, frame_shape, options.get("policy", "random"))
    return None


def write_context_file(checkpoint_dir: str | os.PathLike[str], dataset_dir: str | os.PathLike[str],
                       episodes: int = 8, frames: int = 64) -> Path:
    """Ship real context with a checkpoint: the first `frames` frames (and actions, dataset
    alignment) of `episodes` held-out episodes of the dataset, as CHECKPOINT/context.npz with
    frames (E, T, 64, 64, 3) uint8 and actions (E, T) int64 (a box: (E, T, n) float32). Episodes shorter than `frames` are
    skipped. Returns the file's path."""
    from data_collection.dataset import Dataset

    from lssvwm_env.checkpoint import resolve_checkpoint_dir

    checkpoint_dir = resolve_checkpoint_dir(checkpoint_dir)
    dataset = Dataset.open(dataset_dir)
    chosen = [e.index for e in dataset.episodes("eval") if e.length >= frames][:episodes]
    if len(chosen) < episodes:
        raise ContextError(f"{dataset_dir}: {len(chosen)} eval episodes have at least {frames} frames, "
                           f"{episodes} were asked for; ask for fewer or shorter episodes")
    loaded = [dataset.load_episode(i) for i in chosen]
    path = checkpoint_dir / CONTEXT_FILE
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, frames=np.stack([ep["frames"][:frames] for ep in loaded]),
                            actions=np.stack([ep["actions"][:frames] for ep in loaded]))
    return path

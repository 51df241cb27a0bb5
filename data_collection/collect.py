"""`lssvwm collect`: run a policy in a real env and write the episodes as a dataset (dataset.py).

    lssvwm collect --env memory-maze-9x9 --policy explore --episodes 100 --steps 1000 --workers 2 --out data/mm9

Each worker process owns one env and writes every episode atomically as soon as it ends; the main
process keeps the manifest, rewriting it atomically after each episode. Re-running the same command
resumes: episodes already on disk with a matching checksum are kept, files written just before a
kill are adopted, the rest are collected. Episode k's env seed and policy randomness derive from
(--seed, k) alone, so a dataset does not depend on the number of workers or on interruptions.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import fcntl
import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_collection.dataset import (
    ARRAY_SPECS,
    MANIFEST_NAME,
    REQUIRED_ARRAYS,
    DatasetError,
    EpisodeEntry,
    Manifest,
    check_episode_arrays,
    episode_file,
    file_sha256,
    read_manifest,
    remove_temp_files,
    split_for_episode,
    unlisted_episode_files,
    write_episode,
    write_manifest,
)
from data_collection.envs import FRAME_SHAPE, EnvError, EnvSpec, RealEnv, env_spec, make_env
from data_collection.policies import PolicySpecError, ScriptedPolicy, make_policy

PROGRESS_EVERY = 25  # steps between progress messages from a worker


class CollectError(Exception):
    """Collection cannot start or go on; the message says why and what to do."""


@dataclass(frozen=True)
class CollectConfig:
    env: str
    policy: str
    episodes: int
    steps: int  # maximum episode length; shorter when the env terminates
    out: Path
    workers: int = 1
    seed: int = 0
    eval_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise CollectError(f"--episodes must be >= 1, got {self.episodes}")
        if self.steps < 1:
            raise CollectError(f"--steps must be >= 1, got {self.steps}")
        if self.workers < 1:
            raise CollectError(f"--workers must be >= 1, got {self.workers}")
        if self.seed < 0:
            raise CollectError(f"--seed must be >= 0, got {self.seed}")
        if not 0 <= self.eval_fraction <= 0.5:
            raise CollectError(f"--eval-fraction must be in [0, 0.5], got {self.eval_fraction}")

    def command(self) -> list[str]:
        """The command line that makes, or resumes, this dataset."""
        return [
            "lssvwm", "collect",
            "--env", self.env,
            "--policy", self.policy,
            "--episodes", str(self.episodes),
            "--steps", str(self.steps),
            "--workers", str(self.workers),
            "--out", str(self.out),
            "--seed", str(self.seed),
            "--eval-fraction", str(self.eval_fraction),
        ]  # fmt: skip


def episode_seeds(seed: int, index: int) -> tuple[int, np.random.Generator]:
    """(env seed, policy generator) of episode `index`: functions of (seed, index) only."""
    env_sequence, policy_sequence = np.random.SeedSequence(seed, spawn_key=(index,)).spawn(2)
    # 31 bits: Memory Maze seeds a legacy RandomState, Gymnasium takes any non-negative int.
    env_seed = int(env_sequence.generate_state(1, np.uint32)[0] >> 1)
    return env_seed, np.random.default_rng(policy_sequence)


def rollout(
    env: RealEnv,
    policy: ScriptedPolicy,
    env_seed: int,
    policy_rng: np.random.Generator,
    max_steps: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """One episode as dataset arrays (dataset.py): at most max_steps steps, fewer if the env ends it."""
    step = env.reset(env_seed)
    static = {k: np.array(v) for k, v in env.static.items()}
    policy.reset(step, static, policy_rng, max_steps)
    frames, actions, rewards, terminated, truncated = [], [], [], [], []
    poses: dict[str, list[np.ndarray]] = {k: [] for k in env.spec.pose_keys}
    notes: dict[str, list[int]] = {k: [] for k in policy.ANNOTATIONS}
    reported = 0
    for t in range(max_steps):
        action = policy.act(step)
        frames.append(step.frame)
        for key in poses:
            poses[key].append(step.pose[key])
        for key in notes:
            notes[key].append(policy.annotations[key])
        actions.append(action)
        step = env.step(action)
        rewards.append(step.reward)
        terminated.append(step.terminated)
        # The collector's own limit counts as a truncation unless the env terminated on that step.
        truncated.append(step.truncated or (t == max_steps - 1 and not step.terminated))
        if progress is not None and t + 1 - reported >= PROGRESS_EVERY:
            progress(t + 1 - reported)
            reported = t + 1
        if step.terminated or step.truncated:
            break
    if progress is not None and len(actions) > reported:
        progress(len(actions) - reported)
    arrays = {
        "frames": np.stack(frames),
        "actions": np.asarray(actions, dtype=env.spec.action_space.dtype).reshape(-1, *env.spec.action_space.step_shape),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "terminated": np.asarray(terminated, dtype=bool),
        "truncated": np.asarray(truncated, dtype=bool),
    }
    arrays.update({k: np.stack(v).astype(np.float32) for k, v in poses.items()})
    arrays.update({k: np.asarray(v, dtype=ARRAY_SPECS[k].dtype) for k, v in notes.items()})
    arrays.update(static)
    arrays["final_frame"] = np.asarray(step.frame, dtype=np.uint8)  # the outcome of the last action
    return arrays


def episode_entry(index: int, file: str, sha256: str, arrays: dict[str, np.ndarray], config: CollectConfig) -> EpisodeEntry:
    return EpisodeEntry(
        index=index,
        file=file,
        length=len(arrays["actions"]),
        sha256=sha256,
        split=split_for_episode(index, config.eval_fraction),
        seed=episode_seeds(config.seed, index)[0],
        episode_return=float(arrays["rewards"].astype(np.float64).sum()),
        terminated=bool(arrays["terminated"][-1]),
    )


class EpisodeCollector:
    """One env and one policy, collecting episodes by index into the dataset directory."""

    def __init__(self, config: CollectConfig):
        self.config = config
        self.env = make_env(config.env, max_steps=config.steps)
        self.policy = make_policy(config.policy, self.env.spec)

    def collect(self, index: int, progress: Callable[[int], None] | None = None) -> EpisodeEntry:
        env_seed, policy_rng = episode_seeds(self.config.seed, index)
        arrays = rollout(self.env, self.policy, env_seed, policy_rng, self.config.steps, progress)
        file, sha256 = write_episode(self.config.out, index, arrays)
        return episode_entry(index, file, sha256, arrays, self.config)

    def close(self) -> None:
        self.env.close()


# ------------------------------------------------------------------------------ worker processes

_worker_state: dict[str, Any] = {}


def _exit_when_orphaned(parent: int) -> None:
    # ProcessPoolExecutor workers outlive a killed parent; one would finish its episode and then
    # wait forever for work. Exiting when the parent is gone leaves at most a temporary file, which
    # the next run removes.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(config: CollectConfig, progress_queue: Any) -> None:
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    _worker_state["config"] = config
    _worker_state["queue"] = progress_queue


def _worker_collect(index: int) -> EpisodeEntry:
    # The env is created by the first task rather than the initializer, so that a failure (e.g. no
    # EGL) comes back as this task's exception instead of a BrokenProcessPool.
    if "collector" not in _worker_state:
        _worker_state["collector"] = EpisodeCollector(_worker_state["config"])
    progress_queue = _worker_state["queue"]
    return _worker_state["collector"].collect(index, progress=progress_queue.put)


# ------------------------------------------------------------------------------ dataset set-up


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold a lock on the dataset directory: two collectors would overwrite each other's manifest.

    flock on the directory itself leaves no lock file behind; the kernel drops it if we are killed.
    """
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CollectError(f"{out}: another `lssvwm collect` is writing to this directory; wait for it or use another --out") from None
        yield
    finally:
        os.close(fd)


def _new_manifest(config: CollectConfig, spec: EnvSpec, policy_annotations: tuple[str, ...]) -> Manifest:
    return Manifest(
        env=config.env,
        policy=config.policy,
        seed=config.seed,
        max_steps=config.steps,
        eval_fraction=config.eval_fraction,
        episodes_requested=config.episodes,
        obs_shape=FRAME_SHAPE,
        action_space=spec.action_space.to_json(),
        arrays=tuple(REQUIRED_ARRAYS) + spec.pose_keys + policy_annotations + spec.static_keys + ("final_frame",),
        command=config.command(),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


_FLAGS = {"env": "--env", "policy": "--policy", "seed": "--seed", "max_steps": "--steps", "eval_fraction": "--eval-fraction"}


def _check_same_dataset(existing: Manifest, wanted: Manifest, out: Path) -> None:
    # action_space and arrays can differ under the same names when an env library changed.
    for name in Manifest.IDENTITY_FIELDS + ("action_space", "arrays"):
        old, new = getattr(existing, name), getattr(wanted, name)
        if old != new:
            flag = f" ({_FLAGS[name]})" if name in _FLAGS else ""
            raise CollectError(
                f"refusing to resume into {out}: its {MANIFEST_NAME} has {name}={old!r} but this command "
                f"asks for {name}={new!r}{flag}. Use another --out, or the original arguments: {' '.join(existing.command)}"
            )


def prepare_dataset(config: CollectConfig, spec: EnvSpec, policy_annotations: tuple[str, ...], log: Callable[[str], None]) -> Manifest:
    """The manifest to collect into: new, or the existing one checked against this command.

    Keeps listed episodes whose file matches its checksum, adopts complete files a killed run wrote
    but did not list, forgets the rest (they are collected again) and writes the manifest.
    """
    out = config.out
    wanted = _new_manifest(config, spec, policy_annotations)
    removed = remove_temp_files(out)
    if removed:
        log(f"removed {len(removed)} partial file(s) left by an interrupted run")
    if not (out / MANIFEST_NAME).exists():
        write_manifest(out, wanted)
        return wanted
    try:
        existing = read_manifest(out)
    except DatasetError as exc:
        raise CollectError(f"cannot resume into {out}: {exc}\nMove the directory away or use another --out.") from exc
    _check_same_dataset(existing, wanted, out)

    manifest = dataclasses.replace(
        existing,
        command=wanted.command,
        episodes_requested=max(existing.episodes_requested, config.episodes),
        episodes={},
    )
    for index, entry in sorted(existing.episodes.items()):
        path = out / entry.file
        if path.is_file() and file_sha256(path) == entry.sha256:
            manifest.episodes[index] = entry
        else:
            log(f"{entry.file}: {'missing' if not path.is_file() else 'checksum mismatch'}; collecting episode {index} again")
    for rel in unlisted_episode_files(out, manifest):
        index = int(Path(rel).stem.removeprefix("ep_"))
        if index >= config.episodes or rel != episode_file(index):
            continue
        # Written atomically, so complete; the arrays check guards against foreign files.
        try:
            with np.load(out / rel, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except Exception:
            continue
        if check_episode_arrays(arrays, manifest, rel) or len(arrays.get("actions", ())) == 0:
            continue
        manifest.episodes[index] = episode_entry(index, rel, file_sha256(out / rel), arrays, config)
        log(f"{rel}: adopted (written by an interrupted run after its last manifest update)")
    write_manifest(out, manifest)
    return manifest


# ---------------------------------------------------------------------------------- collection


@dataclass
class CollectSummary:
    collected: int  # episodes collected by this run
    frames: int  # frames collected by this run
    seconds: float
    skipped: int  # episodes already present
    manifest: Manifest

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def collect(config: CollectConfig, progress: bool = True, log: Callable[[str], None] | None = None) -> CollectSummary:
    """Collect (or finish collecting) the dataset that `config` describes."""
    from tqdm import tqdm

    log = log or (lambda message: print(message, file=sys.stderr))
    # Fail in the main process, before any worker starts, on a bad env name or policy/env mismatch.
    spec = env_spec(config.env)
    policy_annotations = make_policy(config.policy, spec).ANNOTATIONS
    config.out.mkdir(parents=True, exist_ok=True)
    with _exclusive(config.out):
        manifest = prepare_dataset(config, spec, policy_annotations, log)
        pending = [k for k in range(config.episodes) if k not in manifest.episodes]
        skipped = config.episodes - len(pending)
        if skipped:
            log(f"resuming: {skipped} of {config.episodes} episodes already in {config.out}")
        start = time.perf_counter()
        frames = 0
        bar = tqdm(total=len(pending) * config.steps, unit="frame", desc=f"{config.env} {config.policy}", disable=not progress, dynamic_ncols=True)

        def finished(entry: EpisodeEntry) -> None:
            nonlocal frames
            manifest.episodes[entry.index] = entry
            write_manifest(config.out, manifest)
            frames += entry.length
            # An episode the env ended early will never produce its remaining frames.
            bar.total -= config.steps - entry.length
            bar.set_postfix(episodes=f"{len(manifest.episodes)}/{config.episodes}")
            bar.refresh()

        try:
            if pending and min(config.workers, len(pending)) == 1:
                _collect_here(config, pending, bar, finished)
            elif pending:
                _collect_in_workers(config, pending, bar, finished)
        finally:
            bar.close()
        return CollectSummary(len(pending), frames, time.perf_counter() - start, skipped, manifest)


def _collect_here(config: CollectConfig, pending: list[int], bar: Any, finished: Callable[[EpisodeEntry], None]) -> None:
    """One worker: collect in this process, which spares the start-up of a worker process."""
    collector = EpisodeCollector(config)
    try:
        for index in pending:
            finished(collector.collect(index, progress=bar.update))
    finally:
        collector.close()


def _collect_in_workers(config: CollectConfig, pending: list[int], bar: Any, finished: Callable[[EpisodeEntry], None]) -> None:
    # spawn, not fork: a forked child would inherit the parent's GL and thread state.
    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    workers = min(config.workers, len(pending))
    executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(config, progress_queue))
    futures: dict[Future[EpisodeEntry], int] = {executor.submit(_worker_collect, k): k for k in pending}
    try:
        while futures:
            done, _ = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(progress_queue, bar)
            for future in done:
                index = futures.pop(future)
                try:
                    entry = future.result()
                except (EnvError, PolicySpecError, DatasetError) as exc:
                    raise CollectError(f"episode {index}: {exc}") from exc
                except Exception as exc:
                    raise CollectError(f"episode {index} failed in a worker: {type(exc).__name__}: {exc}") from exc
                finished(entry)
        _drain(progress_queue, bar)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        progress_queue.close()


def _drain(progress_queue: Any, bar: Any) -> None:
    while True:
        try:
            bar.update(progress_queue.get_nowait())
        except queue.Empty:
            return


# ------------------------------------------------------------------------------------------ CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="memory-maze-{9x9,11x11,13x13,15x15}, minigrid-memory, minigrid-fourrooms, "
                                                     "colour-grid, dmc:DOMAIN-TASK (dm_control from pixels), or a Gymnasium id")
    parser.add_argument("--policy", default="random",
                        help="random | explore (walks to random cells) | retrace (out, back, out again), optionally "
                             "with config fields: explore:wall_bump=0.3,action_noise=0.1, random:momentum=0.9 "
                             "(default random)")
    parser.add_argument("--episodes", type=int, required=True, help="number of episodes in the dataset")
    parser.add_argument("--steps", type=int, required=True, help="maximum steps per episode (fewer if the env terminates)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes, one env each (default 1)")
    parser.add_argument("--out", type=Path, required=True, help="dataset directory; re-running the same command resumes")
    parser.add_argument("--seed", type=int, default=0, help="episode k is seeded from (seed, k) (default 0)")
    parser.add_argument("--eval-fraction", type=float, default=0.1, help="share of episodes in the eval split, at most 0.5 (default 0.1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    try:
        config = CollectConfig(
            env=args.env,
            policy=args.policy,
            episodes=args.episodes,
            steps=args.steps,
            out=args.out,
            workers=args.workers,
            seed=args.seed,
            eval_fraction=args.eval_fraction,
        )
        summary = collect(config, progress=not args.quiet)
    except (CollectError, EnvError, PolicySpecError, DatasetError) as exc:
        print(f"lssvwm collect: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lssvwm collect: interrupted; finished episodes are saved in {args.out}; re-run the same command to resume", file=sys.stderr)
        return 130
    total_frames = sum(e.length for e in summary.manifest.episodes.values())
    print(
        f"collected {summary.collected} episodes ({summary.frames:,} frames) in {summary.seconds:.1f} s, "
        f"{summary.frames_per_second:.1f} frames/s; {config.out}: {len(summary.manifest.episodes)} episodes, "
        f"{total_frames:,} frames"
    )
    return 0

"""The dataset format: write, validate, summarise and read episodes of a real env.

Layout of a dataset directory:

    manifest.json             what the dataset is (see Manifest) and one entry per episode
    episodes/ep_000123.npz    one episode, a zip of .npy arrays (np.load(..., allow_pickle=False))

Arrays of one episode, all of length T and aligned so that actions[t] is taken after seeing frames[t]:

    frames         (T, 64, 64, 3) uint8    observation before actions[t] (frames[0]: after reset)
    actions        (T,) int64              discrete action spaces: in [0, action_space.n)
                   (T, n) float32          box action spaces: within [action_space.low, action_space.high]
    rewards        (T,) float32            reward received after actions[t]
    terminated     (T,) bool               the env ended the episode after actions[t]
    truncated      (T,) bool               the episode was cut after actions[t] (step limit)
    agent_pos      (T, 2) float32          optional: pose at frames[t], grid units (envs.py)
    agent_dir      (T, 2) float32          optional: facing direction at frames[t]
    target_pos     (T, 2) float32          optional: the target the env pays for next (Memory Maze)
    retrace_phase  (T,) int8               optional: the retrace policy's phase at step t
    maze_layout    (H, W) uint8            optional, per episode: 0 wall, 1 free, 2 ends the episode
    final_frame    (64, 64, 3) uint8       optional, per episode: the observation after the last action

`final_frame` holds the last transition's outcome: without it, the transition that ends an episode
(MiniGrid's only reward, every termination) has no frame to learn it from. Datasets written before
it existed lack it and lose that one transition per episode.

Writes are atomic (temporary file in the same directory, fsync, os.replace), so a crash leaves
either the old file or the new one. Episode files are byte-reproducible: the same arrays always give
the same bytes and the same sha256.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from data_collection import files
from data_collection.envs import ActionSpace

FORMAT_NAME = "lssvwm-dataset"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
EPISODES_DIR = "episodes"
SPLITS = ("train", "eval")
_EPISODE_FILE = re.compile(r"^ep_(\d{6,})\.npz$")


class DatasetError(Exception):
    """A dataset is missing, malformed or could not be written; the message names file and field."""


class DiskFullError(DatasetError):
    pass


@dataclass(frozen=True)
class ArraySpec:
    dtype: np.dtype
    shape: tuple[int | None, ...]  # per step (after the leading T) if per_step, else the whole shape
    per_step: bool = True


ARRAY_SPECS: dict[str, ArraySpec] = {
    "frames": ArraySpec(np.dtype(np.uint8), (None, None, 3)),  # exact (H, W, C) comes from obs_shape
    "actions": ArraySpec(np.dtype(np.int64), ()),  # discrete; box action spaces: (n,) float32 (Manifest.actions)
    "rewards": ArraySpec(np.dtype(np.float32), ()),
    "terminated": ArraySpec(np.dtype(np.bool_), ()),
    "truncated": ArraySpec(np.dtype(np.bool_), ()),
    "agent_pos": ArraySpec(np.dtype(np.float32), (2,)),
    "agent_dir": ArraySpec(np.dtype(np.float32), (2,)),
    "target_pos": ArraySpec(np.dtype(np.float32), (2,)),
    "retrace_phase": ArraySpec(np.dtype(np.int8), ()),
    "walk_phase": ArraySpec(np.dtype(np.int8), ()),
    "maze_layout": ArraySpec(np.dtype(np.uint8), (None, None), per_step=False),
    "floor_colours": ArraySpec(np.dtype(np.uint8), (None, None), per_step=False),
    "final_frame": ArraySpec(np.dtype(np.uint8), (None, None, 3), per_step=False),  # (H, W, C) = obs_shape
}
REQUIRED_ARRAYS = ("frames", "actions", "rewards", "terminated", "truncated")


def episode_file(index: int) -> str:
    """Path of episode `index` relative to the dataset root."""
    return f"{EPISODES_DIR}/ep_{index:06d}.npz"


def split_for_episode(index: int, eval_fraction: float) -> str:
    """'eval' for about eval_fraction of episode indices, spread evenly, else 'train'.

    Episode k is eval when floor((k + 1) F + 1 - 2F) steps up from floor(k F + 1 - 2F): exactly a
    fraction F in the long run, episode 1 is always eval (so any dataset of >= 2 episodes has one),
    and an episode's split never depends on how many episodes the dataset has.
    """
    if eval_fraction <= 0:
        return "train"
    offset = 1.0 - 2.0 * eval_fraction
    return "eval" if math.floor((index + 1) * eval_fraction + offset) > math.floor(index * eval_fraction + offset) else "train"


# ------------------------------------------------------------------------------------ manifest


@dataclass(frozen=True)
class EpisodeEntry:
    """One episode in the manifest ("return" in JSON is `episode_return` here)."""

    index: int
    file: str
    length: int
    sha256: str
    split: str
    seed: int
    episode_return: float
    terminated: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "file": self.file,
            "length": self.length,
            "sha256": self.sha256,
            "split": self.split,
            "seed": self.seed,
            "return": self.episode_return,
            "terminated": self.terminated,
        }


_ENTRY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "index": int,
    "file": str,
    "length": int,
    "sha256": str,
    "split": str,
    "seed": int,
    "return": (int, float),
    "terminated": bool,
}


@dataclass
class Manifest:
    """The contents of manifest.json, besides `format` and `format_version`.

    env / policy / seed / max_steps / eval_fraction identify how the episodes were made: collecting
    more into a directory requires them to match. `arrays` lists the arrays every episode file holds.
    `command` is the collect command that makes (or resumes) this dataset.
    """

    env: str
    policy: str
    seed: int
    max_steps: int
    eval_fraction: float
    episodes_requested: int
    obs_shape: tuple[int, int, int]
    # {"type": "discrete", "n": 6[, "meanings": [...]]} or {"type": "box", "shape": [n], "low": [...], "high": [...]}
    action_space: dict[str, Any]
    arrays: tuple[str, ...]
    command: list[str]
    created: str
    episodes: dict[int, EpisodeEntry] = field(default_factory=dict)

    IDENTITY_FIELDS = ("env", "policy", "seed", "max_steps", "eval_fraction")

    @property
    def actions(self) -> ActionSpace:
        return ActionSpace.from_json(self.action_space)

    @property
    def num_actions(self) -> int:
        """The number of discrete actions; ValueError for a box action space."""
        if self.action_space["type"] != "discrete":
            raise ValueError(f"env {self.env!r} has continuous (box) actions, not a number of discrete ones")
        return int(self.action_space["n"])

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "env": self.env,
            "policy": self.policy,
            "seed": self.seed,
            "max_steps": self.max_steps,
            "eval_fraction": self.eval_fraction,
            "episodes_requested": self.episodes_requested,
            "obs_shape": list(self.obs_shape),
            "action_space": self.action_space,
            "arrays": list(self.arrays),
            "command": self.command,
            "created": self.created,
            "episodes": [self.episodes[i].to_json() for i in sorted(self.episodes)],
        }

    @classmethod
    def from_json(cls, obj: Any, where: str = MANIFEST_NAME) -> Manifest:
        manifest, problems = parse_manifest(obj, where)
        if problems or manifest is None:
            raise DatasetError("\n".join(problems))
        return manifest


_MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "format_version": int,
    "env": str,
    "policy": str,
    "seed": int,
    "max_steps": int,
    "eval_fraction": (int, float),
    "episodes_requested": int,
    "obs_shape": list,
    "action_space": dict,
    "arrays": list,
    "command": list,
    "created": str,
    "episodes": list,
}


def _has_type(value: Any, types: type | tuple[type, ...]) -> bool:
    # bool is an int in Python; a JSON true where a number belongs is still wrong.
    return isinstance(value, types) and (types is bool or not isinstance(value, bool))


def _check_fields(
    obj: dict[str, Any], fields: Mapping[str, type | tuple[type, ...]], where: str, prefix: str = ""
) -> list[str]:
    problems = []
    for name, types in fields.items():
        if name not in obj:
            problems.append(f"{where}: field '{prefix}{name}' is missing")
        elif not _has_type(obj[name], types):
            problems.append(f"{where}: field '{prefix}{name}' has the wrong type ({type(obj[name]).__name__}: {obj[name]!r})")
    for name in obj:
        if name not in fields:
            problems.append(f"{where}: field '{prefix}{name}' is unknown to {FORMAT_NAME} version {FORMAT_VERSION}")
    return problems


def _action_space_problem(space: dict[str, Any]) -> tuple[str | None, set[str]]:
    """What is wrong with a manifest's action_space (None: nothing), and the keys its type knows."""
    if space.get("type") == "box":
        shape, low, high = space.get("shape"), space.get("low"), space.get("high")
        if not (isinstance(shape, list) and len(shape) == 1 and _has_type(shape[0], int) and shape[0] >= 1):
            return "must have 'shape': [n] with n >= 1 for a box", {"type", "shape", "low", "high"}
        for bound in (low, high):
            if not (isinstance(bound, list) and len(bound) == shape[0]
                    and all(_has_type(v, (int, float)) and math.isfinite(v) for v in bound)):
                return f"must have 'low' and 'high': {shape[0]} finite numbers each", {"type", "shape", "low", "high"}
        if any(lo > hi for lo, hi in zip(low, high)):
            return "has a 'low' above its 'high'", {"type", "shape", "low", "high"}
        return None, {"type", "shape", "low", "high"}
    n = space.get("n")
    if space.get("type") != "discrete" or not _has_type(n, int) or n < 1:
        return ("must be {'type': 'discrete', 'n': >=1} or {'type': 'box', 'shape': [n], 'low': [...], "
                "'high': [...]}"), {"type", "n", "meanings"}
    return None, {"type", "n", "meanings"}


def parse_manifest(obj: Any, where: str = MANIFEST_NAME) -> tuple[Manifest | None, list[str]]:
    """The manifest from parsed JSON and every problem found.

    The manifest is None when a field it needs is missing or malformed; with lesser problems (an
    unknown field, a bad episode entry, which is left out) it is returned beside them, so that
    validation can go on to check the episode files.
    """
    if not isinstance(obj, dict):
        return None, [f"{where}: expected a JSON object, got {type(obj).__name__}"]
    problems = _check_fields(obj, _MANIFEST_FIELDS, where)
    usable = all(name in obj and _has_type(obj[name], types) for name, types in _MANIFEST_FIELDS.items())

    def fatal(problem: str) -> None:
        nonlocal usable
        problems.append(problem)
        usable = False

    if obj.get("format") not in (None, FORMAT_NAME):
        fatal(f"{where}: field 'format' is {obj['format']!r}, expected {FORMAT_NAME!r}")
    if isinstance(obj.get("format_version"), int) and obj["format_version"] != FORMAT_VERSION:
        fatal(f"{where}: field 'format_version' is {obj['format_version']}; this code reads version {FORMAT_VERSION}")
    shape = obj.get("obs_shape")
    if isinstance(shape, list) and not (len(shape) == 3 and all(_has_type(d, int) and d > 0 for d in shape)):
        fatal(f"{where}: field 'obs_shape' must be [H, W, C] positive ints, got {shape!r}")
    space = obj.get("action_space")
    if isinstance(space, dict):
        problem, known = _action_space_problem(space)
        if problem:
            fatal(f"{where}: field 'action_space' {problem}, got {space!r}")
        unknown = set(space) - known
        if unknown:
            problems.append(f"{where}: field 'action_space' has unknown keys {sorted(unknown)}")
    arrays = obj.get("arrays")
    if isinstance(arrays, list):
        for name in arrays:
            if name not in ARRAY_SPECS:
                fatal(f"{where}: field 'arrays' names unknown array {name!r}; known: {sorted(ARRAY_SPECS)}")
        for name in REQUIRED_ARRAYS:
            if name not in arrays:
                fatal(f"{where}: field 'arrays' lacks required array {name!r}")
    fraction = obj.get("eval_fraction")
    if isinstance(fraction, (int, float)) and not 0 <= fraction <= 0.5:
        problems.append(f"{where}: field 'eval_fraction' must be in [0, 0.5], got {fraction}")

    episodes: dict[int, EpisodeEntry] = {}
    files: set[str] = set()
    for i, entry in enumerate(obj.get("episodes") or []):
        prefix = f"episodes[{i}]."
        if not isinstance(entry, dict):
            problems.append(f"{where}: field 'episodes[{i}]' must be an object")
            continue
        before = len(problems)
        problems += _check_fields(entry, _ENTRY_FIELDS, where, prefix)
        if len(problems) > before:
            continue
        index = entry["index"]
        if entry["file"] != episode_file(index):
            problems.append(f"{where}: field '{prefix}file' is {entry['file']!r}, expected {episode_file(index)!r}")
        if entry["split"] not in SPLITS:
            problems.append(f"{where}: field '{prefix}split' is {entry['split']!r}, expected one of {SPLITS}")
        if entry["length"] < 1:
            problems.append(f"{where}: field '{prefix}length' must be >= 1, got {entry['length']}")
        if not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]):
            problems.append(f"{where}: field '{prefix}sha256' is not a sha256 hex digest")
        if index in episodes or entry["file"] in files:
            problems.append(f"{where}: field '{prefix}index' repeats episode {index}")
        if len(problems) > before:
            continue
        files.add(entry["file"])
        episodes[index] = EpisodeEntry(
            index=index,
            file=entry["file"],
            length=entry["length"],
            sha256=entry["sha256"],
            split=entry["split"],
            seed=entry["seed"],
            episode_return=float(entry["return"]),
            terminated=entry["terminated"],
        )
    if not usable:
        return None, problems
    return (
        Manifest(
            env=obj["env"],
            policy=obj["policy"],
            seed=obj["seed"],
            max_steps=obj["max_steps"],
            eval_fraction=float(obj["eval_fraction"]),
            episodes_requested=obj["episodes_requested"],
            obs_shape=tuple(obj["obs_shape"]),  # type: ignore[arg-type]
            action_space=obj["action_space"],
            arrays=tuple(obj["arrays"]),
            command=list(obj["command"]),
            created=obj["created"],
            episodes=episodes,
        ),
        problems,
    )


def _read_manifest_json(root: Path) -> Any:
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise DatasetError(f"{path}: no manifest; is {root} a dataset made by `lssvwm collect`?")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc


def read_manifest(root: str | os.PathLike[str]) -> Manifest:
    """The manifest of a dataset directory; DatasetError naming every problem when it is malformed."""
    return Manifest.from_json(_read_manifest_json(Path(root)), where=str(Path(root) / MANIFEST_NAME))


# ------------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part (files.py).

    Raises DiskFullError when the device is full; the temporary file is removed and `path` keeps its
    previous contents.
    """
    try:
        files.atomic_write_bytes(path, data)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"{path}: no space left on device ({exc.strerror}). The partial file was removed and "
                "everything written before is intact; free some space and re-run the same command to resume."
            ) from exc
        raise


def remove_temp_files(root: Path) -> list[Path]:
    """Delete temporary files left by a killed writer; returns what was removed."""
    removed = []
    for folder in (root, root / EPISODES_DIR):
        if folder.is_dir():
            for path in folder.glob(f".*{files.TEMP_MARK}*"):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def manifest_text(manifest: Manifest) -> str:
    """JSON with one line per field and one line per episode, readable and diffable."""
    fields = manifest.to_json()
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in fields.items() if k != "episodes"]
    episodes = ",\n".join(f"  {json.dumps(e)}" for e in fields["episodes"])
    lines.append(f' "episodes": [\n{episodes}\n ]' if episodes else ' "episodes": []')
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_manifest(root: Path, manifest: Manifest) -> None:
    atomic_write_bytes(Path(root) / MANIFEST_NAME, manifest_text(manifest).encode())


def encode_episode(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The .npz bytes of an episode, as np.savez_compressed writes them but with fixed timestamps.

    numpy stamps each member with the current time; a fixed date makes equal episodes equal bytes,
    so checksums can be compared across runs (collecting with 1 or 8 workers gives the same files).
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
    return buffer.getvalue()


def write_episode(root: Path, index: int, arrays: Mapping[str, np.ndarray]) -> tuple[str, str]:
    """Atomically write episode `index`; returns (file relative to root, sha256)."""
    data = encode_episode(arrays)
    rel = episode_file(index)
    path = Path(root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return rel, hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------- reading


def _load_arrays(path: Path, rel: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every array of an episode file, and problems for those that cannot be read."""
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # zipfile.BadZipFile, OSError, ValueError, EOFError: all mean "corrupt"
        return {}, [f"{rel}: cannot open ({type(exc).__name__}: {exc}); the file is truncated or corrupt"]
    arrays: dict[str, np.ndarray] = {}
    problems = []
    with npz:
        for name in npz.files:
            try:
                arrays[name] = npz[name]
            except Exception as exc:
                problems.append(f"{rel}: field '{name}' cannot be read ({type(exc).__name__}: {exc}); the file is truncated or corrupt")
    return arrays, problems


def check_episode_arrays(
    arrays: Mapping[str, np.ndarray], manifest: Manifest, rel: str, expected_length: int | None = None
) -> list[str]:
    """Problems with one episode's arrays against the manifest (names, dtypes, shapes, lengths, ranges)."""
    problems = []
    for name in manifest.arrays:
        if name not in arrays:
            problems.append(f"{rel}: field '{name}' is missing (the manifest lists it in 'arrays')")
    for name in arrays:
        if name not in manifest.arrays:
            problems.append(f"{rel}: field '{name}' is not listed in the manifest's 'arrays'")
    steps: dict[str, int] = {}  # per-step arrays of the right shape -> their number of steps
    action_space = manifest.actions
    for name, array in arrays.items():
        spec = ARRAY_SPECS.get(name)
        if spec is None:
            continue
        if name == "actions":
            spec = ArraySpec(action_space.dtype, action_space.step_shape)
        if array.dtype != spec.dtype:
            problems.append(f"{rel}: field '{name}' has dtype {array.dtype}, expected {spec.dtype}")
        if spec.per_step:
            per_step = tuple(manifest.obs_shape) if name == "frames" else spec.shape
            if array.ndim != 1 + len(per_step) or tuple(array.shape[1:]) != per_step:
                expected = "(" + ", ".join(["T", *map(str, per_step)]) + ")"
                problems.append(f"{rel}: field '{name}' has shape {array.shape}, expected {expected}")
            else:
                steps[name] = array.shape[0]
        elif name == "final_frame" and tuple(array.shape) != tuple(manifest.obs_shape):
            problems.append(f"{rel}: field '{name}' has shape {array.shape}, expected {tuple(manifest.obs_shape)}")
        elif array.ndim != len(spec.shape):
            problems.append(f"{rel}: field '{name}' has shape {array.shape}, expected {len(spec.shape)} dimensions")
    counts = set(steps.values())
    if len(counts) == 1 and expected_length is not None and expected_length not in counts:
        # The file is consistent; the manifest is what disagrees.
        problems.append(f"{rel}: manifest field 'length' is {expected_length}, the file's arrays have {counts.pop()} steps")
    elif len(counts) > 1:
        length = expected_length if expected_length is not None else steps.get("actions", max(counts))
        for name, n in sorted(steps.items()):
            if n != length:
                problems.append(f"{rel}: field '{name}' has {n} steps, expected {length} (the manifest's 'length')")
    actions = arrays.get("actions")
    if actions is not None and not action_space.continuous and actions.dtype.kind in "iu" and actions.size:
        low, high = int(actions.min()), int(actions.max())
        if low < 0 or high >= action_space.n:
            problems.append(f"{rel}: field 'actions' has values in [{low}, {high}], outside [0, {action_space.n})")
    if (actions is not None and action_space.continuous and actions.dtype.kind == "f" and actions.size
            and actions.shape[1:] == action_space.step_shape):
        # float32 rounding of the bounds themselves is not a problem
        low = np.asarray(action_space.low, np.float32)
        high = np.asarray(action_space.high, np.float32)
        outside = ~np.isfinite(actions) | (actions < low) | (actions > high)
        if outside.any():
            t, i = np.argwhere(outside)[0]
            problems.append(f"{rel}: field 'actions' has {int(outside.sum())} values outside the box [low, high] of the "
                            f"manifest's 'action_space' (first: actions[{t}, {i}] = {actions[t, i]})")
    return problems


def _check_entry_summary(arrays: Mapping[str, np.ndarray], entry: EpisodeEntry, rel: str) -> list[str]:
    """The manifest's derived fields (return, terminated) must agree with the file."""
    problems = []
    rewards, terminated = arrays.get("rewards"), arrays.get("terminated")
    if rewards is not None and rewards.ndim == 1:
        total = float(rewards.astype(np.float64).sum())
        if not math.isclose(total, entry.episode_return, rel_tol=1e-5, abs_tol=1e-4):
            problems.append(f"{rel}: manifest field 'return' is {entry.episode_return}, the rewards sum to {total}")
    if terminated is not None and terminated.ndim == 1 and terminated.size and bool(terminated[-1]) != entry.terminated:
        problems.append(f"{rel}: manifest field 'terminated' is {entry.terminated}, the file's last step says {bool(terminated[-1])}")
    return problems


def check_episode_file(root: Path, manifest: Manifest, entry: EpisodeEntry) -> tuple[dict[str, np.ndarray], list[str]]:
    """Arrays of one listed episode and every problem with it (existence, checksum, contents)."""
    rel = entry.file
    path = Path(root) / rel
    if not path.is_file():
        return {}, [f"{rel}: file is missing (listed in the manifest as episode {entry.index})"]
    problems = []
    actual = file_sha256(path)
    if actual != entry.sha256:
        problems.append(f"{rel}: sha256 {actual[:12]}... does not match the manifest's 'sha256' {entry.sha256[:12]}...")
    arrays, load_problems = _load_arrays(path, rel)
    problems += load_problems
    if load_problems:
        return arrays, problems  # the contents checks would only repeat "missing" for every array
    problems += check_episode_arrays(arrays, manifest, rel, expected_length=entry.length)
    problems += _check_entry_summary(arrays, entry, rel)
    return arrays, problems


def unlisted_episode_files(root: Path, manifest: Manifest) -> list[str]:
    """Episode files on disk that the manifest does not list (e.g. left by a killed collect)."""
    folder = Path(root) / EPISODES_DIR
    listed = {e.file for e in manifest.episodes.values()}
    if not folder.is_dir():
        return []
    return sorted(
        f"{EPISODES_DIR}/{p.name}" for p in folder.iterdir() if _EPISODE_FILE.match(p.name) and f"{EPISODES_DIR}/{p.name}" not in listed
    )


def validate_dataset(path: str | os.PathLike[str]) -> list[str]:
    """Every problem with a dataset, each naming the file and field; [] when it is valid.

    Checks the manifest's fields, then every listed episode file: present, checksum, readable,
    arrays, dtypes, shapes, lengths against the manifest, action range, return; and files the
    manifest does not list.
    """
    root = Path(path)
    if not root.is_dir():
        return [f"{root}: not a directory"]
    try:
        obj = _read_manifest_json(root)
    except DatasetError as exc:
        return [str(exc)]
    manifest, problems = parse_manifest(obj, MANIFEST_NAME)
    if manifest is None:
        return problems
    for index in sorted(manifest.episodes):
        _, episode_problems = check_episode_file(root, manifest, manifest.episodes[index])
        problems += episode_problems
    for rel in unlisted_episode_files(root, manifest):
        problems.append(f"{rel}: file is not listed in {MANIFEST_NAME} (left by an interrupted collect? re-run it to adopt the file, or delete it)")
    return problems


class Dataset:
    """Read access to a dataset directory.

        ds = Dataset.open("data/mm9")
        for entry in ds.episodes("train"):
            episode = ds.load_episode(entry.index)   # {"frames": (T, 64, 64, 3) uint8, ...}

    Episode files are checked (checksum, arrays) the first time they are loaded; a bad one raises
    DatasetError naming the file.
    """

    def __init__(self, root: Path, manifest: Manifest):
        self.root = root
        self.manifest = manifest
        self._checked: set[int] = set()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Dataset:
        return cls(Path(path), read_manifest(path))

    def episodes(self, split: str | None = None) -> list[EpisodeEntry]:
        """Entries in index order; all of them, or those of one split ("train" / "eval")."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; splits: {SPLITS}")
        return [e for i, e in sorted(self.manifest.episodes.items()) if split is None or e.split == split]

    def __len__(self) -> int:
        return len(self.manifest.episodes)

    def entry(self, index: int) -> EpisodeEntry:
        try:
            return self.manifest.episodes[index]
        except KeyError:
            raise KeyError(f"{self.root}: no episode {index}; episodes: {sorted(self.manifest.episodes)}") from None

    def load_episode(self, index: int) -> dict[str, np.ndarray]:
        """All arrays of episode `index` (see the module docstring for names, shapes, dtypes)."""
        entry = self.entry(index)
        if index in self._checked:
            arrays, problems = _load_arrays(self.root / entry.file, entry.file)
        else:
            arrays, problems = check_episode_file(self.root, self.manifest, entry)
        if problems:
            raise DatasetError(f"{self.root}: episode {index} is bad:\n  " + "\n  ".join(problems))
        self._checked.add(index)
        return arrays

    def iter_episodes(self, split: str | None = None) -> Iterator[tuple[EpisodeEntry, dict[str, np.ndarray]]]:
        for entry in self.episodes(split):
            yield entry, self.load_episode(entry.index)


# ------------------------------------------------------------------------------------- summary


@dataclass
class DatasetInfo:
    """Summary of a dataset (numbers from the manifest and the files' actions)."""

    path: str
    env: str
    policy: str
    episodes: int
    episodes_requested: int
    frames: int
    splits: dict[str, tuple[int, int]]  # split -> (episodes, frames)
    action_counts: list[int]
    action_names: list[str]
    returns: tuple[float, float, float, float]  # mean, std, min, max
    lengths: tuple[float, int, int]  # mean, min, max
    terminated: int
    disk_bytes: int
    # Per action: transitions after which the observation was exactly the one before (None: frames not
    # read). An action the data never shows failing (walking into a wall) is one a world model cannot
    # predict failing, and one an agent trained inside it will exploit.
    action_unchanged: list[int] | None = None
    # Per-step rewards over every transition: (min, max), and the distinct values when there are at
    # most 16 (a sparse env's few), as the trained model records and keeps its predictions within.
    reward_range: tuple[float, float] = (0.0, 0.0)
    reward_values: list[float] | None = None
    # Box action spaces, per component: (low, high) of the space, then mean, std, min, max in the data.
    action_components: list[tuple[float, float, float, float, float, float]] | None = None

    def format(self) -> str:
        rows = [
            ("path", self.path),
            ("env", self.env),
            ("policy", self.policy),
            ("episodes", f"{self.episodes}" + ("" if self.episodes >= self.episodes_requested else f" of {self.episodes_requested} requested (re-run the collect command to finish)")),
            ("frames", f"{self.frames:,}"),
        ]
        for split, (n_episodes, n_frames) in self.splits.items():
            rows.append((f"  {split}", f"{n_episodes} episodes, {n_frames:,} frames"))
        if self.episodes:
            mean_len, min_len, max_len = self.lengths
            rows.append(("episode length", f"mean {mean_len:.1f}, min {min_len}, max {max_len}"))
            rows.append(("terminated", f"{self.terminated} of {self.episodes} episodes (others truncated)"))
            mean, std, low, high = self.returns
            rows.append(("return", f"mean {mean:.3f}, std {std:.3f}, min {low:.3f}, max {high:.3f}"))
            values = (f" (values {', '.join(f'{v:g}' for v in self.reward_values)})"
                      if self.reward_values is not None else "")
            rows.append(("step reward", f"min {self.reward_range[0]:g}, max {self.reward_range[1]:g}{values}"))
        rows.append(("disk size", _human_bytes(self.disk_bytes) + (f" ({self.disk_bytes / max(self.frames, 1) / 1024:.1f} KiB/frame)" if self.frames else "")))
        if self.action_components is not None:
            rows.append(("actions", f"box of {len(self.action_components)}"))
            for i, (low, high, mean, std, least, most) in enumerate(self.action_components):
                rows.append((f"  [{i}] in [{low:g}, {high:g}]", f"mean {mean:.3f}, std {std:.3f}, min {least:.3f}, max {most:.3f}"))
        total = max(sum(self.action_counts), 1)
        if self.action_components is None:
            rows.append(("actions", ""))
        for a, count in enumerate(self.action_counts):
            name = self.action_names[a] if a < len(self.action_names) else ""
            bar = "#" * round(30 * count / total)
            unchanged = ""
            if self.action_unchanged is not None:
                unchanged = f"  frame unchanged after {100 * self.action_unchanged[a] / max(count, 1):5.1f}%"
            rows.append((f"  {a} {name}", f"{count:>9,} {100 * count / total:5.1f}%{unchanged} {bar}"))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    raise AssertionError("unreachable")


def unchanged_transitions(frames: np.ndarray) -> np.ndarray:
    """frames (T, H, W, C) -> (T - 1,) bool: whether frames[t + 1] is exactly frames[t] (the action
    in between had no visible effect: a wall, an action that does nothing)."""
    return (frames[1:] == frames[:-1]).all(axis=tuple(range(1, frames.ndim)))


def dataset_info(path: str | os.PathLike[str], effects: bool = False) -> DatasetInfo:
    """A summary of a dataset; reads only the actions of each episode file, and with `effects` also
    the frames, to count per action the transitions that left the observation unchanged (the last
    action's counts only where the episode keeps its `final_frame`)."""
    root = Path(path)
    manifest = read_manifest(root)
    space = manifest.actions
    entries = [manifest.episodes[i] for i in sorted(manifest.episodes)]
    # Box actions have no counts: components are summarised instead (and effects are not counted).
    counts = np.zeros(0 if space.continuous else space.n, dtype=np.int64)
    unchanged = np.zeros(space.n, dtype=np.int64) if effects and not space.continuous else None
    box_actions: list[np.ndarray] = []
    reward_values: set[float] = set()
    reward_low, reward_high = math.inf, -math.inf
    for entry in entries:
        file = root / entry.file
        if not file.is_file():
            raise DatasetError(f"{entry.file}: file is missing (listed in the manifest); run `lssvwm data validate {root}`")
        field = "actions"
        try:
            with np.load(file, allow_pickle=False) as npz:
                actions = npz["actions"]
                field = "rewards"
                rewards = npz["rewards"]
                field = "actions"
                if unchanged is not None:
                    field = "frames"
                    frames = npz["frames"]
                    if "final_frame" in npz.files:
                        field = "final_frame"
                        frames = np.concatenate([frames, npz["final_frame"][None]])
        except Exception as exc:
            raise DatasetError(f"{entry.file}: field {field!r} cannot be read ({type(exc).__name__}: {exc}); run `lssvwm data validate {root}`") from exc
        if space.continuous:
            box_actions.append(np.asarray(actions, np.float64).reshape(-1, space.n))
        else:
            actions = np.clip(actions, 0, space.n - 1)
            counts += np.bincount(actions, minlength=space.n)
        if len(rewards):
            reward_low, reward_high = min(reward_low, float(rewards.min())), max(reward_high, float(rewards.max()))
            if len(reward_values) <= 16:
                reward_values.update(float(v) for v in np.unique(rewards))
        if unchanged is not None:
            same = unchanged_transitions(frames)
            unchanged += np.bincount(actions[:len(same)][same], minlength=space.n)
    returns = np.array([e.episode_return for e in entries], dtype=np.float64)
    lengths = np.array([e.length for e in entries], dtype=np.int64)
    disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return DatasetInfo(
        path=str(root),
        env=manifest.env,
        policy=manifest.policy,
        episodes=len(entries),
        episodes_requested=manifest.episodes_requested,
        frames=int(lengths.sum()),
        splits={s: (int(sum(e.split == s for e in entries)), int(sum(e.length for e in entries if e.split == s))) for s in SPLITS},
        action_counts=counts.tolist(),
        action_names=list(manifest.action_space.get("meanings", [])),
        returns=(float(returns.mean()), float(returns.std()), float(returns.min()), float(returns.max())) if entries else (0.0, 0.0, 0.0, 0.0),
        lengths=(float(lengths.mean()), int(lengths.min()), int(lengths.max())) if entries else (0.0, 0, 0),
        terminated=sum(e.terminated for e in entries),
        disk_bytes=disk,
        action_unchanged=unchanged.tolist() if unchanged is not None else None,
        reward_range=(reward_low, reward_high) if reward_values else (0.0, 0.0),
        reward_values=sorted(reward_values) if len(reward_values) <= 16 else None,
        action_components=_box_components(space, box_actions) if space.continuous else None,
    )


def _box_components(space: ActionSpace, actions: list[np.ndarray]) -> list[tuple[float, float, float, float, float, float]]:
    every = np.concatenate(actions) if actions else np.zeros((0, space.n))
    if not len(every):
        return [(lo, hi, 0.0, 0.0, 0.0, 0.0) for lo, hi in zip(space.low, space.high)]
    return [(lo, hi, float(column.mean()), float(column.std()), float(column.min()), float(column.max()))
            for lo, hi, column in zip(space.low, space.high, every.T)]


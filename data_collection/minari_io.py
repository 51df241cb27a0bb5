"""Minari datasets in and out (Farama's offline-RL format): `lssvwm data import-minari` and
`lssvwm data export-minari`.

    lssvwm data import-minari mygroup/pendulum/random-v0 --out data/pendulum     # an id, or a path
    lssvwm data export-minari data/pendulum --out minari-root --id lssvwm/pendulum-v0

A Minari episode holds T + 1 observations, T actions, rewards, terminations and truncations; ours
holds the first T observations as `frames` and the last as `final_frame` (dataset.py), so nothing is
lost either way. Observations must be images (a uint8 Box of (H, W), (H, W, 1) or (H, W, 3), or a Dict
with one under "image", "pixels" or "rgb"), resized to 64x64x3 as every dataset's frames; with
`--render`, datasets of other observations are replayed in their env from each episode's seed and
the env's renders become the frames (checked against the recorded observations: a replay that
departs from them is an error). Actions: Discrete(n) or a 1-D Box with finite bounds.

Export writes images losslessly (no JPEG), and keeps what Minari has no field for: the manifest (as
the dataset metadata "lssvwm_manifest") and the optional arrays (pose, phases, layouts) as `infos`,
one entry per observation (per-step arrays repeat their last entry at the final observation,
per-episode arrays repeat at every one). Importing an export gives back the same dataset.

Minari is never asked to download: ids are looked up under MINARI_DATASETS_PATH (default
~/.minari/datasets). Every check runs before anything is written.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from data_collection.dataset import (ARRAY_SPECS, MANIFEST_NAME, REQUIRED_ARRAYS, Dataset, DatasetError, EpisodeEntry,
                                     Manifest, split_for_episode, write_episode, write_manifest)
from data_collection.envs import FRAME_SHAPE, ActionSpace, EnvError, _image_key, resize_frame

MANIFEST_KEY = "lssvwm_manifest"  # Minari dataset metadata: the manifest of the exported dataset


class MinariError(DatasetError):
    """A Minari dataset that cannot be imported or exported; the message names it and says why."""


def _minari() -> Any:
    try:
        import minari
    except ImportError as exc:
        raise MinariError(f"the minari package is not installed ({exc}); scripts/setup.sh installs it") from exc
    return minari


def locate(source: str | os.PathLike[str]) -> Path:
    """The `data` directory (holding metadata.json) of a local Minari dataset given by path or by id."""
    from minari.storage import get_dataset_path

    path = Path(source)
    candidates = [path / "data", path] if path.exists() else []
    if not path.is_absolute():
        candidates.append(Path(get_dataset_path(str(source))) / "data")
    for candidate in candidates:
        if (candidate / "metadata.json").is_file():
            return candidate
    root = os.environ.get("MINARI_DATASETS_PATH", str(Path.home() / ".minari" / "datasets"))
    raise MinariError(f"no Minari dataset at {str(source)!r}: neither a directory holding data/metadata.json nor a "
                      f"dataset id under MINARI_DATASETS_PATH ({root}); lssvwm never downloads one: "
                      "`minari download ID` first, or give the dataset's directory")


# ---------------------------------------------------------------------------------------- import


@dataclass
class MinariSource:
    """A Minari dataset opened and checked for import: how its observations become frames."""

    dataset: Any  # minari.MinariDataset
    dataset_id: str
    action_space: ActionSpace
    image_key: str | None  # None: the observation is the image
    render: bool  # frames from replaying each episode in its env
    manifest: dict[str, Any] | None  # the lssvwm manifest an export stored, if any


def open_source(source: str | os.PathLike[str], render: bool = False) -> MinariSource:
    """Open and check a Minari dataset; MinariError naming what the model cannot take."""
    from minari.dataset.minari_dataset import MinariDataset

    data_path = locate(source)
    try:
        dataset = MinariDataset(data_path)
    except Exception as exc:
        raise MinariError(f"{data_path}: Minari cannot open it ({type(exc).__name__}: {exc})") from exc
    dataset_id = dataset.spec.dataset_id
    where = f"Minari dataset {dataset_id!r} ({data_path})"
    try:
        action_space = ActionSpace.from_gymnasium(dataset.action_space, where)
    except EnvError as exc:
        raise MinariError(str(exc)) from None
    image_key = None
    try:
        image_key = _image_key(dataset.observation_space)
    except EnvError as exc:
        if not render:
            raise MinariError(f"{where}: {exc}. --render replays its episodes in its env "
                              f"({dataset.spec.env_spec.id if dataset.spec.env_spec else 'none recorded'}) and takes "
                              "the env's renders as frames") from None
    else:
        render = False  # image observations are the frames
    if render and dataset.spec.env_spec is None:
        raise MinariError(f"{where}: --render needs the env the data came from, and the dataset records none")
    if dataset.total_episodes == 0:
        raise MinariError(f"{where}: the dataset has no episodes")
    return MinariSource(dataset, dataset_id, action_space, image_key, render, dataset.storage.metadata.get(MANIFEST_KEY))


def _frames(observations: Any, image_key: str | None) -> np.ndarray:
    images = np.asarray(observations if image_key is None else observations[image_key])
    if images.dtype != np.uint8:
        raise MinariError(f"observations have dtype {images.dtype}; images must be uint8")
    return np.stack([resize_frame(image) for image in images])


class _Replay:
    """Renders of a Minari episode, replayed in its env from the episode's seed."""

    def __init__(self, source: MinariSource):
        self.env = source.dataset.recover_environment(render_mode="rgb_array")
        self.dataset_id = source.dataset_id

    def frames(self, episode: Any, metadata: dict[str, Any]) -> np.ndarray:
        where = f"Minari dataset {self.dataset_id!r}, episode {episode.id}"
        if metadata.get("seed") is None:
            raise MinariError(f"{where}: no seed recorded, so it cannot be replayed for --render")
        observation, _ = self.env.reset(seed=int(metadata["seed"]), options=metadata.get("options"))
        renders = [self.env.render()]
        for t, action in enumerate(episode.actions):
            if not np.allclose(_flat(observation), _flat(_index(episode.observations, t)), atol=1e-5):
                raise MinariError(f"{where}: the replay departs from the recorded observations at step {t} (the env "
                                  "is not deterministic from its seed, or not the one recorded); --render cannot be used")
            observation, *_ = self.env.step(action)
            renders.append(self.env.render())
        return np.stack([resize_frame(np.asarray(r, np.uint8)) for r in renders])

    def close(self) -> None:
        self.env.close()


def _index(tree: Any, t: int) -> Any:
    return {k: _index(v, t) for k, v in tree.items()} if isinstance(tree, dict) else tree[t]


def _flat(tree: Any) -> np.ndarray:
    if isinstance(tree, dict):
        return np.concatenate([_flat(tree[k]) for k in sorted(tree)])
    return np.asarray(tree, np.float64).ravel()


def _episode_arrays(episode: Any, frames: np.ndarray, source: MinariSource, extra: tuple[str, ...]) -> dict[str, np.ndarray]:
    """One Minari episode (T + 1 observations) as dataset arrays."""
    length = len(episode.actions)
    space = source.action_space
    actions = np.asarray(episode.actions)
    if space.continuous:
        actions = actions.astype(np.float32).reshape(length, space.n)
    else:
        actions = (actions.astype(np.int64) - int(source.dataset.action_space.start)).reshape(length)
    arrays = {
        "frames": frames[:length],
        "actions": actions,
        "rewards": np.asarray(episode.rewards, np.float32).reshape(length),
        "terminated": np.asarray(episode.terminations, bool).reshape(length),
        "truncated": np.asarray(episode.truncations, bool).reshape(length),
        "final_frame": frames[length],
    }
    for name in extra:  # arrays an export kept in infos
        values = np.asarray(episode.infos[name], ARRAY_SPECS[name].dtype)
        arrays[name] = values[:length] if ARRAY_SPECS[name].per_step else values[0]
    return arrays


def import_minari(source: str | os.PathLike[str], out: Path, eval_fraction: float = 0.1, render: bool = False,
                  log: Callable[[str], None] | None = None) -> Manifest:
    """Write the Minari dataset `source` (id or path) as an lssvwm dataset in `out` (new or empty)."""
    log = log or (lambda message: print(message, file=sys.stderr))
    if not 0 <= eval_fraction <= 0.5:
        raise MinariError(f"--eval-fraction must be in [0, 0.5], got {eval_fraction}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MinariError(f"{out} exists and is not an empty directory; choose another --out")
    opened = open_source(source, render)
    stored = opened.manifest
    extra = tuple(name for name in (stored or {}).get("arrays", ()) if name not in REQUIRED_ARRAYS and name != "final_frame")
    dataset = opened.dataset
    # Episodes of no step have no transition to learn from; they are left out.
    episodes = [e for e in dataset.iterate_episodes() if len(e.actions) > 0]
    if not episodes:
        raise MinariError(f"Minari dataset {opened.dataset_id!r}: every episode is empty")
    if len(episodes) < dataset.total_episodes:
        log(f"left out {dataset.total_episodes - len(episodes)} episode(s) without a step")
    manifest = Manifest(
        env=stored["env"] if stored else f"minari:{opened.dataset_id}",
        policy=stored["policy"] if stored else f"minari:{dataset.storage.metadata.get('algorithm_name') or 'unknown'}",
        seed=stored["seed"] if stored else 0,
        max_steps=stored["max_steps"] if stored else max(len(e.actions) for e in episodes),
        eval_fraction=stored["eval_fraction"] if stored else eval_fraction,
        episodes_requested=stored["episodes_requested"] if stored else len(episodes),
        obs_shape=FRAME_SHAPE,
        action_space=stored["action_space"] if stored else opened.action_space.to_json(),
        arrays=(*REQUIRED_ARRAYS, *extra, "final_frame"),
        command=["lssvwm", "data", "import-minari", str(source), "--out", str(out)]
        + (["--eval-fraction", str(eval_fraction)] if eval_fraction != 0.1 else []) + (["--render"] if render else []),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    # An export lists its episodes in Minari's order, with the index, split and seed each had.
    stored_entries = (stored or {}).get("episodes", [])
    episode_metadata = list(dataset.storage.get_episode_metadata([int(e.id) for e in episodes]))
    out.mkdir(parents=True, exist_ok=True)
    replay = _Replay(opened) if opened.render else None
    try:
        for position, (episode, metadata) in enumerate(zip(episodes, episode_metadata)):
            kept = stored_entries[int(episode.id)] if int(episode.id) < len(stored_entries) else None
            index = kept["index"] if kept else position
            frames = (replay.frames(episode, metadata) if replay is not None
                      else _frames(episode.observations, opened.image_key))
            arrays = _episode_arrays(episode, frames, opened, extra)
            file, sha256 = write_episode(out, index, arrays)
            manifest.episodes[index] = EpisodeEntry(
                index=index, file=file, length=len(arrays["actions"]), sha256=sha256,
                split=kept["split"] if kept else split_for_episode(index, manifest.eval_fraction),
                seed=kept["seed"] if kept else (int(metadata["seed"]) if metadata.get("seed") is not None else index),
                episode_return=float(arrays["rewards"].astype(np.float64).sum()),
                terminated=bool(arrays["terminated"][-1]))
    finally:
        if replay is not None:
            replay.close()
    write_manifest(out, manifest)
    return manifest


# ---------------------------------------------------------------------------------------- export


@contextlib.contextmanager
def _datasets_root(root: Path) -> Iterator[None]:
    """Minari finds and makes datasets under MINARI_DATASETS_PATH: point it at `root` for a while."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if before is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def default_dataset_id(data_dir: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", Path(data_dir).resolve().name).strip("_") or "dataset"
    return f"lssvwm/{name}-v0"


def _infos(arrays: dict[str, np.ndarray], names: tuple[str, ...], length: int) -> dict[str, np.ndarray] | None:
    """The optional arrays as Minari infos: one entry per observation (length + 1)."""
    infos = {}
    for name in names:
        value = arrays[name]
        if ARRAY_SPECS[name].per_step:
            infos[name] = np.concatenate([value, value[-1:]])
        else:
            infos[name] = np.repeat(value[None], length + 1, axis=0)
    return infos or None


def export_minari(data_dir: Path, out: Path, dataset_id: str | None = None,
                  log: Callable[[str], None] | None = None) -> str:
    """Write the lssvwm dataset `data_dir` as the Minari dataset `dataset_id` under the Minari datasets root
    `out` (what MINARI_DATASETS_PATH names); returns the id."""
    minari = _minari()
    from minari.data_collector.episode_buffer import EpisodeBuffer

    log = log or (lambda message: print(message, file=sys.stderr))
    dataset = Dataset.open(data_dir)
    manifest = dataset.manifest
    dataset_id = dataset_id or default_dataset_id(data_dir)
    out = Path(out).resolve()  # Minari joins a relative root to its own paths twice
    try:
        minari.dataset.minari_dataset.parse_dataset_id(dataset_id)
    except Exception as exc:
        raise MinariError(f"--id {dataset_id!r} is not a Minari dataset id ([NAMESPACE/]NAME-vN): {exc}") from None
    target = out / dataset_id
    if target.exists():
        raise MinariError(f"{target} exists: Minari datasets are never overwritten; choose another --id or --out")
    if not manifest.episodes:
        raise MinariError(f"{data_dir}: the dataset has no episodes")
    from gymnasium import spaces
    names = tuple(n for n in manifest.arrays if n not in REQUIRED_ARRAYS and n != "final_frame")
    if "final_frame" not in manifest.arrays:
        log(f"{data_dir}: episodes without final_frame (an older dataset): the last transition of each is left out, "
            "as Minari needs the observation after every action")
    buffers, exported = [], []
    for entry, arrays in dataset.iter_episodes():
        frames, actions = arrays["frames"], arrays["actions"]
        steps = len(actions)
        if "final_frame" in arrays:
            observations = np.concatenate([frames, arrays["final_frame"][None]])
        else:
            steps -= 1
            observations = frames
        if steps < 1:
            log(f"{entry.file}: one frame and no final_frame: no transition, left out")
            continue
        buffers.append(EpisodeBuffer(
            id=len(buffers), seed=entry.seed, observations=observations, actions=actions[:steps],
            rewards=arrays["rewards"][:steps].tolist(), terminations=arrays["terminated"][:steps].tolist(),
            truncations=arrays["truncated"][:steps].tolist(),
            infos=_infos({k: v[:steps] if ARRAY_SPECS[k].per_step else v for k, v in arrays.items()}, names, steps)))
        exported.append(entry.to_json())
    stored = {**manifest.to_json(), "episodes": exported}  # Minari's episode k is exported[k]
    out.mkdir(parents=True, exist_ok=True)
    with _datasets_root(out), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Minari asks for an author, a code link, an eval env
        try:
            created = minari.create_dataset_from_buffers(
                dataset_id, buffers, observation_space=spaces.Box(0, 255, tuple(manifest.obs_shape), np.uint8),
                action_space=manifest.actions.gymnasium(), algorithm_name=manifest.policy,
                description=f"lssvwm dataset {data_dir} (env {manifest.env}, policy {manifest.policy}), exported by "
                            "`lssvwm data export-minari`", jpeg_encoding=False)
            created.storage.update_metadata({MANIFEST_KEY: stored})
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)  # no half-written dataset for minari to find
            raise
    return dataset_id

"""The dataset format: validation names the file and field of every problem; writes are atomic."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_collection import dataset as ds
from data_collection.collect import CollectConfig, collect
from data_collection.dataset import (
    Dataset,
    DatasetError,
    DiskFullError,
    dataset_info,
    split_for_episode,
    validate_dataset,
    write_episode,
    write_manifest,
)
from lssvwm_env.cli import main as lssvwm

from helpers import rewrite_episode


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "fourrooms"
    collect(CollectConfig(env="minigrid-fourrooms", policy="explore", episodes=4, steps=60, out=out, seed=1), progress=False, log=lambda _: None)
    return out


@pytest.fixture
def data(collected, tmp_path) -> Path:
    """A fresh copy of the collected dataset, free to break."""
    return Path(shutil.copytree(collected, tmp_path / "copy"))


def _manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def _save(root: Path, obj: dict) -> None:
    (root / "manifest.json").write_text(json.dumps(obj))


def test_collected_dataset_is_valid_and_readable(data, capsys):
    assert validate_dataset(data) == []
    assert lssvwm(["data", "validate", str(data)]) == 0
    manifest = _manifest(data)
    frames = sum(e["length"] for e in manifest["episodes"])
    assert capsys.readouterr().out.strip() == f"OK: 4 episodes, {frames} frames"

    dataset = Dataset.open(data)
    assert [e.index for e in dataset.episodes()] == [0, 1, 2, 3]
    assert [e.split for e in dataset.episodes()] == ["train", "eval", "train", "train"]
    episode = dataset.load_episode(1)
    length = dataset.entry(1).length
    assert set(episode) == {"frames", "actions", "rewards", "terminated", "truncated", "agent_pos", "agent_dir", "maze_layout", "final_frame"}
    assert episode["frames"].shape == (length, 64, 64, 3) and episode["frames"].dtype == np.uint8
    assert episode["actions"].dtype == np.int64 and episode["rewards"].dtype == np.float32
    assert episode["terminated"].dtype == bool and episode["agent_pos"].shape == (length, 2)
    # The last step ends the episode one way or the other; no step before it does.
    assert episode["terminated"][-1] or episode["truncated"][-1]
    assert not (episode["terminated"][:-1] | episode["truncated"][:-1]).any()


def test_info_summarises(data, capsys):
    info = dataset_info(data)
    assert info.episodes == 4 and info.splits["eval"][0] == 1
    assert sum(info.action_counts) == info.frames
    assert lssvwm(["data", "info", str(data)]) == 0
    table = capsys.readouterr().out
    for row in ("env", "minigrid-fourrooms", "frames", "train", "eval", "return", "disk size", "forward"):
        assert row in table


def test_info_effects_count_actions_that_left_the_frame_unchanged(data, capsys):
    """Episodes 0 and 1 made into still pictures, 2 and 3 into frames that all differ: every action of
    the first two, and none of the last two, left the observation unchanged."""
    expected = np.zeros(len(dataset_info(data).action_counts), dtype=np.int64)
    for index in range(4):
        with np.load(data / "episodes" / f"ep_{index:06d}.npz") as npz:
            frames, actions = npz["frames"], npz["actions"]
        if index < 2:
            still = np.broadcast_to(frames[0], frames.shape).copy()
            rewrite_episode(data, index, frames=still, final_frame=frames[0].copy())
            expected += np.bincount(actions, minlength=len(expected))
        else:
            steps = np.arange(len(frames) + 1, dtype=np.uint8)[:, None, None, None]
            moving = np.broadcast_to(steps, (len(frames) + 1, *frames.shape[1:])).copy()
            rewrite_episode(data, index, frames=moving[:-1], final_frame=moving[-1])
    assert dataset_info(data).action_unchanged is None
    assert dataset_info(data, effects=True).action_unchanged == expected.tolist()
    assert lssvwm(["data", "info", str(data), "--effects"]) == 0
    assert "frame unchanged after" in capsys.readouterr().out


def test_truncated_episode_file_is_named(data, capsys):
    path = data / "episodes" / "ep_000002.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    problems = validate_dataset(data)
    assert problems and all("episodes/ep_000002.npz" in p for p in problems)
    assert any("sha256" in p for p in problems) and any("truncated or corrupt" in p for p in problems)
    assert lssvwm(["data", "validate", str(data)]) == 1
    assert "episodes/ep_000002.npz" in capsys.readouterr().out
    # The reader checks lazily: good episodes load, the bad one names its file.
    dataset = Dataset.open(data)
    dataset.load_episode(0)
    with pytest.raises(DatasetError, match="ep_000002.npz"):
        dataset.load_episode(2)


def test_manifest_length_disagreeing_with_the_file(data):
    manifest = _manifest(data)
    length = manifest["episodes"][0]["length"]
    manifest["episodes"][0]["length"] += 1
    _save(data, manifest)
    assert validate_dataset(data) == [
        f"episodes/ep_000000.npz: manifest field 'length' is {length + 1}, the file's arrays have {length} steps"
    ]
    # A lesser manifest problem does not hide the episode's.
    manifest["notes"] = "hand edited"
    _save(data, manifest)
    problems = validate_dataset(data)
    assert len(problems) == 2 and "field 'notes' is unknown" in problems[0] and "'length'" in problems[1]


def test_manifest_fields_missing_unknown_or_malformed(data):
    manifest = _manifest(data)
    del manifest["policy"]
    manifest["colour"] = "blue"
    manifest["action_space"] = {"type": "box"}
    manifest["episodes"][1]["split"] = "test"
    _save(data, manifest)
    problems = "\n".join(validate_dataset(data))
    assert "field 'policy' is missing" in problems
    assert "field 'colour' is unknown" in problems
    assert "field 'action_space'" in problems
    assert "field 'episodes[1].split'" in problems
    with pytest.raises(DatasetError, match="policy"):
        Dataset.open(data)
    (data / "manifest.json").write_text("{not json")
    assert "not valid JSON" in validate_dataset(data)[0]


def test_wrong_dtype_shape_range_and_missing_arrays(data):
    ep0 = Dataset.open(data).load_episode(0)
    ep1 = Dataset.open(data).load_episode(1)
    rewrite_episode(data, 0, actions=ep0["actions"].astype(np.float32), frames=ep0["frames"][:, :32])
    actions = ep1["actions"].copy()
    actions[3] = 7  # MiniGrid has 7 actions: 0..6
    rewrite_episode(data, 1, actions=actions, agent_pos=ep1["agent_pos"][:-1])
    problems = "\n".join(validate_dataset(data))
    assert "episodes/ep_000000.npz: field 'actions' has dtype float32, expected int64" in problems
    assert "episodes/ep_000000.npz: field 'frames' has shape" in problems
    assert "episodes/ep_000001.npz: field 'actions' has values in [0, 7], outside [0, 7)" in problems
    assert "episodes/ep_000001.npz: field 'agent_pos' has" in problems


def test_final_frame_is_the_observation_after_the_last_action(data):
    episode = Dataset.open(data).load_episode(2)
    assert episode["final_frame"].shape == episode["frames"].shape[1:]
    rewrite_episode(data, 2, final_frame=episode["final_frame"][:32])
    problems = "\n".join(validate_dataset(data))
    assert "episodes/ep_000002.npz: field 'final_frame' has shape (32, 64, 3), expected (64, 64, 3)" in problems


def test_missing_and_unlisted_files(data):
    (data / "episodes" / "ep_000003.npz").rename(data / "episodes" / "ep_000009.npz")
    problems = validate_dataset(data)
    assert any(p.startswith("episodes/ep_000003.npz: file is missing") for p in problems)
    assert any(p.startswith("episodes/ep_000009.npz: file is not listed") for p in problems)


def test_splits_are_spread_and_independent_of_dataset_size():
    splits = [split_for_episode(k, 0.1) for k in range(1000)]
    assert splits[:2] == ["train", "eval"] and splits.count("eval") == 100
    assert [split_for_episode(k, 0.25) for k in range(8)].count("eval") == 2
    for fraction in (0.01, 0.1, 0.5):
        assert split_for_episode(1, fraction) == "eval"  # >= 2 episodes always have an eval one
    assert all(split_for_episode(k, 0.0) == "train" for k in range(50))


def test_disk_full_removes_the_partial_file_and_keeps_what_was_written(data, monkeypatch):
    before = (data / "manifest.json").read_bytes()
    episode_before = (data / "episodes" / "ep_000000.npz").read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ds.os, "fsync", full)
    with pytest.raises(DiskFullError, match="no space left on device.*re-run the same command"):
        write_manifest(data, Dataset.open(data).manifest)
    with pytest.raises(DiskFullError, match="ep_000000.npz"):
        write_episode(data, 0, {"actions": np.zeros(3, np.int64)})
    monkeypatch.undo()
    assert (data / "manifest.json").read_bytes() == before
    assert (data / "episodes" / "ep_000000.npz").read_bytes() == episode_before
    assert not list(data.rglob("*.tmp"))
    assert validate_dataset(data) == []


def test_episode_files_are_byte_reproducible(tmp_path):
    arrays = {"actions": np.arange(5, dtype=np.int64), "frames": np.zeros((5, 64, 64, 3), np.uint8)}
    _, first = write_episode(tmp_path / "a", 0, arrays)
    _, second = write_episode(tmp_path / "b", 0, dict(reversed(list(arrays.items()))))
    assert first == second
    with np.load(tmp_path / "a" / "episodes" / "ep_000000.npz", allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["actions"], arrays["actions"])

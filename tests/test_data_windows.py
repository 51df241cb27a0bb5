"""Training windows: shapes, dtypes, episode-start masks and alignment with the stored episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data_collection.collect import CollectConfig, collect
from data_collection.dataset import Dataset
from data_collection.windows import WindowDataset


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # MiniGrid-Memory episodes end early when the agent reaches the end of the hallway, so the
    # split holds episodes of different lengths and windows cross episode boundaries.
    out = tmp_path_factory.mktemp("data") / "memory"
    collect(CollectConfig(env="minigrid-memory", policy="explore", episodes=12, steps=40, out=out, seed=3), progress=False, log=lambda _: None)
    return out


def test_window_shapes_dtypes_and_masks(data):
    dataset = Dataset.open(data)
    train = dataset.episodes("train")
    lengths = [e.length for e in train]
    assert len(set(lengths)) > 1, "the fixture should hold episodes of different lengths"
    windows = WindowDataset(dataset, split="train", window=16)
    assert len(windows) == sum(lengths) - 16 + 1

    item = windows[0]
    assert item["frames"].shape == (16, 64, 64, 3) and item["frames"].dtype == torch.uint8
    assert item["actions"].shape == (16,) and item["actions"].dtype == torch.int64
    assert item["rewards"].dtype == torch.float32
    assert item["terminated"].dtype == torch.bool and item["episode_start"].dtype == torch.bool
    assert item["agent_pos"].shape == (16, 2) and item["agent_dir"].dtype == torch.float32
    assert "maze_layout" not in item  # per-episode, not per-step

    # Window 0 starts at t = 0 of the first train episode and matches the stored arrays.
    first = dataset.load_episode(train[0].index)
    n = min(16, train[0].length)
    assert item["episode_start"][0] and not item["episode_start"][1:n].any()
    np.testing.assert_array_equal(item["frames"][:n].numpy(), first["frames"][:n])
    np.testing.assert_array_equal(item["actions"][:n].numpy(), first["actions"][:n])

    # Over every window start: episode_start is True exactly where t == 0, and an episode only
    # begins right after the previous one ended (terminated or truncated).
    starts = np.cumsum([0] + lengths[:-1])
    for i in range(len(windows)):
        w = windows[i]
        np.testing.assert_array_equal(w["episode_start"].numpy(), (w["t"] == 0).numpy())
        ends = (w["terminated"] | w["truncated"]).numpy()
        assert (w["episode_start"][1:].numpy() == ends[:-1]).all()
        expected = np.isin(np.arange(i, i + 16), starts)
        np.testing.assert_array_equal(w["episode_start"].numpy(), expected)


def test_consecutive_windows_tile_the_stream(data):
    windows = WindowDataset(data, split="train", window=8, stride=8)
    a, b = windows[0], windows[1]
    stream = torch.cat([a["t"], b["t"]])
    episode = torch.cat([a["episode_index"], b["episode_index"]])
    # Steps advance by one within an episode and restart at 0 when the episode changes.
    for k in range(1, 16):
        assert stream[k] == (stream[k - 1] + 1 if episode[k] == episode[k - 1] else 0)
    assert windows[-1]["t"].shape == (8,)
    with pytest.raises(IndexError):
        windows[len(windows)]


def test_window_longer_than_the_split_is_refused(data):
    eval_steps = sum(e.length for e in Dataset.open(data).episodes("eval"))
    with pytest.raises(ValueError, match="fewer than one window"):
        WindowDataset(data, split="eval", window=eval_steps + 1)


def test_windows_feed_a_dataloader(data):
    loader = torch.utils.data.DataLoader(WindowDataset(data, window=12), batch_size=4, shuffle=True)
    batch = next(iter(loader))
    assert batch["frames"].shape == (4, 12, 64, 64, 3) and batch["episode_start"].shape == (4, 12)

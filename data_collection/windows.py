"""Training windows: fixed-length runs of consecutive steps from one split of a dataset.

The episodes of a split are decoded once and laid end to end in memory (datasets are at most a few
GB); window i covers steps [i * stride, i * stride + window) of that stream, so a window may start at
any step, including an episode's first, and may run across an episode boundary. `episode_start`
marks where the model must reset its state (docs/design.md, "Training": state resetting). With
stride == window, consecutive indices are consecutive windows, which is what truncated
back-propagation through time carries the SSM state across.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.utils.data

from data_collection.dataset import ARRAY_SPECS, Dataset


class WindowDataset(torch.utils.data.Dataset):
    """Windows of `window` consecutive steps from the episodes of one split.

    Each item is a dict of tensors, L = window:
        frames         (L, 64, 64, 3) uint8
        actions        (L,) int64      taken after seeing frames[t]
        rewards        (L,) float32    received after actions[t]
        terminated     (L,) bool
        truncated      (L,) bool
        episode_start  (L,) bool       True on an episode's first frame
        episode_index  (L,) int64      the dataset's episode index of each step
        t              (L,) int64      step within its episode
    and every other per-step array the dataset has (agent_pos (L, 2) float32, agent_dir (L, 2)
    float32, retrace_phase (L,) int8).
    """

    def __init__(self, dataset: Dataset | str | os.PathLike[str], split: str = "train", window: int = 32, stride: int = 1):
        if window < 1 or stride < 1:
            raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
        self.dataset = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
        self.split, self.window, self.stride = split, window, stride
        entries = self.dataset.episodes(split)
        total = sum(e.length for e in entries)
        if total < window:
            raise ValueError(
                f"{self.dataset.root}: split {split!r} has {total} steps in {len(entries)} episodes, fewer than "
                f"one window of {window}; collect more episodes or use a shorter window"
            )
        manifest = self.dataset.manifest
        names = [n for n in manifest.arrays if ARRAY_SPECS[n].per_step]
        # Filled in place, episode by episode, so peak memory is the stream plus one episode.
        self.arrays: dict[str, np.ndarray] = {}
        for name in names:
            shape = tuple(manifest.obs_shape) if name == "frames" else ARRAY_SPECS[name].shape
            self.arrays[name] = np.empty((total, *shape), dtype=ARRAY_SPECS[name].dtype)
        self.arrays["episode_start"] = np.zeros(total, dtype=bool)
        self.arrays["episode_index"] = np.empty(total, dtype=np.int64)
        self.arrays["t"] = np.empty(total, dtype=np.int64)
        offset = 0
        for entry in entries:
            episode = self.dataset.load_episode(entry.index)
            end = offset + entry.length
            for name in names:
                self.arrays[name][offset:end] = episode[name]
            self.arrays["episode_start"][offset] = True
            self.arrays["episode_index"][offset:end] = entry.index
            self.arrays["t"][offset:end] = np.arange(entry.length)
            offset = end
        self.num_steps = total

    def __len__(self) -> int:
        return (self.num_steps - self.window) // self.stride + 1

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range [0, {len(self)})")
        start = i * self.stride
        # Copies, so that a caller writing into a window cannot change the cached stream.
        return {name: torch.from_numpy(array[start : start + self.window].copy()) for name, array in self.arrays.items()}


@dataclass
class WindowBenchmark:
    windows: int  # available windows
    load_seconds: float
    item_windows_per_second: float
    batch_windows_per_second: float
    window: int
    batch_size: int
    loader_workers: int

    def format(self) -> str:
        return (
            f"{self.windows:,} windows of {self.window} steps; decoded in {self.load_seconds:.2f} s\n"
            f"random windows (__getitem__): {self.item_windows_per_second:,.0f} windows/s "
            f"({self.item_windows_per_second * self.window:,.0f} frames/s)\n"
            f"shuffled DataLoader, batches of {self.batch_size}, {self.loader_workers} workers: {self.batch_windows_per_second:,.0f} windows/s "
            f"({self.batch_windows_per_second * self.window:,.0f} frames/s)"
        )


def benchmark_windows(
    path: str | os.PathLike[str],
    split: str = "train",
    window: int = 64,
    batch_size: int = 16,
    seconds: float = 3.0,
    loader_workers: int = 0,
) -> WindowBenchmark:
    """Decode a split and time random window sampling, item by item and through a DataLoader.

    With loader_workers=0 the batches are collated in this process with torch's intra-op threads,
    which is slow on a machine whose cores are busy; DataLoader workers collate with one thread each.
    """
    start = time.perf_counter()
    windows = WindowDataset(Path(path), split=split, window=window)
    load_seconds = time.perf_counter() - start

    rng = np.random.default_rng(0)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 2:
        windows[int(rng.integers(len(windows)))]
        count += 1
    item_rate = count / (time.perf_counter() - start)

    loader = torch.utils.data.DataLoader(
        windows, batch_size=batch_size, shuffle=True, num_workers=loader_workers, persistent_workers=loader_workers > 0
    )
    next(iter(loader))  # start the workers outside the timing
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 2:
        for batch in loader:
            count += len(batch["frames"])
            if time.perf_counter() - start >= seconds / 2:
                break
    batch_rate = count / (time.perf_counter() - start)
    return WindowBenchmark(len(windows), load_seconds, item_rate, batch_rate, window, batch_size, loader_workers)

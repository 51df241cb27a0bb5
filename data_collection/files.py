"""Files written whole or not at all, and videos: the one way the project writes either.

A crash, a kill or a full disk mid-write leaves the previous file, never a part of the new one: the
data goes to a temporary file beside the target (a dot-name with `.tmp` before the target's suffix, so
writers that choose the format by the suffix still do), is fsynced, renamed over the target, and the
directory entry is fsynced (the rename lives there). Directories written whole (checkpoints, exported
models) are built beside their target and renamed the same way (lssvwm_env/checkpoint.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

TEMP_MARK = ".tmp"  # in every temporary name: what a clean-up after a killed writer looks for


def temp_path(path: Path) -> Path:
    """Where `path` is written before it is renamed into place (same directory, same suffix)."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_MARK}{path.suffix}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path for a writer that takes a file name; when the block ends without an error the
    file is fsynced and renamed over `path`, else removed (`path` keeps what it had)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json_atomic(path: str | Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2))


def write_video(path: str | Path, frames, fps: int = 10) -> Path:
    """Frames ((H, W, 3) uint8 each) as an mp4 (H.264 through imageio's ffmpeg) or, by the suffix, a
    looping gif; written atomically. Returns the path."""
    import imageio.v2 as imageio

    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise ValueError(f"{path}: no frames to write")
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".gif":
            imageio.mimwrite(tmp, frames, duration=1000 / fps, loop=0)
        else:
            imageio.mimwrite(tmp, frames, fps=fps, macro_block_size=1)
    return path

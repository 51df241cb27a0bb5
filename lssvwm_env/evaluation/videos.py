"""Side-by-side videos of a rollout: ground truth | generated | error."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def error_map(generated: np.ndarray, truth: np.ndarray, gain: float = 3.0) -> np.ndarray:
    """(..., H, W, 3) uint8 pair -> (..., H, W, 3) uint8: the mean absolute error over channels, times
    `gain`, through the magma colour map (black: exact; yellow: off by a third of the range or more)."""
    from matplotlib import colormaps

    error = np.abs(generated.astype(np.int16) - truth.astype(np.int16)).mean(axis=-1) * gain
    lut = (colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    return lut[np.clip(error, 0, 255).astype(np.uint8)]


def comparison_frames(truth: np.ndarray, generated: np.ndarray, scale: int = 4, gap: int = 4) -> np.ndarray:
    """truth, generated: (T, H, W, 3) uint8 -> (T, H*scale, 3*W*scale + 2*gap, 3) uint8, panels
    ground truth | generated | error separated by white bars."""
    def big(frames: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(frames, scale, axis=1), scale, axis=2)

    t, h = truth.shape[:2]
    bar = np.full((t, h * scale, gap, 3), 255, dtype=np.uint8)
    return np.concatenate([big(truth), bar, big(generated), bar, big(error_map(generated, truth))], axis=2)


def write_comparison_video(truth: np.ndarray, generated: np.ndarray, path: Path, fps: int = 10) -> Path:
    """An mp4 of ground truth | generated | error (imageio + ffmpeg)."""
    from data_collection.files import write_video

    return write_video(path, comparison_frames(truth, generated), fps=fps)

"""data_collection/files.py: files appear whole or not at all; videos by suffix."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from data_collection import files


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    files.write_json_atomic(path, {"a": 1})
    with pytest.raises(RuntimeError, match="killed mid-write"):
        with files.atomic_path(path) as tmp:
            tmp.write_text('{"a": 2, "b"')
            raise RuntimeError("killed mid-write")
    assert path.read_text() == '{\n  "a": 1\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_the_temporary_keeps_the_suffix_writers_choose_formats_by(tmp_path):
    with files.atomic_path(tmp_path / "context.npz") as tmp:
        assert tmp.suffix == ".npz" and files.TEMP_MARK in tmp.name and tmp.parent == tmp_path
        np.savez_compressed(tmp, x=np.arange(3))
    assert np.load(tmp_path / "context.npz")["x"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_write_video(tmp_path, suffix):
    frames = [np.full((64, 64, 3), 40 * i, dtype=np.uint8) for i in range(5)]
    path = files.write_video(tmp_path / "sub" / f"clip{suffix}", frames, fps=5)
    assert iio.imread(path).shape[0] == 5
    with pytest.raises(ValueError, match="clip.mp4: no frames"):
        files.write_video(tmp_path / "clip.mp4", [])

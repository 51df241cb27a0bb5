"""`lssvwm collect` on Memory Maze through the real CLI, with two workers; resume after a lost file."""

from __future__ import annotations

import json
from pathlib import Path

from lssvwm_env.cli import main as lssvwm


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_collect_memory_maze_validate_and_resume(tmp_path, capsys):
    out = tmp_path / "mm9"
    command = ["collect", "--env", "memory-maze-9x9", "--policy", "explore", "--episodes", "3", "--steps", "30",
               "--workers", "2", "--out", str(out), "--seed", "7", "--quiet"]  # fmt: skip
    assert lssvwm(command) == 0
    assert "collected 3 episodes (90 frames)" in capsys.readouterr().out

    assert lssvwm(["data", "validate", str(out)]) == 0
    assert capsys.readouterr().out.strip() == "OK: 3 episodes, 90 frames"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["env"] == "memory-maze-9x9" and manifest["policy"] == "explore"
    assert manifest["action_space"]["type"] == "discrete" and manifest["action_space"]["n"] == 6
    assert manifest["obs_shape"] == [64, 64, 3] and manifest["command"][:2] == ["lssvwm", "collect"]
    assert [e["split"] for e in manifest["episodes"]] == ["train", "eval", "train"]
    assert "maze_layout" in manifest["arrays"] and "agent_pos" in manifest["arrays"]

    # Lose one episode: the same command collects it again, and only it.
    episodes = out / "episodes"
    kept = {name: _stat(episodes / name) for name in ("ep_000000.npz", "ep_000002.npz")}
    (episodes / "ep_000001.npz").unlink()
    assert lssvwm(command) == 0
    captured = capsys.readouterr()
    assert "collected 1 episodes (30 frames)" in captured.out
    assert "ep_000001.npz: missing" in captured.err
    assert {name: _stat(episodes / name) for name in kept} == kept
    resumed = json.loads((out / "manifest.json").read_text())
    # Episode 1 depends only on (seed, 1): collected again, it is the same file byte for byte.
    assert resumed["episodes"] == manifest["episodes"]
    assert lssvwm(["data", "validate", str(out)]) == 0


def test_collect_refuses_an_unknown_env(tmp_path, capsys):
    assert lssvwm(["collect", "--env", "memory-maze-8x8", "--episodes", "1", "--steps", "5", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "unknown env 'memory-maze-8x8'" in err and "memory-maze-9x9" in err and "minigrid-fourrooms" in err
    assert not (tmp_path / "x").exists()

"""Resuming `lssvwm collect`: after a kill, into a foreign dataset, and independent of worker count."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from data_collection.dataset import validate_dataset
from lssvwm_env.cli import main as lssvwm

LSSVWM = Path(sys.executable).parent / "lssvwm"


def _listed(out: Path) -> list[dict]:
    try:
        return json.loads((out / "manifest.json").read_text())["episodes"]
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def test_killed_collect_resumes_without_redoing_finished_episodes(tmp_path):
    out = tmp_path / "fourrooms"
    command = [str(LSSVWM), "collect", "--env", "minigrid-fourrooms", "--policy", "random", "--episodes", "40",
               "--steps", "150", "--workers", "2", "--out", str(out), "--quiet"]  # fmt: skip
    # A session of its own, so that the kill reaches the workers too, as Ctrl-C or an OOM kill would.
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_listed(out)) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = _listed(out)
    assert 3 <= len(done_before) < 40, "the run should have been killed part-way"
    stats = {e["file"]: (out / e["file"]).stat().st_mtime_ns for e in done_before}

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    listed = _listed(out)
    assert [e["index"] for e in listed] == list(range(40))
    # Finished episodes were kept as they were; only the others were collected.
    assert {f: (out / f).stat().st_mtime_ns for f in stats} == stats
    adopted = resumed.stderr.count("adopted")
    assert f"resuming: {len(done_before) + adopted} of 40" in resumed.stderr
    assert f"collected {40 - len(done_before) - adopted} episodes" in resumed.stdout
    assert validate_dataset(out) == []


def test_datasets_do_not_depend_on_worker_count(tmp_path):
    def run(workers: int) -> list[dict]:
        out = tmp_path / f"w{workers}"
        assert lssvwm(["collect", "--env", "minigrid-memory", "--policy", "explore", "--episodes", "4", "--steps", "50",
                       "--workers", str(workers), "--out", str(out), "--seed", "5", "--quiet"]) == 0  # fmt: skip
        return [{k: e[k] for k in ("index", "sha256", "seed", "split")} for e in _listed(out)]

    assert run(1) == run(2)


def test_resume_refuses_a_dataset_made_differently(tmp_path, capsys):
    out = str(tmp_path / "d")
    base = ["collect", "--env", "minigrid-fourrooms", "--episodes", "2", "--steps", "20", "--out", out, "--quiet"]
    assert lssvwm(base + ["--policy", "random"]) == 0
    capsys.readouterr()
    assert lssvwm(base + ["--policy", "explore"]) == 1
    err = capsys.readouterr().err
    assert "policy='random'" in err and "policy='explore'" in err and "refusing to resume" in err
    assert lssvwm(["collect", "--env", "minigrid-memory", "--episodes", "2", "--steps", "20", "--out", out, "--policy", "random"]) == 1
    assert "env='minigrid-fourrooms'" in capsys.readouterr().err
    # Asking for more episodes with the same arguments extends the dataset.
    assert lssvwm(["collect", "--env", "minigrid-fourrooms", "--episodes", "3", "--steps", "20", "--out", out, "--policy", "random", "--quiet"]) == 0
    assert [e["index"] for e in _listed(Path(out))] == [0, 1, 2]

"""`lssvwm eval ablations`: variants trained by `lssvwm train` on the same data and budget, evaluated alike."""

from __future__ import annotations

import json

import pytest
import torch

from lssvwm_env.cli import main as lssvwm
from lssvwm_env.evaluation.ablations import ABLATIONS, scale_curriculum
from lssvwm_env.models.backbone import VARIANTS

torch.set_num_threads(1)


def test_scale_curriculum_keeps_proportions_and_total():
    stages = [{"window": 32, "iterations": 800, "batch_size": 4}, {"window": 96, "iterations": 150, "batch_size": 2},
              {"window": 200, "iterations": 50, "batch_size": 1}]
    scaled = scale_curriculum(stages, 100)
    assert [s["iterations"] for s in scaled] == [80, 15, 5] and [s["window"] for s in scaled] == [32, 96, 200]
    assert [s["iterations"] for s in scale_curriculum(stages, 7)] == [6, 1]  # 5.6, 1.05, 0.35
    with pytest.raises(ValueError, match="--iterations must be >= 1"):
        scale_curriculum(stages, 0)


def test_every_backbone_variant_and_the_training_ablation_are_listed():
    assert set(ABLATIONS) == set(VARIANTS) | {"no_long_context"}


def test_eval_ablations_trains_evaluates_and_resumes(tmp_path, capsys):
    data = tmp_path / "mg"
    assert lssvwm(["collect", "--env", "minigrid-fourrooms", "--policy", "retrace", "--episodes", "3", "--steps", "40",
                   "--out", str(data), "--seed", "2", "--quiet"]) == 0
    out = tmp_path / "ablations"
    command = ["eval", "ablations", "--data", str(data), "--out", str(out), "--preset", "tiny",
               "--variants", "ours", "causal_attn", "--iterations", "3", "--set", "autoencoder_training.iterations=3",
               "--context", "16", "--generate", "8", "--episodes", "1", "--split", "train", "--videos", "0",
               "--sampling-steps", "1", "--threads", "1"]
    assert lssvwm(command) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "ablations.json").read_text())
    assert list(results["variants"]) == ["ours", "causal_attn"]
    table = (out / "ablations.md").read_text()
    assert table in printed
    for name in ("ours", "causal_attn"):
        entry = results["variants"][name]
        config = json.loads((out / "runs" / name / "checkpoint" / "config.json").read_text())
        metrics = json.loads((out / "eval" / name / "metrics.json").read_text())
        assert entry["dynamics_steps"] == 3 and entry["metrics"]["psnr"] == metrics["psnr"]
        assert config["model"]["backbone"]["action"]["n"] == 7  # taken from the dataset
        assert [s["iterations"] for s in config["dynamics_training"]["curriculum"]] == [2, 1]  # tiny's 6 + 4, scaled
        assert metrics["checkpoint"]["variant"] == name
        assert metrics["checkpoint"]["training"]["dynamics_steps"] == 3
        assert metrics["checkpoint"]["training_data"]["env"] == "minigrid-fourrooms"
        assert f"| {ABLATIONS[name].label} | {metrics['psnr']:.2f} | {metrics['ssim']:.3f} |" in table
    causal = json.loads((out / "runs" / "causal_attn" / "checkpoint" / "config.json").read_text())
    assert causal["model"]["causal_window"] == 16  # the longest training window
    assert (out / "ablations.png").stat().st_size > 10_000

    # The report puts the table, the figure and a row per variant beside the paper's.
    assert lssvwm(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert table.strip().splitlines()[-1] in report and "](figures/ablations/ablations.png)" in report
    assert (tmp_path / "report" / "figures" / "ablations" / "ablations.png").is_file()
    assert "lssvwm ablation — causal attention, window-limited (no SSM) (`ablations`, minigrid-fourrooms)" in report
    assert "| 0.829 | 26.4 |" in report

    # The same command again resumes: finished runs are not trained again.
    state = out / "runs" / "ours" / "checkpoint" / "training_state.safetensors"
    before = state.stat().st_mtime_ns
    assert lssvwm(command) == 0
    assert "--resume" in capsys.readouterr().out and state.stat().st_mtime_ns == before

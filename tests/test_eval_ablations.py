"""`lssvwm eval ablations`: variants trained by `lssvwm train` on the same data and budget, evaluated alike."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from data_collection.dataset import Dataset
from lssvwm_env.cli import main as lssvwm
from lssvwm_env.evaluation.ablations import (ABLATIONS, DEFAULT_VARIANTS, WINDOW_BIN_CELLS, binned_scores,
                                            equal_cost_causal_window, plan_budget, scale_curriculum)
from lssvwm_env.models.backbone import VARIANTS



def test_scale_curriculum_keeps_proportions_and_total():
    stages = [{"window": 32, "iterations": 800, "batch_size": 4}, {"window": 96, "iterations": 150, "batch_size": 2},
              {"window": 200, "iterations": 50, "batch_size": 1}]
    scaled = scale_curriculum(stages, 100)
    assert [s["iterations"] for s in scaled] == [80, 15, 5] and [s["window"] for s in scaled] == [32, 96, 200]
    assert [s["iterations"] for s in scale_curriculum(stages, 7)] == [6, 1]  # 5.6, 1.05, 0.35
    with pytest.raises(ValueError, match="--iterations must be >= 1"):
        scale_curriculum(stages, 0)


def test_every_backbone_variant_has_an_ablation():
    made = {o.split("=", 1)[1] for a in ABLATIONS.values() for o in a.overrides if o.startswith("model.variant=")}
    assert set(VARIANTS) == made | {"ours"}
    assert set(DEFAULT_VARIANTS) <= set(ABLATIONS)


def test_causal_window_costs_what_ours_costs_per_imagined_frame():
    from lssvwm_env.bench import count_flops, fill_history
    from lssvwm_env.models import WorldModel
    from lssvwm_env.presets import preset

    config = preset("tiny").model
    window, figures = equal_cost_causal_window(config)
    causal = WorldModel(replace(config, variant="causal_attn", causal_window=None)).eval()
    action = torch.ones(1, dtype=torch.long)
    at_window = count_flops(lambda: causal.imagine(fill_history(causal, causal.initial_state(1), window), action))
    # Attending to `window` frames of history costs ours' FLOPs, to within one frame of keys.
    assert abs(at_window / 1e9 - figures["ours_gflop_per_frame"]) <= figures["causal_gflop_per_history_frame"]
    assert window > config.backbone.attention.window  # the SSM's cost buys causal attention a longer window


def test_every_variant_trains_for_ours_training_flops():
    budget = plan_budget("tiny", ["ours", "local_attn", "causal_full"], 20, None, [], log=lambda *_: None)
    ours = budget.train_gflop["ours"]
    steps = {name: sum(s["iterations"] for s in stages) for name, stages in budget.stages.items()}
    assert steps["ours"] == 20
    for name in ("local_attn", "causal_full"):
        per_step = budget.train_gflop[name] / steps[name]
        assert abs(budget.train_gflop[name] - ours) <= per_step  # equal up to one step
    assert steps["local_attn"] > steps["ours"]  # no SSM: cheaper steps, more of them


def test_gap_bins_split_revisits_by_the_attention_window():
    per_frame = {"gap": [[3, 10, 11, 30, 31, None]], "psnr": [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]],
                 "ssim": [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]], "last_frame_psnr": [[0.0] * 6]}
    bins = binned_scores({"per_frame": per_frame}, window=10)
    assert bins["revisit_within_window"]["psnr"] == pytest.approx(1.5) and bins["revisit_within_window"]["frames"] == 2
    assert bins["revisit_window_to_3x_window"]["psnr"] == pytest.approx(3.5)
    assert bins["revisit_beyond_3x_window"]["ssim"] == pytest.approx(0.5)
    assert bins["novel"]["psnr"] == 6.0 and bins["all"]["frames"] == 6


def test_eval_ablations_trains_seeds_at_equal_flops_evaluates_and_resumes(minigrid_retrace, tmp_path, capsys):
    data = minigrid_retrace
    autoencoder = tmp_path / "ae"
    assert lssvwm(["train", "--data", str(data), "--out", str(autoencoder), "--preset", "tiny", "--threads", "1",
                   "--set", "autoencoder_training.iterations=3", "--set", "model.backbone.action.n=7",
                   "--set", 'dynamics_training.curriculum=[{"window": 8, "iterations": 1, "batch_size": 1}]']) == 0
    out = tmp_path / "ablations"
    command = ["eval", "ablations", "--data", str(data), "--out", str(out), "--preset", "tiny",
               "--variants", "ours", "local_attn", "causal_window", "--seeds", "0", "1", "--iterations", "3",
               "--init-autoencoder", str(autoencoder),
               "--context", "20", "--generate", "40", "--episodes", "1", "--split", "train", "--videos", "0",
               "--sampling-steps", "1", "--threads", "1"]
    assert lssvwm(command) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "ablations.json").read_text())
    memory = json.loads((out / "results.json").read_text())
    assert list(results["variants"]) == ["ours", "local_attn", "causal_window"]
    table = (out / "ablations.md").read_text()
    assert table in printed and "Next frame from the real past" in table
    assert memory["window"] == 4 and memory["seeds"] == [0, 1]
    for name in ("ours", "causal_window"):
        entry, row = results["variants"][name], memory["variants"][name]
        assert row["seeds"] == 2 and row["train_gflop"] == entry["train_gflop"]
        assert abs(entry["train_gflop"] - results["budget_gflop"]) <= entry["train_gflop"] / entry["dynamics_steps"]
        for bin_name in ("revisit_within_window", "revisit_window_to_3x_window", "revisit_beyond_3x_window", "novel"):
            assert set(row[bin_name]) >= {"psnr", "ssim", "psnr_spread", "frames"}
        psnrs = []
        for seed in (0, 1):
            run = out / "runs" / name / f"seed{seed}"
            config = json.loads((run / "checkpoint" / "config.json").read_text())
            metrics = json.loads((out / "eval" / name / f"seed{seed}" / "metrics.json").read_text())
            assert config["seed"] == seed and config["model"]["backbone"]["action"]["n"] == 7
            assert metrics["checkpoint"]["training"]["dynamics_steps"] == entry["dynamics_steps"]
            assert metrics["ceiling"]["psnr"] == pytest.approx(results["variants"]["ours"]["metrics"]["ceiling"]["psnr"])
            psnrs.append(metrics["psnr"])
        assert entry["metrics"]["psnr"] == pytest.approx(sum(psnrs) / 2)
        assert row["all"]["psnr_spread"] == pytest.approx(max(psnrs) - min(psnrs))
        assert row["state_mb_at_frame_1000"] > 0 and row["latency_ms_at_frame_1000"] > 0
        # The next-frame probe: every frame from its real past, by revisit gap, per seed and their mean.
        probes = [json.loads((out / "eval" / name / f"seed{s}" / "next_frame.json").read_text()) for s in (0, 1)]
        train = [e.length for e in Dataset.open(data).episodes("train")]
        assert probes[0]["window"] == 4 and probes[0]["bins"]["all"]["frames"] == sum(n - 1 for n in train)
        assert row["next_frame"]["all"]["psnr"] == pytest.approx((probes[0]["bins"]["all"]["psnr"]
                                                                  + probes[1]["bins"]["all"]["psnr"]) / 2)
        # Frames reached by a turn: a subset, in the same bins, averaged over seeds the same way.
        turned = probes[0]["turn_bins"]
        assert 0 < turned["all"]["frames"] < probes[0]["bins"]["all"]["frames"]
        assert turned["all"]["frames"] == sum(turned[b]["frames"] for b in ("revisit_within_window",
                                               "revisit_window_to_3x_window", "revisit_beyond_3x_window", "novel"))
        assert row["next_frame_turns"]["all"]["psnr"] == pytest.approx(
            (probes[0]["turn_bins"]["all"]["psnr"] + probes[1]["turn_bins"]["all"]["psnr"]) / 2)
        assert f"| {ABLATIONS[name].label} | {entry['metrics']['psnr']:.2f} | {entry['metrics']['ssim']:.3f} |" in table
    causal = json.loads((out / "runs" / "causal_window" / "seed0" / "checkpoint" / "config.json").read_text())
    assert causal["model"]["causal_window"] == results["causal_window"] == memory["causal_window"]
    assert causal["model"]["variant"] == "causal_attn"
    # One autoencoder, encoded once: later runs share the first run's latent cache.
    caches = {(out / "runs" / n / f"seed{s}" / "latents_train.safetensors").stat().st_ino
              for n in ("ours", "local_attn", "causal_window") for s in (0, 1)}
    assert len(caches) == 1
    assert (out / "ablations.png").stat().st_size > 10_000 and (out / "psnr_vs_gap.png").stat().st_size > 10_000
    # A revisit beyond 3x the window, generated again by ours and by local attention alone.
    assert memory["variants"]["ours"]["revisit_beyond_3x_window"]["frames"] > 0
    assert (out / "revisit.png").stat().st_size > 10_000

    # The report puts the table, the figure and a row per variant beside the paper's.
    assert lssvwm(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "](figures/ablations/ablations.png)" in report
    assert "lssvwm ablation — causal attention, window at ours' inference cost (no SSM) (`ablations`, minigrid-fourrooms)" in report

    # The same command again resumes: finished runs are neither trained nor evaluated again.
    state = out / "runs" / "ours" / "seed1" / "checkpoint" / "training_state.safetensors"
    evaluated = out / "eval" / "ours" / "seed1" / "metrics.json"
    before = state.stat().st_mtime_ns, evaluated.stat().st_mtime_ns
    assert lssvwm(command) == 0
    assert "--resume" in capsys.readouterr().out
    assert (state.stat().st_mtime_ns, evaluated.stat().st_mtime_ns) == before


def test_eval_ablations_on_the_colour_grid_scores_cells_per_bin(tmp_path):
    data = tmp_path / "cg"
    assert lssvwm(["collect", "--env", "colour-grid", "--policy", "out-and-back:leg=20", "--episodes", "3",
                   "--steps", "80", "--out", str(data), "--quiet"]) == 0
    out = tmp_path / "ablations"
    assert lssvwm(["eval", "ablations", "--data", str(data), "--out", str(out), "--preset", "tiny",
                   "--variants", "ours", "local_attn", "--seeds", "0", "1", "--iterations", "2",
                   "--context", "20", "--generate", "40", "--episodes", "1", "--split", "train", "--videos", "0",
                   "--sampling-steps", "1", "--threads", "1"]) == 0
    memory = json.loads((out / "results.json").read_text())
    for name in ("ours", "local_attn"):
        row = memory["variants"][name]
        per_seed = [json.loads((out / "eval" / name / f"seed{s}" / "cells.json").read_text()) for s in (0, 1)]
        assert per_seed[0]["generation"]["frames"] == 40 and per_seed[0]["settings"]["context"] == 20
        # Every frame bin of the memory benchmark also says how many of its cells were drawn right,
        # pooled over the cell bins that make it up, per seed and their mean.
        for bin_name, cell_bins in WINDOW_BIN_CELLS.items():
            pooled = []
            for cells in per_seed:
                bins = [cells["generation"]["bins"][b] for b in cell_bins if cells["generation"]["bins"][b]["cells"]]
                n = sum(b["cells"] for b in bins)
                pooled.append(sum(b["cell_accuracy"] * b["cells"] for b in bins) / n if n else None)
            assert row[bin_name]["cell_accuracy_seeds"] == pytest.approx(pooled)
        all_cells = row["all"]
        assert all_cells["cells"] == 40 * (8 * 8 - 1)
        assert all_cells["cell_accuracy"] == pytest.approx(sum(all_cells["cell_accuracy_seeds"]) / 2)
        assert row["cells"]["generation"]["self_copy"]["all"] is not None
        assert set(row["cells"]["next_frame"]["bins"]) == set(row["cells"]["generation"]["bins"])
    assert "Cell accuracy, generated from the actions alone" in (out / "ablations.md").read_text()
    assert (out / "cell_accuracy_vs_gap.png").stat().st_size > 10_000

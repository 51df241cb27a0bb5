"""The table of issue 39: what makes the dynamics learn the colour grid's obvious next frame fast.

Reads the runs of grid_causes.sh (each an `lssvwm train` run directory on the colour grid, whose
held-out evaluations log the cell accuracy of the next frame from the real past: training/train.py
with evaluation/grid_cells.py) and writes, per run, the training FLOPs of a step, the curve of the
copy (cells in view one frame before, drawn in their colour) against steps and FLOPs, the step at
which it first reached 99%, and next-frame PSNR beside the previous frame repeated.

    python docs/dynamics-recipe/grid_causes.py runs/grid-causes/* --out docs/dynamics-recipe/grid-causes
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COPY_GOAL = 0.99


def run_summary(run_dir: Path) -> dict:
    from lssvwm_env.evaluation.ablations import step_gflop
    from lssvwm_env.training.config import TrainConfig

    state = json.loads((run_dir / "checkpoint" / "training_state.json").read_text())
    saved = json.loads((run_dir / "checkpoint" / "config.json").read_text())
    config = TrainConfig.from_dict({k: v for k, v in saved.items() if k not in ("format", "version", "training_data")})
    stages = [vars(s) for s in config.dynamics_training.curriculum]
    gflop = step_gflop(config, stages)
    evaluations = [m for m in state["progress"]["metrics"] if m.get("stage") == "dynamics"]

    def flops_at(step: int) -> float:
        total, left = 0.0, step
        for stage, per_step in zip(stages, gflop):
            n = min(left, stage["iterations"])
            total, left = total + n * per_step, left - n
        return total / 1e3  # TFLOP

    curve = [{"step": m["step"], "tflop": round(flops_at(m["step"]), 2),
              "copy": m.get("cell_accuracy_previous_frame"), "beyond_window": m.get("cell_accuracy_beyond_window"),
              "never_seen": m.get("cell_accuracy_never_seen"),
              # Pooled over frames (grid_cells.frame_psnr); runs before it logged only the mean of dB.
              "next_frame_psnr": m.get("grid_next_frame_psnr"), "previous_frame_psnr": m.get("grid_previous_frame_psnr"),
              "previous_frame_through_autoencoder_psnr": m.get("grid_previous_frame_through_autoencoder_psnr")}
             for m in evaluations]
    reached = next((p for p in curve if p["copy"] is not None and p["copy"] >= COPY_GOAL), None)
    last = curve[-1] if curve else {}
    # The end of the run scored on 8 held-out episodes by `lssvwm eval cells ... --out RUN/eval-cells`.
    cells_path = run_dir / "eval-cells" / "cells.json"
    cells = json.loads(cells_path.read_text()) if cells_path.exists() else None
    return {"run": run_dir.name, "steps": state["progress"]["dynamics_step"], "cells": cells,
            "wall_time_min": round(state["progress"]["wall_time_s"] / 60, 1),
            "gflop_per_step": [round(g, 2) for g in gflop],
            "autoencoder_cell_accuracy": next((m.get("autoencoder_cell_accuracy") for m in evaluations), None),
            "copy_99_at_step": reached["step"] if reached else None,
            "copy_99_at_tflop": reached["tflop"] if reached else None,
            "final": last, "curve": curve}


def at_compute(run: dict, tflop: float) -> dict:
    """The run's last evaluation at or before `tflop` of training compute."""
    points = [p for p in run["curve"] if p["tflop"] <= tflop + 1e-9]
    return points[-1] if points else {}


def table(runs: list[dict]) -> str:
    def fmt(value, digits=3):
        return "–" if value is None else f"{value:.{digits}f}"
    common = min(r["final"].get("tflop", 0.0) for r in runs)  # the compute every run reached
    lines = [f"| run | steps | TFLOP | copy at {common:.1f} TFLOP (step) | copy at the last step (4 episodes) | "
             "first >= 99% at step (TFLOP) | copy, 8 episodes | after a move / no move | next frame PSNR | "
             "previous frame repeated (through the autoencoder) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        f, cells = r["final"], r["cells"]
        equal = at_compute(r, common)
        reached = "–" if r["copy_99_at_step"] is None else f"{r['copy_99_at_step']} ({r['copy_99_at_tflop']:.1f})"
        nf = cells["next_frame"] if cells else None
        split = nf.get("previous_frame_by_action") if nf else None
        lines.append(f"| {r['run']} | {r['steps']} | {fmt(f.get('tflop'), 1)} | {fmt(equal.get('copy'))} ({equal.get('step', '–')}) | "
                     f"{fmt(f.get('copy'))} | {reached} | "
                     f"{fmt(nf['bins']['previous_frame']['cell_accuracy']) if nf else '–'} | "
                     f"{(fmt(split['moved']) + ' / ' + fmt(split['unchanged'])) if split else '–'} | "
                     f"{fmt(nf['psnr'], 2) if nf else '–'} | "
                     f"{(fmt(nf['last_frame_psnr'], 2) + ' (' + fmt(nf['last_frame_through_autoencoder_psnr'], 2) + ')') if nf else '–'} |")
    return "\n".join(lines)


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in runs:
        points = [p for p in r["curve"] if p["copy"] is not None]
        axes[0].plot([p["tflop"] for p in points], [p["copy"] for p in points], marker="o", ms=3, label=r["run"])
        scored = [p for p in points if p["next_frame_psnr"] is not None]
        axes[1].plot([p["tflop"] for p in scored], [p["next_frame_psnr"] for p in scored], marker="o", ms=3)
    axes[0].axhline(COPY_GOAL, color="grey", ls=":", lw=1)
    axes[0].set(xlabel="training TFLOP", ylabel="cell accuracy, cells in view a frame before",
                title="the copy, next frame from the real past")
    axes[1].set(xlabel="training TFLOP", ylabel="next-frame PSNR (dB)", title="next frame from the real past")
    previous = next((r["cells"]["next_frame"]["last_frame_psnr"] for r in runs if r["cells"]), None)
    if previous is not None:
        axes[1].axhline(previous, color="grey", ls=":", lw=1, label="previous frame repeated")
        axes[1].legend(fontsize=7)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json, OUT.md and OUT.png")
    args = parser.parse_args()
    runs = [run_summary(r) for r in args.runs if (r / "checkpoint" / "training_state.json").exists()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(runs, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(table(runs) + "\n")
    plot(runs, args.out.with_suffix(".png"))
    print(table(runs))


if __name__ == "__main__":
    main()

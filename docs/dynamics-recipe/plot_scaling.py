"""Held-out quality against training compute for runs of the dynamics recipe study: reads each run's
evaluations (checkpoint/training_state.json) and its FLOPs per step (`lssvwm bench train` with the
run's own settings), writes a figure and a JSON table.

    python docs/dynamics-recipe/plot_scaling.py --out docs/dynamics-recipe/scaling \
        "S d96 x4=runs/scale/s" "M d160 x6=runs/scale/m" "L d256 x8=runs/scale/l"
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import matplotlib
from safetensors.torch import load_file

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def run_settings(run: Path) -> tuple[str, list[str], int, int]:
    """(preset, --set overrides, batch, window) of a run, from the command in its model card."""
    card = (run / "checkpoint" / "model_card.md").read_text()
    command = next(line for line in card.splitlines() if line.startswith("- command:"))
    words = shlex.split(command.split("`")[1])
    preset = words[words.index("--preset") + 1]
    overrides = [words[i + 1] for i, w in enumerate(words) if w == "--set" and not words[i + 1].startswith("dynamics")]
    config = json.loads((run / "checkpoint" / "config.json").read_text())
    stage = config["dynamics_training"]["curriculum"][0]
    return preset, overrides, stage["batch_size"], stage["window"]


def gflop_per_step(run: Path) -> float:
    preset, overrides, batch, window = run_settings(run)
    command = [sys.executable, "-m", "lssvwm_env.cli", "bench", "train", "--preset", preset, "--batch", str(batch),
               "--window", str(window), "--steps", "1", "--threads", "1", "--json"]
    for item in overrides:
        command += ["--set", item]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["gflop_per_step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.png and OUT.json")
    args = parser.parse_args()
    table = {}
    for item in args.runs:
        label, _, run = item.partition("=")
        run = Path(run)
        per_step = gflop_per_step(run)
        progress = json.loads((run / "checkpoint" / "training_state.json").read_text())["progress"]
        points = [m for m in progress["metrics"] if m["stage"] == "dynamics"]
        weights = load_file(str(run / "checkpoint" / "model.safetensors"))
        params = sum(t.numel() for name, t in weights.items() if name.startswith("backbone."))
        table[label] = {"run": str(run), "gflop_per_step": per_step, "backbone_parameters": params,
                        "points": [{"step": m["step"], "train_tflop": m["step"] * per_step / 1e3,
                                    **{k: m.get(k) for k in ("one_step_psnr", "one_step_psnr_last_frame", "rollout_psnr",
                                                             "rollout_psnr_last_frame", "rollout_psnr_context_mean")}}
                                   for m in points]}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, row in table.items():
        x = [p["train_tflop"] for p in row["points"]]
        axes[0].plot(x, [p["one_step_psnr"] for p in row["points"]], "o-", label=f"{label} ({row['backbone_parameters'] / 1e6:.1f}M)")
        axes[1].plot(x, [p["rollout_psnr"] for p in row["points"]], "o-", label=label)
    any_row = next(iter(table.values()))["points"][-1]
    axes[0].axhline(any_row["one_step_psnr_last_frame"], color="red", linestyle=":", label="previous frame repeated")
    axes[1].axhline(any_row["rollout_psnr_context_mean"], color="purple", linestyle=":", label="context mean")
    axes[1].axhline(any_row["rollout_psnr_last_frame"], color="red", linestyle=":", label="last context frame")
    axes[0].set_title("next frame from its real past (held out)")
    axes[1].set_title("100-frame rollout after 32 real frames (held out)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("training compute (TFLOP)")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    args.out.with_suffix(".json").write_text(json.dumps(table, indent=2) + "\n")
    print(f"wrote {args.out.with_suffix('.png')} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()

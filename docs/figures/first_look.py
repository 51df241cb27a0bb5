"""The README's first picture: real Memory Maze frames beside the frames the shipped model imagines
from the same real context and the same actions, and PSNR over the imagined frames against the
yardsticks (the last context frame repeated, the context mean, the nearest-pose context frame).

    python docs/figures/first_look.py --data data/mm9-300k --out docs/figures/first_look.png

The episodes are the dataset's held-out ("eval") ones; the library's memory benchmark does the work
(evaluation/memory.py), this script only draws. Writes the figures' numbers beside the PNG (.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from data_collection.dataset import Dataset
from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.evaluation.memory import frame_scores, generate_rollouts, plan_episodes
from lssvwm_env.evaluation.plots import COLORS, _figure, _save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--context", type=int, default=100)
    parser.add_argument("--generate", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/figures/first_look.png"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_world_model(args.checkpoint)
    dataset = Dataset.open(args.data)
    plan = plan_episodes({e.index: e.length for e in dataset.episodes("eval")}, args.context, args.generate,
                         args.episodes)
    episodes = [dataset.load_episode(i) for i in plan.indices]
    rollouts = generate_rollouts(model, episodes, plan.context, plan.generate, None, 4, seed=0)
    scores = frame_scores(rollouts)

    fig = _figure(10, 5.6)
    grid = fig.add_gridspec(3, 8, height_ratios=[1, 1, 1.7])
    times = np.unique(np.geomspace(1, plan.generate, 8).round().astype(int)) - 1
    for c, t in enumerate(times[:8]):
        for r, (label, frames) in enumerate((("real", rollouts.truth[0]), ("imagined", rollouts.generated[0]))):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(frames[t].numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
            if r == 0:
                ax.set_title(f"+{t + 1}", fontsize=8)
    ax = fig.add_subplot(grid[2, :])
    x = np.arange(1, plan.generate + 1)
    ax.plot(x, scores["psnr"].mean(axis=0), color=COLORS["generated"], linewidth=2, label="the model")
    for name, style in (("last_frame", ":"), ("context_mean", "--"), ("nearest_pose", "-.")):
        if f"{name}_psnr" in scores:
            ax.plot(x, scores[f"{name}_psnr"].mean(axis=0), style, color="black", alpha=0.7,
                    label=name.replace("_", " ") + " (yardstick)")
    ax.plot(x, scores["ceiling_psnr"].mean(axis=0), color=COLORS["ceiling"], alpha=0.6, label="autoencoder ceiling")
    ax.set_xscale("log")
    ax.set_xlabel("imagined frame (+k after the real context)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3, frameon=False)
    fig.suptitle(f"Memory Maze 9x9, held out: {plan.context} real frames of context, then {plan.generate} imagined "
                 f"from the recorded actions (top: episode {plan.indices[0]}; curve: mean of {len(episodes)} episodes)",
                 fontsize=9)
    _save(fig, args.out)
    figures = {"command": "python docs/figures/first_look.py " + " ".join(
                   f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
               "episodes": plan.indices, "context": plan.context, "generate": plan.generate,
               **{k: float(v.mean()) for k, v in scores.items()},
               "frames_1_to_10": {k: float(v[:, :10].mean()) for k, v in scores.items()}}
    args.out.with_suffix(".json").write_text(json.dumps(figures, indent=2))
    print(json.dumps({k: v for k, v in figures.items() if k != "frames_1_to_10"}, indent=1))


if __name__ == "__main__":
    main()

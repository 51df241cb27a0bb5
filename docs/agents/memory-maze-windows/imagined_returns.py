"""One-off figure behind docs/agents/README.md (Memory Maze, imagination from anywhere in the data):
the return per imagined episode that PPO saw while it trained inside the model (SB3's
rollout/ep_rew_mean, from each run's TensorBoard log), one line per run.

Run from the repository root:
    python docs/agents/memory-maze-windows/imagined_returns.py --out docs/agents/memory-maze-windows/imagined_returns.png \
        "committed frame=runs/compare-mm9s64-rs/imagined" "prior=runs/compare-mm9s64-prior/imagined"
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR (an agents.train_ppo run)")
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()

fig, ax = plt.subplots(figsize=(7, 3.5))
for spec in args.runs:
    label, _, run = spec.partition("=")
    events = sorted(Path(run, "tensorboard").rglob("events.out.tfevents.*"))
    if not events:
        raise SystemExit(f"{run}: no TensorBoard events under {run}/tensorboard")
    log = EventAccumulator(str(events[-1]))
    log.Reload()
    points = log.Scalars("rollout/ep_rew_mean")
    ax.plot([p.step for p in points], [p.value for p in points], label=label)
ax.set_xlabel("imagined steps")
ax.set_ylabel("return per imagined episode")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
args.out.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(args.out, dpi=100)
print(f"wrote {args.out}")

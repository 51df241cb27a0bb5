"""One-off figure and table behind docs/agents/README.md (Memory Maze, PPO held near its warm
start): how far each imagination run's policy moved from the behaviour-cloned warm start while
PPO trained, measured on the dataset's held-out frames (real frames the policies never trained on):
mean KL(policy ‖ warm start), mean entropy, and how often the argmax action is the data's.

Run from the repository root:
    python docs/agents/memory-maze-anchor/drift.py --dataset data/mm9-seek \
        --warm-start runs/compare-mm9s64-anchor03/behavior_cloning --out docs/agents/memory-maze-anchor/drift.png \
        "entropy bonus 0.01=runs/compare-mm9s64-bc-committed/imagined" \
        "KL 0.1=runs/compare-mm9s64-anchor01/imagined" "KL 0.3=runs/compare-mm9s64-anchor03/imagined"
"""
import argparse
import re
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from agents.behavior_cloning import frame_shape, load_transitions  # noqa: E402
from agents.policies import load_policy  # noqa: E402
from data_collection.dataset import Dataset  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR (an agents.train_ppo run warm-started from --warm-start)")
parser.add_argument("--dataset", required=True, help="the warm start's dataset; its eval split is measured")
parser.add_argument("--warm-start", required=True, help="the warm start alone (agents.train_ppo --timesteps 0 run)")
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()
torch.set_num_threads(1)


@torch.no_grad()
def probabilities(model, frames: np.ndarray) -> np.ndarray:
    out = []
    for start in range(0, len(frames), 256):
        obs, _ = model.policy.obs_to_tensor(frames[start:start + 256])
        out.append(model.policy.get_distribution(obs).distribution.probs.numpy())
    return np.concatenate(out)


warm, _ = load_policy(args.warm_start)
held_out = load_transitions(Dataset.open(args.dataset), "eval", 0.99, int(warm.action_space.n), frame_shape(warm.policy))
reference = probabilities(warm, held_out.frames)


def measure(model) -> tuple[float, float, float]:
    p = probabilities(model, held_out.frames)
    kl = float((p * (np.log(p) - np.log(reference))).sum(1).mean())
    entropy = float(-(p * np.log(p)).sum(1).mean())
    return kl, entropy, float((p.argmax(1) == held_out.actions).mean())


print(f"{len(held_out)} held-out frames of {args.dataset}\n")
print("| run | imagined steps | KL(policy ‖ warm start) | entropy | argmax = data's action |\n|---|---:|---:|---:|---:|")
_, warm_entropy, warm_accuracy = measure(warm)
print(f"| warm start | 0 | 0 | {warm_entropy:.3f} | {warm_accuracy:.3f} |")
fig, ax = plt.subplots(figsize=(7, 3.5))
for spec in args.runs:
    label, _, run = spec.partition("=")
    checkpoints = sorted(Path(run, "checkpoints").glob("policy_*_steps.zip"),
                         key=lambda p: int(re.search(r"_(\d+)_steps", p.name).group(1)))
    steps, kls = [0], [0.0]
    for path in [*checkpoints, Path(run, "policy.zip")]:
        model, _ = load_policy(path, algo="ppo")
        kl, entropy, accuracy = measure(model)
        step = model.num_timesteps
        steps.append(step)
        kls.append(kl)
        print(f"| {label} | {step} | {kl:.3f} | {entropy:.3f} | {accuracy:.3f} |")
    ax.plot(steps, kls, marker="o", label=label)
ax.set(xlabel="imagined steps", ylabel="KL(policy ‖ warm start), nats",
       title="distance from the warm start on held-out real frames")
ax.legend()
ax.grid(alpha=0.3)
fig.savefig(args.out, dpi=100, bbox_inches="tight")
print(f"\nwrote {args.out}")

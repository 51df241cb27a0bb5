"""One-off diagnostic behind docs/agents/README.md (Memory Maze): does the model imagine the agent
reaching a target when it is given the real actions that reached one?

For every reward in 6 eval and 20 train episodes of the dataset (at most --rewards-per-episode of
each), prime the model on the real frames up to k steps before it (k = 1, 4, 12), step the real
actions, and read the predicted reward at the step the env paid (OUT/generated_arrivals.json: split,
episode, paid step, k, reward there, max over the generated steps). OUT/generated_arrivals.png shows,
for the first reward of the first three train episodes that have one, the real frames of the last
12 steps (rows 1, 3, 5) above the model's frames from the same actions (rows 2, 4, 6).

Run from the repository root: python docs/agents/memory-maze-model/generated_arrivals.py
(defaults: runs/mm9b-model on data/mm9-bump, written next to this script), or with --checkpoint,
--data and --out for another model.
"""
import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from PIL import Image

import lssvwm_env  # noqa: F401  (registers the LSSVWM ids)
from data_collection.dataset import Dataset

STEPS_BEFORE = (1, 4, 12)
FIGURE_ROWS = 3

parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
parser.add_argument("--checkpoint", default="runs/mm9b-model")
parser.add_argument("--data", default="data/mm9-bump")
parser.add_argument("--out", type=Path, default=Path(__file__).parent)
parser.add_argument("--sampling-steps", type=int, default=None, help="denoising steps per frame (default: the model's)")
parser.add_argument("--rewards-per-episode", type=int, default=None, help="replay at most this many (default: all)")
args = parser.parse_args()

torch.set_num_threads(1)
env = gym.make("LSSVWM-Memory-v0", checkpoint=args.checkpoint, context=32,
               sampling_steps=args.sampling_steps)
dataset = Dataset.open(args.data)


def replay(episode: dict[str, np.ndarray], first: int, last: int) -> tuple[list[np.ndarray], list[float]]:
    """Prime the model on the real frames up to `first`, then step the real actions first..last:
    the generated frames (first + 1 .. last + 1) and the predicted rewards."""
    env.reset(seed=0, options={"frames": episode["frames"][:first + 1][-32:],
                               "actions": episode["actions"][:first + 1][-32:]})
    steps = [env.step(int(a)) for a in episode["actions"][first:last + 1]]
    return [s[0] for s in steps], [float(s[1]) for s in steps]


rows, figure = [], []
for split, count in (("eval", 6), ("train", 20)):
    for entry in dataset.episodes(split)[:count]:
        episode = dataset.load_episode(entry.index)
        real = np.concatenate([episode["frames"], episode["final_frame"][None]])
        for number, paid in enumerate(np.nonzero(episode["rewards"])[0][:args.rewards_per_episode]):
            for k in STEPS_BEFORE:
                first = paid - k + 1
                if first < 1:
                    continue
                generated, rewards = replay(episode, first, paid)
                rows.append((split, entry.index, int(paid), k, rewards[-1], max(rewards)))
                if split == "train" and number == 0 and k == STEPS_BEFORE[-1] and len(figure) < 2 * FIGURE_ROWS:
                    figure += [np.concatenate(list(real[first + 1:paid + 2]), 1), np.concatenate(generated, 1)]
args.out.mkdir(parents=True, exist_ok=True)
(args.out / "generated_arrivals.json").write_text(json.dumps(rows))
image = np.concatenate(figure, 0)
Image.fromarray(image).resize((image.shape[1] * 2, image.shape[0] * 2), Image.NEAREST).save(
    args.out / "generated_arrivals.png")
for split in ("eval", "train"):
    for k in STEPS_BEFORE:
        at_paid = [r[4] for r in rows if r[0] == split and r[3] == k]
        print(f"{split}, {k - 1} frames generated before the paid step: {len(at_paid)} rewards, "
              f"predicted reward there {np.mean(at_paid):.3f}")

"""One-off diagnostic behind docs/agents/README.md (Memory Maze): does the reward head fire on
generated frames when the real actions lead to a reward? For every reward in 6 eval and 20 train
episodes of data/mm9-bump, prime the model on the real frames up to k steps before it, step the real
actions, and read the predicted reward at the paid step.

Run from the repository root: python docs/agents/memory-maze-model/reward_after_generated_frames.py
"""
import json

import gymnasium as gym
import numpy as np
import torch

import lssvwm_env  # noqa: F401  (registers the LSSVWM ids)
from data_collection.dataset import Dataset
torch.set_num_threads(1)
env = gym.make("LSSVWM-Memory-v0", checkpoint="runs/mm9b-model", context=32)
ds = Dataset.open("data/mm9-bump")
rows = []
for split in ("eval", "train"):
    for e in ds.episodes(split)[:20 if split == "train" else 6]:
        ep = ds.load_episode(e.index)
        for R in np.nonzero(ep["rewards"])[0]:
            for k in (1, 4, 12):
                s = R - k + 1
                if s < 1: continue
                env.reset(seed=0, options={"frames": ep["frames"][:s + 1][-32:], "actions": ep["actions"][:s + 1][-32:]})
                rs = [env.step(int(a))[1] for a in ep["actions"][s:R + 1]]
                rows.append((split, e.index, int(R), k, float(rs[-1]), float(max(rs))))
                print(rows[-1], flush=True)
json.dump(rows, open("docs/agents/memory-maze-model/reward_after_generated_frames.json", "w"))
for split in ("eval", "train"):
    for k in (1, 4, 12):
        v = [r[4] for r in rows if r[0] == split and r[3] == k]
        m = [r[5] for r in rows if r[0] == split and r[3] == k]
        print(split, k, len(v), "reward at the paid step", np.mean(v).round(3), "max over the generated steps", np.mean(m).round(3))

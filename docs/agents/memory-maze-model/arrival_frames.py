"""One-off figure behind docs/agents/README.md (Memory Maze): the last 12 steps before rewards paid in
the real env (top rows) and what the model generates from the same actions after being primed on the
real frames up to 12 steps before (bottom rows). Writes arrival_frames.png beside this file.

Run from the repository root: python docs/agents/memory-maze-model/arrival_frames.py
"""
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from PIL import Image

import lssvwm_env  # noqa: F401  (registers the LSSVWM ids)
from data_collection.dataset import Dataset

STEPS = 12
torch.set_num_threads(1)
env = gym.make("LSSVWM-Memory-v0", checkpoint="runs/mm9b-model", context=32)
dataset = Dataset.open("data/mm9-bump")
rows = []
for entry in dataset.episodes("train")[:20]:
    episode = dataset.load_episode(entry.index)
    for paid in np.nonzero(episode["rewards"])[0][:1]:
        start = paid - STEPS + 1
        env.reset(seed=0, options={"frames": episode["frames"][:start + 1][-32:],
                                   "actions": episode["actions"][:start + 1][-32:]})
        generated = [env.step(int(a))[0] for a in episode["actions"][start:paid + 1]]
        frames = np.concatenate([episode["frames"], episode["final_frame"][None]])
        rows += [np.concatenate(list(frames[start + 1:paid + 2]), 1), np.concatenate(generated, 1)]
    if len(rows) == 6:
        break
image = np.concatenate(rows, 0)
Image.fromarray(image).resize((image.shape[1] * 2, image.shape[0] * 2), Image.NEAREST).save(
    Path(__file__).with_name("arrival_frames.png"))

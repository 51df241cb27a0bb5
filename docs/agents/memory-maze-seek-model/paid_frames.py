"""One-off diagnostic behind docs/agents/README.md (Memory Maze, target-seeking data): what does the
model pay the imagination agent for?

Runs the agent trained in imagination (runs/compare-mm9s/imagined) inside runs/mm9s-model for 4
episodes of 500 steps as agents.compare evaluates it (sampled actions, context of 1 real frame,
seed 10000), and writes paid_frames.png: for the first 8 steps where the model paid more than 0.05,
the 4 frames up to the paid one (one row per payment). Prints the payments and the actions taken.

Run from the repository root: python docs/agents/memory-maze-seek-model/paid_frames.py
"""
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from agents.envs import make_imagined_vec_env
from agents.policies import load_policy
from data_collection.envs import MEMORY_MAZE_ACTIONS

HERE = Path(__file__).parent
EPISODES, STEPS, ROWS, FRAMES_PER_ROW, PAID = 4, 500, 8, 4, 0.05

torch.set_num_threads(2)
policy, _ = load_policy("runs/compare-mm9s/imagined")
venv = make_imagined_vec_env("LSSVWM-Memory-v0", EPISODES, checkpoint="runs/mm9s-model", context=1, max_episode_steps=STEPS)
venv.seed(10000)
torch.manual_seed(10000)
obs = venv.reset()
frames, rewards, actions = [obs.copy()], [], []
for _ in range(STEPS):
    action, _ = policy.predict(obs, deterministic=False)
    obs, reward, dones, infos = venv.step(action)
    frames.append(np.stack([info["terminal_observation"] if d else o for o, d, info in zip(obs, dones, infos)]))
    rewards.append(reward)
    actions.append(action)
frames_arr, rewards_arr, actions_arr = np.stack(frames), np.stack(rewards), np.stack(actions)  # (T+1, N, ...), (T, N)

paid = np.argwhere(rewards_arr > PAID)  # (step, env), reward for the action at step -> frame step + 1
print(f"{len(paid)} payments above {PAID} in {EPISODES} x {STEPS} imagined steps, "
      f"total {rewards_arr.sum():.3f}, per episode {rewards_arr.sum(0).round(3).tolist()}")
counts = np.bincount(actions_arr.ravel(), minlength=len(MEMORY_MAZE_ACTIONS)) / actions_arr.size
print("actions: " + ", ".join(f"{name} {share:.2f}" for name, share in zip(MEMORY_MAZE_ACTIONS, counts)))
for step, env in paid[:ROWS]:
    print(f"env {env} step {step}: reward {rewards_arr[step, env]:.3f} after {MEMORY_MAZE_ACTIONS[actions_arr[step, env]]}")
rows = [np.concatenate(list(frames_arr[max(step + 2 - FRAMES_PER_ROW, 0):step + 2, env]), 1)
        for step, env in paid[:ROWS] if step + 2 >= FRAMES_PER_ROW]
if rows:
    image = np.concatenate(rows, 0)
    Image.fromarray(image).resize((image.shape[1] * 2, image.shape[0] * 2), Image.NEAREST).save(HERE / "paid_frames.png")

"""Held-out quality of checkpoints sampled in a given number of denoising steps: next frame from the
real past, rollouts from actions alone, and how sharp the rollouts are against the real frames
(training/distill.py:held_out_metrics, the figures `lssvwm distill` writes in a card).

    python docs/measured/sampler_steps.py --data data/mm9-300k CHECKPOINT:STEPS [CHECKPOINT:STEPS ...]

Prints one JSON line per CHECKPOINT:STEPS.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.training.distill import DistillConfig, held_out_episodes, held_out_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samplers", nargs="+", help="CHECKPOINT:STEPS")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = DistillConfig(eval_episodes=args.episodes)
    episodes = held_out_episodes(args.data, config)
    for sampler in args.samplers:
        checkpoint, steps = sampler.rsplit(":", 1)
        metrics = held_out_metrics(load_world_model(checkpoint), episodes, int(steps), config)
        print(json.dumps({"checkpoint": checkpoint, "steps": int(steps), "episodes": len(episodes), **metrics}),
              flush=True)


if __name__ == "__main__":
    main()

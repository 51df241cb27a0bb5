"""Next-frame PSNR of checkpoints at every frame of held-out episodes, each frame generated from the
real frames before it, beside the previous real frame repeated (training/evaluate.py:one_step_metrics).

    python docs/dynamics-recipe/one_step.py --data data/mm9-300k --frames 300 --episodes 8 RUN [RUN ...]

Prints one JSON line per checkpoint.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from data_collection.dataset import Dataset
from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.training.evaluate import one_step_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="eval")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dataset = Dataset.open(args.data)
    entries = dataset.episodes(args.split)[:args.episodes]
    episodes = [dataset.load_episode(e.index) for e in entries]
    for checkpoint in args.checkpoints:
        model = load_world_model(checkpoint)
        generator = torch.Generator().manual_seed(args.seed)
        metrics = one_step_metrics(model, episodes, args.frames, generator)
        print(json.dumps({"checkpoint": str(checkpoint), "episodes": [e.index for e in entries],
                          "frames": args.frames, **metrics}), flush=True)


if __name__ == "__main__":
    main()

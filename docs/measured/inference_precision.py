"""Inference in bf16 autocast against fp32 (issue 36), the shipped default on this machine's CPU:
next-frame PSNR from the real past on held-out frames, and imagined batch steps per second at 128 envs
(the full decoder; the model's own imagine loop, as the env calls it).

    python docs/measured/inference_precision.py --data data/mm9-student

Where the CPU computes bf16 natively, `load_world_model` keeps a bf16 checkpoint's autocast; elsewhere
it runs in fp32 (checkpoint.py); this script sets the flag both ways on one machine."""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.evaluation.metrics import psnr
from lssvwm_env.models.world_model import native_bf16
from lssvwm_env.training.data import input_actions, load_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a Memory Maze 9x9 dataset; its eval split is scored")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--envs", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    episodes = load_split(args.data, "eval")[:args.episodes]
    frames = torch.from_numpy(np.stack([ep["frames"][:args.frames] for ep in episodes]))
    actions = torch.from_numpy(np.stack([input_actions(ep["actions"][:args.frames]) for ep in episodes]))
    print(f"cpu: {platform.processor() or platform.machine()}; native bf16: {native_bf16('cpu')}")
    for bf16 in (True, False):
        model = load_world_model(None)
        model.config.bf16 = bf16
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            latents = model.encode(frames)
            predicted = model.decode(model.predict_each_next(model.initial_state(len(episodes)), latents, actions,
                                                             generator=generator))
            quality = psnr(predicted[:, 1:], frames[:, 1:]).mean().item()
            previous = psnr(frames[:, :-1], frames[:, 1:]).mean().item()
            index = torch.arange(args.envs) % len(episodes)
            _, _, state = model.step_latents(model.initial_state(args.envs), latents[index, :8], actions[index, :8])
            action = torch.randint(0, model.config.backbone.action.n, (args.envs,), generator=generator)
            for _ in range(2):
                state = model.imagine(state, action, generator)[3]
            start = time.perf_counter()
            for _ in range(8):
                state = model.imagine(state, action, generator)[3]
            seconds = (time.perf_counter() - start) / 8
        print(f"bf16={bf16}: next frame {quality:.3f} dB (previous frame {previous:.3f}), "
              f"{args.envs} envs {args.envs / seconds:.1f} imagined steps/s")


if __name__ == "__main__":
    main()

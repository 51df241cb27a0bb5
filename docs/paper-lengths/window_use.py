"""How much of a training step's window is real frames in the loss? Issue 35: the lanes of
`lssvwm train` (training/data.py WindowLanes) walked over episodes of a given length, with the
default diffusion config's noise and clean-prefix scheme (training/losses.py masks padding out of
the loss, and the clean prefix is never in it).

    python docs/paper-lengths/window_use.py --episode-length 1001 --shapes 400x1 800x1 100x4 30x32

Memory Maze episodes of 1,000 steps are 1,001 frames with the final observation. Prints, per window x
batch: the share of window frames that are real (not padding), real frames in the loss per step, and
the share of steps with none.
"""

import argparse

import torch

from lssvwm_env.models.diffusion import DiffusionConfig, sample_training_noise
from lssvwm_env.training.data import WindowLanes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episode-length", type=int, default=1001)
    parser.add_argument("--episodes", type=int, default=270)
    parser.add_argument("--shapes", nargs="+", default=["400x1", "800x1", "100x4", "30x32"], help="WINDOWxBATCH")
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    config = DiffusionConfig()
    print("| window x batch | real frames of the window | real frames in the loss per step | steps with none |")
    print("|---|---:|---:|---:|")
    for shape in args.shapes:
        window, batch = (int(x) for x in shape.split("x"))
        lanes = WindowLanes([args.episode_length] * args.episodes, batch, window, reset_prob=0.0)
        generator = torch.Generator().manual_seed(0)
        real = in_loss_total = empty = 0
        for _ in range(args.steps):
            windows, _ = lanes.next(generator)
            valid = torch.stack([torch.arange(window) < args.episode_length - start for _, start in windows])
            _, in_loss = sample_training_noise(batch, window, config, "cpu", generator=generator)
            in_loss &= valid
            real += int(valid.sum())
            in_loss_total += int(in_loss.sum())
            empty += int(in_loss.sum() == 0)
        print(f"| {window} x {batch} | {real / (args.steps * batch * window):.1%} | "
              f"{in_loss_total / args.steps:.1f} | {empty / args.steps:.1%} |")


if __name__ == "__main__":
    main()

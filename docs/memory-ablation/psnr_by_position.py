"""Next-frame PSNR from the real past by position in the episode: does a model hold up over more
history than its training windows had? (Full causal attention trained on short windows does not.)

    python docs/memory-ablation/psnr_by_position.py RUN DATA EPISODES
    python docs/memory-ablation/psnr_by_position.py runs/ablation-mg4r/runs/causal_full/seed1 data/mg4r-retrace 6

Prints the mean PSNR of frames 1-30, 31-100, 101-200 and 201 on, over the dataset's first EPISODES
held-out episodes, every frame predicted from the real frames before it (next_frame_memory.py).
"""

import sys

import numpy as np
import torch

from data_collection.dataset import Dataset
from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.evaluation.next_frame_memory import next_frame_psnr

SPANS = [(0, 30), (30, 100), (100, 200), (200, None)]  # indices into the predicted frames 1..T-1


def main() -> None:
    torch.set_num_threads(1)
    run, data, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    dataset = Dataset.open(data)
    episodes = [dataset.load_episode(e.index) for e in dataset.episodes("eval")][:count]
    model = load_world_model(run)
    generator = torch.Generator().manual_seed(0)
    scores = [next_frame_psnr(model, ep, generator) for ep in episodes]
    length = min(len(s) for s in scores)
    table = np.stack([s[:length] for s in scores])
    print(run, "  ".join(f"frames {lo + 1}-{hi if hi else length}: {table[:, lo:hi].mean():.2f} dB"
                         for lo, hi in SPANS if lo < length))


if __name__ == "__main__":
    main()

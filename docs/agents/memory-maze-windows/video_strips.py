"""One-off figure behind docs/agents/README.md: every 6th frame of the first 96 of each video, one
row per video (agents.evaluate --video writes them at 4x scale, frames framed in colour by the env).

    python docs/agents/memory-maze-windows/video_strips.py --out docs/agents/memory-maze-windows/prior/episode_strips.png \
        docs/agents/memory-maze-windows/prior/episode_in_model.mp4 docs/agents/memory-maze-windows/prior/episode_real.mp4
"""
import argparse
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image

parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
parser.add_argument("videos", nargs="+", type=Path)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--every", type=int, default=6)
parser.add_argument("--frames", type=int, default=96)
args = parser.parse_args()

rows = []
for video in args.videos:
    frames = imageio.mimread(video, memtest=False)[:args.frames:args.every]
    rows.append(np.concatenate([np.asarray(Image.fromarray(f).resize((128, 128))) for f in frames], 1))
Image.fromarray(np.concatenate(rows, 0)).save(args.out)
print(f"wrote {args.out}")

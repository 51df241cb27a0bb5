"""How far back was what the agent sees now last seen? Shares of a dataset's frames by that gap, and
how many training windows of a given length hold a revisit the model could learn recall from
(issue 35, step 1).

    python docs/paper-lengths/revisit_shares.py DATA [DATA ...] [--window 400] [--min-gap 30]

A frame's gap is the number of frames since the last frame of the previous visit to its view (same
maze cell, heading within 45 degrees: evaluation/revisits.py); a frame of a view never seen before in
its episode has none. A window of `--window` frames (cut from frame 0 of each episode, as many as fit
end to end) *holds a revisit* when one of its frames was last seen inside the same window at least
`--min-gap` frames before: beyond the local attention (10 frames) and the default's SSM half-lives
(under 5 frames), what only a state that remembers can predict.
"""

from __future__ import annotations

import argparse

import numpy as np

from data_collection.dataset import Dataset
from lssvwm_env.evaluation.revisits import revisit_gaps

BINS = [(1, 30), (30, 100), (100, 400), (400, np.inf)]


def episode_gaps(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """(T,) gap of every frame of an episode since its view was last seen; inf if never before."""
    if "agent_pos" not in arrays or "agent_dir" not in arrays:
        raise SystemExit("the dataset records no pose (agent_pos, agent_dir): revisits cannot be found")
    length = len(arrays["agent_pos"])
    return revisit_gaps(arrays["agent_pos"], arrays["agent_dir"], 0, 0, length).gap


def window_revisits(gaps: np.ndarray, window: int, min_gap: int) -> list[int]:
    """Per window of `window` frames cut end to end from frame 0: its frames whose last visit lies
    inside the window and at least `min_gap` frames back."""
    counts = []
    for start in range(0, len(gaps) - window + 1, window):
        offset = np.arange(window)  # frame i of the window can look back at most i frames inside it
        inside = gaps[start:start + window]
        counts.append(int(((inside >= min_gap) & (inside <= offset)).sum()))
    return counts


def describe(path: str, window: int, min_gap: int) -> str:
    dataset = Dataset.open(path)
    all_gaps, counts = [], []
    for entry in dataset.episodes():
        gaps = episode_gaps(dataset.load_episode(entry.index))
        all_gaps.append(gaps)
        counts.extend(window_revisits(gaps, window, min_gap))
    gaps = np.concatenate(all_gaps)
    shares = [f"{lo}-{hi - 1}: " if np.isfinite(hi) else f"{lo}+: " for lo, hi in BINS]
    shares = [f"{name}{((gaps >= lo) & (gaps < hi)).mean():.1%}" for name, (lo, hi) in zip(shares, BINS)]
    counts = np.array(counts)
    return (f"{path}: {len(all_gaps)} episodes, {len(gaps)} frames; last seen {', '.join(shares)}; "
            f"never before: {np.isinf(gaps).mean():.1%}\n"
            f"  windows of {window}: {len(counts)}, holding a revisit of >= {min_gap} frames inside them: "
            f"{(counts > 0).mean():.1%}; such frames per window: mean {counts.mean():.1f}, "
            f"median {np.median(counts):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="+")
    parser.add_argument("--window", type=int, default=400)
    parser.add_argument("--min-gap", type=int, default=30)
    args = parser.parse_args()
    for path in args.data:
        print(describe(path, args.window, args.min_gap))


if __name__ == "__main__":
    main()

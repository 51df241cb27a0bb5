"""Does a model use what it saw beyond its attention window? Every frame of held-out episodes predicted
from its real past (no rollout, so no drift) twice: from the whole past, and from a past cut to the
last 30-79 frames (the episode scored in spans of 50 frames, each primed afresh on the 30 frames
before it). Frames are binned by the frames since their view (cell, heading within 45 degrees) was
last seen. Where that is more than 80 frames back only the whole past holds the view: a model that
remembers gains there from the whole past more than it gains on views never seen; a model without
memory gains the same (about nothing) in both. Issue 35.

    python docs/paper-lengths/memory_probe.py --data data/mm9-300k --episodes 6 CHECKPOINT [CHECKPOINT ...]

Beside each bin, on the same frames: the previous real frame repeated, and the real frame from the
nearest pose more than 10 frames back (what a perfect memory beyond the attention window could give,
without dynamics). Prints one JSON line per checkpoint, then a markdown table.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from data_collection.dataset import Dataset
from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.evaluation.metrics import psnr
from lssvwm_env.evaluation.next_frame_memory import next_frame_psnr
from lssvwm_env.evaluation.revisits import revisit_gaps
from lssvwm_env.evaluation.yardsticks import nearest_pose_index

WARMUP, SPAN = 30, 50  # the cut past: each span of 50 frames primed on the 30 real frames before it
BINS = {"last seen 1-10 frames back": (1, 10), "11-80": (11, WARMUP + SPAN),
        "81+ (only the whole past holds it)": (WARMUP + SPAN + 1, np.inf), "never seen": (np.inf, np.inf)}


def cut_past_psnr(model, episode: dict[str, np.ndarray], generator: torch.Generator) -> np.ndarray:
    """(T - 1,) PSNR of frames 1..T-1, each predicted from at most the WARMUP + SPAN - 1 real frames
    before it: spans of SPAN frames, each scored after priming afresh on the WARMUP frames before it."""
    frames, actions = episode["frames"], episode["actions"]
    scores = []
    for start in range(0, len(frames), SPAN):
        first = max(0, start - WARMUP)
        part = {"frames": frames[first:start + SPAN], "actions": actions[first:start + SPAN]}
        part_scores = next_frame_psnr(model, part, generator)  # frames first+1 .. of the part
        scores.append(part_scores[max(start - first - 1, 0):])
    return np.concatenate(scores)[:len(frames) - 1]


def nearest_pose_psnr(episode: dict[str, np.ndarray], back: int) -> np.ndarray:
    """(T - 1,) PSNR of the real frame, among those more than `back` frames before, from the pose
    nearest each frame's own (yardsticks.nearest_pose_index); NaN where there are none."""
    frames, pos, heading = torch.from_numpy(episode["frames"]), episode["agent_pos"], episode["agent_dir"]
    out = np.full(len(frames) - 1, np.nan)
    for t in range(back + 1, len(frames)):
        source = nearest_pose_index(pos[:t - back], heading[:t - back], pos[t:t + 1], heading[t:t + 1])[0]
        out[t - 1] = float(psnr(frames[source], frames[t]).clamp(max=100))
    return out


def probe(model, episodes: list[dict[str, np.ndarray]], seed: int = 0) -> dict:
    generator = torch.Generator(device=model.device).manual_seed(seed)
    columns = {"whole_past": [], "cut_past": [], "previous_frame": [], "nearest_pose": [], "gap": [], "episode": []}
    for number, ep in enumerate(episodes):
        columns["episode"].append(np.full(len(ep["frames"]) - 1, number))
        columns["whole_past"].append(next_frame_psnr(model, ep, generator))
        columns["cut_past"].append(cut_past_psnr(model, ep, generator))
        real = torch.from_numpy(ep["frames"])
        columns["previous_frame"].append(psnr(real[:-1], real[1:]).clamp(max=100).double().numpy())
        columns["nearest_pose"].append(nearest_pose_psnr(ep, model.config.backbone.attention.window))
        columns["gap"].append(revisit_gaps(ep["agent_pos"], ep["agent_dir"], 0, 1, len(ep["frames"])).gap)
    data = {name: np.concatenate(values) for name, values in columns.items()}
    out = {}
    for name, (low, high) in BINS.items():
        gap = data["gap"]
        mask = np.isinf(gap) if np.isinf(low) else np.isfinite(gap) & (gap >= low) & (gap <= high)
        out[name] = {"frames": int(mask.sum()),
                     **{key: float(np.nanmean(data[key][mask])) for key in columns if key not in ("gap", "episode")}}
        out[name]["whole_minus_cut"] = out[name]["whole_past"] - out[name]["cut_past"]
        # Spread: the standard error of the per-episode means of whole - cut.
        difference = data["whole_past"] - data["cut_past"]
        per_episode = [difference[mask & (data["episode"] == e)].mean() for e in range(len(episodes))
                       if (mask & (data["episode"] == e)).any()]
        out[name]["whole_minus_cut_se"] = (float(np.std(per_episode, ddof=1) / np.sqrt(len(per_episode)))
                                           if len(per_episode) > 1 else None)
    return out


def table(rows: list[tuple[str, dict]]) -> str:
    lines = ["| checkpoint | view last seen | frames | whole past (dB) | cut past | whole - cut (± s.e. over "
             "episodes) | previous frame | nearest pose > 10 back |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for checkpoint, result in rows:
        for name, b in result.items():
            spread = f" ± {b['whole_minus_cut_se']:.2f}" if b["whole_minus_cut_se"] is not None else ""
            lines.append(f"| {checkpoint} | {name} | {b['frames']} | {b['whole_past']:.2f} | {b['cut_past']:.2f} | "
                         f"{b['whole_minus_cut']:+.2f}{spread} | {b['previous_frame']:.2f} | {b['nearest_pose']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", required=True)
    parser.add_argument("--episodes", type=int, default=6, help="held-out episodes scored (eval split)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = Dataset.open(args.data)
    episodes = [dataset.load_episode(e.index) for e in dataset.episodes("eval")][:args.episodes]
    rows = []
    for checkpoint in args.checkpoints:
        result = probe(load_world_model(checkpoint), episodes)
        print(json.dumps({"checkpoint": checkpoint, "episodes": len(episodes), "bins": result}), flush=True)
        rows.append((checkpoint, result))
    print(table(rows))


if __name__ == "__main__":
    main()

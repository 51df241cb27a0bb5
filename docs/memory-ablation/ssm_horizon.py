"""How long can a trained model's SSM remember? Per layer and head, the state's retention per frame
on held-out episodes, as a half-life in frames.

The measure is lssvwm_env/evaluation/ssm_timescales.py's; here on the committed pass over held-out
episodes' real frames.

    python docs/memory-ablation/ssm_horizon.py RUN DATA [EPISODES]
    python docs/memory-ablation/ssm_horizon.py runs/ablation-mg4r/runs/ours/seed0 data/mg4r-retrace 4

Prints one line per layer (block size, tokens per block, half-lives of its heads: median over frames
and blocks, min, quartiles, max) and a JSON summary.
"""

import json
import sys

import numpy as np
import torch

from data_collection.dataset import Dataset
from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.evaluation.ssm_timescales import RetentionRecorder
from lssvwm_env.training.data import input_actions


def main() -> None:
    torch.set_num_threads(1)
    run, data = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    model = load_world_model(run)
    recorder = RetentionRecorder(model)
    if not recorder.scans:
        sys.exit(f"{run}: this model has no block-wise SSM scan (variant {model.config.variant!r})")
    dataset = Dataset.open(data)
    episodes = [dataset.load_episode(e.index) for e in dataset.episodes("eval")][:count]
    with torch.no_grad(), recorder:
        for ep in episodes:  # the committed pass over real frames (observe), as in the probe's past
            frames = torch.from_numpy(ep["frames"]).unsqueeze(0)
            actions = torch.from_numpy(input_actions(ep["actions"])).unsqueeze(0)
            model.observe(model.initial_state(1), frames, actions)

    summary = []
    for i, (scan, half_life) in enumerate(zip(recorder.scans, recorder.half_lives())):
        q = np.quantile(half_life, [0, 0.25, 0.5, 0.75, 1])
        summary.append({"layer": i, "block": list(scan.block), "tokens_per_block": scan.block[0] * scan.block[1],
                        "half_life_frames": [round(float(h), 2) for h in sorted(half_life)]})
        print(f"layer {i} block {scan.block}: half-life per head (frames) min {q[0]:.2f} q1 {q[1]:.2f} "
              f"median {q[2]:.2f} q3 {q[3]:.2f} max {q[4]:.2f}; heads over 30 frames: "
              f"{int((half_life > 30).sum())}/{len(half_life)}")
    print(json.dumps({"run": run, "episodes": count, "layers": summary}))


if __name__ == "__main__":
    main()

"""How long can a trained model's SSM remember? Per layer and head, the state's retention per frame
on held-out episodes, as a half-life in frames.

A block-wise scan steps its SSM once per token of a block, so in one frame a head's state is scaled
by exp(A * sum of dt over the block's tokens) (Mamba-2: dt = softplus(in_proj(x) + dt_bias), A < 0; Mamba2Mixer.step_sizes).
A view seen G frames ago has been scaled by that G times; with a half-life well under the gaps that
revisits come back after, no view survives to be recalled, whatever the rest of the model learnt.

    python docs/memory-ablation/ssm_horizon.py RUN DATA [EPISODES]
    python docs/memory-ablation/ssm_horizon.py runs/ablation-mg4r/runs/ours/seed0 data/mg4r-retrace 4

Prints one line per layer (block size, tokens per block, half-lives of its heads: median over frames
and blocks, min, quartiles, max) and a JSON summary.
"""

import json
import math
import sys

import numpy as np
import torch

from data_collection.dataset import Dataset
from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.models.blockwise_scan import BlockwiseScan
from lssvwm_env.training.data import input_actions


def main() -> None:
    torch.set_num_threads(1)
    run, data = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    model = load_world_model(run)
    scans = [m for m in model.backbone.modules() if isinstance(m, BlockwiseScan)]
    if not scans:
        sys.exit(f"{run}: this model has no block-wise SSM scan (variant {model.config.variant!r})")
    log_retention: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(scans))}

    def capture(index: int, scan: BlockwiseScan):
        mixer = scan.mixer
        per_frame = scan.block[0] * scan.block[1]

        def hook(_module, _inputs, output: torch.Tensor) -> None:
            # in_proj's last outputs are dt's (ssm_mixer.py); dt: (sequences, frames * per_frame, heads)
            dt, a = mixer.step_sizes(output[..., -mixer.n_heads:])
            frames = dt.size(1) // per_frame
            if frames * per_frame != dt.size(1):  # a denoising pass over a single frame
                return
            per_frame_log = (dt.reshape(dt.size(0), frames, per_frame, -1).sum(2) * a)  # (seq, frames, heads)
            log_retention[index].append(per_frame_log.reshape(-1, mixer.n_heads))
        return mixer.in_proj.register_forward_hook(hook)

    handles = [capture(i, s) for i, s in enumerate(scans)]
    dataset = Dataset.open(data)
    episodes = [dataset.load_episode(e.index) for e in dataset.episodes("eval")][:count]
    with torch.no_grad():
        for ep in episodes:  # the committed pass over real frames (observe), as in the probe's past
            frames = torch.from_numpy(ep["frames"]).unsqueeze(0)
            actions = torch.from_numpy(input_actions(ep["actions"])).unsqueeze(0)
            model.observe(model.initial_state(1), frames, actions)
    for h in handles:
        h.remove()

    summary = []
    for i, scan in enumerate(scans):
        logs = torch.cat(log_retention[i])  # (samples, heads), log of the per-frame scale
        half_life = (math.log(2) / (-logs).clamp(min=1e-9)).median(0).values.numpy()  # per head
        q = np.quantile(half_life, [0, 0.25, 0.5, 0.75, 1])
        summary.append({"layer": i, "block": list(scan.block), "tokens_per_block": scan.block[0] * scan.block[1],
                        "half_life_frames": [round(float(h), 2) for h in sorted(half_life)]})
        print(f"layer {i} block {scan.block}: half-life per head (frames) min {q[0]:.2f} q1 {q[1]:.2f} "
              f"median {q[2]:.2f} q3 {q[3]:.2f} max {q[4]:.2f}; heads over 30 frames: "
              f"{int((half_life > 30).sum())}/{len(half_life)}")
    print(json.dumps({"run": run, "episodes": count, "layers": summary}))


if __name__ == "__main__":
    main()

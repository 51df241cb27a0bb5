"""How long a model's SSM heads keep what they hold, in frames of video.

A block-wise scan steps its SSM once per token of a block, so in one frame a head's state is scaled
by exp(A * sum of dt over the block's tokens) (Mamba-2: dt = softplus(in_proj(x) + dt_bias), A < 0;
Mamba2Mixer.step_sizes). A view seen G frames ago has been scaled by that G times: with half-lives
well under the gaps revisits come back after, no view survives to be recalled.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lssvwm_env.models.blockwise_scan import BlockwiseScan


def blockwise_scans(model) -> list[BlockwiseScan]:
    """The model's block-wise scan layers, in order (none for attention-only variants)."""
    return [m for m in model.backbone.modules() if isinstance(m, BlockwiseScan)]


class RetentionRecorder:
    """While active (`with RetentionRecorder(model) as recorder:`), records every layer's per-frame log
    retention (log of the state's scale over a frame, per head) in every scan (BlockwiseScan hands its
    mixer whole frames, block by block). It cannot tell a denoising pass from a committed one, so run inside the block only the passes to
    measure (`WorldModel.observe`: the committed pass over real frames)."""

    def __init__(self, model) -> None:
        self.scans = blockwise_scans(model)
        self.log_retention: list[list[torch.Tensor]] = [[] for _ in self.scans]
        self.handles = []

    def __enter__(self) -> "RetentionRecorder":
        self.handles = [scan.mixer.in_proj.register_forward_hook(self.hook(i, scan))
                        for i, scan in enumerate(self.scans)]
        return self

    def __exit__(self, *_exc) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def hook(self, index: int, scan: BlockwiseScan):
        mixer = scan.mixer
        per_frame = scan.block[0] * scan.block[1]

        def record(_module, _inputs, output: torch.Tensor) -> None:
            # in_proj's last outputs are dt's (ssm_mixer.py); dt: (sequences, frames * per_frame, heads)
            with torch.no_grad():
                dt, a = mixer.step_sizes(output[..., -mixer.n_heads:])
                frames = dt.size(1) // per_frame
                per_frame_log = dt.reshape(dt.size(0), frames, per_frame, -1).sum(2) * a  # (seq, frames, heads)
                self.log_retention[index].append(per_frame_log.reshape(-1, mixer.n_heads))
        return record

    def half_lives(self) -> list[np.ndarray]:
        """Per layer, (heads,): each head's half-life in frames, the median over frames and blocks."""
        out = []
        for logs in self.log_retention:
            if not logs:
                raise ValueError("no scan was recorded: run the passes to measure inside the block")
            logs_all = torch.cat(logs)
            out.append((math.log(2) / (-logs_all).clamp(min=1e-9)).median(0).values.numpy())
        return out

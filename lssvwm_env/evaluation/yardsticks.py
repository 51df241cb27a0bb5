"""Trivial predictors scored on the same frames as the model (docs/design.md, "Evaluation protocol"). PSNR
rewards blur, so a model's figure means little alone: one that does not beat these has not learnt the
world yet, whatever its PSNR.

- last_frame: the last context frame, shown unchanged for every generated frame.
- context_mean: the per-pixel mean of the context frames, shown unchanged.
- nearest_pose: for each generated frame, the context frame taken where the agent stood and looked
  most alike (position distance in cells plus heading difference in quarter turns): what pure recall
  of the context could give, without any dynamics. Needs the agent's pose.
"""

from __future__ import annotations

import numpy as np
import torch

YARDSTICKS = ("last_frame", "context_mean", "nearest_pose")
QUARTER_TURN = np.pi / 2  # a heading difference of 90 degrees weighs as much as one cell of distance


def nearest_pose_index(context_pos: np.ndarray, context_dir: np.ndarray, target_pos: np.ndarray,
                       target_dir: np.ndarray) -> np.ndarray:
    """context_pos, context_dir: (Lc, 2); target_pos, target_dir: (Lg, 2) (dir: heading vectors).
    Returns (Lg,) the index of the context frame whose pose is nearest each target's; ties go to the
    latest frame."""
    distance = np.linalg.norm(target_pos[:, None, :] - context_pos[None, :, :], axis=-1)  # (Lg, Lc)
    context_angle = np.arctan2(context_dir[:, 1], context_dir[:, 0])
    target_angle = np.arctan2(target_dir[:, 1], target_dir[:, 0])
    turn = np.abs((target_angle[:, None] - context_angle[None, :] + np.pi) % (2 * np.pi) - np.pi)
    score = distance + turn / QUARTER_TURN
    return len(context_pos) - 1 - np.argmin(score[:, ::-1], axis=1)


def yardstick_frames(frames: torch.Tensor, context: int, poses: list[tuple[np.ndarray, np.ndarray]] | None
                     ) -> dict[str, torch.Tensor]:
    """frames: (E, Lc + Lg, H, W, 3) uint8, real; poses: per episode (agent_pos, agent_dir) over the same
    frames, or None. Returns name -> (E, Lg, H, W, 3) uint8 predictions of frames [Lc, Lc + Lg)."""
    past, generate = frames[:, :context], frames.size(1) - context
    shape = (frames.size(0), generate, *frames.shape[2:])
    out = {
        "last_frame": past[:, -1:].expand(shape),
        "context_mean": past.float().mean(dim=1, keepdim=True).round().to(torch.uint8).expand(shape),
    }
    if poses is not None:
        picks = [nearest_pose_index(pos[:context], direction[:context], pos[context:context + generate],
                                    direction[context:context + generate]) for pos, direction in poses]
        out["nearest_pose"] = torch.stack([past[e, torch.from_numpy(p)] for e, p in enumerate(picks)])
    return out

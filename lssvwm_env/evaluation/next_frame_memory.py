"""Memory without the rollout: every frame of held-out episodes predicted from the real frames before
it (WorldModel.predict_each_next), scored by PSNR and binned by the gap since its view was last seen,
relative to the attention window.

The paper's benchmark generates hundreds of frames from actions alone; a small model's own errors
compound there long before memory can show (docs/memory-ablation/). Here the past is always real, so
what the model adds where a view returns after more frames than its attention reaches can only come
from what its state carried: a model with memory predicts such revisits better than local attention
alone, at the same next-frame skill on views never seen before.

Most frames continue the view of the frame before (a step forward shifts it by a cell, a bump
repeats it), and the previous frame predicts most of them. `turn_bins` keep only the frames reached by
a turn (the heading changed by more than the tolerance): the frame before looked another way, so on a
revisit beyond the window only a memory of the view can draw most of it.
"""

from __future__ import annotations

import math

import numpy as np

from lssvwm_env.evaluation.revisits import revisit_gaps


def window_bins(window: int) -> dict[str, tuple[float, float]]:
    """Revisits by the frames since the view was last seen, relative to the attention window:
    within it (attention can see the view), up to 3x, beyond 3x (only a memory can)."""
    return {"revisit_within_window": (1, window), "revisit_window_to_3x_window": (window + 1, 3 * window),
            "revisit_beyond_3x_window": (3 * window + 1, math.inf)}


def bin_masks(gap: np.ndarray, window: int) -> dict[str, np.ndarray]:
    """Masks over frames with these gaps (inf: never seen) for each bin, `novel` and `all`."""
    seen = np.isfinite(gap)
    masks = {name: seen & (gap >= low) & (gap <= high) for name, (low, high) in window_bins(window).items()}
    masks["novel"] = ~seen
    masks["all"] = np.ones_like(gap, dtype=bool)
    return masks


def turns(agent_dir: np.ndarray, heading_tolerance_deg: float) -> np.ndarray:
    """(T - 1,) bool for frames 1..T-1: the heading turned by more than the tolerance since the frame
    before. agent_dir: (T, 2) facing direction (any length)."""
    unit = agent_dir / np.maximum(np.linalg.norm(agent_dir, axis=1, keepdims=True), 1e-12)
    return (unit[1:] * unit[:-1]).sum(axis=1) < math.cos(math.radians(heading_tolerance_deg)) - 1e-9


def next_frame_psnr(model, episode: dict[str, np.ndarray], generator) -> np.ndarray:
    """(T - 1,) PSNR of frames 1..T-1 of one episode, each predicted from the real frames before it
    (WorldModel.predict_each_next)."""
    import torch

    from lssvwm_env.evaluation.metrics import psnr
    from lssvwm_env.training.data import input_actions

    with torch.no_grad():
        real = torch.from_numpy(episode["frames"]).unsqueeze(0)
        actions = torch.from_numpy(input_actions(episode["actions"])).unsqueeze(0).to(model.device)
        predicted = model.predict_each_next(model.initial_state(1), model.encode(real), actions, generator=generator)
        frames = model.decode(predicted)[0].cpu()
    return psnr(frames[1:], real[0, 1:]).clamp(max=100).double().numpy()


def next_frame_memory(model, episodes: list[dict[str, np.ndarray]], window: int, heading_tolerance_deg: float = 45.0,
                      seed: int = 0) -> dict:
    """Per bin: frames, the model's next-frame PSNR, and the previous real frame repeated (yardstick);
    over every frame (`bins`) and over frames reached by a turn only (`turn_bins`).
    episodes: loaded dataset episodes with agent_pos and agent_dir."""
    import torch

    from lssvwm_env.evaluation.metrics import psnr

    generator = torch.Generator(device=model.device).manual_seed(seed)
    scores, previous, gaps, turned = [], [], [], []
    for ep in episodes:
        scores.append(next_frame_psnr(model, ep, generator))
        real = torch.from_numpy(ep["frames"])
        previous.append(psnr(real[:-1], real[1:]).clamp(max=100).double().numpy())
        gaps.append(revisit_gaps(ep["agent_pos"], ep["agent_dir"], 0, 1, len(ep["frames"]),
                                 heading_tolerance_deg).gap)
        turned.append(turns(ep["agent_dir"], heading_tolerance_deg))
    score, prev, gap = np.concatenate(scores), np.concatenate(previous), np.concatenate(gaps)
    turn = np.concatenate(turned)

    def cells(only: np.ndarray) -> dict:
        out = {}
        for name, mask in bin_masks(gap, window).items():
            chosen = mask & only
            out[name] = {"frames": int(chosen.sum()),
                         "psnr": float(score[chosen].mean()) if chosen.any() else None,
                         "previous_frame_psnr": float(prev[chosen].mean()) if chosen.any() else None}
        return out

    return {"window": window, "episodes": len(episodes), "bins": cells(np.ones_like(turn)),
            "turn_bins": cells(turn)}

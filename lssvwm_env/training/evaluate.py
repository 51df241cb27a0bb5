"""Held-out metrics computed during training: the autoencoder's reconstruction ceiling, next-frame
PSNR (real context, one generated frame) and rollout PSNR (real context, then frames from actions
alone), beside the yardsticks on the same frames (the last context frame repeated, the mean of the
context frames), with a ground truth | generated video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lssvwm_env.evaluation.metrics import psnr, sharpness, ssim
from lssvwm_env.evaluation.yardsticks import yardstick_frames
from lssvwm_env.training.data import input_actions, sample_frames


@torch.no_grad()
def autoencoder_metrics(model, eval_episodes, n_frames: int) -> dict[str, float]:
    frames = sample_frames(eval_episodes, n_frames, torch.Generator().manual_seed(0)).to(model.device)
    recon = torch.cat([model.autoencoder.decode(model.autoencoder.encode(frames[i:i + 128]))
                       for i in range(0, len(frames), 128)])
    return {"ae_psnr": psnr(recon, frames).mean().item(), "ae_ssim": ssim(recon, frames).mean().item()}


@torch.no_grad()
def dynamics_metrics(model, eval_episodes, context: int, rollout: int, n_episodes: int,
                     seed: int = 0, one_step_frames: int = 0) -> tuple[dict[str, float], np.ndarray]:
    """Returns metrics and a video (T, H, 2W, 3) uint8 of the first episode: ground truth | generated."""
    need = context + rollout
    episodes = [ep for ep in eval_episodes if len(ep["frames"]) >= need][:n_episodes]
    if not episodes:
        raise ValueError(f"no held-out episode has {need} frames (context {context} + rollout {rollout})")
    frames = torch.stack([torch.from_numpy(ep["frames"][:need]) for ep in episodes])
    actions = torch.stack([torch.from_numpy(input_actions(ep["actions"])[:need]) for ep in episodes])
    generator = torch.Generator(device=model.device).manual_seed(seed)

    state = model.observe(model.initial_state(len(episodes)), frames[:, :context], actions[:, :context])
    generated = []
    for t in range(context, need):
        frame, _, _, state = model.imagine(state, actions[:, t], generator=generator)
        generated.append(frame.cpu())
        if t == context:
            next_frame = frame.cpu()
    generated = torch.stack(generated, 1)
    truth = frames[:, context:]
    recon = model.decode(model.encode(truth)).cpu()
    # Yardsticks on the same frames: a model below them has not learnt the world yet.
    yardsticks = yardstick_frames(frames, context, poses=None)
    metrics = {
        "next_frame_psnr_last_frame": psnr(yardsticks["last_frame"][:, 0], frames[:, context]).mean().item(),
        "rollout_psnr_last_frame": psnr(yardsticks["last_frame"], truth).mean().item(),
        "rollout_psnr_context_mean": psnr(yardsticks["context_mean"], truth).mean().item(),
        "next_frame_psnr": psnr(next_frame, frames[:, context]).mean().item(),
        "rollout_psnr": psnr(generated, truth).mean().item(),
        "rollout_ssim": ssim(generated, truth).mean().item(),
        "rollout_psnr_last10": psnr(generated[:, -10:], truth[:, -10:]).mean().item(),
        # Below 1: blurrier than the real frames (metrics.sharpness).
        "rollout_sharpness_ratio": (sharpness(generated).mean() / sharpness(truth).mean()).item(),
        "ae_ceiling_psnr": psnr(recon, truth).mean().item(),
    }
    video = torch.cat([truth[0], generated[0]], dim=2).numpy()
    if one_step_frames > 1 and any(len(ep["frames"]) > 1 for ep in eval_episodes[:n_episodes]):
        metrics.update(one_step_metrics(model, eval_episodes[:n_episodes], one_step_frames, generator))
    return metrics, video


@torch.no_grad()
def one_step_metrics(model, episodes, frames: int, generator: torch.Generator) -> dict[str, float]:
    """Next-frame PSNR at every frame 1..frames-1 of each episode, each generated from the real frames
    before it (WorldModel.predict_each_next: a few parallel passes), beside the previous real frame
    repeated: hundreds of next frames per evaluation instead of one per episode."""
    truths, predictions = [], []
    for ep in (ep for ep in episodes if len(ep["frames"]) > 1):  # a one-frame episode has no next frame
        n = min(frames, len(ep["frames"]))
        real = torch.from_numpy(ep["frames"][:n]).unsqueeze(0)
        actions = torch.from_numpy(input_actions(ep["actions"])[:n]).unsqueeze(0).to(model.device)
        latents = model.encode(real)
        predicted = model.predict_each_next(model.initial_state(1), latents, actions, generator=generator)
        truths.append(real[0])
        predictions.append(model.decode(predicted)[0].cpu())
    scores = [psnr(p[1:], t[1:]) for p, t in zip(predictions, truths)]
    previous = [psnr(t[:-1], t[1:]) for t in truths]
    return {"one_step_psnr": torch.cat(scores).clamp(max=100).mean().item(),
            "one_step_psnr_last_frame": torch.cat(previous).clamp(max=100).mean().item()}



"""The dynamics loss of one training window, shared by the trainer and `lssvwm bench train`.

Two objectives (`DynamicsTrainingConfig.objective`):

- "diffusion_forcing" (Chen et al. 2024; the paper's): every frame of the window at its own noise
  level in one pass, each seeing the noisy frames before it; with `long_context_prob`, a clean prefix
  of more than half the window and only the noised suffix in the loss (Po et al. 2025, §4.2).
- "clean_context": every frame denoised from the clean frames before it, as `imagine` denoises the
  next frame from the committed past (Backbone.forward_clean_context): every frame in the loss, under
  the condition it is generated in, for twice the FLOPs of a diffusion-forcing step (23.2 against 11.3
  GFLOP for the `cpu` preset's 4 x 30 frames; 2.85x the time for the 64-token model); the state
  carried to the next window is the clean frames' state, as at inference, with no extra pass. At
  equal compute it learnt the next frame less well (docs/dynamics-recipe).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lssvwm_env.models.diffusion import add_noise, sample_training_noise, training_target
from lssvwm_env.models.state import WorldModelState

OBJECTIVES = ("diffusion_forcing", "clean_context")


@dataclass
class DynamicsLoss:
    total: torch.Tensor  # what is back-propagated
    diffusion: torch.Tensor
    reward: torch.Tensor
    termination: torch.Tensor
    carried: WorldModelState  # the detached state to start the lane's next window from


def dynamics_loss(model, batch: dict[str, torch.Tensor], state: WorldModelState, objective: str,
                  reward_loss_weight: float, carry_clean_state: bool,
                  generator: torch.Generator | None = None,
                  noise_levels: tuple[torch.Tensor, torch.Tensor] | None = None) -> DynamicsLoss:
    """batch: a window per lane, as LatentCache.window stacks them: latents (B, T, h, w, C), actions,
    rewards, terminated, has_transition, valid (B, T). state: the lanes' state before the window.
    noise_levels: (sigma, in_loss), each (B, T), to train under instead of drawing them (a probe's
    settings, docs/paper-lengths/decay_gradient.py)."""
    latents, actions, valid = batch["latents"], batch["actions"], batch["valid"]
    batch_size, frames = latents.shape[:2]
    diffusion = model.config.diffusion
    device = latents.device
    clean_context = objective == "clean_context"
    if noise_levels is None:
        sigma, in_loss = sample_training_noise(batch_size, frames, diffusion, "cpu", generator=generator,
                                               long_context=False if clean_context else None)
    else:
        sigma, in_loss = noise_levels
    sigma, in_loss = sigma.to(device), in_loss.to(device) & valid  # no loss on padding
    noise = torch.randn(latents.shape, generator=generator).to(device)
    noisy = add_noise(latents, noise, sigma)
    context, context_level = latents, None
    if clean_context and diffusion.context_noise > 0:  # drawn only then: runs without it keep their stream
        context_level = (torch.rand(batch_size, frames, generator=generator) * diffusion.context_noise).to(device)
        context = add_noise(latents, torch.randn(latents.shape, generator=generator).to(device), context_level)
    with model.autocast():
        if clean_context:
            prediction, features, clean_features, carried = model.backbone.forward_clean_context(
                context, noisy, sigma, actions, state, context_level)
            # The heads read the committed frame's features, or with predict_from "prior" the pass that
            # denoises it (heads.py).
            if model.config.heads.predict_from != "prior":
                features = clean_features
        else:
            prediction, features, carried = model.backbone(noisy, sigma, actions, state)
    target = training_target(latents, noise, diffusion)
    per_frame = (prediction.float() - target).pow(2).mean(dim=(2, 3, 4))
    diffusion_loss = (per_frame * in_loss).sum() / in_loss.sum().clamp_min(1)
    reward_loss, termination_loss = model.heads.loss(features, batch["rewards"], batch["terminated"],
                                                     batch["has_transition"].float())
    total = diffusion_loss + reward_loss_weight * (reward_loss + termination_loss)
    if not clean_context and carry_clean_state:
        with torch.no_grad():  # the state of a clean pass, as inference carries it
            _, _, carried = model.step_latents(state, latents, actions)
    return DynamicsLoss(total, diffusion_loss, reward_loss, termination_loss, carried.detach())

"""Helpers the test modules share (fixtures live in conftest.py): tiny real checkpoints, and
episodes rewritten in place so that only their contents are wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from data_collection.dataset import write_episode
from lssvwm_env import presets
from lssvwm_env.checkpoint import save_world_model
from lssvwm_env.envs.context import CONTEXT_FILE
from lssvwm_env.models import WorldModel


def save_tiny_checkpoint(path: Path, num_actions: int = 6, termination_logit: float | None = None,
                         context_shape: tuple[int, int] | None = (3, 10), seed: int = 0) -> Path:
    """A tiny random world model saved as a real checkpoint, with a context.npz of random real-looking
    episodes (E, T). termination_logit fixes the predicted termination (> 0: every step ends the
    episode, < 0: none does); None keeps the random head."""
    config = presets.tiny().model
    config.bf16 = False  # fp32 is faster than bf16 autocast at this size on a CPU
    config.diffusion.sampling_steps = 1
    config.backbone.action.n = num_actions
    torch.manual_seed(seed)
    model = WorldModel(config)
    with torch.no_grad():
        # adaLN-Zero starts every branch at zero, so a fresh model ignores actions and past; perturb
        # the weights so that both matter, as in a trained model.
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    if termination_logit is not None:
        with torch.no_grad():
            model.heads.net[-1].weight[1].zero_()
            model.heads.net[-1].bias[1] = termination_logit
    save_world_model(model, path)
    if context_shape is not None:
        rng = np.random.default_rng(seed)
        episodes, frames = context_shape
        np.savez_compressed(path / CONTEXT_FILE,
                            frames=rng.integers(0, 256, (episodes, frames, 64, 64, 3), dtype=np.uint8),
                            actions=rng.integers(0, num_actions, (episodes, frames)))
    return path


def rewrite_episode(root: Path, index: int, **changes: np.ndarray) -> None:
    """Replace arrays in an episode file and update its checksum, so only the contents are wrong."""
    path = root / "episodes" / f"ep_{index:06d}.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    _, sha256 = write_episode(root, index, arrays)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["episodes"][index]["sha256"] = sha256
    (root / "manifest.json").write_text(json.dumps(manifest))

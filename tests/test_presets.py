"""The CPU presets build models whose autoencoder grid is the backbone's token grid, and which imagine a
frame from a real one."""

import numpy as np
import pytest
import torch

from lssvwm_env.models import WorldModel
from lssvwm_env.models.conditioning import NO_ACTION
from lssvwm_env.presets import preset


@pytest.mark.parametrize("name, grid, channels", [("cpu", (8, 8), 8), ("cpu-small", (4, 4), 16)])
def test_preset_token_grid_and_one_imagined_step(name, grid, channels):
    torch.manual_seed(0)
    model = WorldModel(preset(name).model).eval()
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 1, 64, 64, 3), dtype=np.uint8))
    latents = model.encode(frames)
    assert latents.shape == (2, 1, *grid, channels)
    state = model.observe(model.initial_state(2), frames, torch.full((2, 1), NO_ACTION))
    frame, reward, terminated, _ = model.imagine(state, torch.tensor([0, 1]))
    assert frame.shape == (2, 64, 64, 3) and frame.dtype == torch.uint8
    assert reward.shape == terminated.shape == (2,)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="cpu-small"):
        preset("gpu")

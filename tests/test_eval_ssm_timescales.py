"""The SSM half-lives that docs/memory-ablation/ssm_horizon.py and docs/paper-lengths/decay_gradient.py
report are the heads' true ones, in frames of video."""

import math

import numpy as np
import torch

from lssvwm_env import presets
from lssvwm_env.evaluation.ssm_timescales import RetentionRecorder
from lssvwm_env.models import WorldModel


def test_the_recorded_half_lives_are_the_heads_own_counted_in_frames():
    config = presets.tiny().model
    config.bf16 = False
    torch.manual_seed(0)
    model = WorldModel(config)
    recorder = RetentionRecorder(model)
    assert recorder.scans, "the tiny preset has block-wise scans"
    expected = []
    with torch.no_grad():
        for scan in recorder.scans:
            mixer = scan.mixer
            mixer.in_proj.weight[-mixer.n_heads:].zero_()  # dt = softplus(dt_bias), whatever the input
            mixer.dt_bias.fill_(-3.0)
            mixer.A_log.copy_(torch.linspace(-1.0, 2.0, mixer.n_heads))
            decay_per_frame = torch.exp(mixer.A_log) * torch.nn.functional.softplus(mixer.dt_bias) \
                * scan.block[0] * scan.block[1]
            expected.append((math.log(2) / decay_per_frame).numpy())
    frames = torch.randint(0, 256, (2, 5, 64, 64, 3), dtype=torch.uint8)
    actions = torch.randint(0, config.backbone.action.n, (2, 5))
    with recorder:
        model.observe(model.initial_state(2), frames, actions)
    model.observe(model.initial_state(2), frames, actions)  # outside the block: not recorded
    half_lives = recorder.half_lives()
    assert len(half_lives) == len(expected)
    for measured, truth in zip(half_lives, expected):
        np.testing.assert_allclose(measured, truth, rtol=1e-5)
    assert all(len(logs) == 1 for logs in recorder.log_retention)

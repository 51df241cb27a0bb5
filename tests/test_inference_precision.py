"""Inference precision follows the hardware it runs on (issue 36): a checkpoint trained in bf16 runs its
backbone under bf16 autocast only where the device computes bf16 natively, in fp32 elsewhere (emulated
bf16 is slower than fp32)."""

from __future__ import annotations

import json

import pytest

import lssvwm_env.checkpoint as checkpoint
from lssvwm_env.checkpoint import load_world_model, resolve_checkpoint_dir


@pytest.mark.parametrize("native", [True, False])
def test_a_bf16_checkpoint_runs_in_bf16_only_where_the_hardware_computes_it(monkeypatch, native):
    config = json.loads((resolve_checkpoint_dir(None) / "config.json").read_text())
    assert config["model"]["bf16"] is True  # the shipped default was trained in bf16
    monkeypatch.setattr(checkpoint, "native_bf16", lambda device: native)
    model = load_world_model(None)
    assert model.config.bf16 is native

"""`lssvwm eval transitions`: termination and reward heads on real episodes, and next-latent
prediction from noise, counted over the real transitions (the last one from final_frame)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data_collection.collect import CollectConfig, collect
from data_collection.dataset import Dataset
from lssvwm_env.cli import main as lssvwm
from lssvwm_env.checkpoint import save_world_model
from lssvwm_env.evaluation.transitions import evaluate_transitions
from lssvwm_env.models.world_model import WorldModel
from lssvwm_env.presets import preset
from lssvwm_env.training.data import model_aligned


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> list[dict[str, np.ndarray]]:
    out = tmp_path_factory.mktemp("data") / "memory"
    # Walking into walls gives transitions whose frame does not change.
    collect(CollectConfig(env="MiniGrid-MemoryS7-v0", policy="explore:wall_bump=0.5", episodes=4, steps=60, out=out,
                          seed=0), progress=False, log=lambda _: None)
    dataset = Dataset.open(out)
    return [dataset.load_episode(e.index) for e in dataset.episodes()]


def _model_with_termination_bias(bias: float) -> WorldModel:
    model = WorldModel(preset("tiny").model).eval()
    last = model.heads.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        # Reward 0.25 everywhere (its gate open); termination by the bias.
        last.bias.copy_(torch.tensor([0.25, bias, 20.0]))  # sigmoid(20) is 1 in float32
    return model


def test_counts_follow_the_real_episodes(episodes):
    ends = sum(bool(ep["terminated"][-1]) for ep in episodes)
    assert ends >= 1, "explore reaches an end of the MemoryS7 hallway within 60 steps"
    always = evaluate_transitions(_model_with_termination_bias(10.0), episodes, generation_frames=5)
    never = evaluate_transitions(_model_with_termination_bias(-10.0), episodes, generation_frames=5)
    total = sum(len(ep["actions"]) for ep in episodes)  # with final_frame every action's outcome counts
    assert always.final_frames and always.transitions == total and always.terminal_transitions == ends
    assert (always.termination_recall, always.termination_false_alarms) == (1.0, 1.0)
    assert (never.termination_recall, never.termination_false_alarms) == (0.0, 0.0)
    assert always.reward_mean_elsewhere == pytest.approx(0.25)
    assert always.reward_mean_off_ends == pytest.approx(0.25)
    unpaid = sum(bool(ep["terminated"][-1]) and ep["rewards"][-1] == 0 for ep in episodes)
    assert unpaid >= 1 and always.unpaid_ends == unpaid  # the wrong object's end pays nothing
    assert always.reward_mean_at_unpaid_ends == pytest.approx(0.25)
    rewards = np.concatenate([ep["rewards"] for ep in episodes])
    assert always.reward_mse == pytest.approx(float(np.mean((rewards - 0.25) ** 2)), rel=1e-5)
    assert always.generated == sum(min(len(ep["actions"]), 5) for ep in episodes)
    frames = [model_aligned(ep)["frames"] for ep in episodes]
    unchanged = sum(np.array_equal(f[t], f[t - 1]) for f in frames for t in range(1, min(len(f), 6)))
    assert unchanged >= 1 and always.unchanged_generated == unchanged


def test_without_final_frames_the_last_transition_is_left_out(episodes):
    trimmed = [{k: v for k, v in ep.items() if k != "final_frame"} for ep in episodes]
    metrics = evaluate_transitions(_model_with_termination_bias(10.0), trimmed, generation_frames=0)
    assert not metrics.final_frames and metrics.terminal_transitions == 0
    assert metrics.transitions == sum(len(ep["actions"]) - 1 for ep in episodes)


def test_cli_prints_and_writes_json(episodes, tmp_path, capsys):
    data = tmp_path / "data"
    collect(CollectConfig(env="MiniGrid-MemoryS7-v0", policy="explore", episodes=3, steps=40, out=data, seed=1),
            progress=False, log=lambda _: None)
    save_world_model(WorldModel(preset("tiny").model), tmp_path / "model")
    assert lssvwm(["eval", "transitions", "--checkpoint", str(tmp_path / "model"), "--data", str(data),
                   "--split", "train", "--generation-frames", "4", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "termination:" in printed and "next latent from noise level 1: MSE" in printed
    assert (tmp_path / "out" / "transitions.json").exists()
    assert lssvwm(["eval", "transitions", "--checkpoint", str(tmp_path / "model"), "--data", str(tmp_path / "nope")]) == 1

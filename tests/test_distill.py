"""Sampler distillation (training/distill.py): the student's target lands where two teacher steps land,
the halving chain and its refusals, and `lssvwm distill` on real MiniGrid data with a tiny real model."""

import json

import pytest
import torch
from safetensors.torch import load_file

from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.cli import main as lssvwm
from lssvwm_env.models.diffusion import DiffusionConfig, euler_step
from lssvwm_env.training.distill import euler_steps, halvings, student_target

from helpers import save_tiny_checkpoint


@pytest.mark.parametrize("prediction", ["velocity", "x0"])
def test_one_step_with_the_student_target_lands_on_the_teacher_two_steps(prediction):
    config = DiffusionConfig(prediction=prediction)
    torch.manual_seed(0)
    noisy, out_a, out_b = (torch.randn(2, 3, 4, 4, 2) for _ in range(3))
    sigma = torch.tensor([[1.0, 0.5, 0.5], [1.0, 1.0, 0.5]])
    mid, next_sigma = sigma - 0.25, sigma - 0.5
    teacher_next = euler_steps(euler_steps(noisy, out_a, sigma, mid, config), out_b, mid, next_sigma, config)
    target = student_target(noisy, teacher_next, sigma, next_sigma, config)
    torch.testing.assert_close(euler_steps(noisy, target, sigma, next_sigma, config), teacher_next)
    # With one noise level for the whole batch, the per-frame step is the sampler's own.
    flat = torch.full((2, 3), 0.5)
    torch.testing.assert_close(euler_steps(noisy, out_a, flat, flat - 0.25, config),
                               euler_step(noisy, out_a, 0.5, 0.25, config))


def test_halvings_chain_and_refusals():
    assert halvings(4, 2) == [2]
    assert halvings(4, 1) == [2, 1]
    assert halvings(8, 2) == [4, 2]
    for steps in (3, 4, 5, 0):
        with pytest.raises(ValueError, match=f"--steps {steps}: the teacher samples in 4 steps"):
            halvings(4, steps)


def test_distill_writes_a_checkpoint_that_samples_in_fewer_steps(minigrid_retrace, tmp_path, capsys):
    teacher_dir = save_tiny_checkpoint(tmp_path / "teacher", num_actions=7)
    config = json.loads((teacher_dir / "config.json").read_text())
    config["model"]["diffusion"]["sampling_steps"] = 4
    (teacher_dir / "config.json").write_text(json.dumps(config))
    out = tmp_path / "student"
    args = ["distill", str(teacher_dir), "--data", str(minigrid_retrace), "--out", str(out), "--steps", "1",
            "--iterations", "3", "--window", "8", "--batch-size", "2", "--eval-episodes", "1", "--eval-frames", "12",
            "--eval-context", "4", "--eval-rollout", "6", "--threads", "1"]
    assert lssvwm(args) == 0
    assert "1 sampling steps" in capsys.readouterr().out
    student = load_world_model(out)
    assert student.config.diffusion.sampling_steps == 1
    record = json.loads((out / "config.json").read_text())["distillation"]
    assert [h["steps"] for h in record["halvings"]] == [2, 1]
    for halving in record["halvings"]:
        assert all(torch.isfinite(torch.tensor(v)) for v in halving["student"].values())
        assert halving["loss_first"] > 0
    teacher_weights = load_file(str(teacher_dir / "model.safetensors"))
    student_weights = load_file(str(out / "model.safetensors"))
    assert any(not torch.equal(teacher_weights[k], student_weights[k]) for k in teacher_weights)
    card = (out / "model_card.md").read_text()
    assert "## Distilled sampler" in card and "| distilled | 1 |" in card and "| teacher | 4 |" in card
    assert (out / "context.npz").exists()


def test_distill_refuses_a_step_count_it_cannot_reach_before_writing(minigrid_retrace, tmp_path, capsys):
    teacher_dir = save_tiny_checkpoint(tmp_path / "teacher", num_actions=7)  # samples in 1 step
    out = tmp_path / "student"
    assert lssvwm(["distill", str(teacher_dir), "--data", str(minigrid_retrace), "--out", str(out), "--steps", "1"]) == 1
    assert "--steps 1: the teacher samples in 1 steps" in capsys.readouterr().err
    assert not out.exists()

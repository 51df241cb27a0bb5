"""`lssvwm distill-decoder` (issue 36): a student decoder with fewer channels learns to draw what the
checkpoint's decoder draws from the same latents, ships beside it, and is chosen with decoder="student"."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import lssvwm_env  # noqa: F401  (registers the ids)
from lssvwm_env.checkpoint import CheckpointError, load_world_model, resolve_checkpoint_dir
from lssvwm_env.cli import main as lssvwm
from lssvwm_env.evaluation.metrics import psnr
from lssvwm_env.training.data import load_split
from lssvwm_env.training.student_decoder import StudentDecoderConfig, train_student_decoder


def test_the_student_learns_the_teachers_drawings(minigrid_endless_checkpoint, minigrid_retrace):
    model = load_world_model(minigrid_endless_checkpoint)
    episodes = load_split(minigrid_retrace, "train")
    config = dict(channels=[8, 8, 8], batch_size=16, eval_frames=64, lr=3e-3)
    _, untrained = train_student_decoder(model, episodes, episodes, StudentDecoderConfig(iterations=1, **config))
    _, trained = train_student_decoder(model, episodes, episodes, StudentDecoderConfig(iterations=150, **config))
    assert trained["parameters"] < trained["teacher_parameters"]
    assert trained["student_psnr_against_teacher"] > untrained["student_psnr_against_teacher"] + 3


def test_distill_decoder_ships_the_student_beside_the_checkpoint(minigrid_endless_checkpoint, minigrid_retrace,
                                                                 tmp_path, capsys):
    out = tmp_path / "with-student"
    assert lssvwm(["distill-decoder", "--checkpoint", str(minigrid_endless_checkpoint), "--data", str(minigrid_retrace),
                   "--out", str(out), "--channels", "8", "8", "8", "--iterations", "5", "--batch-size", "8",
                   "--eval-frames", "16", "--threads", "1"]) == 0
    record = json.loads((out / "student_decoder.json").read_text())
    assert record["channels"] == [8, 8, 8] and record["teacher"] == str(minigrid_endless_checkpoint)
    full, student = load_world_model(out), load_world_model(out, decoder="student")
    assert sum(p.numel() for p in student.autoencoder.decoder.parameters()) == record["parameters"]
    latents = torch.randn(1, 2, *full.config.autoencoder.grid, full.config.autoencoder.latent_channels)
    assert full.decode(latents).shape == student.decode(latents).shape
    assert not torch.equal(full.decode(latents), student.decode(latents))
    # Served: the env draws with the student when asked, and the full decoder otherwise.
    frames = {}
    for decoder in ("full", "student"):
        env = gym.make("lssvwm_env:LSSVWM-MiniGrid-v0", checkpoint=str(out), decoder=decoder, context=3)
        env.reset(seed=0)
        frames[decoder] = env.step(0)[0]
        env.close()
        assert frames[decoder].shape == (64, 64, 3)
    assert not np.array_equal(frames["full"], frames["student"])
    # The checkpoint it came from is untouched; one without a student says how to make one.
    assert not (minigrid_endless_checkpoint / "student_decoder.json").exists()
    with pytest.raises(CheckpointError, match="lssvwm distill-decoder"):
        load_world_model(minigrid_endless_checkpoint, decoder="student")
    with pytest.raises(ValueError, match="decoder='tiny'"):
        gym.make("lssvwm_env:LSSVWM-MiniGrid-v0", checkpoint=str(out), decoder="tiny")
    # An --out that holds something else is refused before any training.
    assert lssvwm(["distill-decoder", "--checkpoint", str(minigrid_endless_checkpoint), "--data", str(minigrid_retrace),
                   "--out", str(tmp_path), "--iterations", "5"]) == 1
    assert "exists and is not the checkpoint" in capsys.readouterr().err


def test_the_shipped_defaults_student_draws_real_frames_nearly_as_well_as_its_teacher():
    # The default's shipped context frames (real Memory Maze frames the student never trained on),
    # encoded once and drawn by both decoders: the student within 0.5 dB of the teacher, as its record says.
    record = json.loads((resolve_checkpoint_dir(None) / "student_decoder.json").read_text())
    assert record["teacher_psnr"] - record["student_psnr"] <= 0.5
    frames = torch.from_numpy(np.load(resolve_checkpoint_dir(None) / "context.npz")["frames"][:, :8])
    full, student = load_world_model(None), load_world_model(None, decoder="student")
    latents = full.encode(frames)
    teacher_psnr = psnr(full.decode(latents), frames).mean().item()
    student_psnr = psnr(student.decode(latents), frames).mean().item()
    assert student_psnr > teacher_psnr - 0.5, (student_psnr, teacher_psnr)
    assert sum(p.numel() for p in student.autoencoder.decoder.parameters()) == record["parameters"]

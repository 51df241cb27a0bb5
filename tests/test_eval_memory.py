"""`lssvwm eval memory` end to end: a tiny real checkpoint on tiny real MiniGrid retrace episodes."""

from __future__ import annotations

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from data_collection.dataset import Dataset
from lssvwm_env.checkpoint import load_world_model, save_world_model
from lssvwm_env.cli import main as lssvwm
from lssvwm_env.evaluation.memory import plan_episodes
from lssvwm_env.evaluation.metrics import psnr, ssim
from lssvwm_env.evaluation.perceptual import lpips_status
from lssvwm_env.evaluation.yardsticks import nearest_pose_index
from lssvwm_env.models.world_model import WorldModel
from lssvwm_env.presets import tiny



@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = tiny().model
    config.backbone.action.n = 7  # MiniGrid's actions
    return save_world_model(WorldModel(config), tmp_path_factory.mktemp("ckpt") / "tiny")


def test_eval_memory_writes_metrics_plots_and_videos(minigrid_retrace, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "retrieval"
    assert lssvwm(["eval", "memory", "--checkpoint", str(tiny_checkpoint), "--data", str(minigrid_retrace),
                   "--task", "retrieval", "--context", "24", "--generate", "20", "--episodes", "2", "--split", "train",
                   "--sampling-steps", "1", "--threads", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(m["psnr"]) and math.isfinite(m["ssim"]) and 0 < m["psnr"] < 100 and -1 <= m["ssim"] <= 1
    assert f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}" in printed
    s = m["settings"]
    assert (s["context"], s["generate"], s["clamped"], s["sampling_steps"]) == (24, 20, False, 1)
    assert m["data"]["evaluated_episodes"] == [0, 2] and m["data"]["policy"] == "retrace"
    available, note = lpips_status()  # LPIPS runs where its package and weights are installed
    assert m["lpips_note"] == note
    if available:
        assert 0 <= m["lpips"] <= 1 and len(m["per_frame"]["lpips"][0]) == 20
    else:
        assert m["lpips"] is None and "LPIPS not computed" in note

    per_frame = {k: np.array(m["per_frame"][k]) for k in ("psnr", "ssim", "ceiling_psnr", "ceiling_ssim")}
    assert all(v.shape == (2, 20) for v in per_frame.values())
    assert m["psnr"] == pytest.approx(per_frame["psnr"].mean()) and m["ssim"] == pytest.approx(per_frame["ssim"].mean())
    assert len(m["curves"]["time"]["psnr"]) == 20

    # The ceiling is the autoencoder's reconstruction of exactly the real frames [24, 44).
    model = load_world_model(tiny_checkpoint)
    dataset = Dataset.open(minigrid_retrace)
    truth = torch.stack([torch.from_numpy(dataset.load_episode(i)["frames"][24:44]) for i in (0, 2)])
    reconstructed = model.decode(model.encode(truth))
    np.testing.assert_allclose(per_frame["ceiling_psnr"], psnr(reconstructed, truth).numpy(), rtol=1e-6)
    np.testing.assert_allclose(per_frame["ceiling_ssim"], ssim(reconstructed, truth).numpy(), rtol=1e-6, atol=1e-9)

    # The yardsticks are scored on the same frames: the last context frame, the context mean.
    episodes = [dataset.load_episode(i) for i in (0, 2)]
    context = torch.stack([torch.from_numpy(ep["frames"][:24]) for ep in episodes])
    last = psnr(context[:, -1:].expand_as(truth), truth).clamp(max=100)
    mean = psnr(context.float().mean(1, keepdim=True).round().to(torch.uint8).expand_as(truth), truth).clamp(max=100)
    assert m["baselines"]["last_frame"]["psnr"] == pytest.approx(last.double().mean().item())
    assert m["baselines"]["context_mean"]["psnr"] == pytest.approx(mean.double().mean().item())
    assert set(m["baselines"]) == {"last_frame", "context_mean", "nearest_pose"}
    assert list(m["horizon"]) == ["1", "2-10", "11-100"]  # 20 generated frames: no 101+ bin
    assert m["horizon"]["1"]["baselines"]["last_frame"]["psnr"] == pytest.approx(last[:, 0].double().mean().item())
    # An untrained model is below a still picture, and the summary line says so.
    assert "BELOW the" in printed and "yardsticks on the same frames: last frame" in printed

    # Every generated frame is in exactly one split; the split means are those of its frames.
    kinds = np.array(m["per_frame"]["kind"])
    assert sum(x["frames"] for x in m["splits"].values()) == 40
    assert m["splits"]["memory"]["frames"] > 0  # retrace walks the context's path again
    for kind, split in m["splits"].items():
        if split["frames"]:
            assert split["psnr"] == pytest.approx(per_frame["psnr"][kinds == kind].mean())
    gaps = m["per_frame"]["gap"]
    binned = sum(b["frames"] for b in m["curves"]["gap"]["bins"]) + m["curves"]["gap"]["never"]["frames"]
    assert binned == 40 and sum(g is None for row in gaps for g in row) == m["curves"]["gap"]["never"]["frames"]

    for key in ("time_plot", "gap_plot", "filmstrip"):
        image = iio.imread(out / m["files"][key])
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    assert len(m["files"]["videos"]) == 2
    video = iio.imread(out / m["files"]["videos"][0])  # (frames, H, W, 3): ground truth | generated | error
    assert video.shape[0] == 20 and video.shape[1] == 256 and video.shape[2] == 3 * 256 + 8


def test_eval_memory_clamps_to_short_episodes(minigrid_retrace, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "reasoning"
    assert lssvwm(["eval", "memory", "--checkpoint", str(tiny_checkpoint), "--data", str(minigrid_retrace),
                   "--task", "reasoning", "--episodes", "1", "--videos", "0", "--sampling-steps", "1",
                   "--threads", "1", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "no episode has 800 frames (context 576 + generate 224)" in captured.out
    assert "meant for `--policy random or explore` episodes" in captured.out
    m = json.loads((out / "metrics.json").read_text())
    s = m["settings"]
    # 60-frame episodes: 576:224 of 60 frames.
    assert (s["context"], s["generate"], s["clamped"]) == (43, 17, True)
    assert s["requested"] == {"context": 576, "generate": 224} and "collect longer episodes" in s["clamp_note"].lower()
    assert m["data"]["evaluated_episodes"] == [1] and m["files"]["videos"] == []
    assert math.isfinite(m["psnr"]) and math.isfinite(m["ssim"])


def test_plan_episodes_prefers_long_enough_episodes():
    plan = plan_episodes({0: 50, 1: 120, 2: 100, 3: 130}, 60, 40, 2)
    assert (plan.indices, plan.context, plan.generate, plan.note) == ([1, 2], 60, 40, None)
    plan = plan_episodes({0: 50, 1: 80, 2: 70}, 60, 40, 2)
    assert (plan.indices, plan.context, plan.generate, plan.clamped) == ([1, 2], 42, 28, True)


def test_eval_memory_refuses_a_model_of_another_env(minigrid_retrace, tmp_path, capsys):
    six_actions = save_world_model(WorldModel(tiny().model), tmp_path / "six")
    assert lssvwm(["eval", "memory", "--checkpoint", str(six_actions), "--data", str(minigrid_retrace),
                   "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "has 7 actions, the model 6" in err and "trained on another env" in err
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_nearest_pose_picks_the_context_frame_taken_where_the_agent_stood_and_looked():
    context_pos = np.array([[1.5, 1.5], [2.5, 1.5], [2.5, 1.5], [5.5, 5.5]])
    context_dir = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    target_pos = np.array([[2.5, 1.5], [2.4, 1.6], [5.0, 5.0], [1.5, 1.5], [2.5, 1.5]])
    target_dir = np.array([[0, 1], [1, 0], [0, 1], [0, -1], [0.7071, 0.7071]])
    # Same cell facing up: frame 2; facing right: frame 1; near (5.5, 5.5): frame 3; at (1.5, 1.5) facing
    # down: frame 0 (a quarter turn) beats frame 1 (a cell and a quarter turn); halfway between
    # frames 1 and 2's headings: the tie goes to the later frame.
    assert nearest_pose_index(context_pos, context_dir, target_pos, target_dir).tolist() == [2, 1, 3, 0, 2]


def test_eval_context_scores_the_same_targets_after_each_context_length(minigrid_retrace, tiny_checkpoint, tmp_path,
                                                                        capsys):
    from lssvwm_env.evaluation.context_length import target_points

    out = tmp_path / "context"
    assert lssvwm(["eval", "context", "--checkpoint", str(tiny_checkpoint), "--data", str(minigrid_retrace),
                   "--contexts", "16", "4", "32", "--horizon", "5", "--episodes", "2", "--targets", "3",
                   "--split", "train", "--sampling-steps", "1", "--threads", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "context.json").read_text())
    assert result["contexts"] == [4, 16, 32] and result["verdict"] in printed
    assert len(result["targets"]) == 6 and all(32 <= t["frame"] <= 55 for t in result["targets"])
    # The frame before each target is the same for every context: so is the last-frame yardstick.
    last = {c: result["curves"][str(c)]["next_frame"]["last_frame_psnr"] for c in result["contexts"]}
    assert last[4] == pytest.approx(last[16]) == pytest.approx(last[32])
    means = {c: result["curves"][str(c)]["horizon"]["context_mean_psnr"] for c in result["contexts"]}
    assert len({round(m, 6) for m in means.values()}) == 3  # the context mean changes with the context
    assert set(result["yardsticks"]) == {"last_frame", "context_mean", "nearest_pose"}
    assert (out / "context.png").stat().st_size > 10_000
    assert target_points(60, 32, 5, 3) == [32, 44, 55] and target_points(30, 32, 5, 3) == []


def test_eval_context_names_the_context_that_does_not_fit(minigrid_retrace, tiny_checkpoint, capsys):
    assert lssvwm(["eval", "context", "--checkpoint", str(tiny_checkpoint), "--data", str(minigrid_retrace),
                   "--contexts", "8", "400", "--split", "train", "--threads", "1"]) == 1
    err = capsys.readouterr().err
    assert "no 'train' episode holds 400 + 10 frames" in err and "--contexts up to 400" in err

"""The README's from-nothing path at the tiny scale (MiniGrid, tiny preset): every stage runs and
every artifact is real: the dataset validates, the checkpoint loads, the env passes check_env, the
agent loads, the report holds numbers; re-running skips finished stages."""

import json
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import torch
from gymnasium.utils.env_checker import check_env

from agents.policies import load_policy
from data_collection.dataset import validate_dataset
from lssvwm_env.checkpoint import load_world_model

REPO = Path(__file__).resolve().parents[1]


def test_from_scratch_pipeline_tiny(tmp_path):
    out = tmp_path / "scratch"
    command = [sys.executable, "-m", "lssvwm_env.cli", "pipeline", "--out", str(out), "--from-scratch",
               "--env", "minigrid-memory", "--scale", "tiny", "--workers", "1", "--threads", "1"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"report: {out / 'report' / 'report.md'}" in result.stdout

    assert validate_dataset(out / "data") == []
    assert validate_dataset(out / "retrace") == []
    model = load_world_model(out / "world_model")
    assert model.config.backbone.action.n == 7  # MiniGrid's action space, taken from the data

    torch.set_num_threads(1)
    env = gym.make("lssvwm_env:LSSVWM-MiniGrid-v0", checkpoint=str(out / "world_model"), context=8)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()

    policy, algo = load_policy(str(out / "agent"))
    assert algo == "ppo"
    memory = json.loads((out / "memory" / "metrics.json").read_text())
    assert memory["psnr"] > 0 and 0 < memory["ssim"] <= 1
    report = (out / "report" / "report.md").read_text()
    assert f"{memory['psnr']:.2f}" in report
    assert re.search(r"\| PPO trained in imagination, real env \| -?\d+\.\d{3} \|", report)
    timings = json.loads((out / "pipeline.json").read_text())
    assert set(timings) >= {"collect", "train", "export", "eval_memory", "train_agent", "report"}

    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert again.stdout.count("done before, skipped") == len(timings)

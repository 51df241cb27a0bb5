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
               "--env", "minigrid-memory-s7", "--scale", "tiny", "--workers", "1", "--threads", "1"]
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


def test_main_job_plan_uses_each_shipped_model_and_trains_the_agent_where_it_can_beat_random(tmp_path):
    from lssvwm_env.checkpoint import DEFAULT_CHECKPOINT, MINIGRID_CHECKPOINT
    from lssvwm_env.pipeline import Scale, stages

    plan = {stage.name: stage.command for stage in stages(tmp_path, "memory-maze-9x9", False, Scale(), 2, 0)}
    assert plan["eval_memory"][plan["eval_memory"].index("--checkpoint") + 1] == str(DEFAULT_CHECKPOINT)
    assert "memory-maze-9x9" in plan["collect_retrace"]
    agent = plan["train_agent"]
    assert agent[agent.index("--env") + 1] == "LSSVWM-MiniGrid-v0"
    assert agent[agent.index("--checkpoint") + 1] == str(MINIGRID_CHECKPOINT)
    for name in ("eval_agent", "eval_random"):
        assert plan[name][plan[name].index("--env") + 1] == "minigrid-memory-s7"
    # With --env minigrid-memory-s7 everything runs on the shipped MiniGrid model.
    plan = {stage.name: stage.command for stage in stages(tmp_path, "minigrid-memory-s7", False, Scale(), 2, 0)}
    assert plan["eval_memory"][plan["eval_memory"].index("--checkpoint") + 1] == str(MINIGRID_CHECKPOINT)


def test_agents_table_says_whether_the_agent_beats_random_by_more_than_the_standard_errors(tmp_path):
    from lssvwm_env.pipeline import agents_table

    def result(returns):
        return {"env": "minigrid-memory", "returns": returns, "lengths": [10] * len(returns), "env_steps": 100,
                "seconds": 1.0, "deterministic": False, "seed": 0, "episodes": len(returns),
                "mean_return": sum(returns) / len(returns), "std_return": 0.0}

    def table(agent_returns, random_returns):
        (tmp_path / "agent.json").write_text(json.dumps({"env": "minigrid-memory", "max_steps": 100,
                                                         "real": result(agent_returns)}))
        (tmp_path / "random.json").write_text(json.dumps({"real": result(random_returns)}))
        return agents_table(tmp_path).read_text()

    text = table([1.0, 0.9, 1.0, 0.8], [0.0, 0.1, 0.0, 0.0])
    assert "The agent beats the random policy" in text and "| 4 |" in text
    assert "The agent does not beat the random policy" in table([1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0])

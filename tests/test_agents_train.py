"""agents.train_ppo and agents.evaluate on a tiny real world model and real MiniGrid: PPO trained in
imagination writes a loadable policy, evaluated back in the real env; RecurrentPPO; model-free PPO
in the real env; the random baseline."""

import json
import re
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents import evaluate, train_ppo
from agents.envs import RealImageEnv
from agents.episodes import evaluate_in_real_env
from agents.policies import PolicyError, RandomPolicy, load_policy

REPO = Path(__file__).resolve().parents[1]
MINIGRID = "minigrid-memory"
LAST_LINE = re.compile(r"return (-?\d+\.\d+) ± (\d+\.\d+)$")
SMALL_PPO = ["--num-envs", "2", "--n-steps", "64", "--batch-size", "64", "--n-epochs", "1", "--threads", "1",
             "--no-progress"]


@pytest.fixture(scope="module")
def checkpoint(minigrid_endless_checkpoint):
    return minigrid_endless_checkpoint


@pytest.fixture(scope="module")
def ppo_run(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ppo"
    train_ppo.main(["--env", "LSSVWM-MiniGrid-v0", "--checkpoint", str(checkpoint), "--real-env", MINIGRID,
                    "--algo", "ppo", "--timesteps", "256", "--context", "4", "--max-episode-steps", "40",
                    "--eval-every", "128", "--eval-episodes", "2", "--eval-max-steps", "20", "--save-every", "128",
                    "--out", str(out), *SMALL_PPO])
    return out


def test_ppo_in_imagination_writes_a_loadable_policy(ppo_run, checkpoint):
    summary = json.loads((ppo_run / "summary.json").read_text())
    assert summary["status"] == "done" and summary["algo"] == "ppo" and summary["imagined"] is True
    assert summary["env"] == "LSSVWM-MiniGrid-v0" and summary["checkpoint"] == str(checkpoint)
    assert summary["timesteps"] == 256 and summary["settings"]["num_envs"] == 2
    assert [e["timesteps"] for e in summary["evaluations"]] == [128, 256]
    assert summary["final_eval"] == summary["evaluations"][-1]
    for evaluation in summary["evaluations"]:
        assert evaluation["env"] == MINIGRID and evaluation["episodes"] == 2
        assert all(1 <= n <= 20 for n in evaluation["lengths"])
        assert evaluation["mean_return"] == pytest.approx(np.mean(evaluation["returns"]))
    # no real env step was spent on training; evaluation spent exactly what its episodes took
    assert summary["real_env_steps"] == {"training": 0,
                                         "evaluation": sum(e["env_steps"] for e in summary["evaluations"])}
    assert summary["wall_time_s"] > 0 and summary["timesteps_per_s"] > 0

    model = PPO.load(ppo_run / "policy.zip", device="cpu")
    assert model.num_timesteps == 256
    assert sorted(p.name for p in (ppo_run / "checkpoints").iterdir()) == ["policy_128_steps.zip",
                                                                          "policy_256_steps.zip"]
    frame, _ = RealImageEnv(MINIGRID).reset(seed=0)
    action, _ = model.predict(frame[None], deterministic=True)
    assert action.shape == (1,) and 0 <= action[0] < 7

    events = EventAccumulator(str(next((ppo_run / "tensorboard").iterdir())))
    events.Reload()
    real_returns = events.Scalars("eval/real_mean_return")
    assert [e.step for e in real_returns] == [128, 256]
    assert [e.value for e in real_returns] == pytest.approx([e["mean_return"] for e in summary["evaluations"]])
    assert "rollout/ep_rew_mean" in events.Tags()["scalars"]  # imagined episodes are monitored too

    with pytest.raises(FileExistsError, match="--overwrite"):
        train_ppo.main(["--env", "LSSVWM-MiniGrid-v0", "--checkpoint", str(checkpoint), "--out", str(ppo_run),
                        *SMALL_PPO])


def test_evaluate_prints_mean_std_on_its_last_line(ppo_run, tmp_path):
    video, result_json = tmp_path / "episode.mp4", tmp_path / "eval.json"
    done = subprocess.run(
        [sys.executable, "-m", "agents.evaluate", "--policy", str(ppo_run), "--env", MINIGRID, "--episodes", "3",
         "--max-steps", "15", "--video", str(video), "--json", str(result_json), "--threads", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    mean, std = map(float, LAST_LINE.search(last).groups())
    assert last.startswith(f"real env {MINIGRID} (3 episodes")
    results = json.loads(result_json.read_text())
    assert results["algo"] == "ppo" and results["real"]["episodes"] == 3 and "in_model" not in results
    assert mean == pytest.approx(results["real"]["mean_return"], abs=1e-3)
    assert std == pytest.approx(results["real"]["std_return"], abs=1e-3)
    frames = imageio.mimread(video)
    first_length = results["real"]["lengths"][0]
    assert len(frames) == first_length + 1 and frames[0].shape == (256, 256, 3)


def test_evaluate_inside_the_model_measures_the_imagination_gap(ppo_run, tmp_path, capsys):
    result_json = tmp_path / "eval.json"
    # no --checkpoint: the world model the policy was trained in (from its summary.json)
    evaluate.main(["--policy", str(ppo_run / "checkpoints" / "policy_128_steps.zip"), "--env", MINIGRID,
                   "--episodes", "2", "--max-steps", "6", "--in-model", "--context", "4", "--json", str(result_json),
                   "--video", str(tmp_path / "ep.mp4")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("world model: model:") and LAST_LINE.search(lines[-1])
    results = json.loads(result_json.read_text())
    assert results["in_model"]["lengths"] == [6, 6]  # the model never terminates: the step limit ends them
    assert results["imagination_gap"] == pytest.approx(results["in_model"]["mean_return"]
                                                       - results["real"]["mean_return"])
    assert len(imageio.mimread(tmp_path / "ep.in_model.mp4")) == 7


def test_random_policy_in_the_same_harness(capsys):
    args = ["--policy", "random", "--env", MINIGRID, "--episodes", "4", "--max-steps", "25", "--seed", "3"]
    evaluate.main(args)
    first = capsys.readouterr().out.strip().splitlines()[-1]
    mean, std = map(float, LAST_LINE.search(first).groups())
    direct = evaluate_in_real_env(RandomPolicy(7, seed=3), MINIGRID, 4, max_steps=25, seed=3)
    assert (mean, std) == (round(direct.mean_return, 3), round(direct.std_return, 3))
    assert first.startswith(f"real env {MINIGRID} (4 episodes, mean length {np.mean(direct.lengths):.1f})")
    evaluate.main(args)
    assert capsys.readouterr().out.strip().splitlines()[-1] == first  # the seed fixes episodes and actions


def test_recurrent_ppo_in_imagination(checkpoint, tmp_path):
    out = tmp_path / "rppo"
    train_ppo.main(["--env", "LSSVWM-MiniGrid-v0", "--checkpoint", str(checkpoint), "--real-env", MINIGRID,
                    "--algo", "recurrent_ppo", "--timesteps", "128", "--context", "4", "--max-episode-steps", "30",
                    "--eval-every", "0", "--eval-episodes", "1", "--eval-max-steps", "10", "--out", str(out),
                    *SMALL_PPO])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "done" and summary["policy"] == "CnnLstmPolicy" and summary["timesteps"] == 128
    assert len(summary["evaluations"]) == 1 and summary["final_eval"]["timesteps"] == 128
    policy, algo = load_policy(out)
    assert isinstance(policy, RecurrentPPO) and algo == "recurrent_ppo"
    result = evaluate_in_real_env(policy, MINIGRID, 2, max_steps=8, num_envs=2)  # LSTM state carried per env
    assert len(result.returns) == 2 and all(1 <= n <= 8 for n in result.lengths)


def test_model_free_ppo_in_the_real_env(tmp_path):
    out = tmp_path / "model_free"
    train_ppo.main(["--env", MINIGRID, "--timesteps", "128", "--max-episode-steps", "30", "--eval-episodes", "1",
                    "--eval-max-steps", "10", "--out", str(out), *SMALL_PPO])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["imagined"] is False and summary["real_env"] == MINIGRID and summary["checkpoint"] is None
    assert summary["real_env_steps"]["training"] == 128
    assert summary["real_env_steps"]["evaluation"] == summary["final_eval"]["env_steps"]


def test_policy_errors_speak_to_the_user(ppo_run, tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "nothing")
    with pytest.raises(PolicyError, match="pass --algo"):
        (tmp_path / "lone.zip").write_bytes((ppo_run / "policy.zip").read_bytes())
        load_policy(tmp_path / "lone.zip")
    assert isinstance(load_policy(tmp_path / "lone.zip", algo="ppo")[0], PPO)
    policy, _ = load_policy(ppo_run)
    # a 7-action MiniGrid policy cannot act in Memory Maze (6 actions); nothing is reset before the check
    with pytest.raises(ValueError, match=r"acts in Discrete\(7\), memory-maze-9x9 takes Discrete\(6\)"):
        evaluate_in_real_env(policy, "memory-maze-9x9", 1)


def test_agents_on_the_world_models_features(checkpoint, tmp_path, capsys):
    """--obs-type features: PPO (an MLP) trains on the imagined env's features and is evaluated in the real
    env through the same world model observing the real frames; agents.evaluate finds all that in the
    run's summary."""
    out = tmp_path / "features"
    train_ppo.main(["--env", "LSSVWM-MiniGrid-v0", "--checkpoint", str(checkpoint), "--real-env", MINIGRID,
                    "--obs-type", "features", "--timesteps", "128", "--context", "4", "--max-episode-steps", "20",
                    "--eval-every", "0", "--eval-episodes", "2", "--eval-max-steps", "10", "--save-every", "0",
                    "--out", str(out), *SMALL_PPO])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["policy"] == "MlpPolicy" and summary["settings"]["obs_type"] == "features"
    assert summary["final_eval"]["env"] == MINIGRID and summary["final_eval"]["episodes"] == 2
    evaluate.main(["--policy", str(out), "--env", MINIGRID, "--episodes", "2", "--max-steps", "5", "--num-envs", "1"])
    assert LAST_LINE.search(capsys.readouterr().out.strip().splitlines()[-1])
    with pytest.raises(SystemExit):  # behaviour cloning learns from frames
        train_ppo.main(["--env", MINIGRID, "--obs-type", "features", "--bc-dataset", str(tmp_path), "--out",
                        str(tmp_path / "bc")])
    assert "--bc-dataset clones the dataset's frames: it warm-starts --obs-type pixels only, not features" in \
        capsys.readouterr().err


def test_features_of_the_ids_shipped_model_without_a_checkpoint_flag(tmp_path, capsys):
    """With no --checkpoint, a features policy trains in the id's shipped model and sees the real env
    through that same model (once it was the Memory Maze default: 6 actions against MiniGrid's 7)."""
    from lssvwm_env.checkpoint import MINIGRID_CHECKPOINT

    out = tmp_path / "shipped"
    train_ppo.main(["--env", "LSSVWM-MiniGrid-v0", "--obs-type", "features", "--timesteps", "64", "--context", "1",
                    "--max-episode-steps", "10", "--eval-every", "0", "--eval-episodes", "1", "--eval-max-steps", "5",
                    "--save-every", "0", "--out", str(out), "--num-envs", "1", *SMALL_PPO[2:]])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checkpoint"] == str(MINIGRID_CHECKPOINT)
    assert summary["final_eval"]["env"] == "minigrid-memory-s7" and summary["final_eval"]["episodes"] == 1
    evaluate.main(["--policy", str(out), "--env", "minigrid-memory-s7", "--episodes", "1", "--max-steps", "5",
                   "--in-model"])
    assert LAST_LINE.search(capsys.readouterr().out.strip().splitlines()[-1])

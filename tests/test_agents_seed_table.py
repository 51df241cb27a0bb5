"""agents.seed_table: rows of several agents.compare outputs grouped by agent, each policy counted once."""

import json

import numpy as np
import pytest

from agents import seed_table
from agents.compare import Row
from agents.episodes import EvalResult

EVALUATION = dict(episodes=4, max_steps=100, seed=7, num_envs=1, deterministic=False)


def result(returns, env="minigrid-memory"):
    return EvalResult(env, returns, [10] * len(returns), 10 * len(returns), 1.0, False, 7)


def write(out, rows, evaluation=EVALUATION):
    out.mkdir(parents=True)
    (out / "results.json").write_text(json.dumps({"real_env": "minigrid-memory", "evaluation": evaluation,
                                                  "rows": [row.to_json() for row in rows]}))
    return out


def test_groups_seeds_and_counts_each_policy_once(tmp_path):
    random_row = Row("random", "-", 0, result([0.0, 0.0, 0.5, 0.0]))
    model_free = Row("model-free ppo", "minigrid-memory", 8192, result([0.0, 0.9, 0.0, 0.0]), policy="/mf0")
    seed0 = write(tmp_path / "s0", [random_row, model_free, Row(
        "imagination ppo on features", "LSSVWM-MiniGrid-v0", 8515, result([0.9, 0.9, 0.0, 0.0]),
        result([0.8, 0.8, 0.8, 0.8]), policy="/im0")])
    seed1 = write(tmp_path / "s1", [random_row, model_free, Row(
        "imagination ppo on features", "LSSVWM-MiniGrid-v0", 8515, result([0.9, 0.9, 0.9, 0.0]),
        result([0.7, 0.7, 0.7, 0.7]), policy="/im1")])
    out = tmp_path / "table" / "t"
    seed_table.main([str(seed0), str(seed1), "--out", str(out)])

    data = json.loads(out.with_suffix(".json").read_text())
    by_agent = {a["agent"]: a for a in data["agents"]}
    assert list(by_agent) == ["random", "model-free ppo", "imagination ppo on features"]
    assert by_agent["random"]["seeds"] == 1 and by_agent["model-free ppo"]["seeds"] == 1
    imagined = by_agent["imagination ppo on features"]
    assert imagined["seeds"] == 2
    assert imagined["real_return_per_seed"] == pytest.approx([0.45, 0.675])
    assert imagined["real_return"] == pytest.approx(0.5625)
    assert imagined["seed_stderr"] == pytest.approx(np.std([0.45, 0.675], ddof=1) / np.sqrt(2))
    assert imagined["success"] == pytest.approx(5 / 8)
    assert imagined["in_model_return"] == pytest.approx(0.75)
    assert imagined["imagination_gap"] == pytest.approx(0.75 - 0.5625)
    table = out.with_suffix(".md").read_text()
    assert "| imagination ppo on features | 2 | 8,515 | 0.562 ± 0.113 | 0.450, 0.675 | 62.5% | 0.750 | +0.188 |" in table


def test_refuses_outputs_that_evaluated_other_episodes(tmp_path):
    row = Row("random", "-", 0, result([0.0, 0.0, 0.0, 0.0]))
    first = write(tmp_path / "a", [row])
    other = write(tmp_path / "b", [row], {**EVALUATION, "seed": 8})
    with pytest.raises(SystemExit, match="evaluated"):
        seed_table.main([str(first), str(other), "--out", str(tmp_path / "t")])


def test_names_a_missing_output(tmp_path):
    with pytest.raises(SystemExit, match="results.json does not exist"):
        seed_table.main([str(tmp_path / "nothing"), "--out", str(tmp_path / "t")])

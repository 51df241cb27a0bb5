"""agents.compare on a tiny real dataset and a tiny real world model: random, model-free and
imagination agents in one harness, the table, the plot, and reuse of finished runs."""

import json

import matplotlib.image
import numpy as np
import pytest
from helpers import save_tiny_checkpoint

from agents import compare
from agents.episodes import EvalResult
from data_collection.collect import CollectConfig, collect

MINIGRID = "minigrid-memory-s7"  # LSSVWM-MiniGrid-v0's real env


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "minigrid"
    collect(CollectConfig(env=MINIGRID, policy="random", episodes=4, steps=40, out=out, eval_fraction=0.5),
            progress=False, log=lambda _: None)
    return out


def test_compare_writes_table_plot_and_reuses_runs(dataset, tmp_path, capsys):
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny7", num_actions=7, termination_logit=-50.0)
    manifest = json.loads((dataset / "manifest.json").read_text())
    dataset_steps = sum(e["length"] for e in manifest["episodes"])
    out = tmp_path / "compare"
    args = ["--out", str(out), "--real-env", MINIGRID, "--env", "LSSVWM-MiniGrid-v0", "--checkpoint", str(checkpoint),
            "--dataset", str(dataset), "--imagined-timesteps", "64", "--num-envs", "2", "--n-steps", "32",
            "--batch-size", "64", "--n-epochs", "1", "--max-episode-steps", "20", "--context", "4",
            "--episodes", "2", "--max-steps", "12", "--threads", "1", "--no-progress"]
    compare.main(args)
    results = json.loads((out / "results.json").read_text())
    assert results["dataset_steps"]["total"] == results["real_steps"] == dataset_steps
    random_row, model_free, imagined = results["rows"]
    assert random_row["agent"] == "random" and random_row["real_steps"] == 0 and random_row["in_model"] is None
    # the model-free agent gets the dataset's real steps (rounded up to whole rollouts of 2 x 32)
    assert model_free["agent"] == "model-free ppo" and dataset_steps <= model_free["real_steps"] < dataset_steps + 64
    assert json.loads((out / "model_free" / "summary.json").read_text())["timesteps"] == model_free["real_steps"]
    assert imagined["agent"] == "imagination ppo" and imagined["real_steps"] == dataset_steps
    assert imagined["in_model"]["lengths"] == [12, 12] and imagined["in_model"]["env"].startswith("model:")
    for row in results["rows"]:  # the same seeded real episodes for every agent
        assert row["real"]["env"] == MINIGRID and row["real"]["episodes"] == 2 and row["real"]["seed"] == 10_000

    table = (out / "comparison.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| ") and not line.startswith("| agent")]
    assert [r.split(" | ")[0] for r in rows] == ["| random", "| model-free ppo", "| imagination ppo"]
    gap = imagined["in_model"]["mean_return"] - imagined["real"]["mean_return"]
    assert rows[2].endswith(f"| {gap:+.3f} |")
    for row, line in zip(results["rows"], rows):  # mean ± std (s.e. of the mean, from the sample std)
        returns = np.array(row["real"]["returns"])
        assert f"| {returns.mean():.3f} ± {returns.std():.3f} (s.e. {returns.std(ddof=1) / np.sqrt(2):.3f}) |" in line
    assert f"{dataset_steps} steps" in "\n".join(table)
    image = matplotlib.image.imread(out / "comparison.png")
    assert image.ndim == 3 and image.shape[1] > image.shape[0] > 100

    capsys.readouterr()
    compare.main(args)
    printed = capsys.readouterr().out
    assert printed.count("reusing") == 2  # both trained runs were finished with the same budget
    again = json.loads((out / "results.json").read_text())
    assert without_timings(again["rows"]) == without_timings(results["rows"])  # seeded: the same numbers

    # A second comparison of another imagination run reuses the baseline rows of the first.
    capsys.readouterr()
    other = tmp_path / "compare-other"
    compare.main(replace_flag(args, "--out", str(other)) + ["--baselines-from", str(out),
                                                             "--model-free-policy", str(out / "model_free")])
    printed = capsys.readouterr().out
    assert "reusing the random row" in printed and "reusing the model-free ppo row" in printed
    reused = json.loads((other / "results.json").read_text())
    assert reused["reused_rows"] == {"from": str(out), "agents": ["random", "model-free ppo"]}
    assert reused["rows"][:2] == again["rows"][:2]
    assert f"earlier comparison on the same episodes ({out}): random, model-free ppo." in (
        other / "comparison.md").read_text()

    # Other evaluation episodes: nothing is reused, the baselines are evaluated again.
    compare.main(replace_flag(args, "--out", str(tmp_path / "compare-3")) + ["--baselines-from", str(out),
                                                                           "--episodes", "1"])
    printed = capsys.readouterr().out
    assert "not reusing" in printed and "reusing the" not in printed
    third = json.loads((tmp_path / "compare-3" / "results.json").read_text())
    assert third["reused_rows"] is None and third["rows"][0]["real"]["episodes"] == 1

    # Imagination from random windows of the train split is another run: the imagined agent is trained again.
    compare.main(args + ["--context-dataset", str(dataset), "--context-split", "train", "--context-start", "random"])
    printed = capsys.readouterr().out
    assert printed.count("reusing") == 1  # the model-free run only
    settings = json.loads((out / "imagined" / "summary.json").read_text())["settings"]
    assert (settings["context_dataset"], settings["context_split"], settings["context_start"]) == (
        str(dataset), "train", "random")
    trained_in = json.loads((out / "results.json").read_text())["rows"][2]["trained_in"]
    assert trained_in == "LSSVWM-MiniGrid-v0 (64 imagined steps; 20-step episodes from random windows of train episodes)"

    # A warm start by behaviour cloning retrains the imagined agent and adds the warm start alone as a row.
    compare.main(args + ["--bc-dataset", str(dataset), "--bc-epochs", "1"])
    printed = capsys.readouterr().out
    assert printed.count("reusing") == 1  # the model-free run only
    warm = json.loads((out / "results.json").read_text())
    assert [row["agent"] for row in warm["rows"]] == [
        "random", "model-free ppo", "behaviour cloning ppo (no imagination)", "imagination ppo"]
    cloned, imagined = warm["rows"][2:]
    assert cloned["real_steps"] == dataset_steps and cloned["in_model"] is None
    assert cloned["trained_in"] == f"{dataset} (offline)" and cloned["real"]["seed"] == 10_000
    cloned_summary = json.loads((out / "behavior_cloning" / "summary.json").read_text())
    assert cloned_summary["timesteps"] == 0 and len(cloned_summary["behavior_cloning"]["epochs"]) == 1
    imagined_summary = json.loads((out / "imagined" / "summary.json").read_text())
    assert imagined_summary["behavior_cloning"]["transitions"] == cloned_summary["behavior_cloning"]["transitions"]
    assert imagined["trained_in"] == (
        f"LSSVWM-MiniGrid-v0 (64 imagined steps; warm start: behaviour cloning on {dataset})")

    # Anchored to the warm start: only the imagined agent is trained again, with the KL in place of the entropy.
    compare.main(args + ["--bc-dataset", str(dataset), "--bc-epochs", "1", "--bc-anchor", "0.5"])
    assert capsys.readouterr().out.count("reusing") == 2  # the model-free run and the warm start alone
    anchored = json.loads((out / "imagined" / "summary.json").read_text())
    assert anchored["policy"] == "AnchoredCnnPolicy"
    assert anchored["settings"]["bc_anchor"] == 0.5
    assert json.loads((out / "results.json").read_text())["rows"][3]["trained_in"] == (
        f"LSSVWM-MiniGrid-v0 (64 imagined steps; warm start: behaviour cloning on {dataset}, held by 0.5 x KL to it)")


def test_flags_refused_without_the_flag_they_need(tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare.main(["--out", str(tmp_path), "--real-env", MINIGRID, "--real-steps", "64", "--context-start", "random"])
    assert "--context-start random choose where in a dataset's episodes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare.main(["--out", str(tmp_path), "--real-env", MINIGRID, "--real-steps", "64", "--bc-anchor", "0.5"])
    assert "--bc-anchor keeps PPO near the warm start; pass --bc-dataset DIR too" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare.main(["--out", str(tmp_path), "--real-env", MINIGRID, "--real-steps", "64",
                      "--bc-dataset", str(tmp_path), "--bc-anchor", "-1"])
    assert "--bc-anchor -1.0: the KL coefficient must be > 0" in capsys.readouterr().err


def test_compare_baselines_from_names_the_missing_file(tmp_path):
    with pytest.raises(SystemExit, match="compare-never-run/results.json does not exist"):
        compare.main(["--out", str(tmp_path / "out"), "--real-env", MINIGRID, "--real-steps", "10",
                      "--baselines-from", str(tmp_path / "compare-never-run")])


def replace_flag(args, flag, value):
    i = args.index(flag)
    return args[:i + 1] + [value] + args[i + 2:]


def without_timings(rows):
    return [{k: ({m: w for m, w in v.items() if m != "seconds"} if isinstance(v, dict) else v) for k, v in row.items()}
            for row in rows]


def test_stderr_of_the_mean_return():
    result = EvalResult("minigrid-memory", [0.0, 1.0, 2.0, 3.0], [5] * 4, 20, 1.0, False, 0)
    assert result.stderr_return == pytest.approx(np.sqrt(5 / 3) / 2)  # sample variance 5/3, 4 episodes
    assert EvalResult("minigrid-memory", [1.0], [5], 5, 1.0, False, 0).stderr_return == 0.0

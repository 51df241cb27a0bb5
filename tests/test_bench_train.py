"""`lssvwm bench train`: the figures it prints, for the preset and for a config changed with --set."""

import json

import pytest

from lssvwm_env.cli import main
from lssvwm_env.config_io import ConfigError


def bench(capsys, *extra: str) -> dict:
    assert main(["bench", "train", "--preset", "tiny", "--steps", "1", "--threads", "1", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_bench_train_measures_the_config_that_set_describes(capsys):
    plain = bench(capsys)
    assert plain["overrides"] == "-" and plain["batch"] == 2 and plain["window"] == 8 and plain["frames_per_s"] > 0
    # A wider model costs more compute per step: the override reaches the model that is timed.
    wide = bench(capsys, "--set", "model.backbone.d_model=64")
    assert wide["overrides"] == "model.backbone.d_model=64"
    assert wide["gflop_per_step"] > 1.5 * plain["gflop_per_step"]


def test_bench_train_names_an_unknown_field(capsys):
    with pytest.raises(ConfigError, match="model.backbone.no_such_field"):
        main(["bench", "train", "--preset", "tiny", "--set", "model.backbone.no_such_field=1"])

"""Continuous (box) actions in the data layer: a dm_control task collected from pixels, stored as
float32 (T, n) with the bounds in the manifest, validated; discrete datasets unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_collection.dataset import Dataset, dataset_info, validate_dataset
from data_collection.envs import FRAME_SHAPE, ActionSpace, EnvError, UnknownEnvError, make_env, parse_dmc_name
from data_collection.policies import make_policy
from lssvwm_env.cli import main as lssvwm

from helpers import rewrite_episode

ENV = "dmc:cartpole-swingup:repeat=4"


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "cartpole"
    assert lssvwm(["collect", "--env", ENV, "--policy", "random:momentum=0.8", "--episodes", "2", "--steps", "12",
                   "--out", str(out), "--seed", "5", "--quiet"]) == 0
    return out


def test_dm_control_collects_box_actions_within_the_bounds(cartpole, capsys):
    assert validate_dataset(cartpole) == []
    manifest = json.loads((cartpole / "manifest.json").read_text())
    assert manifest["action_space"] == {"type": "box", "shape": [1], "low": [-1.0], "high": [1.0]}
    episode = Dataset.open(cartpole).load_episode(0)
    actions = episode["actions"]
    assert actions.dtype == np.float32 and actions.shape == (12, 1)
    assert (np.abs(actions) <= 1).all() and len(np.unique(actions)) > 1
    # momentum 0.8: most steps keep the action before
    assert (actions[1:] == actions[:-1]).mean() > 0.5
    assert episode["frames"].shape == (12, *FRAME_SHAPE) and episode["final_frame"].shape == FRAME_SHAPE
    # the pole and cart move: frames differ from step to step
    assert (episode["frames"][1:] != episode["frames"][:-1]).any(axis=(1, 2, 3)).all()
    assert 0 <= episode["rewards"].min() and episode["rewards"].max() <= 4  # 4 control steps of [0, 1]
    info = dataset_info(cartpole)
    assert info.action_counts == [] and info.action_components[0][:2] == (-1.0, 1.0)
    assert lssvwm(["data", "info", str(cartpole)]) == 0
    assert "[0] in [-1, 1]" in capsys.readouterr().out


def test_box_actions_outside_the_bounds_or_of_the_wrong_kind_are_named(cartpole, tmp_path):
    data = Path(shutil.copytree(cartpole, tmp_path / "copy"))
    episode = Dataset.open(data).load_episode(0)
    actions = episode["actions"].copy()
    actions[3, 0] = 1.5
    rewrite_episode(data, 0, actions=actions)
    rewrite_episode(data, 1, actions=np.zeros(12, np.int64))
    problems = "\n".join(validate_dataset(data))
    assert "ep_000000.npz: field 'actions' has 1 values outside the box [low, high]" in problems
    assert "actions[3, 0] = 1.5" in problems
    assert "ep_000001.npz: field 'actions' has dtype int64, expected float32" in problems
    assert "ep_000001.npz: field 'actions' has shape (12,), expected (T, 1)" in problems

    manifest = json.loads((data / "manifest.json").read_text())
    manifest["action_space"] = {"type": "box", "shape": [1], "low": [1.0], "high": [-1.0]}
    (data / "manifest.json").write_text(json.dumps(manifest))
    assert "field 'action_space' has a 'low' above its 'high'" in "\n".join(validate_dataset(data))


def test_dmc_names_and_spaces():
    assert parse_dmc_name("dmc:reacher-easy:repeat=2,camera=1").repeat == 2
    with pytest.raises(UnknownEnvError, match="expected dmc:DOMAIN-TASK"):
        parse_dmc_name("dmc:cartpole")
    with pytest.raises(UnknownEnvError, match="is not repeat=N or camera=N"):
        parse_dmc_name("dmc:cartpole-swingup:speed=2")
    with pytest.raises(UnknownEnvError, match="dm_control has no task cartpole-fly"):
        make_env("dmc:cartpole-fly")
    space = ActionSpace(2, kind="box", low=(-1.0, 0.0), high=(1.0, 2.0))
    assert ActionSpace.from_json(space.to_json()) == space
    box = space.gymnasium()
    assert box.shape == (2,) and box.dtype == np.float32 and list(box.high) == [1.0, 2.0]
    assert ActionSpace.from_gymnasium(box, "here") == space
    import gymnasium as gym
    with pytest.raises(EnvError, match="one dimension with finite bounds"):
        ActionSpace.from_gymnasium(gym.spaces.Box(-np.inf, np.inf, (2,)), "env 'x'")
    with pytest.raises(EnvError, match="one dimension"):
        ActionSpace.from_gymnasium(gym.spaces.Box(-1, 1, (2, 3)), "env 'x'")


def test_random_policy_momentum_and_discrete_reproducibility():
    from data_collection.envs import EnvSpec, Step

    discrete = EnvSpec(name="x", kind="gymnasium", target="x", action_space=ActionSpace(5))
    policy = make_policy("random", discrete)
    policy.reset(Step(np.zeros(FRAME_SHAPE, np.uint8)), {}, np.random.default_rng(0), 10)
    # without momentum the policy draws as it always did, so older datasets stay reproducible
    assert [policy.act(None) for _ in range(8)] == list(np.random.default_rng(0).integers(5, size=8))
    box = EnvSpec(name="y", kind="dm-control", target="y", action_space=ActionSpace(2, kind="box", low=(-1, -2), high=(1, 2)))
    policy = make_policy("random:momentum=0.9", box)
    policy.reset(Step(np.zeros(FRAME_SHAPE, np.uint8)), {}, np.random.default_rng(0), 500)
    actions = np.stack([policy.act(None) for _ in range(500)])
    assert actions.dtype == np.float32 and (np.abs(actions) <= [1, 2]).all()
    changes = (actions[1:] != actions[:-1]).any(axis=1).mean()
    assert 0.05 < changes < 0.15  # a new action one step in ten

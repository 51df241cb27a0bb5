"""agents/behavior_cloning.py through agents.train_ppo: on a real dataset whose actions follow the
frame's colour, the cloned actor takes the data's action on held-out frames and the critic learns
the data's returns; the errors name the flag or file."""

import json

import numpy as np
import pytest
import torch
from helpers import rewrite_episode

from agents import compare, train_ppo
from agents.anchor import AnchoredCnnPolicy
from agents.behavior_cloning import returns_to_go
from agents.envs import RealImageEnv
from agents.policies import load_policy
from data_collection.collect import CollectConfig, collect
from data_collection.dataset import Dataset, DatasetError

MINIGRID = "minigrid-memory"
COLOURS = np.array([[220, 30, 30], [30, 200, 40], [40, 60, 230]], np.uint8)
ACTION_OF_COLOUR = np.array([2, 0, 5])  # MiniGrid: forward, left, done
GAMMA = 0.5
SMALL = ["--num-envs", "1", "--threads", "1", "--no-progress", "--eval-episodes", "0"]


def coloured_frames(colours: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.integers(-20, 21, (len(colours), 64, 64, 3))
    return np.clip(COLOURS[colours][:, None, None, :] + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A collected MiniGrid dataset rewritten so its behaviour is a rule of the frame: each frame is
    one of three noisy colours and the action taken after it is that colour's. Reward 1 at every
    step, so the return-to-go is 2 (gamma 0.5) but in the last steps of an episode."""
    out = tmp_path_factory.mktemp("data") / "colours"
    collect(CollectConfig(env=MINIGRID, policy="random", episodes=6, steps=60, out=out, eval_fraction=0.34),
            progress=False, log=lambda _: None)
    rng = np.random.default_rng(0)
    for entry in Dataset.open(out).episodes():
        colours = rng.integers(3, size=entry.length)
        rewrite_episode(out, entry.index, frames=coloured_frames(colours, rng), actions=ACTION_OF_COLOUR[colours],
                         rewards=np.ones(entry.length, np.float32))
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["episodes"]:
        entry["return"] = float(entry["length"])
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert Dataset.open(out).episodes("eval"), "the held-out split must not be empty"
    return out


def test_returns_to_go_discounts_within_the_episode():
    np.testing.assert_allclose(returns_to_go(np.array([0, 1, 0, 2], np.float32), 0.5),
                               [0.5 * (1 + 0.5 * 0.5 * 2), 1 + 0.5 * 0.5 * 2, 0.5 * 2, 2])


def test_cloned_policy_acts_as_the_data_and_values_its_returns(dataset, tmp_path):
    out = tmp_path / "bc"
    train_ppo.main(["--env", MINIGRID, "--timesteps", "0", "--bc-dataset", str(dataset), "--bc-epochs", "30",
                    "--gamma", str(GAMMA), "--out", str(out), *SMALL])
    summary = json.loads((out / "summary.json").read_text())
    cloning = summary["behavior_cloning"]
    assert summary["status"] == "done" and summary["timesteps"] == 0
    assert summary["real_env_steps"]["training"] == 0
    assert cloning["transitions"] == sum(e.length for e in Dataset.open(dataset).episodes("train"))
    assert cloning["majority_accuracy"] < 0.5  # three actions about equally often
    first, last = cloning["epochs"][0]["held_out"], cloning["epochs"][-1]["held_out"]
    assert last["accuracy"] > 0.95 and last["cross_entropy"] < first["cross_entropy"]

    policy, algo = load_policy(out)
    assert algo == "ppo"
    rng = np.random.default_rng(1)
    colours = np.repeat(np.arange(3), 10)
    frames = coloured_frames(colours, rng)  # frames the policy never saw
    actions, _ = policy.predict(frames, deterministic=True)
    np.testing.assert_array_equal(actions, ACTION_OF_COLOUR[colours])
    obs, _ = policy.policy.obs_to_tensor(frames)
    values = policy.policy.predict_values(obs).detach().numpy().ravel()
    assert np.abs(values - 2.0).max() < 0.5, values  # the return-to-go of almost every step


def action_probabilities(policy, frames: np.ndarray) -> np.ndarray:
    obs, _ = policy.obs_to_tensor(frames)
    with torch.no_grad():
        return policy.get_distribution(obs).distribution.probs.numpy()


def real_frames(count: int) -> np.ndarray:
    """Frames of the real MiniGrid env under random actions: what PPO trains on there."""
    env, rng = RealImageEnv(MINIGRID), np.random.default_rng(2)
    frames = [env.reset(seed=3)[0]]
    while len(frames) < count:
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        frames.append(env.reset()[0] if terminated or truncated else obs)
    return np.stack(frames)


def cloned_run(dataset, out, *ppo_flags: str, bc_epochs: int = 5):
    """A run warm-started on the colour dataset: the warm start alone, or PPO after it with ppo_flags."""
    train_ppo.main(["--env", MINIGRID, "--bc-dataset", str(dataset), "--bc-epochs", str(bc_epochs), "--gamma", str(GAMMA),
                    "--out", str(out), *SMALL, *(ppo_flags or ("--timesteps", "0"))])
    return out


def test_anchor_replaces_the_entropy_with_the_kl_to_the_warm_start(dataset, tmp_path):
    policy, _ = load_policy(cloned_run(dataset, tmp_path / "bc"))
    anchored = AnchoredCnnPolicy(policy.observation_space, policy.action_space, lambda _: 1e-3)
    anchored.load_state_dict(policy.policy.state_dict())
    anchored.set_anchor()
    assert len(list(anchored.parameters())) == len(list(policy.policy.parameters()))  # the anchor is no submodule
    frames = coloured_frames(np.arange(12) % 3, np.random.default_rng(1))
    obs, _ = anchored.obs_to_tensor(frames)
    actions = torch.as_tensor(ACTION_OF_COLOUR[np.arange(12) % 3])
    np.testing.assert_allclose(anchored.evaluate_actions(obs, actions)[2].detach().numpy(), 0, atol=1e-6)

    before = action_probabilities(anchored, frames)
    with torch.no_grad():
        anchored.action_net.bias += torch.linspace(-1, 1, len(anchored.action_net.bias))
    after = action_probabilities(anchored, frames)
    kl = (after * (np.log(after) - np.log(before))).sum(-1)
    assert kl.min() > 1e-3
    np.testing.assert_allclose(-anchored.evaluate_actions(obs, actions)[2].detach().numpy(), kl, rtol=1e-4)
    np.testing.assert_allclose(action_probabilities(anchored._anchor, frames), before, rtol=1e-5)  # frozen


def test_anchored_ppo_stays_nearer_the_warm_start_than_entropy_bonus_ppo(dataset, tmp_path):
    """Same warm start, the same weight: with the anchor (--bc-anchor 1.0) PPO is pulled towards the cloned
    policy, without it (--ent-coef 1.0) towards the uniform one; on the real env's frames the anchored
    policy ends nearer the clone."""
    frames = real_frames(64)
    # 30 epochs: a clone of 5 came out near uniform on the real env's frames (entropy 1.94 of 1.95 with
    # the packages of 2026-12-02), which leaves an entropy bonus nothing to pull; after 30, 1.58.
    start = action_probabilities(load_policy(cloned_run(dataset, tmp_path / "bc", bc_epochs=30))[0].policy, frames)
    assert (start * np.log(start)).sum(-1).mean() > -0.9 * np.log(start.shape[-1])  # the premise: not uniform
    ppo = ("--timesteps", "1024", "--n-steps", "128", "--n-epochs", "10", "--learning-rate", "3e-3")
    kl = {}
    for name, extra in [("anchored", ("--bc-anchor", "1.0")), ("entropy", ("--ent-coef", "1.0"))]:
        out = cloned_run(dataset, tmp_path / name, *ppo, *extra, bc_epochs=30)
        probs = action_probabilities(load_policy(out)[0].policy, frames)
        kl[name] = float((probs * (np.log(probs) - np.log(start))).sum(-1).mean())
    summary = json.loads((tmp_path / "anchored" / "summary.json").read_text())
    assert summary["policy"] == "AnchoredCnnPolicy" and summary["settings"]["bc_anchor"] == 1.0
    assert kl["anchored"] < 0.5 * kl["entropy"], kl


def test_warm_start_errors_name_the_flag_or_file(dataset, tmp_path, capsys):
    for main in (train_ppo.main, compare.main):  # both refuse before anything loads
        with pytest.raises(SystemExit):
            main(["--algo", "recurrent_ppo", "--bc-dataset", str(dataset), "--out", str(tmp_path / "rppo"),
                  *(["--env", MINIGRID] if main is train_ppo.main else ["--real-env", MINIGRID, "--real-steps", "64"])])
        assert "--bc-dataset warm-starts --algo ppo only, not recurrent_ppo" in capsys.readouterr().err
    with pytest.raises(ValueError, match="bc_dataset: behaviour cloning warm-starts ppo only"):
        train_ppo.train(train_ppo.TrainArgs(env=MINIGRID, out=tmp_path / "rppo", algo="recurrent_ppo",
                                            bc_dataset=str(dataset)))
    with pytest.raises(DatasetError, match="no-such-data"):
        train_ppo.main(["--env", MINIGRID, "--timesteps", "0", "--bc-dataset", str(tmp_path / "no-such-data"),
                        "--out", str(tmp_path / "missing"), *SMALL])
    assert not (tmp_path / "missing").exists()  # refused before the run directory was made
    with pytest.raises(SystemExit):
        train_ppo.main(["--env", MINIGRID, "--bc-anchor", "0.3", "--out", str(tmp_path / "anchor")])
    assert "--bc-anchor keeps PPO near the warm start; pass --bc-dataset DIR too" in capsys.readouterr().err
    with pytest.raises(ValueError, match="bc_anchor keeps PPO near the warm start; set bc_dataset too"):
        train_ppo.train(train_ppo.TrainArgs(env=MINIGRID, out=tmp_path / "anchor", bc_anchor=True))
    with pytest.raises(ValueError, match="timesteps >= 0 with a bc_dataset"):
        train_ppo.main(["--env", MINIGRID, "--timesteps", "0", "--out", str(tmp_path / "none"), *SMALL])
    for name, field, value, message in [
            ("six-actions", "action_space", {"type": "discrete", "n": 6}, r"its actions are Discrete\(6\) \(manifest"),
            ("small-frames", "obs_shape", [32, 32, 3], r"its frames are \(32, 32, 3\) \(manifest.json obs_shape\), "
                                                       r"the policy takes \(64, 64, 3\)")]:
        manifest = json.loads((dataset / "manifest.json").read_text())
        manifest[field] = value
        other = tmp_path / name
        other.mkdir()
        (other / "manifest.json").write_text(json.dumps(manifest))
        (other / "episodes").symlink_to(dataset / "episodes")
        with pytest.raises(DatasetError, match=f"{name}: {message}"):
            train_ppo.main(["--env", MINIGRID, "--timesteps", "0", "--bc-dataset", str(other),
                            "--out", str(tmp_path / f"run-{name}"), *SMALL])

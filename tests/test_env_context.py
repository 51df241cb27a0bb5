"""Real context for resets from a real (tiny MiniGrid) dataset (episode starts and random windows),
the file shipped beside a checkpoint, a live real-env prefix and given arrays (primed whole: the env
agrees with the evaluation's rollouts); `lssvwm export --predict-from`; and
short runs of `lssvwm play --video` and the env benchmark."""

import argparse
import json
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from helpers import save_tiny_checkpoint

import lssvwm_env  # noqa: F401  (registers the ids)
from lssvwm_env.cli import main as lssvwm_main
from lssvwm_env.envs import bench_env
from data_collection.envs import ActionSpace
from lssvwm_env.envs.context import CONTEXT_FILE, ContextError, write_context_file

MINIGRID = "minigrid-fourrooms"  # 7 actions, fast


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from data_collection.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("minigrid_data")
    collect(CollectConfig(env=MINIGRID, policy="random", episodes=4, steps=12, out=out, eval_fraction=0.5),
            progress=False, log=lambda message: None)
    return out


@pytest.fixture(scope="module")
def eval_episodes(dataset):
    from data_collection.dataset import Dataset

    data = Dataset.open(dataset)
    return [data.load_episode(entry.index) for entry in data.episodes("eval")]


@pytest.fixture(scope="module")
def minigrid_checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("minigrid_model"), num_actions=7, context_shape=None,
                                termination_logit=-50.0)


def test_reset_primes_on_held_out_dataset_episodes(minigrid_checkpoint, dataset, eval_episodes):
    env = gym.make("LSSVWM-MiniGrid-v0", checkpoint=minigrid_checkpoint, dataset=dataset, context=5)
    assert env.action_space == gym.spaces.Discrete(7)
    starts = set()
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        matches = [i for i, ep in enumerate(eval_episodes) if np.array_equal(obs, ep["frames"][4])]
        assert matches, "the first observation must be frame 4 of an eval episode"
        starts.update(matches)
    assert starts == set(range(len(eval_episodes)))  # the seed chooses among all of them
    first, _ = env.reset(seed=0)
    again, _ = env.reset(seed=0)
    assert np.array_equal(first, again)
    # a dataset of another env does not fit the model
    with pytest.raises(ContextError, match=r"has actions Discrete\(7\) and frames of shape \(64, 64, 3\).*the model has Discrete\(6\)"):
        gym.make("LSSVWM-Memory-v0", checkpoint=save_tiny_checkpoint(minigrid_checkpoint.parent / "six"),
                 dataset=dataset)


def test_random_start_primes_on_windows_from_anywhere_in_the_chosen_split(minigrid_checkpoint, dataset):
    from data_collection.dataset import Dataset
    from lssvwm_env.envs.context import DatasetEpisodes
    from lssvwm_env.training.data import input_actions

    data = Dataset.open(dataset)
    train = [data.load_episode(entry.index) for entry in data.episodes("train")]
    source = DatasetEpisodes(dataset, ActionSpace(7), (64, 64, 3), split="train", start="random")
    rng = np.random.default_rng(0)
    offsets = set()
    for frames, actions in source.draw(rng, 40, 3, full_reset=False):
        # 3 consecutive frames of a train episode with the actions that led to them, the first one
        # included (not NO_ACTION mid-episode); MiniGrid frames repeat, so several offsets may fit
        found = [o for ep in train for o in range(len(ep["frames"]) - 2)
                 if np.array_equal(frames, ep["frames"][o:o + 3])
                 and np.array_equal(actions, input_actions(ep["actions"])[o:o + 3])]
        assert found, "each context must be a window of a train episode"
        offsets.add(found[0])
    assert len(offsets) > 3 and max(offsets) > 0  # windows start all over the episodes, not at frame 0

    env = gym.make("LSSVWM-MiniGrid-v0", checkpoint=minigrid_checkpoint, dataset=dataset, dataset_split="train",
                   context_start="random", context=3)
    observations = [env.reset(seed=seed)[0] for seed in range(8)]
    assert all(any(np.array_equal(obs, frame) for ep in train for frame in ep["frames"][2:]) for obs in observations)
    assert len({obs.tobytes() for obs in observations}) > 2
    with pytest.raises(ContextError, match="context start 'middle' is not one of"):
        env.reset(options={"dataset": str(dataset), "start": "middle"})
    with pytest.raises(ContextError, match="dataset split 'test' is not one of"):
        DatasetEpisodes(dataset, ActionSpace(7), (64, 64, 3), split="test")
    with pytest.raises(ValueError, match="context_start='random' choose where in a dataset .* pass dataset=DIR"):
        gym.make("LSSVWM-MiniGrid-v0", checkpoint=minigrid_checkpoint, context_start="random")


def test_context_file_written_beside_the_checkpoint_primes_resets(tmp_path, dataset, eval_episodes):
    checkpoint = save_tiny_checkpoint(tmp_path / "model", num_actions=7, context_shape=None)
    path = write_context_file(checkpoint, dataset, episodes=2, frames=8)
    assert path == checkpoint / CONTEXT_FILE
    with np.load(path) as data:
        assert data["frames"].shape == (2, 8, 64, 64, 3) and data["frames"].dtype == np.uint8
        assert data["actions"].shape == (2, 8) and data["actions"].dtype == np.int64
        for ep, frames, actions in zip(eval_episodes, data["frames"], data["actions"]):
            assert np.array_equal(frames, ep["frames"][:8]) and np.array_equal(actions, ep["actions"][:8])
    env = gym.make("LSSVWM-MiniGrid-v0", checkpoint=checkpoint, context=6)
    obs, _ = env.reset(seed=0)
    assert any(np.array_equal(obs, ep["frames"][5]) for ep in eval_episodes)
    with pytest.raises(ContextError, match="eval episodes have at least 100 frames"):
        write_context_file(checkpoint, dataset, episodes=2, frames=100)


def test_export_chooses_what_the_heads_read_and_older_configs_load(minigrid_checkpoint, dataset, tmp_path):
    from lssvwm_env.checkpoint import CheckpointError, load_world_model

    out = tmp_path / "prior"
    assert lssvwm_main(["export", str(minigrid_checkpoint), "--data", str(dataset), "--out", str(out),
                        "--context-episodes", "1", "--context-frames", "4", "--predict-from", "prior"]) == 0
    assert load_world_model(out).config.heads.predict_from == "prior"
    assert load_world_model(minigrid_checkpoint).config.heads.predict_from == "committed"
    obs, _ = gym.make("LSSVWM-MiniGrid-v0", checkpoint=out, context=4).reset(seed=0)  # it imagines
    assert obs.shape == (64, 64, 3)
    # a config written before the setting existed imagines as it did: from the committed frame
    config = json.loads((out / "config.json").read_text())
    del config["model"]["heads"]["predict_from"]
    (out / "config.json").write_text(json.dumps(config))
    assert load_world_model(out).config.heads.predict_from == "committed"
    config["model"]["heads"]["predict_from"] = "posterior"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config.json: invalid model config: heads.predict_from is 'posterior'"):
        load_world_model(out)


def test_reset_primes_on_a_live_real_env_prefix(minigrid_checkpoint):
    from data_collection.collect import rollout
    from data_collection.envs import make_env
    from data_collection.policies import make_policy
    from gymnasium.utils import seeding

    env = gym.make("LSSVWM-MiniGrid-v0", checkpoint=minigrid_checkpoint, context=4)
    obs, _ = env.reset(seed=9, options={"real_env": MINIGRID})
    # The same draws by hand: the noise seed, then the real env's seed and random actions.
    rng = seeding.np_random(9)[0]
    rng.integers(2**63 - 1)
    with make_env(MINIGRID) as real:
        episode = rollout(real, make_policy("random", real.spec), int(rng.integers(2**31)), rng, max_steps=4)
    assert np.array_equal(obs, episode["frames"][3])
    with pytest.raises(ContextError, match=r"real_env='memory-maze-9x9' has actions Discrete\(6\) .* the model has Discrete\(7\)"):
        env.reset(options={"real_env": "memory-maze-9x9"})


def test_the_env_imagines_what_the_evaluation_imagines_after_more_frames_than_its_context(
        minigrid_checkpoint, minigrid_retrace):
    """Issue 38: the same checkpoint, real past, actions and sampling noise give the same frames
    through gym.make(...).reset(options=...)/step as through the memory benchmark's rollouts
    (evaluation.memory.generate_rollouts), with 40 frames given to an env whose context= is 8."""
    from data_collection.dataset import Dataset
    from lssvwm_env.checkpoint import load_world_model
    from lssvwm_env.evaluation.memory import generate_rollouts

    episode = Dataset.open(minigrid_retrace).load_episode(0)
    given, generate = 40, 8
    env = gym.make("LSSVWM-MiniGrid-v0", checkpoint=minigrid_checkpoint, context=8)
    env.reset(seed=3, options={"frames": episode["frames"][:given], "actions": episode["actions"][:given - 1]})
    # actions[t] is taken after frames[t]: actions[given - 1] leads to the first frame not given
    imagined = np.stack([env.step(int(a))[0] for a in episode["actions"][given - 1:given - 1 + generate]])
    noise_seed = env.unwrapped.core.generator.initial_seed()  # what reset(seed=3) seeded the noise with
    rollouts = generate_rollouts(load_world_model(minigrid_checkpoint), [episode], given, generate,
                                 sampling_steps=None, batch_size=1, seed=noise_seed)
    evaluated = rollouts.generated[0].numpy()
    assert imagined.shape == evaluated.shape == (generate, 64, 64, 3)
    # The same passes on the same inputs: equal but for float rounding, which may move a few values
    # by one level. (Primed on the first 8 frames, as before issue 38, 7% of them differed: the tiny
    # random model depends only weakly on its past.)
    difference = np.abs(imagined.astype(int) - evaluated.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3


def given_past(length=30, seed=7):
    """Random frames (all different, unlike MiniGrid views, which repeat) and MiniGrid actions."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (length, 64, 64, 3), dtype=np.uint8), rng.integers(0, 7, length - 1)


def test_frames_given_to_reset_are_primed_whole_in_every_env(minigrid_checkpoint):
    """More frames given than context=4: every env view observes the last frame given, on reset,
    after an autoreset and in a snapshot taken right after the reset (issue 38)."""
    from lssvwm_env.checkpoint import load_world_model
    from lssvwm_env.envs.sb3_vec_env import LSSVWMSB3VecEnv

    frames, actions = given_past()
    given = {"frames": frames, "actions": actions}
    env = gym.make("LSSVWM-MiniGrid-v0", checkpoint=minigrid_checkpoint, context=4)
    obs, _ = env.reset(seed=0, options=given)
    assert np.array_equal(obs, frames[-1])
    snapshot = env.unwrapped.get_state()
    assert np.array_equal(snapshot.frames[0], frames[-1])
    branch = [env.step(a)[0] for a in (1, 2, 2)]
    obs, _ = env.reset()  # the given arrays stay the source, whole
    assert np.array_equal(obs, frames[-1])
    # the snapshot, restored in another env primed elsewhere, steps on from the given past
    other = gym.make("LSSVWM-MiniGrid-v0", checkpoint=minigrid_checkpoint, context=4)
    other.reset(seed=1, options={"frames": frames[:5], "actions": actions[:4]})
    other.unwrapped.set_state(snapshot)
    assert all(np.array_equal(other.step(a)[0], b) for a, b in zip((1, 2, 2), branch))
    # ... as the env does after a reset on the given frames with the same noise
    env.reset(seed=0, options=given)
    assert all(np.array_equal(env.step(a)[0], b) for a, b in zip((1, 2, 2), branch))

    latent_env = gym.make("LSSVWM-MiniGrid-v0", checkpoint=minigrid_checkpoint, context=4, obs_type="latent")
    obs, _ = latent_env.reset(seed=0, options=given)
    last = load_world_model(minigrid_checkpoint).encode(torch.from_numpy(frames[None, -1:]))[0, 0].numpy()
    assert np.allclose(obs, last, atol=1e-5)

    # the vector env: two given episodes, one per env; the next-step autoreset primes on all of it again
    second = given_past(seed=8)[0]
    envs = gym.make_vec("LSSVWM-MiniGrid-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        checkpoint=minigrid_checkpoint, context=4, max_episode_steps=1)
    obs, _ = envs.reset(seed=0, options={"frames": np.stack([frames, second]), "actions": np.stack([actions] * 2)})
    assert np.array_equal(obs[0], frames[-1]) and np.array_equal(obs[1], second[-1])
    assert np.array_equal(envs.get_state().frames, obs)
    envs.reset(options={**given, "reset_mask": np.array([False, True])})
    _, _, _, truncated, _ = envs.step(np.array([1, 2]))
    assert truncated.all()
    obs, *_ = envs.step(np.array([1, 2]))
    assert all(np.array_equal(o, frames[-1]) for o in obs)

    # the SB3 VecEnv: on reset, and on the reset within the step that ends an episode
    venv = LSSVWMSB3VecEnv(num_envs=2, checkpoint=minigrid_checkpoint, context=4, max_episode_steps=1)
    venv.set_options(given)
    obs = venv.reset()
    assert all(np.array_equal(o, frames[-1]) for o in obs)
    obs, _, dones, infos = venv.step(np.array([1, 2]))
    assert dones.all() and all(np.array_equal(o, frames[-1]) for o in obs)
    assert not np.array_equal(infos[0]["terminal_observation"], frames[-1])


def test_given_frames_that_do_not_fit_are_refused_before_anything_changes(minigrid_checkpoint):
    frames, actions = given_past(10)
    env = gym.make("LSSVWM-MiniGrid-v0", checkpoint=minigrid_checkpoint, context=4)
    env.reset(seed=0, options={"frames": frames, "actions": actions})
    snapshot = env.unwrapped.get_state()
    expected = [env.step(a)[0] for a in (1, 2)]
    env.unwrapped.set_state(snapshot)
    bad = [
        ({"frames": frames, "actions": actions[:5]},
         r"reset options: 'actions' must have shape \(10,\) or \(9,\) .* got 'frames' uint8 \(10, 64, 64, 3\) "
         r"and 'actions' int64 \(5,\)"),
        ({"frames": frames[None], "actions": actions},
         r"'actions' must have shape \(1, 10\) or \(1, 9\) .* 'actions' int64 \(9,\)"),
        ({"frames": frames[..., :2], "actions": actions}, r"'frames' must be uint8 of shape \(T, 64, 64, 3\)"),
        ({"frames": frames.astype(np.float32), "actions": actions}, r"got 'frames' float32 \(10, 64, 64, 3\)"),
        ({"frames": [frames[0], frames[1, :32]], "actions": actions[:1]}, r"'frames' is not one array"),
        ({"frames": frames, "actions": actions.astype(float)}, r"'actions' must be integers, got .* float64"),
        ({"frames": frames}, r"need both 'frames' and 'actions'"),
    ]
    for options, message in bad:
        with pytest.raises(ContextError, match=message):
            env.reset(seed=5, options=options)
    # nothing moved: not the state, not the noise, not the source
    assert all(np.array_equal(env.step(a)[0], b) for a, b in zip((1, 2), expected))
    assert np.array_equal(env.reset()[0], frames[-1])


def test_play_writes_a_video(tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "model")
    video = tmp_path / "play.mp4"
    code = lssvwm_main(["play", "--checkpoint", str(checkpoint), "--video", str(video), "--steps", "5",
                        "--policy", "forward", "--context", "4", "--scale", "2"])
    assert code == 0
    frames = imageio.mimread(video)
    assert len(frames) >= 6 and frames[0].shape == (128, 128, 3)


def test_bench_env_prints_figures(tmp_path, minigrid_checkpoint, capsys):
    parser = argparse.ArgumentParser()
    bench_env.add_arguments(parser)
    out = tmp_path / "bench.json"
    args = parser.parse_args(["--checkpoint", str(minigrid_checkpoint), "--num-envs", "1", "2", "--steps", "2",
                              "--warmup", "1", "--context", "4", "--real-env", MINIGRID, "--real-steps", "10",
                              "--real-workers", "2", "--obs-type", "latent", "--json", str(out)])
    assert bench_env.run(args) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [row["num_envs"] for row in rows] == [1, 2, 1, 2]  # imagined 1 and 2; real 1 process and 2
    assert rows[2]["env"] == f"real {MINIGRID}" and rows[3]["env"] == f"real {MINIGRID}, 2 processes"
    assert rows[3]["steps"] == 20 and rows[0]["env"].endswith(", latent)")
    assert all(row["steps_per_s"] > 0 for row in rows)
    assert rows[1]["state_bytes_per_env"] == rows[0]["state_bytes_per_env"]
    ratios = result["imagined_over_real_machine_wide"]
    assert ratios["2"] == pytest.approx(rows[1]["steps_per_s"] / rows[3]["steps_per_s"])
    printed = capsys.readouterr().out
    assert "steps/s" in printed and "imagined / real machine-wide" in printed


def test_bench_env_profiles_where_a_batch_step_goes(minigrid_checkpoint, capsys):
    parser = argparse.ArgumentParser()
    bench_env.add_arguments(parser)
    args = parser.parse_args(["--checkpoint", str(minigrid_checkpoint), "--num-envs", "1", "3", "--steps", "2",
                              "--warmup", "1", "--context", "4", "--real-env", MINIGRID, "--real-steps", "10",
                              "--real-workers", "1", "--profile", "--json", "-"])
    assert bench_env.run(args) == 0
    printed = capsys.readouterr().out
    result = json.loads(printed[printed.index("{"):])
    assert "profile" not in result["rows"][0]  # only the largest batch is profiled
    profile = result["rows"][1]["profile"]
    shares = profile["share_of_step"]
    assert profile["num_envs"] == 3 and set(shares) == {"denoising pass", "commit pass", "decode", "rest of the step"}
    assert shares["denoising pass"] > 0 and shares["commit pass"] > 0 and shares["decode"] > 0  # pixels: decoded
    assert sum(shares.values()) == pytest.approx(1.0)
    assert 0 < len(profile["top_ops_share_of_self_time"]) <= 12
    assert "profile of 2 batch steps of 3 envs" in printed


def test_contexts_that_recur_are_primed_once_and_give_what_priming_them_gives(minigrid_checkpoint, dataset,
                                                                              eval_episodes, monkeypatch):
    """Resets drawn from a fixed set of contexts (a dataset's episode beginnings here; context.npz and
    given arrays too) prime each distinct context once, however many envs draw it, and keep its state
    (envs/primed.py, issue 36): a later reset primes nothing and gives each env the state priming its
    context gives. Random windows do not recur: they are primed at every reset."""
    from lssvwm_env.models.world_model import WorldModel
    from lssvwm_env.training.data import input_actions

    primed_batches = []
    observe_step = WorldModel.observe_step

    def counted(model, state, frames, actions):
        primed_batches.append(len(frames))
        return observe_step(model, state, frames, actions)

    monkeypatch.setattr(WorldModel, "observe_step", counted)
    envs = gym.make_vec("LSSVWM-MiniGrid-v0", num_envs=6, vectorization_mode="vector_entry_point",
                        checkpoint=minigrid_checkpoint, dataset=dataset, context=5)
    envs.reset(seed=0)
    assert primed_batches == [2]  # 6 envs, 2 held-out episodes: two contexts primed, in one pass
    envs.reset(seed=1)
    observations, _ = envs.reset(options={"reset_mask": np.array([True, False, True, False, False, False])})
    assert primed_batches == [2]
    core = envs.core
    for env, obs in enumerate(observations):  # each env shows frame 4 of the episode it was primed on
        episode = next(ep for ep in eval_episodes if np.array_equal(obs, ep["frames"][4]))
        frames = torch.from_numpy(episode["frames"][None, :5])
        actions = torch.from_numpy(input_actions(episode["actions"])[None, :5])
        alone = observe_step(core.model, core.model.initial_state(1), frames, actions).state
        for mine, theirs in zip(core.state[env].tensors(), alone.tensors()):
            assert torch.allclose(mine.float(), theirs.float(), atol=1e-5, rtol=1e-5)

    windows = gym.make_vec("LSSVWM-MiniGrid-v0", num_envs=2, vectorization_mode="vector_entry_point",
                           checkpoint=minigrid_checkpoint, dataset=dataset, dataset_split="train",
                           context_start="random", context=3)
    primed_batches.clear()
    windows.reset(seed=0)
    windows.reset(seed=0)
    assert primed_batches == [2, 2]

"""Minari in and out (data_collection/minari_io.py): a Minari dataset made by Minari's own
DataCollector from a real env is imported, trained on and served; an export opens in Minari and
imports back to the same bytes; bad input is refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest

from data_collection.dataset import Dataset, validate_dataset
from data_collection.envs import resize_frame
from lssvwm_env.cli import main as lssvwm

# Minari's DataCollector asks for an author, a code link and a description of every dataset.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:minari")


@pytest.fixture
def minari_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _collect(env: gym.Env, dataset_id: str, episodes: int, steps: int, **collector_options) -> minari.MinariDataset:
    """A Minari dataset of random actions, written by Minari's DataCollector."""
    collector = minari.DataCollector(env, **collector_options)
    for episode in range(episodes):
        collector.reset(seed=100 + episode)
        collector.action_space.seed(episode)
        for _ in range(steps):
            _, _, terminated, truncated, _ = collector.step(collector.action_space.sample())
            if terminated or truncated:
                break
    dataset = collector.create_dataset(dataset_id, algorithm_name="random")
    collector.close()
    return dataset


def _minigrid_pixels() -> gym.Env:
    import minigrid
    from minigrid.wrappers import ImgObsWrapper, RGBImgObsWrapper

    gym.register_envs(minigrid)
    return ImgObsWrapper(RGBImgObsWrapper(gym.make("MiniGrid-Empty-5x5-v0", max_steps=40)))  # (40, 40, 3) uint8


def test_a_minari_dataset_from_a_real_env_imports_trains_and_serves(minari_root, tmp_path):
    source = _collect(_minigrid_pixels(), "test/minigrid/random-v0", episodes=5, steps=40)
    out = tmp_path / "imported"
    assert lssvwm(["data", "import-minari", "test/minigrid/random-v0", "--out", str(out)]) == 0
    assert validate_dataset(out) == []
    dataset = Dataset.open(out)
    assert dataset.manifest.action_space == {"type": "discrete", "n": 7}
    assert dataset.manifest.env == "minari:test/minigrid/random-v0" and dataset.manifest.policy == "minari:random"
    assert [e.split for e in dataset.episodes()] == ["train", "eval", "train", "train", "train"]
    for episode, (entry, arrays) in zip(source.iterate_episodes(), dataset.iter_episodes()):
        steps = len(episode.actions)
        assert entry.length == steps and entry.seed == 100 + episode.id
        expected = np.stack([resize_frame(o) for o in episode.observations])
        assert np.array_equal(arrays["frames"], expected[:steps]) and np.array_equal(arrays["final_frame"], expected[-1])
        assert np.array_equal(arrays["actions"], episode.actions)
        assert np.array_equal(arrays["rewards"], episode.rewards.astype(np.float32))
        assert np.array_equal(arrays["terminated"], episode.terminations)
        assert np.array_equal(arrays["truncated"], episode.truncations)
        assert arrays["terminated"][-1] or arrays["truncated"][-1]  # the goal, or MiniGrid's limit of 40 steps

    run = tmp_path / "run"
    assert lssvwm(["train", "--data", str(out), "--out", str(run), "--preset", "tiny", "--threads", "1"]) == 0
    env = gym.make("lssvwm_env:LSSVWM-Memory-v0", checkpoint=str(run), dataset=str(out), context=4)
    assert env.action_space == gym.spaces.Discrete(7)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    for action in (2, 2, 1, 2):
        obs, reward, terminated, truncated, _ = env.step(action)
        assert obs.shape == (64, 64, 3) and np.isfinite(reward)
    env.close()


def _same_dataset(a: Path, b: Path) -> None:
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    for key in ("command", "created"):
        ma.pop(key), mb.pop(key)
    assert ma == mb  # sha256 included: every episode file is the same bytes
    for entry in ma["episodes"]:
        assert (a / entry["file"]).read_bytes() == (b / entry["file"]).read_bytes()


def test_export_opens_in_minari_and_imports_back_without_loss(minigrid_retrace, tmp_path, monkeypatch):
    # MiniGrid retrace episodes: poses, the policy's phases, the layout, the final frame
    root = tmp_path / "exported"
    assert lssvwm(["data", "export-minari", str(minigrid_retrace), "--out", str(root), "--id", "lssvwm/mg-v0"]) == 0
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    exported = minari.load_dataset("lssvwm/mg-v0")
    manifest = Dataset.open(minigrid_retrace).manifest
    assert exported.total_episodes == len(manifest.episodes)
    assert exported.total_steps == sum(e.length for e in manifest.episodes.values())
    episode = next(exported.iterate_episodes())
    original = Dataset.open(minigrid_retrace).load_episode(0)
    assert np.array_equal(episode.observations[:-1], original["frames"])  # no JPEG: the same pixels
    assert np.array_equal(episode.observations[-1], original["final_frame"])
    assert np.array_equal(episode.infos["agent_pos"][:-1], original["agent_pos"])

    back = tmp_path / "back"
    assert lssvwm(["data", "import-minari", str(root / "lssvwm/mg-v0"), "--out", str(back)]) == 0
    _same_dataset(minigrid_retrace, back)


def test_continuous_actions_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths, as users type them
    monkeypatch.setenv("MINARI_DATASETS_PATH", "minari")
    assert lssvwm(["collect", "--env", "dmc:cartpole-swingup:repeat=4", "--policy", "random:momentum=0.5",
                   "--episodes", "2", "--steps", "6", "--out", "cartpole", "--quiet"]) == 0
    assert lssvwm(["data", "export-minari", "cartpole", "--out", "minari"]) == 0
    exported = minari.load_dataset("lssvwm/cartpole-v0")
    assert exported.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    assert lssvwm(["data", "import-minari", "lssvwm/cartpole-v0", "--out", "back"]) == 0
    _same_dataset(Path("cartpole"), Path("back"))


def test_other_observations_are_rendered_by_replaying_their_env(minari_root, tmp_path, capsys):
    # Pendulum observes (cos, sin, velocity): no image; its env renders one.
    _collect(gym.make("Pendulum-v1"), "test/pendulum/random-v0", episodes=2, steps=8)
    out = tmp_path / "pendulum"
    assert lssvwm(["data", "import-minari", "test/pendulum/random-v0", "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert "is not an image" in error and "--render replays its episodes in its env (Pendulum-v1)" in error
    assert not out.exists()  # refused before anything was written

    assert lssvwm(["data", "import-minari", "test/pendulum/random-v0", "--out", str(out), "--render"]) == 0
    assert validate_dataset(out) == []
    dataset = Dataset.open(out)
    assert dataset.manifest.action_space == {"type": "box", "shape": [1], "low": [-2.0], "high": [2.0]}
    arrays = dataset.load_episode(0)
    assert arrays["frames"].shape == (8, 64, 64, 3) and arrays["actions"].shape == (8, 1)
    env = gym.make("Pendulum-v1", render_mode="rgb_array")
    env.reset(seed=100)
    assert np.array_equal(arrays["frames"][0], resize_frame(env.render()))  # the episode's own start, rendered
    assert len({frame.tobytes() for frame in arrays["frames"]}) > 1  # the pendulum swings


def test_bad_input_is_named_before_anything_is_written(minari_root, tmp_path, capsys):
    out = tmp_path / "never"
    assert lssvwm(["data", "import-minari", "nobody/nothing-v0", "--out", str(out)]) == 1
    assert "no Minari dataset at 'nobody/nothing-v0'" in capsys.readouterr().err and not out.exists()

    from minari.data_collector.episode_buffer import EpisodeBuffer

    frames = np.zeros((3, 8, 8, 3), np.uint8)
    buffer = EpisodeBuffer(observations=frames, actions=np.zeros((2, 2, 2), np.float32), rewards=[0.0, 0.0],
                           terminations=[False, True], truncations=[False, False])
    minari.create_dataset_from_buffers("test/grid-actions-v0", [buffer], action_space=gym.spaces.Box(-1, 1, (2, 2)),
                                       observation_space=gym.spaces.Box(0, 255, (8, 8, 3), np.uint8))
    assert lssvwm(["data", "import-minari", "test/grid-actions-v0", "--out", str(out)]) == 1
    assert "lssvwm takes Discrete(n) or a Box of one dimension" in capsys.readouterr().err and not out.exists()

    _collect(_minigrid_pixels(), "test/minigrid/short-v0", episodes=1, steps=3)
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert lssvwm(["data", "import-minari", "test/minigrid/short-v0", "--out", str(out)]) == 1
    assert "is not an empty directory" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"

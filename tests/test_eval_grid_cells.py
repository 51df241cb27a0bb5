"""Cell-by-cell scoring on the colour grid (evaluation/grid_cells.py): perfect and copied predictions
score what they must, and `lssvwm train` and `lssvwm eval cells` report it on a tiny real run."""

import json

import numpy as np
import pytest

from data_collection.colour_grid import parse_env_name, true_cell_classes
from data_collection.dataset import Dataset
from lssvwm_env.cli import main as lssvwm
from lssvwm_env.evaluation.grid_cells import gap_bins, last_seen_gaps, score_bins, self_copy

CONFIG = parse_env_name("colour-grid")


@pytest.fixture(scope="module")
def grid_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("cg") / "data"
    assert lssvwm(["collect", "--env", "colour-grid", "--policy", "out-and-back:leg=20", "--episodes", "4",
                   "--steps", "80", "--out", str(out), "--quiet"]) == 0
    return out


def arrays(data):
    ep = Dataset.open(data).load_episode(0)
    classes = true_cell_classes(ep["agent_pos"], ep["maze_layout"], ep["floor_colours"], CONFIG)
    return ep, classes, last_seen_gaps(ep["agent_pos"], ep["maze_layout"], CONFIG)


def test_perfect_and_copied_predictions_score_as_they_must(grid_data):
    ep, classes, gaps = arrays(grid_data)
    frames = ep["frames"]
    perfect = score_bins(frames[1:], frames[1:], classes[1:], gaps[1:], frames[:-1], 10, CONFIG)
    assert set(perfect) == set(gap_bins(10))
    filled = [b for b in perfect.values() if b["cells"]]
    assert len(filled) >= 3  # out and back: cells in view a frame before, recent and older revisits, new ones
    assert all(b["cell_accuracy"] == 1.0 and b["psnr"] == 100.0 for b in filled)
    # The frame before, predicted: exactly its own yardstick, and wrong where the view moved.
    copied = score_bins(frames[:-1], frames[1:], classes[1:], gaps[1:], frames[:-1], 10, CONFIG)
    for name, b in copied.items():
        assert b["cell_accuracy"] == perfect[name]["last_frame_cell_accuracy"]
    assert copied["previous_frame"]["cell_accuracy"] < 0.9
    # Painted cells are scored apart too (bare floor is what a model that remembers nothing draws).
    painted = [b for b in perfect.values() if b["tile_cells"]]
    assert painted and all(b["tile_cell_accuracy"] == 1.0 and b["tile_cells"] <= b["cells"] for b in painted)


def test_self_copy_scores_a_frame_against_the_models_own_frame_before(grid_data):
    ep, _, _ = arrays(grid_data)
    frames, poses = ep["frames"][:40], ep["agent_pos"][:40]
    # Real frames agree with themselves wherever two consecutive views overlap.
    real = self_copy(frames, poses, CONFIG)
    assert real.shape == (39, 8, 8) and np.nanmin(real) == 1.0
    assert np.isnan(real[:, 4, 4]).all()  # the agent's own cell is left out
    # A frame drawn wrong once is scored against the wrong frame: the next true frame disagrees with it
    # and the frame after agrees again.
    wrong = frames.copy()
    wrong[10] = 255 - wrong[10]
    scores = self_copy(wrong, poses, CONFIG)
    assert np.nanmean(scores[9]) < 0.5 and np.nanmean(scores[10]) < 0.5 and np.nanmin(scores[11]) == 1.0


def test_train_logs_and_eval_cells_writes_cell_accuracy(grid_data, tmp_path):
    run = tmp_path / "run"
    assert lssvwm(["train", "--data", str(grid_data), "--out", str(run), "--preset", "tiny", "--threads", "1",
                   "--set", "dynamics_training.eval_one_step_frames=20"]) == 0
    state = json.loads((run / "checkpoint" / "training_state.json").read_text())
    evaluations = [m for m in state["progress"]["metrics"] if m["stage"] == "dynamics"]
    assert evaluations and all(0 <= m["cell_accuracy_previous_frame"] <= 1 for m in evaluations)
    out = tmp_path / "cells"
    assert lssvwm(["eval", "cells", "--checkpoint", str(run), "--data", str(grid_data), "--episodes", "1",
                   "--context", "20", "--generate", "30", "--out", str(out)]) == 0
    result = json.loads((out / "cells.json").read_text())
    assert result["generation"]["frames"] == 30 and result["next_frame"]["frames"] == 79
    assert set(result["generation"]["self_copy"]) == {"all", "moved", "unchanged"}
    # Generation counts gaps from the 20 context frames shown: no cell was shown one frame before the
    # frames from the second on.
    generated_bins = result["generation"]["bins"]
    assert generated_bins["previous_frame"]["cells"] <= 8 * 8 - 1
    bins = result["next_frame"]["bins"]
    assert sum(b["cells"] for b in bins.values()) == 79 * (8 * 8 - 1)
    assert 0 <= result["autoencoder_cell_accuracy"] <= 1


def test_eval_cells_refuses_data_of_another_env(minigrid_retrace, tmp_path, capsys):
    run = tmp_path / "run"
    assert lssvwm(["train", "--data", str(minigrid_retrace), "--out", str(run), "--preset", "tiny", "--threads", "1"]) == 0
    assert lssvwm(["eval", "cells", "--checkpoint", str(run), "--data", str(minigrid_retrace)]) == 1
    assert "is not the colour grid" in capsys.readouterr().err

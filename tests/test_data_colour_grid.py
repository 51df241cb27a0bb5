"""The colour grid (data_collection/colour_grid.py): moves shift the view by exactly one cell, `stay`
and walls leave it unchanged, cells are read back from frames exactly, the walks revisit what they
promise, and the gaps since a cell was last seen are counted right."""

import numpy as np
import pytest

from data_collection.colour_grid import ACTIONS, STAY, WALL_CELL, classify_cells, parse_env_name, true_cell_classes
from data_collection.envs import EnvError, env_spec, make_env
from data_collection.policies import PolicySpecError, make_policy
from lssvwm_env.evaluation.grid_cells import last_seen_gaps

NORTH, EAST, SOUTH, WEST = (ACTIONS.index(a) for a in ("north", "east", "south", "west"))
CENTRE = np.s_[4 * 8:5 * 8, 4 * 8:5 * 8]  # the agent's cell in the default 8-cell view


def without_agent(frame: np.ndarray) -> np.ndarray:
    frame = frame.copy()
    frame[CENTRE] = 0
    return frame


def test_moves_shift_the_view_by_one_cell_and_stay_repeats_it():
    env = make_env("colour-grid")
    first = env.reset(seed=3)
    # Walk to the middle of the room, so that no move below meets the wall.
    while (cell := np.floor(first.pose["agent_pos"]).astype(int)).tolist() != [8, 8]:
        first = env.step(EAST if cell[0] < 8 else WEST if cell[0] > 8 else SOUTH if cell[1] < 8 else NORTH)
    first = env.step(WEST)
    first = env.step(EAST)  # facing east, as after the move below: the sprite is the same
    east = env.step(EAST)
    # The old view's columns 1..7 are the new view's 0..6 (the agent's two cells aside).
    old, new = without_agent(first.frame), without_agent(east.frame)
    keep = np.ones((64, 56), dtype=bool)
    keep[CENTRE[0], 24:40] = False
    assert np.array_equal(old[:, 8:][keep], new[:, :56][keep])
    assert not np.array_equal(first.frame, east.frame)
    assert np.array_equal(env.step(STAY).frame, east.frame)
    assert (east.pose["agent_pos"] - first.pose["agent_pos"]).tolist() == [1.0, 0.0]


def test_walking_into_the_wall_leaves_the_view():
    env = make_env("colour-grid:room=4,tiles=16")
    step = env.reset(seed=0)
    for _ in range(5):
        step = env.step(NORTH)
    again = env.step(NORTH)
    assert np.array_equal(again.frame, step.frame)
    assert again.pose["agent_pos"][1] == 1.5  # the first free row, under the wall
    # Above the agent the view shows wall.
    assert (classify_cells(again.frame, parse_env_name("colour-grid"))[:4] == WALL_CELL).all()


@pytest.mark.parametrize("name", ["colour-grid", "colour-grid:tiles=16"])
def test_cells_read_back_from_frames_are_the_map(name):
    env = make_env(name)
    config = parse_env_name(name)
    step = env.reset(seed=1)
    frames, poses = [step.frame], [step.pose["agent_pos"]]
    for action in np.random.default_rng(0).integers(0, 5, 40):
        step = env.step(int(action))
        frames.append(step.frame)
        poses.append(step.pose["agent_pos"])
    truth = true_cell_classes(np.stack(poses), env.static["maze_layout"], env.static["floor_colours"], config)
    read = classify_cells(np.stack(frames), config)
    read[:, 4, 4] = truth[:, 4, 4]  # the agent's cell, under its sprite, is not scored
    assert np.array_equal(read, truth)
    painted = (env.static["floor_colours"] > 0).sum()
    assert painted == config.tiles
    # A new episode draws a new map; the same seed, the same map.
    floors = [(env.reset(seed=seed), env.static["floor_colours"].copy())[1] for seed in (1, 2, 1)]
    assert not np.array_equal(floors[0], floors[1]) and np.array_equal(floors[0], floors[2])


def test_env_names_and_bad_options():
    spec = env_spec("colour-grid:tiles=8")
    assert spec.action_space.n == 5 and spec.action_space.meanings == ACTIONS
    assert "floor_colours" in spec.static_keys
    with pytest.raises(EnvError, match="tiles"):
        make_env("colour-grid:tiles=1000")
    with pytest.raises(EnvError, match="'size=3'.*room"):
        make_env("colour-grid:size=3")
    with pytest.raises(EnvError, match="view"):
        make_env("colour-grid:view=7")


def run_policy(spec: str, env_name: str, steps: int, seed: int = 0):
    env = make_env(env_name)
    policy = make_policy(spec, env.spec)
    step = env.reset(seed=seed)
    policy.reset(step, env.static, np.random.default_rng(seed), steps)
    frames, poses, phases, actions = [], [], [], []
    for _ in range(steps):
        action = policy.act(step)
        frames.append(step.frame)
        poses.append(step.pose["agent_pos"])
        phases.append(policy.annotations.get("walk_phase", -1))
        actions.append(action)
        step = env.step(action)
    return np.stack(frames), np.stack(poses), np.array(phases), np.array(actions), env


def test_out_and_back_returns_along_the_same_cells():
    leg = 30
    frames, poses, phases, _, _ = run_policy(f"out-and-back:leg={leg}", "colour-grid", 4 * leg)
    assert (phases[:leg] == 0).all() and (phases[leg:2 * leg] == 1).all() and (phases[2 * leg:3 * leg] == 0).all()
    for t in range(leg + 1):  # frame t of a leg and frame 2 * leg - t show the same place
        assert np.array_equal(poses[t], poses[2 * leg - t]), t
        assert np.array_equal(without_agent(frames[t]), without_agent(frames[2 * leg - t])), t
    # The leg went somewhere: its farthest cell is well away from the start.
    assert np.abs(poses[:leg] - poses[0]).sum(axis=1).max() >= 4


def test_momentum_walks_on_and_refuses_envs_without_absolute_moves():
    _, poses, _, actions, _ = run_policy("momentum", "colour-grid", 300)
    moved = np.abs(np.diff(poses, axis=0)).sum(axis=1) > 0
    assert 0.6 < moved.mean() < 1.0  # mostly moving, some stays and bumps
    assert set(actions.tolist()) == set(range(5))
    with pytest.raises(PolicySpecError, match="absolute moves"):
        make_policy("momentum", env_spec("minigrid-memory-s7"))


def test_last_seen_gaps_count_frames_since_a_cell_was_in_view():
    config = parse_env_name("colour-grid")
    layout = np.zeros((18, 18), dtype=np.uint8)
    # Stand, step east three times, then back west three times.
    xs = [5, 5, 6, 7, 8, 7, 6, 5]
    poses = np.array([[x + 0.5, 5.5] for x in xs], dtype=np.float32)
    gaps = last_seen_gaps(poses, layout, config)
    assert np.isinf(gaps[0]).all()
    assert (gaps[1] == 1).all()  # the same view again
    assert (gaps[2][:, :7] == 1).all() and np.isinf(gaps[2][:, 7]).all()  # a new column at the east edge
    # Back at x=5 after walking to x=8: the west column was last in view at frame 1 (x=5 at frame 1 shows
    # columns 1..8, and frames 2-6 no longer show map column 1).
    assert (gaps[7][:, 0] == 6).all()
    # Generation: the model was shown frames 0-2 only (x = 5, 5, 6: map columns 1-9); what the frames
    # after showed, it drew itself.
    shown = last_seen_gaps(poses, layout, config, shown=3)
    assert np.array_equal(shown[:4], gaps[:4])
    assert (gaps[4][:, 6] == 1).all() and np.isinf(shown[4][:, 6]).all()  # map column 10: first in view at frame 3
    assert (shown[7][:, 0] == 6).all()  # map column 1: last shown at frame 1
    assert (gaps[7][:, 7] == 1).all() and (shown[7][:, 7] == 5).all()  # map column 8: last shown at frame 2


def test_out_and_back_legs_of_drawn_lengths_each_return_to_their_start():
    frames, poses, phases, _, _ = run_policy("out-and-back:leg=40,min_leg=5", "colour-grid", 400, seed=2)
    starts = np.flatnonzero(np.diff(phases) == -1) + 1  # back -> out: a leg ends where it began
    legs = np.diff(np.concatenate([[0], starts]))
    assert len(set(legs.tolist())) > 2 and legs.min() >= 2 * 5 and legs.max() <= 2 * 40
    previous = 0
    for start in starts:
        assert np.array_equal(poses[previous], poses[start])
        previous = start
    with pytest.raises(PolicySpecError, match="min_leg"):
        make_policy("out-and-back:leg=10,min_leg=20", env_spec("colour-grid"))

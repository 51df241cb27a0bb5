"""Scripted policies: explore comes back to places; retrace's last walk repeats its first."""

from __future__ import annotations

import numpy as np
import pytest

from data_collection.collect import rollout
from data_collection.envs import ActionSpace, EnvSpec, heading_deg, make_env
from data_collection.policies import (
    PolicySpecError,
    RetracePhase,
    bfs,
    make_policy,
    shortest_path,
)


@pytest.fixture(scope="module")
def memory_maze():
    env = make_env("memory-maze-9x9")
    yield env
    env.close()


def _episode(env, policy: str, seed: int, steps: int) -> dict[str, np.ndarray]:
    return rollout(env, make_policy(policy, env.spec), seed, np.random.default_rng(seed), steps)


def _cells(agent_pos: np.ndarray) -> list[tuple[int, int]]:
    return [(int(x), int(y)) for x, y in np.floor(agent_pos)]


def _entries(cells: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The cells in the order they were entered (consecutive repeats dropped)."""
    return [c for i, c in enumerate(cells) if i == 0 or cells[i - 1] != c]


def _returns(cells: list[tuple[int, int]], min_gap: int) -> int:
    """How often the agent comes back to a cell it left at least min_gap steps before."""
    last_seen: dict[tuple[int, int], int] = {}
    returns = 0
    for t, cell in enumerate(cells):
        if cell in last_seen and t - last_seen[cell] > min_gap:
            returns += 1
        last_seen[cell] = t
    return returns


def _visits(cells: list[tuple[int, int]]) -> list[tuple[tuple[int, int], slice]]:
    """(cell, steps spent in it) for each stay in a cell."""
    out, start = [], 0
    for i in range(1, len(cells) + 1):
        if i == len(cells) or cells[i] != cells[start]:
            out.append((cells[start], slice(start, i)))
            start = i
    return out


def test_shortest_path_on_a_grid():
    walkable = np.array(
        [
            [1, 1, 1],
            [0, 0, 1],
            [1, 1, 1],
        ],
        dtype=bool,
    )
    assert shortest_path(walkable, (0, 0), (0, 2)) == [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2), (1, 2), (0, 2)]
    assert shortest_path(walkable, (0, 0), (1, 1)) is None
    distance, _ = bfs(walkable, (0, 0))
    assert len(distance) == 7 and distance[(0, 2)] == 6


@pytest.mark.parametrize("env_name, steps", [("memory-maze-9x9", 200), ("minigrid-fourrooms", 300)])
def test_explore_walks_far_and_revisits(env_name, steps, memory_maze):
    env = memory_maze if env_name.startswith("memory-maze") else make_env(env_name, max_steps=steps)
    episode = _episode(env, "explore", seed=4, steps=steps)
    layout = episode["maze_layout"]
    cells = _cells(episode["agent_pos"])
    entries = _entries(cells)
    assert all(layout[y, x] != 0 for x, y in cells)
    distinct = len(set(entries))
    assert distinct >= 8, "explore should reach many places"
    # Revisits: more cell entries than distinct cells, and real returns, not jitter on a border.
    assert len(entries) > distinct
    assert _returns(cells, min_gap=20) >= 3, f"{len(entries)} cell entries, {distinct} distinct cells"


def test_explore_noise_takes_every_action_of_the_env():
    # Agents trained inside a world model try every action, so the data must show what each one does;
    # MiniGrid's pickup/drop/toggle/done are no navigation move and come only from the noise.
    env = make_env("minigrid-fourrooms", max_steps=600)
    try:
        episode = _episode(env, "explore", seed=2, steps=600)
    finally:
        env.close()
    counts = np.bincount(episode["actions"], minlength=env.spec.action_space.n)
    assert (counts > 0).all(), f"action counts {counts.tolist()}"
    # Mostly planned moves: left, right, forward.
    assert counts[:3].sum() > 0.85 * counts.sum(), f"action counts {counts.tolist()}"


def test_retrace_repeats_its_outward_walk_in_memory_maze(memory_maze):
    steps = 180
    episode = _episode(memory_maze, "retrace", seed=8, steps=steps)
    phase = episode["retrace_phase"]
    cells = _cells(episode["agent_pos"])
    out = np.flatnonzero(phase == RetracePhase.OUT)
    again = np.flatnonzero(phase == RetracePhase.AGAIN)
    back = np.flatnonzero(phase == RetracePhase.BACK)
    assert len(out) > steps / 4 and len(again) > steps / 4
    assert again[0] > steps / 2, "the repeated walk belongs to the end of the episode"
    out_visits = _visits([cells[i] for i in out])
    again_visits = _visits([cells[i] for i in again])
    out_cells = [c for c, _ in out_visits]
    again_cells = [c for c, _ in again_visits]
    assert len(set(out_cells)) >= 5
    # The same cells in the same order (the last may be cut by the episode's end)...
    assert len(again_cells) >= len(out_cells) - 1 and again_cells == out_cells[: len(again_cells)]
    # ...walked back in between...
    assert _entries([cells[i] for i in back]) == out_cells[::-1]
    # ...with the same heading in each cell (mean direction while there).
    out_dirs = episode["agent_dir"][out]
    again_dirs = episode["agent_dir"][again]
    differences = []
    for (_, a), (_, b) in zip(out_visits, again_visits):
        d1, d2 = out_dirs[a].mean(0), again_dirs[b].mean(0)
        differences.append(abs((heading_deg(d1) - heading_deg(d2) + 180) % 360 - 180))
    assert np.median(differences) < 15 and np.mean(np.array(differences) < 45) >= 0.9, differences


def test_retrace_repeats_its_outward_walk_exactly_in_minigrid():
    steps = 150
    with make_env("minigrid-fourrooms", max_steps=steps) as env:
        episode = _episode(env, "retrace", seed=2, steps=steps)
    phase = episode["retrace_phase"]
    assert len(phase) == steps and not episode["terminated"].any(), "retrace avoids cells that end the episode"
    out = phase == RetracePhase.OUT
    again = phase == RetracePhase.AGAIN
    assert out.sum() >= 40 and again.sum() == out.sum()
    assert np.flatnonzero(again)[0] >= steps / 2
    # Grid dynamics are exact: every step of the last walk equals the first one's, pose and action.
    np.testing.assert_array_equal(episode["agent_pos"][again], episode["agent_pos"][out])
    np.testing.assert_array_equal(episode["agent_dir"][again], episode["agent_dir"][out])
    np.testing.assert_array_equal(episode["actions"][again], episode["actions"][out])


def test_navigating_policies_need_a_grid():
    spec = EnvSpec(name="Pixels-v0", kind="gymnasium", target="Pixels-v0", action_space=ActionSpace(4))
    for name in ("explore", "retrace"):
        with pytest.raises(PolicySpecError, match="--policy random"):
            make_policy(name, spec)
    assert make_policy("random", spec).name == "random"
    with pytest.raises(PolicySpecError, match="policies: random, explore, retrace"):
        make_policy("greedy", spec)


def _blocked_forwards(episode: dict[str, np.ndarray], forward: int) -> int:
    """Forward steps after which the agent stands where it stood (it walked into a wall or object);
    the last action has no pose after it and is not counted."""
    pos = episode["agent_pos"]
    moved = np.any(pos[1:] != pos[:-1], axis=1)
    return int(np.sum((episode["actions"][:-1] == forward) & ~moved))


def test_explore_wall_bump_walks_into_walls():
    env = make_env("MiniGrid-MemoryS13-v0")
    forward = env.spec.navigation.forward
    try:
        plain = [_blocked_forwards(_episode(env, "explore:action_noise=0", seed, 150), forward) for seed in range(5)]
        bumping = [_blocked_forwards(_episode(env, "explore:action_noise=0,wall_bump=0.5", seed, 150), forward)
                   for seed in range(5)]
    finally:
        env.close()
    # The planned walk turns before walls; only the bump option pushes into them (32 times here).
    assert sum(plain) == 0
    assert sum(bumping) >= 15, bumping


def test_explore_seek_target_collects_the_rewards_memory_maze_pays_where_target_pos_says(memory_maze):
    plain = [_episode(memory_maze, "explore:action_noise=0", seed, 250) for seed in (1, 2)]
    seeking = [_episode(memory_maze, "explore:action_noise=0,seek_target=1", seed, 250) for seed in (1, 2)]
    # Walking only to targets paid 9 times in these 500 steps, random goals twice.
    paid_seeking, paid_plain = (sum(float(ep["rewards"].sum()) for ep in eps) for eps in (seeking, plain))
    assert paid_seeking >= 6 and paid_seeking >= 3 * paid_plain, (paid_seeking, paid_plain)
    for episode in seeking:
        paid = np.flatnonzero(episode["rewards"][:-1] > 0)
        target, pos = episode["target_pos"], episode["agent_pos"]
        # The pose names the target that is paid for: the agent stands at it, then a new one is set.
        assert np.all(np.linalg.norm(pos[paid + 1] - target[paid], axis=1) < 0.6)
        assert np.all(np.linalg.norm(target[paid + 1] - target[paid], axis=1) > 0.5)


def test_explore_seek_target_needs_an_env_that_reports_its_target():
    env = make_env("MiniGrid-MemoryS7-v0")
    try:
        with pytest.raises(PolicySpecError, match="reports no target_pos.*drop seek_target"):
            _episode(env, "explore:seek_target=0.5", 0, 5)
    finally:
        env.close()


@pytest.mark.parametrize("spec, message", [
    ("explore:wall_bmp=0.2", "not field=value with a field of explore"),
    ("explore:wall_bump", "not field=value"),
    ("explore:wall_bump=lots", "wall_bump='lots' is not a number"),
    ("explore:wall_bump=1.5", "wall_bump must be in"),
    ("random:wall_bump=0.2", "not field=value with a field of random"),
    ("random:momentum=1", "momentum must be in"),
])
def test_policy_spec_errors_name_the_field(spec, message):
    spec_env = make_env("MiniGrid-MemoryS7-v0")
    try:
        with pytest.raises(PolicySpecError, match=message):
            make_policy(spec, spec_env.spec)
    finally:
        spec_env.close()

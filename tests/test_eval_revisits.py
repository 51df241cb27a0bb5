"""Gaps since the agent last had a view, on hand-made pose sequences."""

from __future__ import annotations

import math

import numpy as np

from lssvwm_env.evaluation.next_frame_memory import bin_masks, turns
from lssvwm_env.evaluation.revisits import MEMORY, NOVEL, REVISIT_IN_GENERATION, revisit_gaps, same_view

EAST, WEST, NORTH = (1.0, 0.0), (-1.0, 0.0), (0.0, 1.0)


def _poses(steps: list[tuple[tuple[float, float], tuple[float, float]]]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([p for p, _ in steps], dtype=np.float32), np.array([d for _, d in steps], dtype=np.float32))


def test_gaps_and_kinds_along_a_corridor():
    # A corridor walked east, back west, then east again past its end (cells x = 0..3, y = 0).
    pos, direction = _poses([
        ((0.5, 0.5), EAST),   # 0  context
        ((1.4, 0.5), EAST),   # 1
        ((2.5, 0.6), EAST),   # 2
        ((2.5, 0.5), WEST),   # 3  turned around
        ((1.5, 0.5), WEST),   # 4  (context ends here)
        ((0.5, 0.5), WEST),   # 5  cell 0 facing west: never seen so
        ((0.5, 0.5), EAST),   # 6  cell 0 facing east: last seen at 0, in the context
        ((1.5, 0.5), EAST),   # 7  seen at 1
        ((1.9, 0.2), EAST),   # 8  still in cell 1: the previous visit is at 1, not 7
        ((2.5, 0.5), EAST),   # 9  seen at 2 (3 faces the other way)
        ((3.5, 0.5), EAST),   # 10 new cell
        ((3.5, 0.5), NORTH),  # 11 turned 90 degrees: a new view
        ((3.5, 0.5), EAST),   # 12 back to the view of 10, which only the model generated
    ])
    info = revisit_gaps(pos, direction, context=5, start=5, end=13)
    gaps = [None if math.isinf(g) else int(g) for g in info.gap]
    assert gaps == [None, 6, 6, 7, 7, None, None, 2]
    assert info.kind.tolist() == [NOVEL, MEMORY, MEMORY, MEMORY, MEMORY, NOVEL, NOVEL, REVISIT_IN_GENERATION]


def test_a_visit_under_way_when_the_context_ends_counts_as_shown():
    pos, direction = _poses([((0.5, 0.5), EAST), ((1.5, 0.5), EAST), ((1.5, 0.5), EAST), ((1.5, 0.5), EAST)])
    info = revisit_gaps(pos, direction, context=2, start=2, end=4)
    assert np.isinf(info.gap).all()  # no earlier visit: the agent never left
    assert info.kind.tolist() == [MEMORY, MEMORY]


def test_heading_tolerance():
    angle = math.radians(40)
    pos = np.array([(0.5, 0.5), (0.9, 0.1), (0.5, 0.5)], dtype=np.float32)  # one cell
    direction = np.array([EAST, (math.cos(angle), math.sin(angle)), (0.0, 2.0)], dtype=np.float32)
    assert same_view(pos, direction, 1, 45.0).tolist() == [True]
    assert same_view(pos, direction, 1, 30.0).tolist() == [False]
    assert same_view(pos, direction, 2, 45.0).tolist() == [False, False]  # north is 90 and 50 degrees away
    assert same_view(pos, direction, 2, 50.5).tolist() == [False, True]
    assert same_view(pos, direction, 2, 91.0).tolist() == [True, True]


def test_another_cell_is_another_view():
    pos = np.array([(0.5, 0.5), (1.0, 0.5), (0.5, 1.5), (0.99, 0.99)], dtype=np.float32)
    direction = np.array([EAST] * 4, dtype=np.float32)
    assert same_view(pos, direction, 3, 45.0).tolist() == [True, False, False]


def test_turns_are_the_frames_whose_heading_changed_beyond_the_tolerance():
    # A step (same heading), a turn, a step, a small turn within the tolerance, a turn back.
    _, direction = _poses([((0, 0), EAST), ((1, 0), EAST), ((1, 0), NORTH), ((1, 1), NORTH),
                           ((1, 1), (0.3, 1.0)), ((1, 1), WEST)])
    assert turns(direction, heading_tolerance_deg=45.0).tolist() == [False, True, False, False, True]
    gap = np.array([np.inf, 3.0, 7.0, 13.0])
    masks = bin_masks(gap, window=4)
    assert [int(masks[b].sum()) for b in ("revisit_within_window", "revisit_window_to_3x_window",
                                          "revisit_beyond_3x_window", "novel", "all")] == [1, 1, 1, 1, 4]

"""When did the agent last see what it sees now? Revisits from the recorded pose.

Two frames show the same view when the agent stood in the same maze cell (floor of `agent_pos`)
facing the same way (headings within `heading_tolerance_deg`). A *visit* to a view is a run of
consecutive frames that all show it; leaving and coming back starts a new visit. For every generated
frame we want the gap to the previous visit (not to the frame just before: standing still for five
frames is short-term continuity, not memory) and whether the real context the model was primed with
showed the view (what the paper's retrieval task asks the model to remember). A visit under way when
the context ends counts as shown in the context, whatever came before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Classes of generated frames (RevisitInfo.kind), in the order reports show them.
MEMORY = "memory"  # the real context showed this view: recall what the model was shown
REVISIT_IN_GENERATION = "revisit_in_generation"  # shown before only in frames the model generated
NOVEL = "novel"  # never shown before: the model must invent it
KINDS = (MEMORY, REVISIT_IN_GENERATION, NOVEL)


@dataclass
class RevisitInfo:
    """Per frame of [start, end) of an episode.

    gap:  (n,) float, frames since the last frame of the previous visit to this view; inf if none
    kind: (n,) str, one of KINDS
    """

    gap: np.ndarray
    kind: np.ndarray


def same_view(agent_pos: np.ndarray, agent_dir: np.ndarray, t: int, heading_tolerance_deg: float) -> np.ndarray:
    """Frames [0, t) showing the view of frame t: (t,) bool.

    agent_pos: (T, 2) grid units, agent_dir: (T, 2) facing direction (any length)."""
    cells = np.floor(agent_pos[: t + 1]).astype(np.int64)
    same_cell = (cells[:t] == cells[t]).all(axis=1)
    unit = agent_dir[: t + 1] / np.maximum(np.linalg.norm(agent_dir[: t + 1], axis=1, keepdims=True), 1e-12)
    cos = unit[:t] @ unit[t]
    # A small epsilon keeps exactly-at-tolerance headings (e.g. 45 deg apart on a float grid) inside.
    return same_cell & (cos >= math.cos(math.radians(heading_tolerance_deg)) - 1e-9)


def revisit_gaps(agent_pos: np.ndarray, agent_dir: np.ndarray, context: int, start: int, end: int,
                 heading_tolerance_deg: float = 45.0) -> RevisitInfo:
    """Gap and kind of frames [start, end) of one episode, the real context being frames [0, context).

    agent_pos: (T, 2), agent_dir: (T, 2) with T >= end; start >= context for generated frames.
    """
    if agent_pos.shape[0] < end or agent_dir.shape[0] < end:
        raise ValueError(f"pose arrays have {agent_pos.shape[0]} frames, fewer than the {end} asked for")
    gaps = np.full(end - start, np.inf)
    kinds = np.full(end - start, NOVEL, dtype=object)
    for t in range(start, end):
        match = same_view(agent_pos, agent_dir, t, heading_tolerance_deg)
        visit_start = t  # the current visit: the run of matching frames just before t
        while visit_start > 0 and match[visit_start - 1]:
            visit_start -= 1
        earlier = np.flatnonzero(match[:visit_start])
        if earlier.size:
            gaps[t - start] = t - earlier[-1]
        if visit_start < context or (earlier.size and earlier[0] < context):
            kinds[t - start] = MEMORY
        elif earlier.size:
            kinds[t - start] = REVISIT_IN_GENERATION
    return RevisitInfo(gaps, kinds.astype(str))


def gap_bins(max_gap: float) -> list[tuple[int, int]]:
    """Octave bins [1, 2), [2, 4), ... covering gaps up to max_gap."""
    bins, low = [], 1
    while low <= max_gap:
        bins.append((low, 2 * low))
        low *= 2
    return bins

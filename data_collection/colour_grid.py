"""The colour grid: a world whose local dynamics are trivial and whose content cannot be guessed.

A room of `room` x `room` cells inside a wall, with `tiles` of its floor cells painted in one of
MiniGrid's six colours (places and colours drawn anew every episode). The observation is a north-up
crop of `view` x `view` cells centred on the agent, `FRAME_SIZE // view` pixels a cell (8 for the
default view of 8: one cell per latent cell of a 64 -> 8 autoencoder), the agent drawn as a triangle
pointing where it last moved. Outside the room is wall.

Why it exists (issues 34 and 39): memory only pays once the local dynamics are learnt, and here they
are a shift of the view by one cell per move, or none at all; what comes back into view after the
agent returns can only be drawn from memory, and every frame records the agent's cell, so a generated
frame can be scored cell by cell against what the model was shown (`classify_cells`, `view_cells`).
It is the setting of S4WM's memory tests (Deng et al. 2023: north-up crops of MiniGrid-like grids).

Why four absolute moves (north, east, south, west) and `stay`, not MiniGrid's turn-and-forward: with
a north-up view an absolute move shifts the view in a direction the action alone names, so the next
frame is a function of the last frame and the action (plus the cells entering at the edge); under
turn-and-forward the shift depends on a heading the model must infer from the agent's sprite, and
half the actions (turns) change one cell. `stay`, and a move into the wall, leave the view unchanged:
the copy the dynamics must learn first.

The room's walls and free cells are `maze_layout` (as for MiniGrid and Memory Maze, so the navigating
policies and the evaluation read it the same way) and the colours are `floor_colours`, both per-episode
arrays; pose `agent_pos` is the agent's cell centre (x + 0.5, y + 0.5), y pointing down, and
`agent_dir` the unit vector of its last move. Reward is always 0 and episodes never end on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from data_collection.envs import (FRAME_SIZE, FREE, WALL, ActionSpace, EnvError, EnvSpec, RealEnv, Step)

ENV_NAME = "colour-grid"
# Index 0: stay; 1-4: the moves, clockwise from north, as (dx, dy) with y pointing down.
ACTIONS = ("stay", "north", "east", "south", "west")
MOVES = {1: (0, -1), 2: (1, 0), 3: (0, 1), 4: (-1, 0)}
STAY = 0

# Cell classes: what a cell of a frame shows. FLOOR is an unpainted floor cell.
FLOOR, WALL_CELL = 0, 7
TILE_COLOURS = ("red", "green", "blue", "purple", "yellow", "grey")  # classes 1..6, MiniGrid's names
PALETTE = np.array([
    (0, 0, 0),  # floor
    (255, 0, 0), (0, 255, 0), (0, 0, 255), (112, 39, 195), (255, 255, 0), (100, 100, 100),  # MiniGrid's
    (255, 255, 255),  # wall
], dtype=np.uint8)
AGENT_COLOUR = np.array((255, 140, 0), dtype=np.uint8)


@dataclass(frozen=True)
class ColourGridConfig:
    room: int = 16  # free cells per side
    tiles: int = 256  # painted floor cells (<= room * room): the memory load
    view: int = 8  # cells per side of the observation; FRAME_SIZE // view pixels a cell

    def __post_init__(self) -> None:
        if self.room < 2:
            raise EnvError(f"{ENV_NAME}: room must be >= 2, got {self.room}")
        if not 0 <= self.tiles <= self.room * self.room:
            raise EnvError(f"{ENV_NAME}: tiles must be in [0, room * room = {self.room * self.room}], got {self.tiles}")
        if self.view < 2 or FRAME_SIZE % self.view:
            raise EnvError(f"{ENV_NAME}: view must be >= 2 and divide the frame size {FRAME_SIZE}, got {self.view}")

    @property
    def cell_pixels(self) -> int:
        return FRAME_SIZE // self.view


def is_colour_grid(name: str) -> bool:
    """Whether an env name (as datasets record it) names the colour grid, with or without options."""
    return name.partition(":")[0] == ENV_NAME


def parse_env_name(name: str) -> ColourGridConfig:
    """`colour-grid` or `colour-grid:field=value,...` (fields of ColourGridConfig) -> its config."""
    base, _, options = name.partition(":")
    if base != ENV_NAME:
        raise EnvError(f"not a {ENV_NAME} name: {name!r}")
    known = {f.name for f in fields(ColourGridConfig)}
    values: dict[str, int] = {}
    for item in filter(None, options.split(",")):
        key, sep, text = item.partition("=")
        if not sep or key not in known:
            raise EnvError(f"env {name!r}: {item!r} is not field=value with a field of {ENV_NAME} ({', '.join(sorted(known))})")
        try:
            values[key] = int(text)
        except ValueError:
            raise EnvError(f"env {name!r}: {key}={text!r} is not an integer") from None
    return ColourGridConfig(**values)


def spec_for(name: str) -> EnvSpec:
    parse_env_name(name)
    return EnvSpec(name=name, kind="colour-grid", target=name, action_space=ActionSpace(len(ACTIONS), ACTIONS),
                   pose_keys=("agent_pos", "agent_dir"), static_keys=("maze_layout", "floor_colours"))


def agent_sprite(cell_pixels: int, direction: tuple[int, int]) -> np.ndarray:
    """(p, p) bool: a triangle pointing along `direction` (dx, dy), y down, a pixel's margin around it."""
    p = cell_pixels
    centre = (p - 1) / 2
    rows, cols = np.mgrid[0:p, 0:p].astype(np.float64)
    # Along the heading from the cell's back edge (0) to its front (1); across it, -1..1.
    dx, dy = direction
    along = ((cols - centre) * dx + (rows - centre) * dy) / max(centre, 1e-9)
    across = ((cols - centre) * -dy + (rows - centre) * dx) / max(centre, 1e-9)
    depth = (1 - along) / 2  # 0 at the tip, 1 at the base
    return (np.abs(along) <= 0.8) & (np.abs(across) <= depth * 0.9)


class ColourGridEnv(RealEnv):
    def __init__(self, name: str = ENV_NAME):
        self.config = parse_env_name(name)
        self.spec = spec_for(name)
        self._static: dict[str, np.ndarray] = {}
        size = self.config.room + 2
        self._layout = np.full((size, size), WALL, dtype=np.uint8)
        self._layout[1:-1, 1:-1] = FREE
        self._sprites = {d: agent_sprite(self.config.cell_pixels, d) for d in MOVES.values()}

    @property
    def static(self) -> dict[str, np.ndarray]:
        return self._static

    def reset(self, seed: int) -> Step:
        rng = np.random.default_rng(int(seed))
        c = self.config
        colours = np.zeros_like(self._layout)
        interior = np.argwhere(self._layout == FREE)
        painted = interior[rng.choice(len(interior), size=c.tiles, replace=False)]
        colours[painted[:, 0], painted[:, 1]] = rng.integers(1, len(TILE_COLOURS) + 1, size=c.tiles)
        self._static = {"maze_layout": self._layout.copy(), "floor_colours": colours}
        # The map's cell classes, padded by a view of wall on every side so that any crop is in range.
        classes = np.where(self._layout == WALL, WALL_CELL, colours).astype(np.uint8)
        self._classes = np.pad(classes, c.view, constant_values=WALL_CELL)
        y, x = interior[rng.integers(len(interior))]
        self._cell = (int(x), int(y))
        self._direction = MOVES[int(rng.integers(1, 5))]
        return self._observe()

    def step(self, action: int) -> Step:
        action = int(action)
        if action not in range(len(ACTIONS)):
            raise EnvError(f"{ENV_NAME}: action must be in [0, {len(ACTIONS)}), got {action}")
        if action != STAY:
            self._direction = MOVES[action]
            x, y = self._cell[0] + self._direction[0], self._cell[1] + self._direction[1]
            if self._layout[y, x] == FREE:
                self._cell = (x, y)
        return self._observe()

    def _observe(self) -> Step:
        frame = render_view(self._classes, self._cell, self.config)
        p, half = self.config.cell_pixels, self.config.view // 2
        agent = frame[half * p:(half + 1) * p, half * p:(half + 1) * p]
        agent[self._sprites[self._direction]] = AGENT_COLOUR
        x, y = self._cell
        return Step(frame=frame, pose={"agent_pos": np.array([x + 0.5, y + 0.5], dtype=np.float32),
                                       "agent_dir": np.array(self._direction, dtype=np.float32)})


def view_origin(cell: tuple[int, int], config: ColourGridConfig) -> tuple[int, int]:
    """Map cell (x, y) shown in the view's top-left cell when the agent stands in `cell`: the agent is
    in view cell (view // 2, view // 2)."""
    return cell[0] - config.view // 2, cell[1] - config.view // 2


def render_view(padded_classes: np.ndarray, cell: tuple[int, int], config: ColourGridConfig) -> np.ndarray:
    """The (FRAME_SIZE, FRAME_SIZE, 3) uint8 crop around `cell`, without the agent; padded_classes is the
    map's cell classes padded by `config.view` cells of wall."""
    x0, y0 = view_origin(cell, config)
    crop = padded_classes[y0 + config.view:y0 + 2 * config.view, x0 + config.view:x0 + 2 * config.view]
    p = config.cell_pixels
    return np.repeat(np.repeat(PALETTE[crop], p, axis=0), p, axis=1)


def view_cells(agent_pos: np.ndarray, config: ColourGridConfig) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates of every view cell: agent_pos (..., 2) -> (xs, ys), each (..., view, view) int,
    [..., row, column] of the view. Cells outside the map have coordinates outside it."""
    cell = np.floor(np.asarray(agent_pos)).astype(np.int64)
    offsets = np.arange(config.view) - config.view // 2
    xs = cell[..., 0, None, None] + offsets[None, :]
    ys = cell[..., 1, None, None] + offsets[:, None]
    xs, ys = np.broadcast_arrays(xs, ys)
    return xs.copy(), ys.copy()


def true_cell_classes(agent_pos: np.ndarray, maze_layout: np.ndarray, floor_colours: np.ndarray,
                      config: ColourGridConfig) -> np.ndarray:
    """The class of every view cell from the episode's map: agent_pos (..., 2) -> (..., view, view)."""
    classes = np.where(maze_layout == WALL, WALL_CELL, floor_colours).astype(np.uint8)
    padded = np.pad(classes, config.view, constant_values=WALL_CELL)
    xs, ys = view_cells(agent_pos, config)
    return padded[ys + config.view, xs + config.view]


def classify_cells(frames: np.ndarray, config: ColourGridConfig) -> np.ndarray:
    """The class of every cell of frames (..., H, W, 3) uint8 (real or generated): the palette colour
    nearest to the mean of the cell's inner pixels (a pixel's border left out, where decoders blur).
    Returns (..., view, view) uint8. The agent's cell is classified like any other: leave it out."""
    p, v = config.cell_pixels, config.view
    cells = np.asarray(frames, dtype=np.float32).reshape(*frames.shape[:-3], v, p, v, p, 3)
    inner = slice(1, p - 1) if p > 2 else slice(0, p)
    means = cells[..., inner, :, inner, :].mean(axis=(-4, -2))  # (..., v, v, 3)
    distance = ((means[..., None, :] - PALETTE.astype(np.float32)) ** 2).sum(-1)
    return distance.argmin(-1).astype(np.uint8)

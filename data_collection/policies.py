"""Scripted data-collection policies.

A world model learns memory only from trajectories that come back to places they have seen, so the
navigating policies walk the maze on purpose:

- `random`: uniform actions; works on every env, discrete or box. `random:momentum=0.9` keeps the
  last action with that probability at each step (runs of one action, 1 / (1 - momentum) steps on
  average): pushes that last long enough to move a cart or swing a pole.
- `explore`: repeatedly picks a random reachable cell and walks the shortest path to it, with some
  noise (uniformly random actions, every action of the env), so paths cross and loop over the episode.
  `explore:wall_bump=0.3` also walks into the wall ahead with that probability at every step that
  faces one: without it "forward" almost never meets a wall in the data, and a model trained on it
  lets agents walk through walls.
  `explore:seek_target=0.5` makes that fraction of the walks go to the target the env pays for
  (Memory Maze's `target_pos`) instead of a random cell: a random walk touches a target about once
  per 700 steps, too rarely for a model to learn what a reward looks like.
- `retrace`: walks a path out, turns around, walks back to its start, turns to its first heading and
  walks the same path out again. The last third of the episode passes the same cells with the same
  headings as the first third: ground truth for the retrieval benchmark (docs/design.md, "Evaluation protocol").
- `momentum` and `out-and-back`, for envs with absolute moves (the colour grid): a random walk with
  momentum, and legs of a set length out and back along the same cells (revisit gaps up to twice the leg).

A policy is named by a spec, `name` or `name:field=value,field=value`, whose fields set the policy's
config dataclass (ExploreConfig, RetraceConfig); the spec is what the dataset manifest records.

The navigators act on privileged information, the agent's pose and the maze layout (envs.py):
cells are (x, y) with the agent in maze_layout[floor(y), floor(x)]; they need an env whose spec has
`navigation` (Memory Maze, MiniGrid).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from data_collection.envs import FREE, EnvSpec, Navigation, Step, heading_deg

Cell = tuple[int, int]  # (x, y) = (column, row) of maze_layout


class PolicySpecError(Exception):
    pass


# ------------------------------------------------------------------------------------ the grid


def cell_of(agent_pos: np.ndarray) -> Cell:
    return (int(math.floor(float(agent_pos[0]))), int(math.floor(float(agent_pos[1]))))


def cell_center(cell: Cell) -> np.ndarray:
    return np.array([cell[0] + 0.5, cell[1] + 0.5], dtype=np.float64)


def bfs(walkable: np.ndarray, start: Cell) -> tuple[dict[Cell, int], dict[Cell, Cell | None]]:
    """Breadth-first search over 4-connected walkable cells: (steps to each reached cell, predecessors).

    walkable: (H, W) bool indexed [y, x].
    """
    h, w = walkable.shape
    distance: dict[Cell, int] = {start: 0}
    parents: dict[Cell, Cell | None] = {start: None}
    queue = deque([start])
    while queue:
        x, y = queue.popleft()
        for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if 0 <= nx < w and 0 <= ny < h and walkable[ny, nx] and (nx, ny) not in parents:
                parents[(nx, ny)] = (x, y)
                distance[(nx, ny)] = distance[(x, y)] + 1
                queue.append((nx, ny))
    return distance, parents


def shortest_path(walkable: np.ndarray, start: Cell, goal: Cell) -> list[Cell] | None:
    """Cells from start to goal inclusive, or None when goal is unreachable."""
    _, parents = bfs(walkable, start)
    if goal not in parents:
        return None
    path = [goal]
    while path[-1] != start:
        path.append(parents[path[-1]])  # type: ignore[arg-type]
    return path[::-1]


def path_to_random_cell(walkable: np.ndarray, here: Cell, rng: np.random.Generator, min_distance: int) -> list[Cell] | None:
    """Shortest path to a uniformly chosen cell at least min_distance steps away (nearer cells if
    there are none that far); None when no other cell is reachable."""
    distance, _ = bfs(walkable, here)
    far = [c for c, d in distance.items() if d >= min_distance]
    choices = far or [c for c in distance if c != here]
    if not choices:
        return None
    return shortest_path(walkable, here, choices[int(rng.integers(len(choices)))])


def _signed_angle(from_deg: float, to_deg: float) -> float:
    """to - from, wrapped to [-180, 180)."""
    return (to_deg - from_deg + 180.0) % 360.0 - 180.0


class Driver:
    """Turns "go to this point" or "face this way" into one action of a navigating env."""

    def __init__(self, nav: Navigation):
        self.nav = nav

    def _error_left(self, agent_dir: np.ndarray, desired: np.ndarray) -> float:
        """Heading error in degrees, positive when the agent should turn left."""
        error = _signed_angle(heading_deg(agent_dir), heading_deg(desired))
        return error if self.nav.left_increases_angle else -error

    def toward(self, agent_pos: np.ndarray, agent_dir: np.ndarray, point: np.ndarray) -> int:
        error = self._error_left(agent_dir, point - agent_pos)
        nav = self.nav
        if abs(error) > nav.turn_in_place_deg:
            return nav.left if error > 0 else nav.right
        if abs(error) > nav.align_deg:
            # Curving while moving keeps Memory Maze's ball rolling; MiniGrid has no such action.
            curve = nav.forward_left if error > 0 else nav.forward_right
            if curve is not None:
                return curve
            return nav.left if error > 0 else nav.right
        return nav.forward

    def face(self, agent_dir: np.ndarray, heading: np.ndarray) -> int | None:
        """A turn toward `heading`, or None once within half a turn step of it."""
        error = self._error_left(agent_dir, heading)
        if abs(error) <= max(self.nav.turn_step_deg / 2, 1.0):
            return None
        return self.nav.left if error > 0 else self.nav.right


class PathFollower:
    """Walks a list of cells, waypoint by waypoint, replanning when knocked off the path.

    `reached` records every cell the walk actually arrived at, detours included, so a caller can
    walk the true route again.
    """

    def __init__(self, walkable: np.ndarray, driver: Driver):
        self.walkable = walkable
        self.driver = driver
        self.path: list[Cell] = []
        self.next = 0
        self.reached: list[Cell] = []

    def set_path(self, path: list[Cell]) -> None:
        self.path = list(path)
        self.next = 0

    @property
    def done(self) -> bool:
        return self.next >= len(self.path)

    def act(self, agent_pos: np.ndarray, agent_dir: np.ndarray) -> int | None:
        """The action toward the next waypoint, or None when the path is finished."""
        here = cell_of(agent_pos)
        while not self.done:
            target = self.path[self.next]
            if here == target and np.linalg.norm(agent_pos - cell_center(target)) <= self.driver.nav.arrive_radius:
                self.reached.append(target)
                self.next += 1
                continue
            previous = self.path[self.next - 1] if self.next > 0 else None
            if here not in (target, previous):
                # Noise or momentum took the agent off the path: splice in a way back to the target.
                detour = shortest_path(self.walkable, here, target)
                if detour is None:
                    return None
                self.path[self.next : self.next + 1] = detour
                continue
            return self.driver.toward(agent_pos, agent_dir, cell_center(target))
        return None


# ------------------------------------------------------------------------------------ policies


class ScriptedPolicy(abc.ABC):
    """Chooses actions from Steps. `reset` is called with the first Step of every episode.

    ANNOTATIONS names per-step integers the policy reports in `annotations` after every `act`
    (stored in the dataset beside the actions).
    """

    name: ClassVar[str]
    needs_navigation: ClassVar[bool] = False
    CONFIG: ClassVar[type | None] = None  # the dataclass a spec's fields set
    ANNOTATIONS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: EnvSpec):
        if self.needs_navigation and spec.navigation is None:
            raise PolicySpecError(
                f"policy {self.name!r} walks the maze from the agent's pose and the maze layout, which "
                f"env {spec.name!r} does not provide; use --policy random, or an env with a grid "
                "(memory-maze-*, minigrid-*, any MiniGrid id)"
            )
        self.spec = spec
        self.annotations: dict[str, int] = {}

    @abc.abstractmethod
    def reset(
        self, first: Step, static: Mapping[str, np.ndarray], rng: np.random.Generator, max_steps: int
    ) -> None: ...

    @abc.abstractmethod
    def act(self, step: Step) -> int | np.ndarray: ...


@dataclass
class RandomConfig:
    momentum: float = 0.0  # probability of keeping the last action at a step (else a new uniform one)

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise PolicySpecError(f"random: momentum must be in [0, 1), got {self.momentum}")


class UniformRandomPolicy(ScriptedPolicy):
    name = "random"
    CONFIG = RandomConfig

    def __init__(self, spec: EnvSpec, config: RandomConfig | None = None):
        super().__init__(spec)
        self.config = config or RandomConfig()

    def reset(self, first: Step, static: Mapping[str, np.ndarray], rng: np.random.Generator, max_steps: int) -> None:
        self.rng = rng
        self.last: int | np.ndarray | None = None

    def act(self, step: Step) -> int | np.ndarray:
        # No draw for the momentum when it is 0, so datasets collected before it stay reproducible.
        if self.last is None or self.config.momentum == 0 or self.rng.random() >= self.config.momentum:
            self.last = self.spec.action_space.sample(self.rng)
        return self.last


def _walkable_layout(static: Mapping[str, np.ndarray], policy: str, avoid_terminal: bool) -> np.ndarray:
    if "maze_layout" not in static:
        raise PolicySpecError(f"policy {policy!r} needs a maze_layout from the env, which reset() did not give")
    layout = static["maze_layout"]
    return layout == FREE if avoid_terminal else layout != 0


def _pose(step: Step) -> tuple[np.ndarray, np.ndarray]:
    return step.pose["agent_pos"].astype(np.float64), step.pose["agent_dir"].astype(np.float64)


@dataclass
class ExploreConfig:
    # Probability of a uniformly random action (any of the env's, not only moves) instead of the
    # planned one: a world model has to see every action to predict what it does, because agents
    # trained inside the model will try them all.
    action_noise: float = 0.1
    min_goal_distance: int = 3  # in steps; keeps legs long enough to pass through several places
    stuck_steps: int = 60  # pick a new goal after this many steps without entering a new cell
    # Probability of "forward" at each step that faces a wall (or another cell that cannot be
    # entered), so runs of pushing against a wall are geometric. The planned path turns away from
    # walls, so without this the data shows almost no blocked moves.
    wall_bump: float = 0.0
    # Probability that a new walk goes to the cell of the env's current target (pose "target_pos")
    # instead of a random cell, so the data holds many arrivals and their rewards.
    seek_target: float = 0.0

    def __post_init__(self) -> None:
        for name in ("action_noise", "wall_bump", "seek_target"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise PolicySpecError(f"explore: {name} must be in [0, 1], got {getattr(self, name)}")


class ExplorePolicy(ScriptedPolicy):
    name = "explore"
    needs_navigation = True
    CONFIG = ExploreConfig

    def __init__(self, spec: EnvSpec, config: ExploreConfig | None = None):
        super().__init__(spec)
        self.config = config or ExploreConfig()
        if self.config.seek_target > 0 and "target_pos" not in spec.pose_keys:
            raise PolicySpecError(
                f"explore: seek_target={self.config.seek_target} walks to the env's target, but env "
                f"{spec.name!r} reports no target_pos (only Memory Maze does); drop seek_target"
            )
        assert spec.navigation is not None
        self.driver = Driver(spec.navigation)

    def reset(self, first: Step, static: Mapping[str, np.ndarray], rng: np.random.Generator, max_steps: int) -> None:
        self.rng = rng
        # Goals and lava count as floor: reaching them (and their reward) is part of the data.
        self.follower = PathFollower(_walkable_layout(static, self.name, avoid_terminal=False), self.driver)
        self.last_cell: Cell | None = None
        self.steps_in_cell = 0

    def act(self, step: Step) -> int:
        pos, direction = _pose(step)
        here = cell_of(pos)
        self.steps_in_cell = self.steps_in_cell + 1 if here == self.last_cell else 0
        self.last_cell = here
        if self.steps_in_cell > self.config.stuck_steps:
            self.follower.set_path([])
            self.steps_in_cell = 0
        action = self.follower.act(pos, direction)
        if action is None:
            # At the goal: on to the next one (or stand still in a world of one cell).
            self.follower.set_path(self._next_path(step, here) or [])
            action = self.follower.act(pos, direction)
        if action is None:
            action = self.driver.nav.noop
        if self.config.wall_bump > 0 and self._faces_wall(pos, direction) and self.rng.random() < self.config.wall_bump:
            action = self.driver.nav.forward
        if self.rng.random() < self.config.action_noise:
            action = int(self.spec.action_space.sample(self.rng))
        return int(action)

    def _next_path(self, step: Step, here: Cell) -> list[Cell] | None:
        # The draw is skipped when seek_target is 0 so datasets collected before it stay reproducible.
        if self.config.seek_target > 0 and self.rng.random() < self.config.seek_target:
            path = shortest_path(self.follower.walkable, here, cell_of(step.pose["target_pos"]))
            if path is not None:
                return path
        return path_to_random_cell(self.follower.walkable, here, self.rng, self.config.min_goal_distance)

    def _faces_wall(self, pos: np.ndarray, direction: np.ndarray) -> bool:
        """Whether the cell one cell-length ahead cannot be entered (or lies outside the maze)."""
        x, y = cell_of(pos + direction / max(float(np.linalg.norm(direction)), 1e-6))
        h, w = self.follower.walkable.shape
        return not (0 <= x < w and 0 <= y < h and self.follower.walkable[y, x])


@dataclass
class RetraceConfig:
    min_goal_distance: int = 3
    # The outward walk gets a third of the episode minus both turn-arounds and this many cells of
    # slack, so that the third walk, which may be a little slower, still ends inside the episode.
    slack_cells: float = 1.0


class RetracePhase:
    """Values of the `retrace_phase` annotation."""

    OUT, TURN_BACK, BACK, TURN_OUT, AGAIN, DONE = range(6)


class RetracePolicy(ScriptedPolicy):
    """Out along a path, back to its start, and out along the same path again.

    Phase 1 (OUT) chains walks to random cells until its step budget is spent, recording the route.
    TURN_BACK faces the way the walk came; BACK follows the route reversed; TURN_OUT faces the
    heading the agent had at step 0; AGAIN follows the route once more, reproducing OUT; DONE stands
    still until the episode ends. Without action noise, and on cells that do not end the episode.
    """

    name = "retrace"
    needs_navigation = True
    ANNOTATIONS = ("retrace_phase",)
    CONFIG = RetraceConfig

    def __init__(self, spec: EnvSpec, config: RetraceConfig | None = None):
        super().__init__(spec)
        self.config = config or RetraceConfig()
        assert spec.navigation is not None
        self.driver = Driver(spec.navigation)

    def reset(self, first: Step, static: Mapping[str, np.ndarray], rng: np.random.Generator, max_steps: int) -> None:
        self.rng = rng
        self.follower = PathFollower(_walkable_layout(static, self.name, avoid_terminal=True), self.driver)
        pos, direction = _pose(first)
        self.start_dir = direction.copy()
        self.follower.set_path([cell_of(pos)])
        nav = self.driver.nav
        turn_steps = 180.0 / nav.turn_step_deg
        self.out_budget = max(1, int((max_steps - 2 * turn_steps) / 3 - self.config.slack_cells * nav.steps_per_cell))
        self.steps = 0
        self._enter(RetracePhase.OUT)
        self.route: list[Cell] = []
        self.back_heading = -direction

    def act(self, step: Step) -> int:
        action = self._act(step)
        self.steps += 1
        self.annotations = {"retrace_phase": self.phase}
        return action

    def _act(self, step: Step) -> int:
        pos, direction = _pose(step)
        if self.phase == RetracePhase.OUT:
            if self.steps >= self.out_budget:
                # Budget spent: finish the waypoint under way and stop there.
                del self.follower.path[self.follower.next + 1 :]
            action = self.follower.act(pos, direction)
            if action is not None:
                return action
            # At a waypoint: go on out while the budget lasts, else turn back.
            if self.steps < self.out_budget:
                path = path_to_random_cell(self.follower.walkable, cell_of(pos), self.rng, self.config.min_goal_distance)
                self.follower.set_path(path or [])
                action = self.follower.act(pos, direction)
                if action is not None:
                    return action
            self.route = _dedupe_consecutive(self.follower.reached)
            self.back_heading = -direction
            self._enter(RetracePhase.TURN_BACK)
        if self.phase == RetracePhase.TURN_BACK:
            action = self._turn(direction, self.back_heading)
            if action is not None:
                return action
            self.follower.set_path(self.route[::-1])
            self._enter(RetracePhase.BACK)
        if self.phase == RetracePhase.BACK:
            action = self.follower.act(pos, direction)
            if action is not None:
                return action
            self._enter(RetracePhase.TURN_OUT)
        if self.phase == RetracePhase.TURN_OUT:
            action = self._turn(direction, self.start_dir)
            if action is not None:
                return action
            self.follower.set_path(self.route)
            self._enter(RetracePhase.AGAIN)
        if self.phase == RetracePhase.AGAIN:
            action = self.follower.act(pos, direction)
            if action is not None:
                return action
            self._enter(RetracePhase.DONE)
        return self.driver.nav.noop

    def _enter(self, phase: int) -> None:
        self.phase = phase
        self.phase_start = self.steps

    def _turn(self, direction: np.ndarray, heading: np.ndarray) -> int | None:
        # Memory Maze's ball turns with momentum and could swing around the target heading; after
        # twice the steps a half turn needs, go on with the heading reached.
        if self.steps - self.phase_start > 2 * 180.0 / self.driver.nav.turn_step_deg:
            return None
        return self.driver.face(direction, heading)


# ------------------------------------------------------------- walks with absolute moves (colour grid)


@dataclass
class MomentumConfig:
    turn: float = 0.2  # probability of drawing a new direction at a step (else the last move again)
    stay: float = 0.1  # probability of `stay` at a step: the unchanged view, which the dynamics must copy
    # Probability of keeping a move that walks into the wall (the view stays unchanged), else another
    # direction is drawn: the data must show blocked moves for the model to learn them.
    wall_bump: float = 0.2

    def __post_init__(self) -> None:
        for name in ("turn", "stay", "wall_bump"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise PolicySpecError(f"momentum: {name} must be in [0, 1], got {getattr(self, name)}")


class _AbsoluteMoves(ScriptedPolicy):
    """A walk over an env whose actions are `stay` and the four compass moves (colour_grid.ACTIONS)."""

    def __init__(self, spec: EnvSpec):
        super().__init__(spec)
        from data_collection.colour_grid import ACTIONS
        if spec.action_space.meanings != ACTIONS or "agent_pos" not in spec.pose_keys:
            raise PolicySpecError(f"policy {self.name!r} walks with absolute moves {ACTIONS}, which env "
                                  f"{spec.name!r} does not have; use it with colour-grid")

    def _momentum_move(self, here: Cell, config: MomentumConfig) -> int:
        """`stay` or a move: the last one again, or with probability `turn` (or at a wall) a new one."""
        from data_collection.colour_grid import MOVES, STAY
        if self.rng.random() < config.stay:
            return STAY
        if self.move is None or self.rng.random() < config.turn:
            self.move = int(self.rng.integers(1, 5))
        dx, dy = MOVES[self.move]
        if not self.walkable[here[1] + dy, here[0] + dx] and self.rng.random() >= config.wall_bump:
            open_moves = [m for m, (mx, my) in MOVES.items() if self.walkable[here[1] + my, here[0] + mx]]
            self.move = int(self.rng.choice(open_moves))
        return self.move


class MomentumPolicy(_AbsoluteMoves):
    """A random walk with momentum: runs of one move, `stay` now and then, some bumps into the wall."""

    name = "momentum"
    CONFIG = MomentumConfig

    def __init__(self, spec: EnvSpec, config: MomentumConfig | None = None):
        super().__init__(spec)
        self.config = config or MomentumConfig()

    def reset(self, first: Step, static: Mapping[str, np.ndarray], rng: np.random.Generator, max_steps: int) -> None:
        self.rng, self.move = rng, None
        self.walkable = _walkable_layout(static, self.name, avoid_terminal=True)

    def act(self, step: Step) -> int:
        return self._momentum_move(cell_of(step.pose["agent_pos"]), self.config)


@dataclass
class OutAndBackConfig:
    leg: int = 50  # steps out (a momentum walk), then as many back: revisit gaps from 0 to 2 * leg
    # Each leg's length drawn uniformly from [min_leg, leg] (0: every leg `leg` steps long), so that one
    # dataset holds revisits at every gap up to 2 * leg.
    min_leg: int = 0
    turn: float = 0.2
    stay: float = 0.05


class WalkPhase:
    """Values of the `walk_phase` annotation."""

    OUT, BACK = 0, 1


class OutAndBackPolicy(_AbsoluteMoves):
    """Legs of `leg` steps (or a length drawn from [min_leg, leg]) out on a momentum walk, then back along
    the same cells in reverse order, to the leg's start; then a new leg. A cell seen at step t of a leg is seen again 2 * (leg - t) steps
    later, from the same place: the distance knob of S4WM's hallways. Moves into the wall are left out
    (each step out moves or stays), so the way back retraces the way out exactly."""

    name = "out-and-back"
    CONFIG = OutAndBackConfig
    ANNOTATIONS = ("walk_phase",)

    def __init__(self, spec: EnvSpec, config: OutAndBackConfig | None = None):
        super().__init__(spec)
        self.config = config or OutAndBackConfig()
        if self.config.leg < 1:
            raise PolicySpecError(f"out-and-back: leg must be >= 1, got {self.config.leg}")
        if not 0 <= self.config.min_leg <= self.config.leg:
            raise PolicySpecError(f"out-and-back: min_leg must be in [0, leg = {self.config.leg}], got {self.config.min_leg}")
        self.walk = MomentumConfig(turn=self.config.turn, stay=self.config.stay, wall_bump=0.0)

    def reset(self, first: Step, static: Mapping[str, np.ndarray], rng: np.random.Generator, max_steps: int) -> None:
        self.rng, self.move = rng, None
        self.walkable = _walkable_layout(static, self.name, avoid_terminal=True)
        self.way_out: list[int] = []  # the actions of the leg so far
        self.way_back: list[int] = []
        self.leg = self._leg_length()

    def _leg_length(self) -> int:
        if not self.config.min_leg:  # no draw, so that fixed legs keep their random stream
            return self.config.leg
        return int(self.rng.integers(self.config.min_leg, self.config.leg + 1))

    def act(self, step: Step) -> int:
        from data_collection.colour_grid import STAY
        if not self.way_back and len(self.way_out) >= self.leg:
            # The reverse of every move, last first (north <-> south, east <-> west; stay stays).
            self.way_back = [a if a == STAY else (a + 1) % 4 + 1 for a in self.way_out]
            self.way_out = []
            self.leg = self._leg_length()
        if self.way_back:
            self.annotations = {"walk_phase": WalkPhase.BACK}
            return self.way_back.pop()
        self.annotations = {"walk_phase": WalkPhase.OUT}
        action = self._momentum_move(cell_of(step.pose["agent_pos"]), self.walk)
        self.way_out.append(action)
        return action


def _dedupe_consecutive(cells: list[Cell]) -> list[Cell]:
    out: list[Cell] = []
    for cell in cells:
        if not out or out[-1] != cell:
            out.append(cell)
    return out


POLICIES: dict[str, type[ScriptedPolicy]] = {
    p.name: p for p in (UniformRandomPolicy, ExplorePolicy, RetracePolicy, MomentumPolicy, OutAndBackPolicy)}


def policy_name(spec: str) -> str:
    """The policy a spec names: `explore` for `explore:wall_bump=0.4`."""
    return spec.partition(":")[0]


def parse_policy_spec(spec: str) -> tuple[type[ScriptedPolicy], dict[str, Any]]:
    """`name` or `name:field=value,...` -> (policy class, config fields); PolicySpecError names what is wrong."""
    name, options = policy_name(spec), spec.partition(":")[2]
    if name not in POLICIES:
        raise PolicySpecError(f"unknown policy {name!r}; policies: {', '.join(POLICIES)}")
    cls = POLICIES[name]
    if not options:
        return cls, {}
    if cls.CONFIG is None:
        raise PolicySpecError(f"policy {name!r} has no options, got {options!r}")
    fields = {f.name: f.type for f in dataclasses.fields(cls.CONFIG)}
    values: dict[str, Any] = {}
    for item in options.split(","):
        key, sep, text = item.partition("=")
        if not sep or key not in fields:
            raise PolicySpecError(f"policy spec {spec!r}: {item!r} is not field=value with a field of {name} "
                              f"({', '.join(fields)})")
        kind = float if fields[key] in (float, "float") else int
        try:
            values[key] = kind(text)
        except ValueError:
            raise PolicySpecError(f"policy spec {spec!r}: {key}={text!r} is not a{'n int' if kind is int else ' number'}") from None
    return cls, values


def make_policy(spec: str, env_spec: EnvSpec) -> ScriptedPolicy:
    """A policy from its spec (`explore`, `explore:wall_bump=0.3`) for an env; PolicySpecError when the
    spec is malformed or the env cannot host the policy."""
    cls, values = parse_policy_spec(spec)
    if cls.CONFIG is None:
        return cls(env_spec)
    return cls(env_spec, cls.CONFIG(**values))  # type: ignore[call-arg]

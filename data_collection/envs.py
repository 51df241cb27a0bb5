"""Real environments behind one small interface.

Every source of training data (Memory Maze through its dm_env interface, MiniGrid, the colour grid
of colour_grid.py, dm_control suite tasks rendered to pixels, any Gymnasium env with image
observations and discrete or Box actions) is wrapped as a `RealEnv`:

    env = make_env("memory-maze-9x9")
    step = env.reset(seed=3)          # Step(frame (64, 64, 3) uint8, reward, terminated, truncated, pose)
    layout = env.static["maze_layout"]  # per-episode info, valid after reset
    step = env.step(1)

Frames are always 64x64x3 uint8 so every dataset has the same observation shape. `pose` holds the
agent's privileged state when the env knows it, as float32 arrays in grid units:

    agent_pos: (2,) (x, y); the agent stands in cell maze_layout[floor(y), floor(x)]
    agent_dir: (2,) unit vector of the facing direction in the same (x, y) frame
    target_pos: (2,) Memory Maze only: the centre of the target the env pays for next, same frame

Memory Maze's frame has y pointing up (maze_layout row 0 is the bottom of the maze); MiniGrid's has
y pointing down (row 0 is the top). `Navigation.left_increases_angle` tells a policy which way a
"left" action turns in that frame.

Heavy libraries (mujoco, dm_control, memory_maze, gymnasium, minigrid) are imported inside functions,
so importing this module is instant.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import io
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

FRAME_SIZE = 64
FRAME_SHAPE = (FRAME_SIZE, FRAME_SIZE, 3)

MEMORY_MAZE_SIZES = ("9x9", "11x11", "13x13", "15x15")
MINIGRID_ALIASES = {
    "minigrid-memory": "MiniGrid-MemoryS13-v0",
    "minigrid-memory-s7": "MiniGrid-MemoryS7-v0",  # the shipped MiniGrid model's env (LSSVWM-MiniGrid-v0)
    "minigrid-fourrooms": "MiniGrid-FourRooms-v0",
}
# Short name -> one-line description, in the order shown to users.
KNOWN_ENVS: dict[str, str] = {
    **{f"memory-maze-{s}": f"Memory Maze {s} (MuJoCo, rendered headless)" for s in MEMORY_MAZE_SIZES},
    **{alias: f"{env_id} (egocentric RGB view)" for alias, env_id in MINIGRID_ALIASES.items()},
    "colour-grid": "a room of coloured floor cells seen north-up, moves shift the view by a cell "
                   "(colour_grid.py; options: colour-grid:room=16,tiles=256,view=8)",
    "dmc:cartpole-swingup": "dm_control suite task from pixels, continuous actions (any dmc:DOMAIN-TASK; "
                            "options: dmc:cartpole-swingup:repeat=4,camera=0)",
}

# maze_layout cell values. Policies treat any non-zero cell as enterable; TERMINAL marks cells whose
# entry ends the episode (MiniGrid goals and lava), which a retracing walk must avoid.
WALL, FREE, TERMINAL = 0, 1, 2


class EnvError(Exception):
    """An environment could not be created or used; the message says what to do."""


class UnknownEnvError(EnvError):
    pass


class RenderingError(EnvError):
    pass


@dataclass(frozen=True)
class ActionSpace:
    """An env's actions, as datasets store them and the model takes them.

    "discrete": integers in [0, n), stored (T,) int64. "box" (continuous): vectors of n float32
    components, component i within [low[i], high[i]] (finite bounds), stored (T, n) float32.
    """

    n: int  # the number of discrete actions, or the dimension of a box action
    meanings: tuple[str, ...] = ()
    kind: Literal["discrete", "box"] = "discrete"
    low: tuple[float, ...] = ()  # box only
    high: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "box" and not (len(self.low) == len(self.high) == self.n
                                       and all(math.isfinite(v) for v in self.low + self.high)
                                       and all(lo <= hi for lo, hi in zip(self.low, self.high))):
            raise EnvError(f"a box action space needs {self.n} finite bounds low <= high, got low={self.low}, "
                           f"high={self.high}")

    @property
    def continuous(self) -> bool:
        return self.kind == "box"

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.continuous else np.dtype(np.int64)

    @property
    def step_shape(self) -> tuple[int, ...]:
        """The shape of one step's action in a dataset: () or (n,)."""
        return (self.n,) if self.continuous else ()

    def to_json(self) -> dict[str, Any]:
        if self.continuous:
            return {"type": "box", "shape": [self.n], "low": list(self.low), "high": list(self.high)}
        out: dict[str, Any] = {"type": "discrete", "n": self.n}
        if self.meanings:
            out["meanings"] = list(self.meanings)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ActionSpace:
        """The inverse of to_json (a manifest's `action_space`, already checked by the dataset reader)."""
        if obj["type"] == "box":
            return cls(int(obj["shape"][0]), kind="box", low=tuple(float(v) for v in obj["low"]),
                       high=tuple(float(v) for v in obj["high"]))
        return cls(int(obj["n"]), tuple(obj.get("meanings", ())))

    @classmethod
    def from_gymnasium(cls, space: Any, where: str) -> ActionSpace:
        """Discrete(n) (any start: datasets store 0..n-1) or a finite 1-D Box; EnvError naming `where` else."""
        from gymnasium import spaces

        if isinstance(space, spaces.Discrete):
            return cls(int(space.n))
        if isinstance(space, spaces.Box) and len(space.shape) == 1 and np.all(np.isfinite(space.low)) \
                and np.all(np.isfinite(space.high)):
            return cls(int(space.shape[0]), kind="box", low=tuple(float(v) for v in space.low),
                       high=tuple(float(v) for v in space.high))
        raise EnvError(f"{where} has action space {space}; lssvwm takes Discrete(n) or a Box of one dimension "
                       "with finite bounds")

    def gymnasium(self) -> Any:
        """This space as a Gymnasium space: Discrete(n) or Box(low, high, (n,), float32)."""
        from gymnasium import spaces

        if self.continuous:
            return spaces.Box(np.array(self.low, np.float32), np.array(self.high, np.float32), dtype=np.float32)
        return spaces.Discrete(self.n)

    def __str__(self) -> str:
        return f"Box(low={list(self.low)}, high={list(self.high)})" if self.continuous else f"Discrete({self.n})"

    def same_actions(self, other: ActionSpace) -> bool:
        """Whether the two take the same actions (names aside)."""
        return (self.kind, self.n, self.low, self.high) == (other.kind, other.n, other.low, other.high)

    def problem(self, actions: np.ndarray) -> str | None:
        """What keeps `actions` (any leading shape, then the step shape) from being actions of this
        space, or None."""
        if not self.continuous:
            if actions.dtype.kind not in "iu":
                return "must be integers"
            if actions.size and (actions.min() < 0 or actions.max() >= self.n):
                return f"holds values in [{actions.min()}, {actions.max()}], outside {self}"
            return None
        if actions.dtype.kind not in "fiu" or actions.shape[-1:] != (self.n,):
            return f"must be numbers of shape (..., {self.n}) for {self}, got {actions.dtype} {actions.shape}"
        outside = ~np.isfinite(actions) | (actions < np.float32(self.low)) | (actions > np.float32(self.high))
        if outside.any():
            return f"holds {int(outside.sum())} values outside {self} (first: {actions[np.nonzero(outside)][0]})"
        return None

    def sample(self, rng: np.random.Generator) -> int | np.ndarray:
        """A uniformly random action."""
        if self.continuous:
            return rng.uniform(self.low, self.high).astype(np.float32)
        return int(rng.integers(self.n))


@dataclass(frozen=True)
class Navigation:
    """How a scripted navigator drives an env whose pose and maze layout are known (policies.py).

    The thresholds are per env because the dynamics differ: MiniGrid turns exactly 90 degrees per
    action and moves one cell; Memory Maze's rolling ball turns about 15 degrees per step and carries
    momentum, so it needs a tolerance band and an arrival radius smaller than half a cell.
    """

    forward: int
    left: int
    right: int
    noop: int
    forward_left: int | None = None
    forward_right: int | None = None
    # True when a "left" action increases atan2(dir_y, dir_x) in the agent_pos frame.
    left_increases_angle: bool = True
    turn_in_place_deg: float = 45.0  # heading errors above this: turn without moving
    align_deg: float = 45.0  # heading errors below this: go straight forward
    arrive_radius: float = 0.5  # a waypoint cell is reached within this distance of its centre
    turn_step_deg: float = 90.0  # rough heading change of one turn action (for time budgets)
    steps_per_cell: float = 1.0  # rough steps to cross one cell (for time budgets)


@dataclass(frozen=True)
class EnvSpec:
    """What a dataset needs to know about an env before any episode is collected."""

    name: str  # as the user wrote it
    kind: Literal["memory-maze", "minigrid", "colour-grid", "dm-control", "gymnasium"]
    target: str  # Memory Maze size ("9x9") or Gymnasium id
    action_space: ActionSpace
    pose_keys: tuple[str, ...] = ()  # per-step float32 arrays in Step.pose
    static_keys: tuple[str, ...] = ()  # per-episode arrays in RealEnv.static
    navigation: Navigation | None = None  # None: scripted navigators cannot drive this env


@dataclass
class Step:
    """One observation of a real env.

    frame: (64, 64, 3) uint8. reward: reward of the action that led here (0.0 after reset).
    terminated / truncated: Gymnasium's meaning. pose: float32 arrays (see module docstring).
    """

    frame: np.ndarray
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    pose: dict[str, np.ndarray] = field(default_factory=dict)


class RealEnv(abc.ABC):
    """A real environment with 64x64 RGB frames; actions as its ActionSpace says (an int, or a
    float32 vector for a box)."""

    spec: EnvSpec

    @property
    def action_space(self) -> ActionSpace:
        return self.spec.action_space

    @property
    def static(self) -> dict[str, np.ndarray]:
        """Per-episode arrays such as maze_layout (H, W) uint8; valid after `reset`."""
        return {}

    @abc.abstractmethod
    def reset(self, seed: int) -> Step: ...

    @abc.abstractmethod
    def step(self, action: int | np.ndarray) -> Step: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> RealEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------- frames


def resize_frame(frame: np.ndarray, size: int = FRAME_SIZE) -> np.ndarray:
    """Any (H, W), (H, W, 1) or (H, W, 3) uint8 image -> (size, size, 3) uint8.

    Upscaling is nearest-neighbour by index so pixel-art views (MiniGrid's 56x56) stay crisp;
    downscaling averages areas (OpenCV's INTER_AREA) so thin lines do not vanish. Non-square frames
    are stretched.
    """
    if frame.dtype != np.uint8:
        raise EnvError(f"frames must be uint8 images, got dtype {frame.dtype}")
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3):
        raise EnvError(f"frames must be (H, W), (H, W, 1) or (H, W, 3) images, got shape {frame.shape}")
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    h, w = frame.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(frame)
    if h <= size and w <= size:
        rows = np.arange(size) * h // size
        cols = np.arange(size) * w // size
        return np.ascontiguousarray(frame[rows[:, None], cols[None, :]])
    import cv2

    return np.ascontiguousarray(cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA), dtype=np.uint8)


# ---------------------------------------------------------------------------------- Memory Maze

MEMORY_MAZE_ACTIONS = ("noop", "forward", "left", "right", "forward_left", "forward_right")
# Measured (see tests/test_data_envs.py): "left" turns counter-clockwise in the (x, y) frame of
# agent_pos, about 14 degrees per step with momentum; full speed is about 0.2 cells per step.
MEMORY_MAZE_NAVIGATION = Navigation(
    noop=0,
    forward=1,
    left=2,
    right=3,
    forward_left=4,
    forward_right=5,
    left_increases_angle=True,
    turn_in_place_deg=50.0,
    align_deg=12.0,
    arrive_radius=0.3,
    turn_step_deg=15.0,
    steps_per_cell=6.0,
)

_RENDER_ERROR_PATTERN = re.compile(r"EGL|OSMesa|OpenGL|GLFW|glad|libGL|mjr_makeContext|MUJOCO_GL|display", re.I)


def _rendering_error(exc: BaseException, what: str = "Memory Maze") -> RenderingError | None:
    """A RenderingError that tells the user what to install, when `exc` looks like a GL failure."""
    text = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    if not _RENDER_ERROR_PATTERN.search(text):
        return None
    backend = os.environ.get("MUJOCO_GL", "")
    return RenderingError(
        f"{what} could not create its headless MuJoCo renderer (MUJOCO_GL={backend!r}): {text}\n"
        "Install the system libraries for EGL: sudo apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri\n"
        "or use the slower CPU renderer: sudo apt-get install libosmesa6 and set MUJOCO_GL=osmesa."
    )


def _import_memory_maze_tasks() -> Any:
    # memory_maze picks EGL only when MUJOCO_GL is unset; do the same so a user's choice wins.
    os.environ.setdefault("MUJOCO_GL", "egl")
    # memory_maze imports the unmaintained `gym` only to register ids we do not use; its deprecation
    # notice would be printed by every worker process.
    with contextlib.redirect_stderr(io.StringIO()):
        from memory_maze import tasks
    # dm_control warns "Cannot set velocity on Entity with no free joint" on every reset.
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    from dm_control.locomotion.props.target_sphere import TargetSphere

    if TargetSphere._update_activation is not _target_touched:
        DM_CONTROL_TARGET_TOUCHED.append(TargetSphere._update_activation)  # kept for the equivalence test
        TargetSphere._update_activation = _target_touched
    return tasks


DM_CONTROL_TARGET_TOUCHED: list = []  # dm_control's own TargetSphere._update_activation, once replaced


def _target_touched(self, physics) -> None:
    """dm_control's TargetSphere._update_activation, the same test on the contact arrays at once: it
    runs after each of the 50 physics substeps per step, for every target, and dm_control's loop over
    contact structs took 60% of a Memory Maze step (139 us a call, 4.5 us this way)."""
    if self._activated:
        return
    contact = physics.data.contact
    if not len(contact):
        return
    geom1, geom2 = contact.geom1, contact.geom2
    touched = (geom1 == self._geom_id) | (geom2 == self._geom_id)
    if self._specific_collision_geom_ids:
        ids = list(self._specific_collision_geom_ids)
        touched &= np.isin(geom1, ids) | np.isin(geom2, ids)
    if touched.any():
        self._activated = True
        physics.bind(self._material).rgba[-1] = 0


class MemoryMazeEnv(RealEnv):
    """Memory Maze (Pasukonis et al., 2022) through its dm_env interface, with global observables.

    A fresh dm_env is built on every `reset(seed)`: the maze generator (labmaze) keeps its own random
    state that cannot be reseeded, so building the env from the seed is the only way to make episode
    k the same whichever worker collects it. Measured on a 2-core CPU machine, a fresh env and its
    reset take about 4 s, of which about 2.5 s (recompiling the physics, new GL contexts) every
    reset spends anyway: about 6% of a 500-step episode.
    """

    def __init__(self, size: str):
        if size not in MEMORY_MAZE_SIZES:
            raise UnknownEnvError(f"unknown Memory Maze size {size!r}; sizes: {', '.join(MEMORY_MAZE_SIZES)}")
        self.spec = memory_maze_spec(size)
        self._size = size
        self._dm_env: Any = None
        self._static: dict[str, np.ndarray] = {}

    @property
    def static(self) -> dict[str, np.ndarray]:
        return self._static

    def reset(self, seed: int) -> Step:
        self.close()
        try:
            tasks = _import_memory_maze_tasks()
            make = getattr(tasks, f"memory_maze_{self._size}")
            self._dm_env = make(global_observables=True, seed=seed)
            timestep = self._dm_env.reset()
        except Exception as exc:
            rendering = _rendering_error(exc)
            if rendering is not None:
                raise rendering from exc
            raise
        obs = timestep.observation
        self._static = {"maze_layout": np.ascontiguousarray(obs["maze_layout"], dtype=np.uint8)}
        return self._to_step(obs, reward=0.0, last=False, discount=1.0)

    def step(self, action: int) -> Step:
        if self._dm_env is None:
            raise EnvError("call reset(seed) before step()")
        if not 0 <= int(action) < self.spec.action_space.n:
            raise EnvError(f"action {action} out of range [0, {self.spec.action_space.n})")
        timestep = self._dm_env.step(int(action))
        return self._to_step(
            timestep.observation,
            reward=float(timestep.reward or 0.0),
            last=timestep.last(),
            discount=float(timestep.discount if timestep.discount is not None else 1.0),
        )

    @staticmethod
    def _to_step(obs: dict[str, Any], reward: float, last: bool, discount: float) -> Step:
        # dm_env ends an episode with discount 0 for a true termination and 1 for a time limit.
        return Step(
            frame=resize_frame(np.asarray(obs["image"], dtype=np.uint8)),
            reward=reward,
            terminated=last and discount == 0.0,
            truncated=last and discount != 0.0,
            pose={
                "agent_pos": np.asarray(obs["agent_pos"], dtype=np.float32),
                "agent_dir": np.asarray(obs["agent_dir"], dtype=np.float32),
                "target_pos": np.asarray(obs["target_pos"], dtype=np.float32),
            },
        )

    def close(self) -> None:
        if self._dm_env is not None:
            # Frees the physics and its GL context; without it every episode leaks one.
            self._dm_env.close()
            self._dm_env = None


def memory_maze_spec(size: str) -> EnvSpec:
    return EnvSpec(
        name=f"memory-maze-{size}",
        kind="memory-maze",
        target=size,
        action_space=ActionSpace(len(MEMORY_MAZE_ACTIONS), MEMORY_MAZE_ACTIONS),
        pose_keys=("agent_pos", "agent_dir", "target_pos"),
        static_keys=("maze_layout",),
        navigation=MEMORY_MAZE_NAVIGATION,
    )


# ------------------------------------------------------------------------------------ Gymnasium


def _import_gymnasium() -> Any:
    import gymnasium
    import minigrid

    # Gymnasium 1.x loads no plugins by itself; MiniGrid ids exist only after this.
    gymnasium.register_envs(minigrid)
    return gymnasium


def _make_gymnasium(env_id: str, **kwargs: Any) -> Any:
    gym = _import_gymnasium()
    try:
        return gym.make(env_id, **kwargs)
    except (gym.error.Error, ModuleNotFoundError) as exc:
        raise unknown_env_error(env_id, exc) from exc


def unknown_env_error(name: str, cause: BaseException | None = None) -> UnknownEnvError:
    known = "\n".join(f"  {short:22s} {desc}" for short, desc in KNOWN_ENVS.items())
    why = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
    return UnknownEnvError(
        f"unknown env {name!r}{why}.\nKnown names:\n{known}\n"
        "or any registered Gymnasium id with image observations and Discrete or 1-D Box actions "
        "(e.g. MiniGrid-DoorKey-8x8-v0; 'module:Id' imports the module that registers it)."
    )


def _is_minigrid(env: Any) -> bool:
    from minigrid.minigrid_env import MiniGridEnv as _MiniGridBase

    return isinstance(env.unwrapped, _MiniGridBase)


MINIGRID_NAVIGATION = Navigation(
    left=0,
    right=1,
    forward=2,
    noop=6,  # "done" does nothing in MiniGrid's own envs
    left_increases_angle=False,  # y points down: turning left from +x faces -y
)


class MiniGridEnv(RealEnv):
    """A MiniGrid env seen through the agent's egocentric RGB view (RGBImgPartialObsWrapper).

    `max_steps` replaces MiniGrid's own step limit (FourRooms stops at 100) so that episodes run
    to the collector's length; MiniGrid's reward, 1 - 0.9 * steps / max_steps, scales with it.
    """

    def __init__(self, base: Any, max_steps: int | None = None):
        """base: a MiniGrid env from gymnasium.make (see make_env)."""
        from minigrid.wrappers import ImgObsWrapper, RGBImgPartialObsWrapper

        env_id = base.spec.id if base.spec is not None else type(base.unwrapped).__name__
        if max_steps:
            # MiniGrid checks this attribute on every step; no TimeLimit wrapper is involved.
            base.unwrapped.max_steps = int(max_steps)
        self._env = ImgObsWrapper(RGBImgPartialObsWrapper(base))
        self._grid_env = base.unwrapped
        self.spec = EnvSpec(
            name=env_id,
            kind="minigrid",
            target=env_id,
            action_space=ActionSpace(
                int(self._env.action_space.n), tuple(a.name for a in self._grid_env.actions)
            ),
            pose_keys=("agent_pos", "agent_dir"),
            static_keys=("maze_layout",),
            navigation=MINIGRID_NAVIGATION,
        )
        self._static: dict[str, np.ndarray] = {}

    @property
    def static(self) -> dict[str, np.ndarray]:
        return self._static

    def reset(self, seed: int) -> Step:
        obs, _ = self._env.reset(seed=int(seed))
        self._static = {"maze_layout": self._layout()}
        return self._to_step(obs, 0.0, False, False)

    def step(self, action: int) -> Step:
        obs, reward, terminated, truncated, _ = self._env.step(int(action))
        return self._to_step(obs, float(reward), bool(terminated), bool(truncated))

    def _to_step(self, obs: np.ndarray, reward: float, terminated: bool, truncated: bool) -> Step:
        from minigrid.core.constants import DIR_TO_VEC

        x, y = self._grid_env.agent_pos
        return Step(
            frame=resize_frame(np.asarray(obs, dtype=np.uint8)),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            pose={
                # Cell centres, so that floor(agent_pos) is the cell as in Memory Maze.
                "agent_pos": np.array([x + 0.5, y + 0.5], dtype=np.float32),
                "agent_dir": np.asarray(DIR_TO_VEC[self._grid_env.agent_dir], dtype=np.float32),
            },
        )

    def _layout(self) -> np.ndarray:
        """(height, width) uint8, indexed [y, x]: WALL, FREE or TERMINAL (see module constants)."""
        env = self._grid_env
        layout = np.zeros((env.height, env.width), dtype=np.uint8)
        for x in range(env.width):
            for y in range(env.height):
                cell = env.grid.get(x, y)
                if cell is None or (cell.can_overlap() and cell.type not in ("goal", "lava")):
                    layout[y, x] = FREE
                elif cell.type in ("goal", "lava"):
                    layout[y, x] = TERMINAL
        # MiniGrid-Memory ends the episode on reaching either end of its hallway.
        for attr in ("success_pos", "failure_pos"):
            pos = getattr(env, attr, None)
            if pos is not None:
                layout[pos[1], pos[0]] = TERMINAL
        return layout

    def close(self) -> None:
        self._env.close()


_IMAGE_KEYS = ("image", "pixels", "rgb")


def _image_key(space: Any) -> str | None:
    """None if the observation itself is an image, else the Dict key holding it; raises if neither."""
    from gymnasium import spaces

    def is_image(s: Any) -> bool:
        return (
            isinstance(s, spaces.Box)
            and s.dtype == np.uint8
            and (len(s.shape) == 2 or (len(s.shape) == 3 and s.shape[2] in (1, 3)))
        )

    if is_image(space):
        return None
    if isinstance(space, spaces.Dict):
        for key in _IMAGE_KEYS:
            if key in space.spaces and is_image(space.spaces[key]):
                return key
    raise EnvError(
        f"observation space {space} is not an image: lssvwm needs uint8 (H, W[, 1 or 3]) observations "
        f"or a Dict with one of the keys {_IMAGE_KEYS}"
    )


class GymnasiumImageEnv(RealEnv):
    """Any Gymnasium env with image observations and a Discrete or 1-D Box action space; no pose, no layout."""

    def __init__(self, base: Any):
        """base: an env from gymnasium.make (see make_env)."""
        self._env = base
        env_id = base.spec.id if base.spec is not None else type(base.unwrapped).__name__
        try:
            action_space = ActionSpace.from_gymnasium(self._env.action_space, repr(env_id))
            self._image_key = _image_key(self._env.observation_space)
        except EnvError as exc:
            self._env.close()
            raise EnvError(f"{env_id!r}: {exc}") from None
        # Datasets store actions as 0..n-1; Discrete(n, start=s) envs get s added back.
        self._action_start = 0 if action_space.continuous else int(self._env.action_space.start)
        self.spec = EnvSpec(name=env_id, kind="gymnasium", target=env_id, action_space=action_space)

    def reset(self, seed: int) -> Step:
        obs, _ = self._env.reset(seed=int(seed))
        return Step(frame=self._frame(obs))

    def step(self, action: int | np.ndarray) -> Step:
        env_action = (np.asarray(action, np.float32) if self.spec.action_space.continuous
                      else int(action) + self._action_start)
        obs, reward, terminated, truncated, _ = self._env.step(env_action)
        return Step(self._frame(obs), float(reward), bool(terminated), bool(truncated))

    def _frame(self, obs: Any) -> np.ndarray:
        image = obs if self._image_key is None else obs[self._image_key]
        return resize_frame(np.asarray(image, dtype=np.uint8))

    def close(self) -> None:
        self._env.close()


# ----------------------------------------------------------------------------------- dm_control

DMC_PREFIX = "dmc:"


@dataclass(frozen=True)
class DmControlConfig:
    """`dmc:DOMAIN-TASK[:repeat=N,camera=C]`: a dm_control suite task seen through a camera."""

    domain: str
    task: str
    repeat: int = 1  # env steps per action (the action repeated, rewards summed): larger moves per frame
    camera: int = 0


def parse_dmc_name(name: str) -> DmControlConfig:
    """`dmc:cartpole-swingup:repeat=4,camera=0` -> DmControlConfig; UnknownEnvError naming what is wrong."""
    body = name.removeprefix(DMC_PREFIX)
    task_name, _, options = body.partition(":")
    domain, sep, task = task_name.partition("-")
    if not sep or not domain or not task:
        raise UnknownEnvError(f"env {name!r}: expected dmc:DOMAIN-TASK, e.g. dmc:cartpole-swingup")
    values: dict[str, int] = {}
    for item in filter(None, options.split(",")):
        key, sep, text = item.partition("=")
        if not sep or key not in ("repeat", "camera") or not text.isdigit():
            raise UnknownEnvError(f"env {name!r}: {item!r} is not repeat=N or camera=N")
        values[key] = int(text)
    if values.get("repeat", 1) < 1:
        raise UnknownEnvError(f"env {name!r}: repeat must be >= 1")
    return DmControlConfig(domain, task, **values)


def _load_dmc(config: DmControlConfig, seed: int | None) -> Any:
    os.environ.setdefault("MUJOCO_GL", "egl")  # as memory_maze does: only when the user chose none
    from dm_control import suite

    if (config.domain, config.task) not in suite.ALL_TASKS:
        raise UnknownEnvError(f"dm_control has no task {config.domain}-{config.task}; tasks: "
                              + ", ".join(f"{d}-{t}" for d, t in suite.ALL_TASKS))
    return suite.load(config.domain, config.task, task_kwargs={"random": seed})


def dmc_spec(name: str) -> EnvSpec:
    config = parse_dmc_name(name)
    env = _load_dmc(config, seed=0)
    spec = env.action_spec()
    action_space = ActionSpace(int(spec.shape[0]), kind="box", low=tuple(float(v) for v in spec.minimum),
                               high=tuple(float(v) for v in spec.maximum))
    env.close()
    return EnvSpec(name=name, kind="dm-control", target=f"{config.domain}-{config.task}", action_space=action_space)


class DmControlEnv(RealEnv):
    """A dm_control suite task from pixels: the camera's view rendered at 64x64, box actions.

    The suite's episodes end by their time limit (1,000 physics control steps): a truncation. As with
    Memory Maze, a fresh task is built on every reset from the episode's seed, so that episode k is
    the same whichever worker collects it.
    """

    def __init__(self, name: str):
        self.config = parse_dmc_name(name)
        self.spec = dmc_spec(name)
        self._dm_env: Any = None

    def reset(self, seed: int) -> Step:
        self.close()
        try:
            self._dm_env = _load_dmc(self.config, seed)
            self._dm_env.reset()
            return Step(frame=self._render())
        except EnvError:
            raise
        except Exception as exc:
            rendering = _rendering_error(exc, "dm_control")
            if rendering is not None:
                raise rendering from exc
            raise

    def step(self, action: int | np.ndarray) -> Step:
        if self._dm_env is None:
            raise EnvError("call reset(seed) before step()")
        reward = 0.0
        for _ in range(self.config.repeat):
            timestep = self._dm_env.step(np.asarray(action, np.float64))
            reward += float(timestep.reward or 0.0)
            if timestep.last():
                break
        # dm_env: discount 0 ends the episode for real, 1 is the time limit.
        last, discount = timestep.last(), float(timestep.discount if timestep.discount is not None else 1.0)
        return Step(self._render(), reward, terminated=last and discount == 0.0, truncated=last and discount != 0.0)

    def _render(self) -> np.ndarray:
        frame = self._dm_env.physics.render(height=FRAME_SIZE, width=FRAME_SIZE, camera_id=self.config.camera)
        return resize_frame(np.asarray(frame, dtype=np.uint8))

    def close(self) -> None:
        if self._dm_env is not None:
            self._dm_env.close()
            self._dm_env = None


# ----------------------------------------------------------------------------------- factories


def resolve_env(name: str) -> tuple[str, str]:
    """(kind, target) for a user-facing env name, without creating anything."""
    if name.startswith("memory-maze-"):
        size = name.removeprefix("memory-maze-")
        if size not in MEMORY_MAZE_SIZES:
            raise unknown_env_error(name)
        return "memory-maze", size
    if name in MINIGRID_ALIASES:
        return "minigrid", MINIGRID_ALIASES[name]
    from data_collection.colour_grid import is_colour_grid
    if is_colour_grid(name):
        return "colour-grid", name
    if name.startswith(DMC_PREFIX):
        return "dm-control", name
    return "gymnasium", name


def make_env(name: str, max_steps: int | None = None) -> RealEnv:
    """The env for a short name (see KNOWN_ENVS) or a Gymnasium id.

    max_steps: the collector's episode length; MiniGrid envs get it as their own step limit.
    Raises UnknownEnvError (listing the known names), RenderingError, or EnvError.
    """
    kind, target = resolve_env(name)
    if kind == "memory-maze":
        return MemoryMazeEnv(target)
    if kind == "colour-grid":
        from data_collection.colour_grid import ColourGridEnv
        return ColourGridEnv(target)
    if kind == "dm-control":
        return DmControlEnv(target)
    base = _make_gymnasium(target)
    # MiniGrid ids (aliases or not) get the MiniGrid adapter with pose and layout.
    env: RealEnv = MiniGridEnv(base, max_steps) if _is_minigrid(base) else GymnasiumImageEnv(base)
    # The spec carries the name as the user wrote it (the short alias), which manifests record.
    env.spec = dataclasses.replace(env.spec, name=name)
    return env


def env_spec(name: str) -> EnvSpec:
    """The spec of an env, cheaply: Memory Maze is described without starting MuJoCo."""
    kind, target = resolve_env(name)
    if kind == "memory-maze":
        return memory_maze_spec(target)
    if kind == "colour-grid":
        from data_collection.colour_grid import spec_for
        return spec_for(target)
    if kind == "dm-control":
        return dmc_spec(target)
    with make_env(name) as env:
        return env.spec


def heading_deg(direction: np.ndarray) -> float:
    """atan2 angle of a 2-D direction, in degrees."""
    return math.degrees(math.atan2(float(direction[1]), float(direction[0])))

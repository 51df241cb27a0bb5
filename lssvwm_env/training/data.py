"""What training reads: frames for the autoencoder, a latent cache for the dynamics, and the lanes
that walk through episodes window after window for truncated back-propagation through time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from data_collection.files import atomic_path
from lssvwm_env.models.conditioning import NO_ACTION


def load_split(data_dir: str | Path, split: str, limit: int | None = None) -> list[dict[str, np.ndarray]]:
    """The episodes of a split (the first `limit`; None: all), validated by the dataset reader (errors
    name the file and field)."""
    from data_collection.dataset import Dataset

    dataset = Dataset.open(data_dir)
    entries = dataset.episodes(split)[:limit]
    if not entries:
        raise ValueError(f"{data_dir}: the dataset has no '{split}' episodes; collect more episodes")
    return [dataset.load_episode(e.index) for e in tqdm(entries, desc=f"load {split}", leave=False)]


def no_action(actions: np.ndarray) -> np.ndarray:
    """(1, ...) the action "before" an episode's first frame, as `actions` (T,) or (T, n) holds actions:
    NO_ACTION for discrete ones; a zero vector for box (continuous) ones, which have no spare value."""
    if actions.ndim == 2:
        return np.zeros((1, actions.shape[1]), np.float32)
    return np.array([NO_ACTION], np.int64)


def input_actions(actions: np.ndarray) -> np.ndarray:
    """Dataset actions, (T,) int64 or (T, n) float32 for a box (actions[t] taken after frame t) -> the
    action that led to each frame, as the model is conditioned: `no_action` for the first frame."""
    actions = np.asarray(actions)
    return np.concatenate([no_action(actions), actions[:-1]]).astype(no_action(actions).dtype)


@dataclass
class LatentCache:
    """Every frame of a split as standardised latents, episodes concatenated.

    latents: (N, h, w, C) float32; actions_in: (N,) int64 or (N, n) float32 (box), the action that led
    to each frame; rewards_in,
    terminated_in: (N,) reward/termination of the transition into each frame (0 at episode starts);
    offsets: (E + 1,) where episode e is [offsets[e], offsets[e+1]). An episode with a final_frame
    has T + 1 frames here: the last one is the outcome of its last action (its reward, its end).
    """

    latents: torch.Tensor
    actions_in: torch.Tensor
    rewards_in: torch.Tensor
    terminated_in: torch.Tensor
    offsets: torch.Tensor

    @property
    def episode_lengths(self) -> list[int]:
        return (self.offsets[1:] - self.offsets[:-1]).tolist()

    def window(self, episode: int, start: int, length: int) -> dict[str, torch.Tensor]:
        """Frames [start, start + length) of an episode. Past the episode's end the window is padded
        (zero latents, NO_ACTION, valid False): the model is causal, so padding after the last frame
        changes nothing before it, and short episodes and episode ends are trained on too."""
        lo = int(self.offsets[episode]) + start
        hi = min(lo + length, int(self.offsets[episode + 1]))
        pad = length - (hi - lo)
        valid = torch.arange(length) < hi - lo

        def padded(x: torch.Tensor, fill: float) -> torch.Tensor:
            return torch.cat([x[lo:hi], x.new_full((pad, *x.shape[1:]), fill)]) if pad else x[lo:hi]

        return {
            "latents": padded(self.latents, 0.0),
            "actions": padded(self.actions_in, 0.0 if self.actions_in.is_floating_point() else NO_ACTION),
            "rewards": padded(self.rewards_in, 0.0),
            "terminated": padded(self.terminated_in, False),
            "has_transition": (torch.arange(start, start + length) > 0) & valid,
            "valid": valid,
        }

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            save_file({k: getattr(self, k).contiguous() for k in self.__dataclass_fields__}, str(tmp))

    @staticmethod
    def load(path: Path) -> "LatentCache":
        return LatentCache(**load_file(str(path)))


def model_aligned(ep: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A dataset episode as the model sees it, per frame: frames (N, H, W, 3), actions_in (N,) or (N, n)
    (the action that led to each frame), rewards_in and terminated_in (N,) (of the transition into each
    frame; 0 at the first). With the observation after the last action, N = T + 1 and the episode's
    last transition (its end, MiniGrid's only reward) is kept; without it N = T and it is dropped."""
    frames, actions = ep["frames"], ep["actions"]
    if "final_frame" in ep:
        frames, actions = np.concatenate([frames, ep["final_frame"][None]]), np.concatenate([actions, no_action(actions)])
    transitions = len(frames) - 1
    return {"frames": frames, "actions_in": input_actions(actions),
            "rewards_in": np.concatenate([[0.0], ep["rewards"][:transitions]]).astype(np.float32),
            "terminated_in": np.concatenate([[False], ep["terminated"][:transitions]]).astype(np.bool_)}


@torch.no_grad()
def build_latent_cache(model, episodes: list[dict[str, np.ndarray]], desc: str) -> LatentCache:
    parts, acts, rews, terms, offsets = [], [], [], [], [0]
    for ep in tqdm(episodes, desc=desc, leave=False):
        aligned = model_aligned(ep)
        parts.append(model.encode(torch.from_numpy(aligned["frames"]).unsqueeze(0))[0].float().cpu())
        acts.append(torch.from_numpy(aligned["actions_in"]))
        rews.append(torch.from_numpy(aligned["rewards_in"]))
        terms.append(torch.from_numpy(aligned["terminated_in"]))
        offsets.append(offsets[-1] + len(aligned["frames"]))
    return LatentCache(torch.cat(parts), torch.cat(acts), torch.cat(rews), torch.cat(terms),
                       torch.tensor(offsets, dtype=torch.long))


def step_generator(seed: int, step: int, rank: int, salt: int = 0) -> torch.Generator:
    """A generator determined by (seed, step, rank): data order and noise after a resume are exactly
    those of an uninterrupted run, with no RNG state to save."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7_919 + rank * 104_729 + salt) % (2**63))


class WindowLanes:
    """`n` lanes, each walking one episode window after window, to its last frame. A lane moves to a
    random new episode when its episode is used up; its state is reset then (episode start) and, with
    probability `reset_prob`, at any other window boundary (state resetting, docs/design.md). An
    episode's last window ends at its last frame, from a reset state, so that no window of an episode
    as long as a window is padded. Episodes shorter than a window are used whole, padded
    (LatentCache.window): in envs whose episodes end early (MiniGrid) they are the ones that reach the
    goal."""

    def __init__(self, episode_lengths: list[int], n: int, window: int, reset_prob: float) -> None:
        if not episode_lengths:
            raise ValueError("no episodes to train on")
        self.lengths = episode_lengths
        self.window = window
        self.reset_prob = reset_prob
        self.episode = [-1] * n
        self.position = [0] * n

    def next(self, generator: torch.Generator) -> tuple[list[tuple[int, int]], torch.Tensor]:
        """Returns ([(episode, start)] per lane, reset mask (n,) bool)."""
        windows, reset = [], []
        for lane in range(len(self.episode)):
            ep, pos = self.episode[lane], self.position[lane]
            if ep < 0 or pos >= self.lengths[ep]:
                ep = int(torch.randint(len(self.lengths), (1,), generator=generator))
                # Start anywhere in the first window so chunk borders fall at every offset (episodes
                # no longer than a window start at their first frame).
                pos = int(torch.randint(min(self.window, max(self.lengths[ep] - self.window + 1, 1)), (1,),
                                        generator=generator))
                reset.append(True)
            elif pos + self.window > self.lengths[ep]:
                # A tail shorter than a window: the episode's last window ends at its last frame, from a
                # fresh state (it overlaps frames the state has seen), rather than padded past it: at 400
                # frames a fifth of the compute went to padding, and a window whose real frames all fell
                # in the clean prefix had no loss at all (docs/paper-lengths).
                pos = self.lengths[ep] - self.window
                reset.append(True)
            else:
                reset.append(bool(torch.rand(1, generator=generator) < self.reset_prob))
            windows.append((ep, pos))
            self.episode[lane], self.position[lane] = ep, pos + self.window
        return windows, torch.tensor(reset)

    def state_dict(self) -> dict:
        return {"episode": list(self.episode), "position": list(self.position), "window": self.window}

    def load_state_dict(self, state: dict) -> None:
        if state.get("window") != self.window or len(state["episode"]) != len(self.episode):
            raise ValueError(f"saved lanes (window {state.get('window')}, {len(state['episode'])} lanes) do not "
                             f"match this stage (window {self.window}, {len(self.episode)} lanes)")
        self.episode, self.position = list(state["episode"]), list(state["position"])


def sample_frames(episodes: list[dict[str, np.ndarray]], n: int, generator: torch.Generator) -> torch.Tensor:
    """n random frames (n, H, W, 3) uint8 from the episodes."""
    lengths = torch.tensor([len(ep["frames"]) for ep in episodes])
    ep_index = torch.multinomial(lengths.float(), n, replacement=True, generator=generator)
    out = []
    for e in ep_index.tolist():
        t = int(torch.randint(len(episodes[e]["frames"]), (1,), generator=generator))
        out.append(torch.from_numpy(episodes[e]["frames"][t]))
    return torch.stack(out)


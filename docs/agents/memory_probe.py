"""Does the world model's state hold what MiniGrid-Memory asks an agent to remember? A linear probe
reads the start room's object (key or ball) from the backbone's features of real frames on which
that object is no longer in view, but was earlier in the episode.

    python docs/agents/memory_probe.py --checkpoint lssvwm_env/checkpoints/minigrid --data data/mgS7-bump \
        --out docs/agents/minigrid-s7/memory_probe.json

Each episode of the dataset is replayed in the real env from its seed (its frames must come out
the same) to know the start object and, at every frame, whether the agent sees it. Inputs to the
same probe (logistic regression, 5-fold cross-validation, one frame per episode: the last on which
the object is remembered, not seen):
  features            the backbone's features of the frame after the episode so far (what
                      `obs_type="features"` gives a policy)
  ssm_state           the SSM states of every layer and block after the episode so far
  ..._no_past         the same after that frame alone, from a fresh state: what the frame gives
  latent              the frame's latent (the autoencoder alone)
  majority            always the more frequent object
An input above its `_no_past` twin is memory carried in the model's state. The same probes on the
last frame where the object is in view are the control: the frame itself shows it there.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from data_collection.dataset import Dataset
from data_collection.envs import make_env
from data_collection.files import write_json_atomic
from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.models.state import WorldModelState
from lssvwm_env.models.world_model import WorldModel
from lssvwm_env.training.data import input_actions

FOLDS = 5
INPUTS = ("features", "features_no_past", "ssm_state", "ssm_state_no_past", "latent")


@dataclass
class Episode:
    label: int  # 1: the start room holds a key, 0: a ball
    seen: np.ndarray  # (T,) bool: the start object is in the agent's view at frame t
    inputs: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # frame -> input name -> vector


def replay(env, seed: int, frames: np.ndarray, actions: np.ndarray, index: int) -> tuple[int, np.ndarray]:
    """(label, seen) of one dataset episode, replayed in the real env."""
    grid_env = env._grid_env  # the MiniGrid env under the adapter: its grid and what the agent sees
    step = env.reset(seed)
    height = grid_env.grid.height
    start_object = grid_env.grid.get(1, height // 2 - 1)
    seen = []
    for t in range(len(frames)):
        if not np.array_equal(step.frame, frames[t]):
            raise SystemExit(f"episode {index}: frame {t} differs when replayed from seed {seed}: "
                             "the dataset does not match this env")
        seen.append(bool(grid_env.agent_sees(1, height // 2 - 1)))
        if t + 1 < len(frames):
            step = env.step(int(actions[t]))
    return int(start_object.type == "key"), np.array(seen)


def flat_ssm(state: WorldModelState) -> np.ndarray:
    return torch.cat([s.flatten(1) for s in state.ssm], dim=1)[0].float().numpy()


@torch.no_grad()
def model_inputs(model: WorldModel, frames: np.ndarray, actions: np.ndarray, t: int) -> dict[str, np.ndarray]:
    """The probe's inputs at frame t: after frames 0..t, and after frame t alone from a fresh state."""
    latents = model.encode(torch.from_numpy(frames[None, : t + 1]))
    actions_in = torch.from_numpy(input_actions(actions)[None, : t + 1])
    _, features, state = model.step_latents(model.initial_state(1), latents, actions_in)
    _, alone, fresh = model.step_latents(model.initial_state(1), latents[:, t:], actions_in[:, t:])
    return {"features": features[0, t].float().numpy(), "features_no_past": alone[0, 0].float().numpy(),
            "ssm_state": flat_ssm(state), "ssm_state_no_past": flat_ssm(fresh),
            "latent": latents[0, t].flatten().float().numpy()}


def probe_accuracy(x: np.ndarray, y: np.ndarray, seed: int = 0, weight_decay: float = 1e-2) -> float:
    """Held-out accuracy of a logistic regression, 5-fold cross-validation (one sample per episode)."""
    order = np.random.default_rng(seed).permutation(len(y))
    correct = 0
    for fold in range(FOLDS):
        test = order[fold::FOLDS]
        train = np.setdiff1d(order, test)
        mean, std = x[train].mean(0), x[train].std(0) + 1e-6
        xt = torch.tensor((x[train] - mean) / std, dtype=torch.float64)
        yt = torch.tensor(y[train], dtype=torch.float64)
        w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros((), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

        def loss() -> torch.Tensor:
            optimizer.zero_grad()
            value = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt) + weight_decay * w.square().sum()
            value.backward()
            return value

        optimizer.step(loss)
        logits = torch.tensor((x[test] - mean) / std, dtype=torch.float64) @ w.detach() + b.detach()
        correct += int(((logits > 0).numpy() == y[test].astype(bool)).sum())
    return correct / len(y)


def summary(episodes: list[Episode], pick) -> dict:
    """Probe accuracies on one frame per episode, chosen by pick(episode) (an index or None)."""
    chosen = [(e, t) for e in episodes if (t := pick(e)) is not None]
    y = np.array([e.label for e, _ in chosen])
    n = len(y)
    since = [t - int(np.flatnonzero(e.seen[: t + 1])[-1]) for e, t in chosen]  # 0 where it is in view
    out = {"episodes": n, "key_share": float(y.mean()) if n else None,
           "frames_since_seen": {"median": float(np.median(since)), "max": int(max(since))} if n else None}
    if n < 2 * FOLDS or y.min() == y.max():
        return {**out, "note": "too few episodes, or one class only"}
    majority = max(y.mean(), 1 - y.mean())
    out["accuracy"] = {"majority": float(majority)}
    for name in INPUTS:
        x = np.stack([e.inputs[t][name] for e, t in chosen])
        out["accuracy"][name] = probe_accuracy(x, y)
    out["standard_error"] = float(np.sqrt(0.25 / n))  # of an accuracy near chance, n independent episodes
    return out


def last_remembered(e: Episode) -> int | None:
    """The last frame on which the object is out of view but was seen before."""
    seen_before = np.maximum.accumulate(e.seen)
    remembered = np.flatnonzero(seen_before & ~e.seen)
    return int(remembered[-1]) if len(remembered) else None


def last_seen(e: Episode) -> int | None:
    seen = np.flatnonzero(e.seen)
    return int(seen[-1]) if len(seen) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = Dataset.open(args.data)
    model = load_world_model(args.checkpoint)
    env = make_env(dataset.manifest.env, max_steps=dataset.manifest.max_steps)
    if not hasattr(env, "_grid_env") or type(env._grid_env).__name__ != "MemoryEnv":
        raise SystemExit(f"{args.data}: env {dataset.manifest.env!r} is not a MiniGrid Memory env")
    episodes = []
    for entry in dataset.episodes():
        arrays = dataset.load_episode(entry.index)
        episode = Episode(*replay(env, entry.seed, arrays["frames"], arrays["actions"], entry.index))
        for t in {last_remembered(episode), last_seen(episode)} - {None}:
            episode.inputs[t] = model_inputs(model, arrays["frames"], arrays["actions"], t)
        episodes.append(episode)
    env.close()
    result = {"checkpoint": args.checkpoint, "data": str(args.data), "episodes": len(episodes),
              "episodes_that_see_the_object": sum(bool(e.seen.any()) for e in episodes),
              "remembered": summary(episodes, last_remembered), "in_view": summary(episodes, last_seen)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""Issue 34, step 4: what the SSM state holds on the colour grid, by linear read-outs.

Two questions, each asked of the state after a frame (every SSM block of every layer, flattened), of
the same model's state from that frame alone (no past: what one frame gives), and of the frame's latent:

- **Can it locate itself?** The agent's cell (x and y in the room, regressed): a map needs a place to
  write to. A north-up crop shows where the walls are only near them, so the frame alone places the
  agent in part.
- **Did it store what it saw?** The colour of each painted cell just outside the view (the ring one
  cell beyond each edge: what enters the view at the next move), where the trajectory showed that cell
  before: recall is reading such a cell back when it comes into view. Out of view, the frame cannot
  hold it (walls and bare floor are left out: the view's edge lets a read-out guess them).

Ridge read-outs (least squares on one-hot classes, closed form in the dual, features standardised over
all samples), 5-fold cross-validation by episode, on the held-out episodes' frames from `--start` on, every `--every` frames. The majority class
of each ring cell's training folds is the chance row.

    python docs/memory-ablation/grid_probe.py --checkpoint runs/cg-ablation/runs/ours/seed0 \
        --data data/cg-k256-oab --out docs/memory-ablation/colour-grid/probe-ours.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from data_collection.colour_grid import FLOOR, WALL_CELL, parse_env_name
from data_collection.dataset import Dataset
from data_collection.files import write_json_atomic
from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.training.data import input_actions

FOLDS = 5


def ring_offsets(view: int) -> list[tuple[int, int]]:
    """(dx, dy) of the cells one beyond each edge of a view centred on the agent (view // 2 before it)."""
    low, high = -(view // 2) - 1, view - view // 2
    return sorted({(dx, dy) for dx in range(low, high + 1) for dy in range(low, high + 1)
                   if dx in (low, high) or dy in (low, high)} - {(low, low), (low, high), (high, low), (high, high)})


@torch.no_grad()
def collect(model, episodes: list[dict], config, start: int, every: int) -> dict[str, np.ndarray]:
    """Per sampled frame: the state (flattened SSM), the state from that frame alone, the latent, the
    agent's cell, the ring cells' classes and whether the view had shown each before."""
    frames = torch.from_numpy(np.stack([ep["frames"] for ep in episodes]))
    actions = torch.from_numpy(np.stack([input_actions(ep["actions"]) for ep in episodes]))
    latents = model.encode(frames)
    state = model.initial_state(len(episodes))
    rings = [ring_cells(ep, config) for ep in episodes]
    out: dict[str, list] = {k: [] for k in ("state", "no_past", "latent", "cell", "ring", "ring_seen", "episode")}
    for t in range(len(episodes[0]["frames"])):
        _, _, state = model.step_latents(state, latents[:, t:t + 1], actions[:, t:t + 1])
        if t < start or (t - start) % every:
            continue
        _, _, alone = model.step_latents(model.initial_state(len(episodes)), latents[:, t:t + 1], actions[:, t:t + 1])
        out["state"].append(_flat(state))
        out["no_past"].append(_flat(alone))
        out["latent"].append(latents[:, t].flatten(1).float().numpy())
        out["cell"].append(np.floor(np.stack([ep["agent_pos"][t] for ep in episodes])).astype(np.int64))
        out["ring"].append(np.stack([classes[t] for classes, _ in rings]))
        out["ring_seen"].append(np.stack([seen[t] for _, seen in rings]))
        out["episode"].append(np.arange(len(episodes)))
    return {k: np.concatenate(v) for k, v in out.items()}


def ring_cells(ep: dict, config) -> tuple[np.ndarray, np.ndarray]:
    """(T, ring) classes of the ring cells (ring_offsets) and whether an earlier frame's view showed each."""
    from data_collection.colour_grid import WALL, WALL_CELL, view_cells

    pad = config.view + 2
    classes = np.pad(np.where(ep["maze_layout"] == WALL, WALL_CELL, ep["floor_colours"]), pad,
                     constant_values=WALL_CELL)
    shown = np.zeros(classes.shape, dtype=bool)
    cell = np.floor(ep["agent_pos"]).astype(np.int64)
    offsets = np.array(ring_offsets(config.view))
    xs, ys = view_cells(ep["agent_pos"], config)
    ring_classes, ring_seen = [], []
    for t in range(len(cell)):
        rx, ry = cell[t, 0] + offsets[:, 0] + pad, cell[t, 1] + offsets[:, 1] + pad
        ring_classes.append(classes[ry, rx])
        ring_seen.append(shown[ry, rx].copy())
        shown[ys[t] + pad, xs[t] + pad] = True
    return np.array(ring_classes), np.array(ring_seen)


def _flat(state) -> np.ndarray:
    parts = [s.flatten(1) for s in state.ssm if s.numel()]
    if not parts:
        raise SystemExit("the model has no SSM state (variant without SSM): nothing to probe")
    return torch.cat(parts, dim=1).float().numpy()


def kernel(x: np.ndarray) -> torch.Tensor:
    """The linear kernel of the features standardised over all samples (n, n): every read-out below
    solves in it, so a state of tens of thousands of numbers costs one product."""
    a = torch.tensor((x - x.mean(0)) / (x.std(0) + 1e-6), dtype=torch.float64)
    return a @ a.T


def ridge_predict(k: torch.Tensor, train: np.ndarray, test: np.ndarray, y_train: np.ndarray,
                  alpha: float = 0.1) -> np.ndarray:
    """Ridge regression in the dual from kernel k (rows `train` fit, rows `test` predicted); the penalty
    is `alpha` times the training kernel's mean diagonal."""
    train, test = torch.from_numpy(np.flatnonzero(train)), torch.from_numpy(np.flatnonzero(test))
    k_train = k[train][:, train]
    y = torch.tensor(y_train, dtype=torch.float64)
    y_mean = y.mean(0)
    coef = torch.linalg.solve(k_train + alpha * k_train.diagonal().mean() * torch.eye(len(train), dtype=torch.float64),
                              y - y_mean)
    return (k[test][:, train] @ coef + y_mean).numpy()


def folds(episodes: np.ndarray) -> list[np.ndarray]:
    ids = np.unique(episodes)
    return [np.isin(episodes, ids[f::FOLDS]) for f in range(FOLDS)]


def locate(k: torch.Tensor, cell: np.ndarray, episodes: np.ndarray) -> dict:
    """Cross-validated R^2 of the agent's x and y, and the share placed in the right cell."""
    predicted = np.empty(cell.shape, dtype=np.float64)
    for test in folds(episodes):
        predicted[test] = ridge_predict(k, ~test, test, cell[~test].astype(np.float64))
    residual = ((predicted - cell) ** 2).sum(0)
    total = ((cell - cell.mean(0)) ** 2).sum(0)
    return {"r2_x": float(1 - residual[0] / total[0]), "r2_y": float(1 - residual[1] / total[1]),
            "cell_accuracy": float((np.rint(predicted) == cell).all(1).mean())}


def recall(k: torch.Tensor, ring: np.ndarray, seen: np.ndarray, episodes: np.ndarray, classes: int = 8) -> dict:
    """Cross-validated accuracy of each ring cell's class where the trajectory had shown it, pooled;
    with the majority class of the training folds (per ring cell) as chance."""
    correct = guessed = total = 0
    for test in folds(episodes):
        for j in range(ring.shape[1]):
            train_rows, test_rows = ~test & seen[:, j], test & seen[:, j]
            if not train_rows.any() or not test_rows.any():
                continue
            onehot = np.eye(classes)[ring[train_rows, j]]
            predicted = ridge_predict(k, train_rows, test_rows, onehot).argmax(1)
            correct += int((predicted == ring[test_rows, j]).sum())
            guessed += int((np.bincount(ring[train_rows, j], minlength=classes).argmax() == ring[test_rows, j]).sum())
            total += int(test_rows.sum())
    return {"accuracy": correct / total, "majority": guessed / total, "samples": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--start", type=int, default=60)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_world_model(args.checkpoint)
    dataset = Dataset.open(args.data)
    config = parse_env_name(dataset.manifest.env)
    entries = dataset.episodes("eval")[:args.episodes]
    episodes = [dataset.load_episode(e.index) for e in entries]
    length = min(len(ep["frames"]) for ep in episodes)
    episodes = [{k: (v[:length] if k in ("frames", "actions", "agent_pos") else v) for k, v in ep.items()} for ep in episodes]
    data = collect(model, episodes, config, args.start, args.every)
    result = {"checkpoint": str(args.checkpoint), "data": str(args.data), "episodes": len(episodes),
              "samples": len(data["cell"]), "start": args.start, "every": args.every,
              "state_dims": int(data["state"].shape[1]), "ring_seen_share": float(data["ring_seen"].mean())}
    # Painted cells only: walls, and bare floor under a low load, can be guessed from the view.
    painted = data["ring_seen"] & (data["ring"] != FLOOR) & (data["ring"] != WALL_CELL)
    result["ring_painted_seen_share"] = float(painted.mean())
    for name in ("state", "no_past", "latent"):
        k = kernel(data[name])
        result[name] = {"locate": locate(k, data["cell"], data["episode"]),
                        "recall": recall(k, data["ring"], painted, data["episode"])}
        print(name, json.dumps(result[name]))
    write_json_atomic(args.out, result)


if __name__ == "__main__":
    main()

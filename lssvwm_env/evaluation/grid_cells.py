"""Cell-by-cell scoring on the colour grid (data_collection/colour_grid.py): does the model draw what
it was shown?

Every cell of a frame shows one map cell, known exactly from the agent's recorded cell, and its class
(a tile colour, bare floor or wall) is read from a frame by the nearest palette colour. Each cell of
each predicted frame is labelled by when the trajectory last had that map cell in view:

    previous_frame       in view one frame before: the copy (or shift) the dynamics must learn first
    within_window        last seen 2..w frames before (w: the attention window): attention can see it
    window_to_3x         w+1..3w frames: beyond attention, only the SSM state can hold it
    3x_to_10x, beyond_10x
    never_seen           no frame before showed it: the model can only guess (chance: 1 / classes)

Two ways to predict (`MODES`): `next_frame`, every frame from the real frames before it
(WorldModel.predict_each_next); `generation`, the real context, then frames from the actions alone
(WorldModel.imagine, as the env does), where a revisit beyond the window can only be drawn from memory.
In generation the model is shown the context only, so gaps count from the last context frame that
showed a cell; a cell first seen after the context is never_seen however often the model drew it.
What the model keeps of its own drawings is `self_copy`: each generated frame's cells against the
class the model's frame before gave the same map cell.
Scores per bin: cell accuracy and PSNR over the cells' pixels, beside the yardstick of the last real
frame repeated (its cell at the same place in the view) and, for the frame as a whole, next-frame PSNR
beside the previous frame repeated, directly and through the autoencoder. The agent's own cell (the
view's centre, under the sprite) is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from data_collection.colour_grid import (FLOOR, WALL_CELL, ColourGridConfig, PALETTE, classify_cells, parse_env_name,
                                         true_cell_classes, view_cells)

MODES = ("next_frame", "generation")


@dataclass
class GridCellsConfig:
    episodes: int = 8  # held-out episodes scored
    context: int = 50  # generation: real frames before the generated ones
    generate: int = 100  # generation: frames from the actions alone
    split: str = "eval"
    sampling_steps: int | None = None  # the model's own when None
    seed: int = 0


def gap_bins(window: int) -> dict[str, tuple[float, float]]:
    """Bins of the frames since a cell was last in view, relative to the attention window `window`."""
    return {"previous_frame": (1, 1), "within_window": (2, window), "window_to_3x": (window + 1, 3 * window),
            "3x_to_10x": (3 * window + 1, 10 * window), "beyond_10x": (10 * window + 1, math.inf),
            "never_seen": (math.inf, math.inf)}


def last_seen_gaps(agent_pos: np.ndarray, maze_layout: np.ndarray, config: ColourGridConfig,
                   shown: int | None = None) -> np.ndarray:
    """(T, view, view) float: for each frame and view cell, frames since the map cell it shows was last
    in view of a frame the model was shown (1: the frame before); inf when none showed it. agent_pos:
    (T, 2). shown: only the first `shown` frames count as shown (generation: the real context; the
    frames after it are the model's own drawings, which show it nothing); None: all."""
    pad = config.view
    last = np.full((maze_layout.shape[0] + 2 * pad, maze_layout.shape[1] + 2 * pad), -np.inf)
    xs, ys = view_cells(agent_pos, config)
    gaps = np.empty(xs.shape, dtype=np.float64)
    for t in range(len(agent_pos)):
        rows, cols = ys[t] + pad, xs[t] + pad
        gaps[t] = t - last[rows, cols]
        if shown is None or t < shown:
            last[rows, cols] = t
    return gaps


def self_copy(predicted: np.ndarray, agent_pos: np.ndarray, config: ColourGridConfig) -> np.ndarray:
    """(T - 1, view, view) float: for each predicted frame after the first, whether each cell is drawn
    in the class the frame before drew the same map cell in (1.0 or 0.0); NaN where the frame before
    did not show it or showed the agent on it. What a generated frame copies of the model's own last
    frame, right or wrong: drift, apart from what the model could not know."""
    classes = classify_cells(predicted, config).astype(np.int64)
    pad = config.view
    xs, ys = view_cells(agent_pos, config)
    centre = config.view // 2
    out = np.full((len(predicted) - 1, config.view, config.view), np.nan)
    for t in range(1, len(predicted)):
        drawn = np.full((pad * 2 + int(ys.max()) + 1, pad * 2 + int(xs.max()) + 1), -1, dtype=np.int64)
        before = classes[t - 1].copy()
        before[centre, centre] = -1  # under the agent's sprite
        drawn[ys[t - 1] + pad, xs[t - 1] + pad] = before
        previous = drawn[ys[t] + pad, xs[t] + pad]
        known = previous >= 0
        known[centre, centre] = False
        out[t - 1][known] = (classes[t] == previous)[known]
    return out


def cell_psnr(squared_error_sum: float, pixels: int) -> float | None:
    if pixels == 0:
        return None
    mse = squared_error_sum / pixels
    return 100.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def cell_squared_errors(predicted: np.ndarray, truth: np.ndarray, config: ColourGridConfig) -> np.ndarray:
    """(..., view, view): summed squared pixel error of every cell. predicted, truth: (..., H, W, 3) uint8."""
    p, v = config.cell_pixels, config.view
    diff = predicted.astype(np.float64) - truth.astype(np.float64)
    return (diff.reshape(*diff.shape[:-3], v, p, v, p, 3) ** 2).sum(axis=(-4, -2, -1))


def score_bins(predicted: np.ndarray, truth: np.ndarray, truth_classes: np.ndarray, gaps: np.ndarray,
               previous: np.ndarray, window: int, config: ColourGridConfig) -> dict[str, dict]:
    """Per gap bin: cell accuracy, PSNR of the cells' pixels and the count, beside the last real frame
    repeated. predicted, truth, previous (the yardstick's frames): (N, H, W, 3) uint8; truth_classes,
    gaps: (N, view, view)."""
    centre = np.zeros((config.view, config.view), dtype=bool)
    centre[config.view // 2, config.view // 2] = True
    scored = ~centre[None] & np.ones(gaps.shape, dtype=bool)
    correct = classify_cells(predicted, config) == truth_classes
    correct_previous = classify_cells(previous, config) == truth_classes
    painted = (truth_classes != FLOOR) & (truth_classes != WALL_CELL)
    error, error_previous = cell_squared_errors(predicted, truth, config), cell_squared_errors(previous, truth, config)
    pixels = 3 * config.cell_pixels ** 2
    out = {}
    for name, (low, high) in gap_bins(window).items():
        mask = scored & (np.isinf(gaps) if math.isinf(low) else np.isfinite(gaps) & (gaps >= low) & (gaps <= high))
        n = int(mask.sum())
        tiles = mask & painted
        out[name] = {
            "cells": n,
            "cell_accuracy": float(correct[mask].mean()) if n else None,
            # The painted cells alone: under a low memory load most cells are bare floor, which a
            # model that remembers nothing draws right.
            "tile_cells": int(tiles.sum()),
            "tile_cell_accuracy": float(correct[tiles].mean()) if tiles.any() else None,
            "psnr": cell_psnr(float(error[mask].sum()), n * pixels),
            "last_frame_cell_accuracy": float(correct_previous[mask].mean()) if n else None,
            "last_frame_psnr": cell_psnr(float(error_previous[mask].sum()), n * pixels),
        }
    return out


def gap_curve(correct: np.ndarray, correct_previous: np.ndarray, gaps: np.ndarray,
              config: ColourGridConfig) -> list[dict]:
    """Cell accuracy in octave bins of the gap ([1, 2), [2, 4), ...), beside the last real frame
    repeated: accuracy against the gap, for the plot. correct, correct_previous, gaps: (N, view, view);
    the agent's cell left out; never-seen cells are the bins' `never_seen` row."""
    from lssvwm_env.evaluation.revisits import gap_bins as octave_bins

    scored = np.ones(gaps.shape, dtype=bool)
    scored[:, config.view // 2, config.view // 2] = False
    finite = gaps[np.isfinite(gaps) & scored]
    curve = []
    for low, high in octave_bins(float(finite.max()) if finite.size else 0):
        mask = scored & np.isfinite(gaps) & (gaps >= low) & (gaps < high)
        if mask.any():
            curve.append({"low": low, "high": high, "cells": int(mask.sum()),
                          "cell_accuracy": float(correct[mask].mean()),
                          "last_frame_cell_accuracy": float(correct_previous[mask].mean())})
    return curve


def frame_psnr(predicted: np.ndarray, truth: np.ndarray) -> float:
    """PSNR of the mean squared error over all frames, not the mean of per-frame PSNRs: on the colour
    grid a `stay` repeats the frame exactly, and one exact copy (infinite PSNR, or 100 dB capped) would
    outweigh many wrong frames in a mean of dB."""
    squared = float(((predicted.astype(np.float64) - truth.astype(np.float64)) ** 2).sum())
    return cell_psnr(squared, predicted.size)


@torch.no_grad()
def next_frame_parts(model, episodes: list[dict[str, np.ndarray]], env_config: ColourGridConfig,
                     config: GridCellsConfig, generator: torch.Generator) -> list[tuple]:
    """Per episode (predicted, truth, classes, gaps, yardstick, through the autoencoder) over frames
    1..T-1, each predicted from the real frames before it; the yardstick repeats the frame before."""
    from lssvwm_env.training.data import input_actions

    parts = []
    for ep in episodes:
        frames = ep["frames"]
        classes = true_cell_classes(ep["agent_pos"], ep["maze_layout"], ep["floor_colours"], env_config)
        gaps = last_seen_gaps(ep["agent_pos"], ep["maze_layout"], env_config)
        real = torch.from_numpy(frames).unsqueeze(0)
        actions = torch.from_numpy(input_actions(ep["actions"])).unsqueeze(0).to(model.device)
        latents = model.encode(real)
        predicted = model.decode(model.predict_each_next(model.initial_state(1), latents, actions, generator=generator,
                                                         sampling_steps=config.sampling_steps))[0].cpu().numpy()
        reconstructed = model.decode(latents)[0].cpu().numpy()
        parts.append((predicted[1:], frames[1:], classes[1:], gaps[1:], frames[:-1], reconstructed[:-1],
                      moved(ep["agent_pos"])[1:], None))
    return parts


def moved(agent_pos: np.ndarray) -> np.ndarray:
    """(T,) bool: the agent stands in another cell than a frame before (False for frame 0)."""
    cells = np.floor(agent_pos).astype(np.int64)
    return np.concatenate([[False], (cells[1:] != cells[:-1]).any(axis=1)])


@torch.no_grad()
def generation_parts(model, episodes: list[dict[str, np.ndarray]], env_config: ColourGridConfig,
                     config: GridCellsConfig) -> list[tuple]:
    """As next_frame_parts, for the frames generated from actions after `config.context` real frames
    (through the rollouts of the memory benchmark, as the env imagines them); the yardstick repeats the
    last context frame. Episodes shorter than context + generate are left out."""
    from lssvwm_env.evaluation.memory import generate_rollouts

    need = config.context + config.generate
    episodes = [ep for ep in episodes if len(ep["frames"]) >= need]
    if not episodes:
        return []
    rollouts = generate_rollouts(model, episodes, config.context, config.generate, config.sampling_steps,
                                 batch_size=len(episodes), seed=config.seed)
    parts, span = [], slice(config.context, need)
    for i, ep in enumerate(episodes):
        classes = true_cell_classes(ep["agent_pos"], ep["maze_layout"], ep["floor_colours"], env_config)[span]
        # The model was shown the context only: a cell it drew itself a frame before but never saw is
        # still unseen; what it keeps of its own drawings is `self_copy`.
        gaps = last_seen_gaps(ep["agent_pos"][:need], ep["maze_layout"], env_config, shown=config.context)[span]
        last = np.broadcast_to(ep["frames"][config.context - 1], (config.generate, *ep["frames"].shape[1:]))
        generated = rollouts.generated[i].numpy()
        parts.append((generated, rollouts.truth[i].numpy(), classes, gaps, np.ascontiguousarray(last),
                      rollouts.reconstructed[i].numpy(), moved(ep["agent_pos"][:need])[span],
                      self_copy(generated, ep["agent_pos"][span], env_config)))
    return parts


def summarise_parts(mode: str, parts: list[tuple], window: int, env_config: ColourGridConfig) -> dict | None:
    if not parts:
        return None
    predicted, truth, classes, gaps, previous, reconstructed, shifted = (np.concatenate(x) for x in list(zip(*parts))[:7])
    correct = classify_cells(predicted, env_config) == classes
    seen = gaps == 1
    seen[:, env_config.view // 2, env_config.view // 2] = False
    by_action = {name: float(correct[frames][seen[frames]].mean()) if seen[frames].any() else None
                 for name, frames in (("moved", shifted), ("unchanged", ~shifted))}
    extra = {"gap_curve": gap_curve(correct, classify_cells(previous, env_config) == classes, gaps, env_config)}
    if mode == "generation":
        # Each generated frame against the model's own frame before (the first against nothing): the
        # copy from its own drawings, right or wrong.
        copies = np.concatenate([part[7] for part in parts])
        copy_moved = np.concatenate([part[6][1:] for part in parts])
        extra["self_copy"] = {name: float(np.nanmean(copies[frames])) if np.isfinite(copies[frames]).any() else None
                              for name, frames in (("all", np.ones(len(copies), dtype=bool)), ("moved", copy_moved),
                                                   ("unchanged", ~copy_moved))}
    return {
        "frames": len(predicted),
        "psnr": frame_psnr(predicted, truth),
        "last_frame_psnr": frame_psnr(previous, truth),
        # next_frame: the frame before through the autoencoder, what a perfect copy in latent space
        # scores; generation: the real frames through it, the ceiling.
        ("last_frame_through_autoencoder_psnr" if mode == "next_frame" else "autoencoder_ceiling_psnr"):
            frame_psnr(reconstructed, truth),
        "bins": score_bins(predicted, truth, classes, gaps, previous, window, env_config),
        # The cells in view a frame before, after a move that shifted the view and after one that did
        # not (stay, or a bump into the wall): the shift and the copy.
        "previous_frame_by_action": by_action,
        **extra,
    }


def score_episodes(model, episodes: list[dict[str, np.ndarray]], env_config: ColourGridConfig, config: GridCellsConfig,
                   window: int, modes: tuple[str, ...] = MODES) -> dict:
    """The chosen modes over held-out episodes (dataset arrays with agent_pos, maze_layout, floor_colours)."""
    generator = torch.Generator(device=model.device).manual_seed(config.seed)
    result: dict = {mode: None for mode in MODES}
    if "next_frame" in modes:
        result["next_frame"] = summarise_parts("next_frame", next_frame_parts(model, episodes, env_config, config, generator),
                                               window, env_config)
    if "generation" in modes:
        result["generation"] = summarise_parts("generation", generation_parts(model, episodes, env_config, config),
                                               window, env_config)
    result["autoencoder_cell_accuracy"] = _autoencoder_cell_accuracy(model, episodes, env_config)
    return result


def training_metrics(model, episodes: list[dict[str, np.ndarray]], env_name: str, seed: int = 0) -> dict[str, float]:
    """What training logs on the colour grid (next frame from the real past): cell accuracy on the cells
    in view one frame before (the copy), on those last seen 2..w frames before (recall that attention
    can see: the rung before memory) and on those last seen beyond the attention window."""
    env_config = parse_env_name(env_name)
    window = model.config.backbone.attention.window or 0
    result = score_episodes(model, episodes, env_config, GridCellsConfig(seed=seed), window, modes=("next_frame",))
    next_frame = result["next_frame"]
    bins = next_frame["bins"]
    beyond = [bins[name] for name in ("window_to_3x", "3x_to_10x", "beyond_10x") if bins[name]["cells"]]
    cells = sum(b["cells"] for b in beyond)
    out = {"cell_accuracy_previous_frame": bins["previous_frame"]["cell_accuracy"],
           "cell_accuracy_never_seen": bins["never_seen"]["cell_accuracy"],
           "autoencoder_cell_accuracy": result["autoencoder_cell_accuracy"],
           # Pooled over frames (frame_psnr), unlike one_step_psnr, which `stay`'s exact copies inflate.
           "grid_next_frame_psnr": next_frame["psnr"], "grid_previous_frame_psnr": next_frame["last_frame_psnr"],
           "grid_previous_frame_through_autoencoder_psnr": next_frame["last_frame_through_autoencoder_psnr"]}
    if bins["within_window"]["cells"]:
        out["cell_accuracy_within_window"] = bins["within_window"]["cell_accuracy"]
    if cells:
        out["cell_accuracy_beyond_window"] = sum(b["cell_accuracy"] * b["cells"] for b in beyond) / cells
    return {k: v for k, v in out.items() if v is not None}


def _autoencoder_cell_accuracy(model, episodes: list[dict[str, np.ndarray]], env_config: ColourGridConfig) -> float:
    """The ceiling of cell accuracy: real frames through the autoencoder, classified."""
    frames = np.concatenate([ep["frames"] for ep in episodes])
    classes = np.concatenate([true_cell_classes(ep["agent_pos"], ep["maze_layout"], ep["floor_colours"], env_config)
                              for ep in episodes])
    reconstructed = model.decode(model.encode(torch.from_numpy(frames)[None]))[0].cpu().numpy()
    keep = np.ones((env_config.view, env_config.view), dtype=bool)
    keep[env_config.view // 2, env_config.view // 2] = False
    return float((classify_cells(reconstructed, env_config) == classes)[:, keep].mean())


def evaluate_grid_cells(model, data_dir, config: GridCellsConfig) -> dict:
    """Score a model on a colour-grid dataset's held-out episodes; raises ValueError naming what is wrong."""
    from data_collection.dataset import Dataset
    from lssvwm_env.evaluation.memory import check_compatible

    dataset = Dataset.open(data_dir)
    check_compatible(model, dataset, data_dir)
    try:
        env_config = parse_env_name(dataset.manifest.env)
    except Exception:
        raise ValueError(f"{data_dir}: env {dataset.manifest.env!r} is not the colour grid; cell scoring needs "
                         "`lssvwm collect --env colour-grid...` data") from None
    entries = dataset.episodes(config.split)[:config.episodes]
    if not entries:
        raise ValueError(f"{data_dir}: no '{config.split}' episodes")
    episodes = [dataset.load_episode(e.index) for e in entries]
    window = model.config.backbone.attention.window or 0
    result = score_episodes(model, episodes, env_config, config, window)
    result["settings"] = {"episodes": [e.index for e in entries], "window": window, "env": dataset.manifest.env,
                          "context": config.context, "generate": config.generate, "split": config.split,
                          "sampling_steps": config.sampling_steps or model.config.diffusion.sampling_steps,
                          "classes": len(PALETTE)}
    return result


def summary_lines(result: dict) -> list[str]:
    lines = [f"autoencoder cell accuracy {result['autoencoder_cell_accuracy']:.3f}"]
    for mode in MODES:
        r = result[mode]
        if r is None:
            continue
        ae_key = "last_frame_through_autoencoder_psnr" if mode == "next_frame" else "autoencoder_ceiling_psnr"
        lines.append(f"{mode}: {r['frames']} frames, PSNR {r['psnr']:.2f} dB (last frame repeated {r['last_frame_psnr']:.2f}, "
                     f"{ae_key.replace('_psnr', '').replace('_', ' ')} {r[ae_key]:.2f})")
        for name, b in r["bins"].items():
            if b["cells"]:
                tiles = f", painted {b['tile_cell_accuracy']:.3f} of {b['tile_cells']}" if b["tile_cells"] else ""
                lines.append(f"  {name:15} {b['cells']:7d} cells: accuracy {b['cell_accuracy']:.3f} "
                             f"(last frame {b['last_frame_cell_accuracy']:.3f}{tiles}), PSNR {b['psnr']:.2f} dB "
                             f"(last frame {b['last_frame_psnr']:.2f})")
        if "self_copy" in r:
            lines.append("  self copy (cells as the model's frame before drew them): " +
                         ", ".join(f"{k} {v:.3f}" for k, v in r["self_copy"].items() if v is not None))
    return lines

"""More context must not hurt: the same held-out target frames, predicted after more and more real
context. For every context length L, the model observes the L real frames before each target point and
generates the next `horizon` frames from the recorded actions alone; we score the first generated frame
(next frame) and the mean over the horizon, beside the yardsticks of the same frames (the last context
frame repeated is the same for every L; the context mean and nearest pose change with L).

A long-context model should be at least as good with more context, and better where the past is seen
again. A curve that falls says the state drifts where training never took it (issue 20, §1b).

The target points are the same for every L: evenly spaced in each episode between max(L) and the
episode's end, so the longest context fits. The first frame of each context window is primed without
the action that led to it, as at the start of an episode.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lssvwm_env.evaluation.yardsticks import YARDSTICKS


@dataclass
class ContextCurveConfig:
    contexts: tuple[int, ...] = (8, 32, 100, 200, 400)
    horizon: int = 10  # frames generated after each context; the first one is the next-frame score
    episodes: int = 4
    targets: int = 4  # target points per episode
    split: str = "eval"
    sampling_steps: int | None = None
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.contexts or min(self.contexts) < 1:
            raise ValueError(f"--contexts must be positive frame counts, got {list(self.contexts)}")
        for name in ("horizon", "episodes", "targets", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        self.contexts = tuple(sorted(set(self.contexts)))


def target_points(length: int, longest: int, horizon: int, count: int) -> list[int]:
    """Up to `count` distinct frame indices s, evenly spaced, with longest <= s and s + horizon <= length."""
    last = length - horizon
    if last < longest:
        return []
    return sorted({int(round(s)) for s in np.linspace(longest, last, count)})


def evaluate_context_curve(model, data_dir: str | Path, config: ContextCurveConfig, log=print) -> dict:
    """Scores per context length: {"contexts": [...], "curves": {L: {...}}, ...} (see module doc)."""
    from data_collection.dataset import Dataset
    from lssvwm_env.evaluation.memory import check_compatible, frame_scores, generate_rollouts

    dataset = Dataset.open(data_dir)
    check_compatible(model, dataset, Path(data_dir))
    longest = max(config.contexts)
    entries = [e for e in dataset.episodes(config.split) if e.length >= longest + config.horizon]
    if not entries:
        lengths = sorted({e.length for e in dataset.episodes(config.split)})
        raise ValueError(f"{data_dir}: no '{config.split}' episode holds {longest} + {config.horizon} frames "
                         f"(--contexts up to {longest}, --horizon {config.horizon}); episode lengths: {lengths[-5:]}")
    episodes = [dataset.load_episode(e.index) for e in entries[:config.episodes]]
    points = [(i, s) for i, ep in enumerate(episodes)
              for s in target_points(len(ep["frames"]), longest, config.horizon, config.targets)]
    started = time.time()
    curves = {}
    for context in config.contexts:
        windows = []
        for i, s in points:
            ep = episodes[i]
            windows.append({k: ep[k][s - context:s + config.horizon]
                            for k in ("frames", "actions", "agent_pos", "agent_dir") if k in ep})
        rollouts = generate_rollouts(model, windows, context, config.horizon, config.sampling_steps,
                                     config.batch_size, config.seed)
        scores = frame_scores(rollouts)
        curves[str(context)] = {
            "next_frame": {k: float(v[:, 0].mean()) for k, v in scores.items()},
            "horizon": {k: float(v.mean()) for k, v in scores.items()},
        }
        log(f"context {context:5d}: next frame {curves[str(context)]['next_frame']['psnr']:.2f} dB, "
            f"{config.horizon} frames {curves[str(context)]['horizon']['psnr']:.2f} dB "
            f"(last frame repeated {curves[str(context)]['next_frame']['last_frame_psnr']:.2f} / "
            f"{curves[str(context)]['horizon']['last_frame_psnr']:.2f})")
    return {"kind": "lssvwm-context-curve", "settings": asdict(config), "contexts": list(config.contexts),
            "targets": [{"episode": entries[i].index, "frame": s} for i, s in points],
            "yardsticks": [y for y in YARDSTICKS if f"{y}_psnr" in curves[str(config.contexts[0])]["next_frame"]],
            "curves": curves, "wall_time_s": time.time() - started,
            "verdict": verdict(curves, config.contexts)}


def verdict(curves: dict, contexts: tuple[int, ...]) -> str:
    """One line: does the next-frame score rise, hold or fall from the shortest to the longest context?"""
    first, last = curves[str(contexts[0])]["next_frame"]["psnr"], curves[str(contexts[-1])]["next_frame"]["psnr"]
    change = last - first
    trend = "rises" if change > 0.2 else "falls" if change < -0.2 else "holds (within 0.2 dB)"
    return (f"next-frame PSNR {trend} with more context: {first:.2f} dB after {contexts[0]} frames, "
            f"{last:.2f} dB after {contexts[-1]}")


def plot_context_curve(result: dict, path: Path) -> Path:
    from lssvwm_env.evaluation.plots import COLORS, _figure, _save

    contexts = result["contexts"]
    fig = _figure(9, 3.6)
    for column, (part, title) in enumerate((("next_frame", "next frame"),
                                            ("horizon", f"mean of {result['settings']['horizon']} frames"))):
        ax = fig.add_subplot(1, 2, column + 1)
        values = lambda key: [result["curves"][str(c)][part][key] for c in contexts]  # noqa: E731
        ax.plot(contexts, values("psnr"), "o-", color=COLORS["generated"], label="model", zorder=3)
        ax.plot(contexts, values("ceiling_psnr"), "s--", color=COLORS["ceiling"], label="autoencoder ceiling")
        for name, style in (("last_frame", ":"), ("context_mean", "--"), ("nearest_pose", "-.")):
            if name in result["yardsticks"]:
                ax.plot(contexts, values(f"{name}_psnr"), style, color="black", alpha=0.6,
                        label=name.replace("_", " "))
        ax.set_xscale("log")
        ax.set_xticks(contexts, [str(c) for c in contexts])
        ax.set_xlabel("frames of real context")
        ax.set_ylabel(f"PSNR, {title} (dB)")
        ax.grid(alpha=0.3)
        if column == 0:
            ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"the same target frames after more real context\n{result['verdict']}", fontsize=9)
    return _save(fig, path)

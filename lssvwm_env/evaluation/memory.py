"""The memory benchmark (Po et al. 2025, §5.1; docs/design.md, "Evaluation protocol").

Prime the model on the first L_c real frames of an episode (`observe`), then generate L_g frames from
the real actions alone (`imagine`) and compare them with the frames the real env showed:

- retrieval: on `retrace` episodes (out, back, out again) the generated part walks places the context
  showed; the paper uses 400 + 400 frames of Memory Maze 9x9.
- reasoning: the continuation goes on under the recorded (random or exploring) actions; the paper
  uses 576 + 224 frames.

Every generated frame gets PSNR and SSIM (metrics.py), the autoencoder's reconstruction of the same
real frame gets them too (decode(encode(truth)): the ceiling of generated frames on average; one
frame can pass it by chance, by hundredths of a dB, as 22 of 128 in docs/agents/minigrid-model did),
so do the yardsticks (yardsticks.py), and the pose tells whether the context showed the view
(revisits.py). Results go to OUT/metrics.json, with PNG plots (plots.py) and ground truth |
generated | error videos.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from lssvwm_env.evaluation.revisits import KINDS, gap_bins, revisit_gaps
from lssvwm_env.evaluation.yardsticks import YARDSTICKS, yardstick_frames

PSNR_CAP_DB = 100.0  # identical frames have infinite PSNR; a cap keeps means finite (never reached in practice)
# Frames since the context ended (1 = the first generated frame): (first, last), None = to the end.
HORIZON_BINS = ((1, 1), (2, 10), (11, 100), (101, None))


@dataclass(frozen=True)
class Task:
    context: int  # the paper's context length on Memory Maze
    generate: int  # the paper's generated length
    policies: tuple[str, ...]  # the collection policies whose episodes fit the task
    description: str


TASKS: dict[str, Task] = {
    "retrieval": Task(400, 400, ("retrace",),
                      "condition on a real trajectory, then generate while the agent walks places it has seen"),
    "reasoning": Task(576, 224, ("random", "explore"),
                      "condition on a real trajectory, then generate while it goes on under its recorded actions"),
}


@dataclass
class MemoryEvalConfig:
    task: str = "retrieval"
    context: int | None = None  # frames of real context; None: the task's paper value
    generate: int | None = None  # frames generated from actions alone; None: the task's paper value
    episodes: int = 8  # episodes evaluated (the first of the split that are long enough)
    split: str = "eval"
    sampling_steps: int | None = None  # denoising steps per frame; None: the model's default
    heading_tolerance_deg: float = 45.0  # same view = same maze cell and heading within this angle
    batch_size: int = 4  # episodes generated together
    seed: int = 0
    videos: int = 2  # episodes written as mp4

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose from {', '.join(TASKS)}")
        for name in ("context", "generate"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be >= 1, got {value}")
        if self.episodes < 1 or self.batch_size < 1:
            raise ValueError(f"--episodes and --batch-size must be >= 1, got {self.episodes} and {self.batch_size}")


@dataclass
class EpisodePlan:
    """Which episodes, and how many frames of context and generation each gets."""

    indices: list[int]
    context: int
    generate: int
    requested: tuple[int, int]
    note: str | None  # why the lengths differ from those requested, for the user and the report

    @property
    def clamped(self) -> bool:
        return (self.context, self.generate) != self.requested


def plan_episodes(lengths: dict[int, int], context: int, generate: int, episodes: int) -> EpisodePlan:
    """Choose up to `episodes` episodes (index -> length) long enough for context + generate frames.
    When none is, take the longest and shrink both lengths in proportion, saying so."""
    if not lengths:
        raise ValueError("the split holds no episodes")
    need = context + generate
    long_enough = [i for i in sorted(lengths) if lengths[i] >= need]
    if long_enough:
        chosen = long_enough[:episodes]
        return EpisodePlan(chosen, context, generate, (context, generate), None)
    chosen = sorted(sorted(lengths, key=lambda i: -lengths[i])[:episodes])
    available = min(lengths[i] for i in chosen)
    if available < 2:
        raise ValueError(f"the episodes have {available} frame(s); at least 2 are needed (1 context + 1 generated)")
    new_context = min(available - 1, max(1, round(context * available / need)))
    new_generate = available - new_context
    note = (f"no episode has {need} frames (context {context} + generate {generate}); the "
            f"{len(chosen)} longest have at least {available}: evaluating {new_context} + {new_generate} "
            f"frames, the same proportion. Collect longer episodes (lssvwm collect --steps {need}) for "
            "the requested setting.")
    return EpisodePlan(chosen, new_context, new_generate, (context, generate), note)


@dataclass
class Rollouts:
    """truth, generated, reconstructed: (E, L_g, H, W, 3) uint8 (reconstructed = decode(encode(truth)));
    yardsticks: name -> (E, L_g, H, W, 3) uint8, the trivial predictions of yardsticks.py; timings in
    seconds."""

    truth: torch.Tensor
    generated: torch.Tensor
    reconstructed: torch.Tensor
    yardsticks: dict[str, torch.Tensor]
    observe_s: float
    generate_s: float


@torch.no_grad()
def generate_rollouts(model, episodes: list[dict[str, np.ndarray]], context: int, generate: int,
                      sampling_steps: int | None, batch_size: int, seed: int, progress=None) -> Rollouts:
    """Prime on frames [0, context) of every episode, generate frames [context, context + generate)
    from the recorded actions alone."""
    from lssvwm_env.training.data import input_actions

    need = context + generate
    truth, generated, reconstructed, yardsticks = [], [], [], []
    observe_s = generate_s = 0.0
    for first in range(0, len(episodes), batch_size):
        batch = episodes[first:first + batch_size]
        frames = torch.from_numpy(np.stack([ep["frames"][:need] for ep in batch]))
        actions = torch.from_numpy(np.stack([input_actions(ep["actions"])[:need] for ep in batch]))
        generator = torch.Generator(device=model.device).manual_seed(seed + first)
        start = time.perf_counter()
        state = model.observe(model.initial_state(len(batch)), frames[:, :context], actions[:, :context])
        observe_s += time.perf_counter() - start
        start = time.perf_counter()
        out = []
        for t in range(context, need):
            # actions[:, t] led to frame t: the model sees only the actions, never the real frame.
            frame, _, _, state = model.imagine(state, actions[:, t], generator=generator, sampling_steps=sampling_steps)
            out.append(frame.cpu())
            if progress is not None:
                progress.update(len(batch))
        generate_s += time.perf_counter() - start
        truth.append(frames[:, context:])
        generated.append(torch.stack(out, dim=1))
        reconstructed.append(model.decode(model.encode(frames[:, context:])).cpu())
        poses = ([(ep["agent_pos"][:need], ep["agent_dir"][:need]) for ep in batch]
                 if all("agent_pos" in ep and "agent_dir" in ep for ep in batch) else None)
        yardsticks.append(yardstick_frames(frames, context, poses))
    return Rollouts(torch.cat(truth), torch.cat(generated), torch.cat(reconstructed),
                    {name: torch.cat([y[name] for y in yardsticks]) for name in yardsticks[0]}, observe_s, generate_s)


def horizon_bin_masks(generate: int) -> dict[str, np.ndarray]:
    """Masks over the generated frames (L_g,) for the horizon bins that exist in this run."""
    masks = {}
    for low, high in HORIZON_BINS:
        label = f"{low}" if low == high else (f"{low}-{high}" if high else f"{low}+")
        t = np.arange(1, generate + 1)
        mask = (t >= low) & (t <= (high or generate))
        if mask.any():
            masks[label] = mask
    return masks


def frame_scores(rollouts: Rollouts, lpips=None) -> dict[str, np.ndarray]:
    """Per generated frame (E, L_g): psnr, ssim, ceiling_psnr, ceiling_ssim[, lpips, ceiling_lpips]."""
    from lssvwm_env.evaluation.metrics import psnr, ssim

    scores = {
        "psnr": psnr(rollouts.generated, rollouts.truth).clamp(max=PSNR_CAP_DB),
        "ssim": ssim(rollouts.generated, rollouts.truth),
        "ceiling_psnr": psnr(rollouts.reconstructed, rollouts.truth).clamp(max=PSNR_CAP_DB),
        "ceiling_ssim": ssim(rollouts.reconstructed, rollouts.truth),
    }
    for name, frames in rollouts.yardsticks.items():
        scores[f"{name}_psnr"] = psnr(frames, rollouts.truth).clamp(max=PSNR_CAP_DB)
        scores[f"{name}_ssim"] = ssim(frames, rollouts.truth)
    if lpips is not None:
        scores["lpips"] = lpips(rollouts.generated, rollouts.truth)
        scores["ceiling_lpips"] = lpips(rollouts.reconstructed, rollouts.truth)
    return {k: v.double().numpy() for k, v in scores.items()}


def yardstick_summary(values: dict, names) -> dict[str, dict[str, float | None]]:
    """{"last_frame": {"psnr": .., "ssim": ..}, ...} from flat `{name}_psnr` entries."""
    return {name: {"psnr": values.get(f"{name}_psnr"), "ssim": values.get(f"{name}_ssim")}
            for name in names if f"{name}_psnr" in values}


def below_yardsticks(metrics: dict) -> list[str]:
    """The yardsticks that beat the model on PSNR or SSIM over all generated frames."""
    return [name for name, y in metrics["baselines"].items()
            if (y["psnr"] is not None and y["psnr"] > metrics["psnr"])
            or (y["ssim"] is not None and y["ssim"] > metrics["ssim"])]


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def summarise(scores: dict[str, np.ndarray], gaps: np.ndarray | None, kinds: np.ndarray | None) -> dict:
    """Means overall, per kind of frame, over time and over the gap; scores and gaps are (E, L_g)."""
    metric_names = list(scores)
    summary: dict = {name: _mean(values) for name, values in scores.items()}
    summary["curves"] = {"time": {name: values.mean(axis=0).tolist() for name, values in scores.items()}}
    if gaps is None or kinds is None:
        summary["splits"] = None
        return summary
    summary["splits"] = {
        kind: {"frames": int((kinds == kind).sum()), **{name: _mean(scores[name][kinds == kind]) for name in metric_names}}
        for kind in KINDS
    }
    finite = np.isfinite(gaps)
    rows = []
    for low, high in gap_bins(gaps[finite].max() if finite.any() else 0):
        mask = finite & (gaps >= low) & (gaps < high)
        if mask.any():
            rows.append({"low": low, "high": high, "frames": int(mask.sum()),
                         **{name: _mean(scores[name][mask]) for name in metric_names}})
    never = ~finite
    summary["curves"]["gap"] = {
        "bins": rows,
        "never": {"frames": int(never.sum()), **{name: _mean(scores[name][never]) for name in metric_names}},
    }
    return summary


def checkpoint_info(checkpoint: str | Path | None, model) -> dict:
    """What the report needs to say about the model: where it is, its size, how it was trained."""
    from lssvwm_env.checkpoint import read_config, resolve_checkpoint_dir

    directory = resolve_checkpoint_dir(checkpoint)
    config = read_config(directory)
    info = {
        "path": str(directory.resolve()),
        "shipped_default": checkpoint is None,
        "variant": model.config.variant,
        "preset": config.get("preset"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "autoencoder_parameters": sum(p.numel() for p in model.autoencoder.parameters()),
    }
    # training.json: what `lssvwm train` recorded (an exported checkpoint keeps it); a checkpoint from
    # before the record says nothing about its training.
    record_path = directory / "training.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else None
    if record:
        info["training"] = {
            "autoencoder_steps": record["autoencoder_steps"], "dynamics_steps": record["dynamics_steps"],
            "wall_time_min": record["wall_time_min"], "curriculum": record["curriculum"],
            "long_context_prob": config.get("model", {}).get("diffusion", {}).get("long_context_prob"),
        }
        info["training_data"] = {"path": record["data"]}
        from data_collection.dataset import Dataset, DatasetError
        try:  # the path is as `lssvwm train` was given it: relative to where it ran
            info["training_data"].update(manifest_summary(Dataset.open(record["data"])))
        except (DatasetError, OSError):  # moved or deleted data only loses a line of the report
            pass
    return info


def manifest_summary(dataset) -> dict:
    """The lines of a dataset's manifest the reports quote."""
    manifest = dataset.manifest
    entries = list(manifest.episodes.values())
    return {"env": manifest.env, "policy": manifest.policy, "episodes": len(entries),
            "frames": sum(e.length for e in entries), "max_steps": manifest.max_steps}


def check_compatible(model, dataset, data_dir: Path) -> None:
    """The dataset's frames and actions must be those the model was trained on."""
    manifest = dataset.manifest
    size = model.config.autoencoder.image_size
    action = model.config.backbone.action
    if tuple(manifest.obs_shape) != (size, size, 3):
        raise ValueError(f"{data_dir}: frames are {tuple(manifest.obs_shape)}, the model makes ({size}, {size}, 3) "
                         f"frames: it was trained on another env than {manifest.env!r}")
    if action.kind == "discrete" and manifest.num_actions != action.n:
        raise ValueError(f"{data_dir}: env {manifest.env!r} has {manifest.num_actions} actions, the model "
                         f"{action.n}: it was trained on another env")


def evaluate_memory(model, data_dir: str | Path, config: MemoryEvalConfig, out_dir: str | Path,
                    checkpoint: str | Path | None, log=print) -> dict:
    """Run the benchmark and write OUT/metrics.json, plots and videos; returns the metrics."""
    from tqdm import tqdm

    from data_collection.dataset import Dataset
    from data_collection.policies import policy_name
    from lssvwm_env.evaluation import plots, videos
    from lssvwm_env.evaluation.perceptual import LPIPS, lpips_status
    from data_collection.files import write_json_atomic

    started = time.time()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    task = TASKS[config.task]
    dataset = Dataset.open(data_dir)
    check_compatible(model, dataset, data_dir)
    if policy_name(dataset.manifest.policy) not in task.policies:
        log(f"note: the {config.task} task is meant for `--policy {' or '.join(task.policies)}` episodes; {data_dir} was "
            f"collected with --policy {dataset.manifest.policy} (the memory / novel split still applies)")
    entries = {e.index: e.length for e in dataset.episodes(config.split)}
    if not entries:
        raise ValueError(f"{data_dir}: no '{config.split}' episodes; choose another --split or collect more episodes")
    plan = plan_episodes(entries, config.context or task.context, config.generate or task.generate, config.episodes)
    if plan.note:
        log(f"note: {plan.note}")
    episodes = [dataset.load_episode(i) for i in plan.indices]
    has_pose = all("agent_pos" in ep and "agent_dir" in ep for ep in episodes)

    total = len(episodes) * plan.generate
    with tqdm(total=total, desc=f"{config.task}: generate", unit="frame", dynamic_ncols=True) as bar:
        rollouts = generate_rollouts(model, episodes, plan.context, plan.generate, config.sampling_steps,
                                     config.batch_size, config.seed, bar)
    available, lpips_note = lpips_status()
    scores = frame_scores(rollouts, LPIPS(model.device) if available else None)

    gaps = kinds = None
    if has_pose:
        infos = [revisit_gaps(ep["agent_pos"], ep["agent_dir"], plan.context, plan.context,
                              plan.context + plan.generate, config.heading_tolerance_deg) for ep in episodes]
        gaps = np.stack([info.gap for info in infos])
        kinds = np.stack([info.kind for info in infos])
    summary = summarise(scores, gaps, kinds)
    horizon = {label: {name: float(values[:, mask].mean()) for name, values in scores.items()}
               for label, mask in horizon_bin_masks(plan.generate).items()}

    steps = config.sampling_steps or model.config.diffusion.sampling_steps
    metrics = {
        "kind": "lssvwm-memory-eval",
        "task": config.task,
        "task_description": task.description,
        "psnr": summary.pop("psnr"),
        "ssim": summary.pop("ssim"),
        "lpips": summary.pop("lpips", None),
        "lpips_note": lpips_note,
        "ceiling": {"psnr": summary.pop("ceiling_psnr"), "ssim": summary.pop("ceiling_ssim"),
                    "lpips": summary.pop("ceiling_lpips", None)},
        "baselines": yardstick_summary(summary, YARDSTICKS),
        "horizon": {label: {"psnr": values["psnr"], "ssim": values["ssim"],
                            "baselines": yardstick_summary(values, YARDSTICKS)} for label, values in horizon.items()},
        "splits": summary.pop("splits"),
        "settings": {
            **{k: v for k, v in asdict(config).items() if k not in ("context", "generate", "sampling_steps")},
            "context": plan.context, "generate": plan.generate,
            "requested": {"context": plan.requested[0], "generate": plan.requested[1]},
            "clamped": plan.clamped, "clamp_note": plan.note, "sampling_steps": steps,
            "paper": {"context": task.context, "generate": task.generate},
            "psnr_cap_db": PSNR_CAP_DB,
        },
        "checkpoint": checkpoint_info(checkpoint, model),
        "data": {"path": str(data_dir.resolve()), **manifest_summary(dataset), "split": config.split,
                 "evaluated_episodes": plan.indices},
        "definitions": {
            "same view": f"same maze cell (floor of agent_pos) and heading within {config.heading_tolerance_deg} degrees",
            "gap": "frames since the agent last left this view (previous visit); null if never seen before",
            "memory": "the real context showed this view (an earlier visit, or the visit under way when the context ended)",
            "revisit_in_generation": "seen before only in frames the model generated itself",
            "novel": "never seen before in the episode",
            "ceiling": "the autoencoder's reconstruction of the real frame, decode(encode(truth))",
            "baselines": "yardsticks on the same frames: the last context frame repeated, the mean of the context "
                         "frames, the context frame at the nearest pose (evaluation/yardsticks.py)",
        } if has_pose else {"note": "the dataset records no agent pose: no gap curve and no memory / novel split"},
        "timing": {"observe_s": rollouts.observe_s, "generate_s": rollouts.generate_s,
                   "ms_per_generated_frame": 1000 * rollouts.generate_s / max(1, total),
                   "batch_size": min(config.batch_size, len(episodes)), "threads": torch.get_num_threads(),
                   "wall_time_s": None},
        "curves": summary["curves"],
        "per_frame": {
            **{name: values.tolist() for name, values in scores.items()},
            "gap": [[None if math.isinf(g) else int(g) for g in row] for row in gaps] if gaps is not None else None,
            "kind": kinds.tolist() if kinds is not None else None,
        },
        "files": {},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"time_plot": plots.plot_memory_over_time(metrics, out_dir / "psnr_ssim_over_time.png"),
             "filmstrip": plots.plot_filmstrip(rollouts.truth[0].numpy(), rollouts.generated[0].numpy(),
                                               metrics, out_dir / "frames.png")}
    if gaps is not None:
        files["gap_plot"] = plots.plot_memory_vs_gap(metrics, out_dir / "psnr_ssim_vs_gap.png")
    video_paths = []
    for e in range(min(config.videos, len(episodes))):
        path = out_dir / "videos" / f"{config.task}_episode{plan.indices[e]:06d}.mp4"
        video_paths.append(videos.write_comparison_video(rollouts.truth[e].numpy(), rollouts.generated[e].numpy(), path))
    metrics["files"] = {**{k: str(v.relative_to(out_dir)) for k, v in files.items()},
                        "videos": [str(p.relative_to(out_dir)) for p in video_paths]}
    metrics["timing"]["wall_time_s"] = time.time() - started
    write_json_atomic(out_dir / "metrics.json", metrics)
    return metrics

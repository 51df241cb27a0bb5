"""The paper's ablations on our data (Po et al. 2025, §5.3): each variant is trained by `lssvwm train`
on the same dataset with the same preset, the same training FLOPs and each seed, then run through the
same memory benchmark (memory.py).

    OUT/runs/VARIANT/seedS/   training run (checkpoint, model card, metrics.csv)
    OUT/eval/VARIANT/seedS/   its memory benchmark (metrics.json, plots, videos)
    OUT/eval/VARIANT/cost.json  latency and state size per imagined frame at frame 1,000
    OUT/ablations.json        every variant's settings and figures, per seed and their mean
    OUT/results.json          the memory figures by revisit gap, mean and spread over seeds
    OUT/ablations.md          the tables; OUT/ablations.png, OUT/psnr_vs_gap.png the figures

Equal compute: `ours` trains for the preset's curriculum (or `--iterations` steps spread over it);
every other variant trains the same curriculum with its steps scaled so that its training FLOPs
(counted on one step per stage, `bench.dynamics_training_step`) equal ours'. The windowed causal
baseline gets the window whose FLOPs per imagined frame equal ours' (`equal_cost_causal_window`).

Re-running the same command resumes: finished runs and evaluations are kept, unfinished ones continue.
"""

from __future__ import annotations

import csv
import json
import math
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lssvwm_env.evaluation.next_frame_memory import bin_masks, window_bins
from lssvwm_env.models.backbone import VARIANTS


@dataclass(frozen=True)
class Ablation:
    label: str
    overrides: tuple[str, ...]  # `lssvwm train --set` overrides that make this variant


ABLATIONS: dict[str, Ablation] = {
    "ours": Ablation("ours (block-wise SSM + local attention)", ()),
    "local_attn": Ablation("local attention only (no SSM)", ("model.variant=local_attn",)),
    "ssm_only": Ablation("SSM only (Mamba2 over whole frames, no attention)", ("model.variant=ssm_only",)),
    "ssm": Ablation("SSM over whole frames + local attention", ("model.variant=ssm",)),
    "block1": Ablation("block-wise SSM, 1x1 blocks + local attention", ("model.variant=block1",)),
    # Trained as transformers are, on windows of its context (every window starts from a fresh cache):
    # carried across windows, its cache grows to the whole episode and a step cost 4-5x ours' (1.1
    # against 5 steps/s, one thread each), far beyond the equal-FLOPs budget counted at a fresh state.
    "causal_full": Ablation("causal attention over the whole history (no SSM)",
                            ("model.variant=causal_attn", "dynamics_training.state_reset_prob=1.0")),
    "causal_window": Ablation("causal attention, window at ours' inference cost (no SSM)",
                              ("model.variant=causal_attn",)),
    "no_long_context": Ablation("ours without long-context training", ("model.diffusion.long_context_prob=0",)),
    # The heads' half-lives spread over 1 to 1,000 frames and kept as floors: trained freely, every
    # head's fell under a few frames (docs/memory-ablation).
    "ours_floor": Ablation("ours with SSM half-life floors of 1 to 1,000 frames",
                           ("model.backbone.ssm.half_life_frames=[1,1000]", "model.backbone.ssm.half_life_floor=true")),
}
# The and the paper's comparison; `ssm`, `no_long_context` and `ours_floor` run when named.
DEFAULT_VARIANTS = ("ours", "local_attn", "ssm_only", "block1", "causal_full", "causal_window")
_MADE = {o.split("=", 1)[1] for a in ABLATIONS.values() for o in a.overrides if o.startswith("model.variant=")}
assert set(VARIANTS) <= _MADE | {"ours"}, "every backbone variant needs an ablation entry"

COST_FRAME = 1000  # the frame at which latency and state size are measured
PROBE_EPISODES = 40  # held-out episodes of the next-frame memory probe


def variant_label(name: str) -> str:
    return ABLATIONS[name].label if name in ABLATIONS else name


def scale_curriculum(stages: list[dict], total: int) -> list[dict]:
    """The curriculum's stages with their iterations rescaled to sum to `total`, in proportion
    (largest remainders); stages left with no step are dropped, the longest windows last."""
    if total < 1:
        raise ValueError(f"--iterations must be >= 1, got {total}")
    weights = [s["iterations"] for s in stages]
    exact = [total * w / sum(weights) for w in weights]
    counts = [math.floor(e) for e in exact]
    for i in sorted(range(len(stages)), key=lambda i: exact[i] - counts[i], reverse=True)[:total - sum(counts)]:
        counts[i] += 1
    return [{**s, "iterations": n} for s, n in zip(stages, counts) if n > 0]


def step_gflop(config, stages: list[dict]) -> list[float]:
    """GFLOP of one dynamics training step of `config` at each stage's (batch, window)."""
    from lssvwm_env.bench import count_flops, dynamics_training_step
    return [count_flops(dynamics_training_step(config, s["batch_size"], s["window"])) / 1e9 for s in stages]


def equal_cost_causal_window(model_config) -> tuple[int, dict]:
    """The window (frames) of causal attention whose FLOPs per imagined frame, once the history is
    longer than the window, equal ours' (constant per frame once its local window is full).
    Causal attention costs a + b * history per frame (b: attending to one more frame's keys), so
    the window is (ours - a) / b. Returns the window and the figures it came from."""
    import torch

    from lssvwm_env.bench import count_flops, fill_history
    from lssvwm_env.models import WorldModel

    torch.manual_seed(0)
    action = torch.ones(1, dtype=torch.long)
    ours = WorldModel(replace(model_config, variant="ours")).eval()
    state = ours.initial_state(1)
    with torch.no_grad():
        frames = max(model_config.backbone.attention.window or 1, 1) + 1
        latents = torch.randn(1, frames, *model_config.autoencoder.grid, model_config.autoencoder.latent_channels)
        _, _, state = ours.step_latents(state, latents, action.view(1, 1).expand(1, frames))
    ours_flops = count_flops(lambda: ours.imagine(state.clone(), action))
    causal = WorldModel(replace(model_config, variant="causal_attn", causal_window=None)).eval()
    short, long = 64, 128
    flops = {h: count_flops(lambda: causal.imagine(fill_history(causal, causal.initial_state(1), h), action))
             for h in (short, long)}
    per_frame = (flops[long] - flops[short]) / (long - short)
    base = flops[short] - short * per_frame
    window = max(1, round((ours_flops - base) / per_frame))
    return window, {"ours_gflop_per_frame": ours_flops / 1e9, "causal_gflop_per_frame_base": base / 1e9,
                    "causal_gflop_per_history_frame": per_frame / 1e9}


@dataclass
class Budget:
    """What each variant trains: the curriculum, its training FLOPs and the causal window."""
    stages: dict[str, list[dict]]
    train_gflop: dict[str, float]
    causal_window: int | None
    causal_window_figures: dict


def plan_budget(preset_name: str, variants: list[str], iterations: int | None, causal_window: int | None,
                extra: list[str], log=print) -> Budget:
    """Equal training FLOPs for every variant: ours' curriculum sets the budget. `extra`: the
    overrides every variant trains with (the dataset's, the user's)."""
    from lssvwm_env.training.train import build_config

    base = build_config(preset_name, list(extra))
    stages = [{"window": s.window, "iterations": s.iterations, "batch_size": s.batch_size}
              for s in base.dynamics_training.curriculum]
    if iterations is not None:
        stages = scale_curriculum(stages, iterations)
    figures = {}
    if "causal_window" in variants and causal_window is None:
        causal_window, figures = equal_cost_causal_window(base.model)
        log(f"causal_window: {causal_window} frames cost what ours costs per imagined frame "
            f"({figures['ours_gflop_per_frame']:.4f} GFLOP)")
    per_step = {}
    for name in dict.fromkeys(["ours", *variants]):
        config = build_config(preset_name, variant_overrides(name, causal_window) + list(extra))
        per_step[name] = step_gflop(config, stages)
    budget = sum(g * s["iterations"] for g, s in zip(per_step["ours"], stages))
    planned, spent = {}, {}
    for name in variants:
        cost = sum(g * s["iterations"] for g, s in zip(per_step[name], stages))
        total = max(1, round(sum(s["iterations"] for s in stages) * budget / cost))
        planned[name] = scale_curriculum(stages, total)
        by_window = {s["window"]: g for s, g in zip(stages, per_step[name])}
        spent[name] = sum(by_window[s["window"]] * s["iterations"] for s in planned[name])
        log(f"{name}: {sum(s['iterations'] for s in planned[name])} dynamics steps, {spent[name]:.0f} GFLOP "
            f"(ours: {budget:.0f})")
    return Budget(planned, spent, causal_window, figures)


def dataset_overrides(preset_name: str, data_dir: Path) -> list[str]:
    """The `--set` that fits the preset's model to the dataset's discrete actions."""
    from data_collection.dataset import Dataset
    from lssvwm_env.presets import preset

    action = preset(preset_name).model.backbone.action
    num_actions = Dataset.open(data_dir).manifest.num_actions
    return [f"model.backbone.action.n={num_actions}"] if action.kind == "discrete" and action.n != num_actions else []


def variant_overrides(name: str, causal_window: int | None) -> list[str]:
    overrides = list(ABLATIONS[name].overrides)
    if name == "causal_window":
        overrides.append(f"model.causal_window={causal_window}")
    return overrides


def training_command(data_dir: Path, run_dir: Path, preset_name: str, overrides: list[str], seed: int,
                     init_autoencoder: Path | None, threads: int) -> list[str]:
    command = ["train", "--data", str(data_dir), "--out", str(run_dir), "--preset", preset_name]
    command += [a for o in [*overrides, f"seed={seed}"] for a in ("--set", o)]
    if init_autoencoder is not None:
        command += ["--init-autoencoder", str(init_autoencoder)]
    if threads:
        command += ["--threads", str(threads)]
    if (run_dir / "checkpoint").exists():
        command.append("--resume")
    return command


def reuse_latent_cache(runs_dir: Path, run_dir: Path) -> None:
    """Runs that adopt one autoencoder (--init-autoencoder) encode the data to the same latents:
    give `run_dir` another run's cache instead of encoding again (the trainer still checks its key).
    The tensors are hard-linked (the trainer replaces, never rewrites, the file), the key copied."""
    import os
    import shutil

    tensors, key = run_dir / "latents_train.safetensors", run_dir / "latents_train.json"
    if tensors.exists():
        return
    for other in sorted(runs_dir.glob("*/*/latents_train.safetensors")):
        if other.parent != run_dir and other.with_suffix(".json").exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(other.with_suffix(".json"), key)
            os.link(other, tensors)
            return


def last_eval_value(run_dir: Path, key: str) -> float | None:
    """The last value of `key` in the run's metrics.csv (the training eval), None if never logged."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        return None
    value = None
    with path.open() as f:
        for row in csv.DictReader(f):
            if row["key"] == key:
                value = float(row["value"])
    return value


def measure_cost(run_dir: Path, path: Path) -> dict:
    """Latency and state size of one imagined frame at frame COST_FRAME (bench.horizon)."""
    from lssvwm_env.bench import horizon
    from lssvwm_env.checkpoint import load_world_model
    from data_collection.files import write_json_atomic

    if path.exists():
        return json.loads(path.read_text())
    model = load_world_model(run_dir)
    r = horizon(model, [COST_FRAME], repeats=5, real_history_limit=COST_FRAME, block=50, sampling_steps=None,
                progress=_NoProgress())
    cost = {"frame": COST_FRAME, "latency_ms": r["latency_ms"][str(COST_FRAME)],
            "state_mb": r["state_mb"][str(COST_FRAME)], "batch": 1}
    write_json_atomic(path, cost)
    return cost


class _NoProgress:
    def update(self, n: int) -> None:
        pass


def run_ablations(data_dir: Path, out_dir: Path, preset_name: str, variants: list[str], iterations: int | None,
                  causal_window: int | None, extra_overrides: list[str], eval_config, eval_data: Path | None,
                  threads: int = 0, seeds: tuple[int, ...] = (0,), init_autoencoder: Path | None = None,
                  log=print) -> dict:
    """Train and evaluate every variant and seed; writes ablations.json / results.json / .md / .png."""
    import torch

    from data_collection.colour_grid import is_colour_grid
    from data_collection.dataset import Dataset
    from lssvwm_env.checkpoint import load_world_model
    from lssvwm_env.cli import main as lssvwm
    from lssvwm_env.evaluation.memory import evaluate_memory

    unknown = [v for v in variants if v not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {', '.join(ABLATIONS)}")
    if threads:
        torch.set_num_threads(threads)
    common = dataset_overrides(preset_name, data_dir) + list(extra_overrides)
    out_dir.mkdir(parents=True, exist_ok=True)
    budget = plan_budget(preset_name, variants, iterations, causal_window, common, log)
    window = ours_window(preset_name, common)
    grid = is_colour_grid(Dataset.open(eval_data or data_dir).manifest.env)  # scored cell by cell too
    for name in variants:
        for seed in seeds:
            run_dir = out_dir / "runs" / name / f"seed{seed}"
            overrides = variant_overrides(name, budget.causal_window) + common
            overrides.append(f"dynamics_training.curriculum={json.dumps(budget.stages[name])}")
            command = training_command(data_dir, run_dir, preset_name, overrides, seed, init_autoencoder, threads)
            log(f"== {name} seed {seed}: lssvwm {shlex.join(command)}")
            if init_autoencoder is not None:
                reuse_latent_cache(out_dir / "runs", run_dir)
            if lssvwm(command) != 0:
                log(f"== {name} seed {seed}: training failed (see the output above; resume with the same command)")
                continue
            eval_dir = out_dir / "eval" / name / f"seed{seed}"
            steps = _progress(run_dir)["dynamics_step"]
            if _evaluated_steps(eval_dir) != steps:
                evaluate_memory(load_world_model(run_dir), eval_data or data_dir, eval_config, eval_dir, run_dir,
                                log=log)
            probe = eval_dir / "next_frame.json"
            if not probe.exists() or not _probe_current(json.loads(probe.read_text()), steps):
                write_next_frame_probe(run_dir, eval_data or data_dir, eval_config, window, probe, steps, log)
            cells = eval_dir / "cells.json"
            if grid and (not cells.exists() or json.loads(cells.read_text()).get("dynamics_steps") != steps):
                write_cell_scores(run_dir, eval_data or data_dir, eval_dir, cells, steps, log)
        first = out_dir / "runs" / name / f"seed{seeds[0]}"
        if (first / "checkpoint").exists():
            measure_cost(first, out_dir / "eval" / name / "cost.json")
    results = collect_results(out_dir, data_dir, eval_data, preset_name, iterations, common, budget,
                              variants, seeds, eval_config.task)
    write_reports(out_dir, results)
    return results


def ours_window(preset_name: str, overrides: list[str]) -> int:
    """The attention window of `ours`: every variant's frames are binned by the gap relative to it."""
    from lssvwm_env.training.train import build_config
    return build_config(preset_name, list(overrides)).model.backbone.attention.window


def write_next_frame_probe(run_dir: Path, data_dir: Path, eval_config, window: int, path: Path, steps: int,
                           log=print) -> None:
    """next_frame.json: next-frame PSNR from the real past by revisit gap relative to `window`
    (next_frame_memory.py), over the evaluation split's episodes (up to PROBE_EPISODES)."""
    from data_collection.dataset import Dataset
    from data_collection.files import write_json_atomic
    from lssvwm_env.checkpoint import load_world_model
    from lssvwm_env.evaluation.next_frame_memory import next_frame_memory

    model = load_world_model(run_dir)
    dataset = Dataset.open(data_dir)
    episodes = [dataset.load_episode(e.index) for e in dataset.episodes(eval_config.split)][:PROBE_EPISODES]
    result = next_frame_memory(model, episodes, window, eval_config.heading_tolerance_deg, eval_config.seed)
    write_json_atomic(path, {**result, "dynamics_steps": steps})
    log(f"next frame by revisit gap: " + ", ".join(f"{k} {v['psnr']:.2f} dB" for k, v in result["bins"].items()
                                                    if v["psnr"] is not None))


def write_cell_scores(run_dir: Path, data_dir: Path, eval_dir: Path, path: Path, steps: int, log=print) -> None:
    """cells.json: on colour-grid data, every generated cell scored by its class (grid_cells.py), on
    the memory benchmark's episodes, context and generated frames (its metrics.json), and every frame
    from its real past."""
    from data_collection.files import write_json_atomic
    from lssvwm_env.checkpoint import load_world_model
    from lssvwm_env.evaluation.grid_cells import GridCellsConfig, evaluate_grid_cells, summary_lines

    s = json.loads((eval_dir / "metrics.json").read_text())["settings"]
    config = GridCellsConfig(episodes=s["episodes"], context=s["context"], generate=s["generate"],
                             split=s["split"], sampling_steps=s["sampling_steps"], seed=s["seed"])
    result = evaluate_grid_cells(load_world_model(run_dir), data_dir, config)
    write_json_atomic(path, {**result, "dynamics_steps": steps})
    log("cells: " + "\n  ".join(summary_lines(result)))


def _probe_current(probe: dict, steps: int) -> bool:
    """A probe of the run's last checkpoint, with every field this version writes."""
    return probe.get("dynamics_steps") == steps and "turn_bins" in probe


def _progress(run_dir: Path) -> dict:
    from lssvwm_env.checkpoint import resolve_checkpoint_dir
    return json.loads((resolve_checkpoint_dir(run_dir) / "training_state.json").read_text())["progress"]


def _evaluated_steps(eval_dir: Path) -> int | None:
    path = eval_dir / "metrics.json"
    if not path.exists():
        return None
    return (json.loads(path.read_text())["checkpoint"].get("training") or {}).get("dynamics_steps")


def binned_scores(metrics: dict, window: int) -> dict[str, dict]:
    """Mean PSNR / SSIM of the model and the yardsticks over the generated frames of each gap bin
    (and `novel`: never seen before, `all`), from metrics.json's per-frame figures."""
    per_frame = metrics["per_frame"]
    gap = np.array([[np.inf if g is None else g for g in row] for row in per_frame["gap"]], dtype=float)
    masks = bin_masks(gap, window)
    keys = [k for k in per_frame if k.endswith("psnr") or k.endswith("ssim")]
    out = {}
    for name, mask in masks.items():
        out[name] = {"frames": int(mask.sum()),
                     **{k: (float(np.asarray(per_frame[k])[mask].mean()) if mask.any() else None) for k in keys}}
    return out


def _mean_spread(values: list[float | None]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), float(max(values) - min(values))


def collect_results(out_dir: Path, data_dir: Path, eval_data: Path | None, preset_name: str, iterations: int | None,
                    extra_overrides: list[str], budget: Budget, variants: list[str], seeds: tuple[int, ...],
                    task: str) -> dict:
    """ablations.json from what is on disk: every variant's runs and evaluations, per seed and mean."""
    from data_collection.files import write_json_atomic

    window = ours_window(preset_name, extra_overrides)
    results = {"kind": "lssvwm-ablations", "data": str(data_dir.resolve()),
               "eval_data": str((eval_data or data_dir).resolve()), "preset": preset_name, "iterations": iterations,
               "extra_overrides": extra_overrides, "seeds": list(seeds), "window": window,
               "causal_window": budget.causal_window, "causal_window_figures": budget.causal_window_figures,
               "budget_gflop": budget.train_gflop.get("ours"), "settings": {"task": task}, "variants": {}}
    for name in variants:
        entry = {"label": ABLATIONS[name].label, "train_gflop": budget.train_gflop[name],
                 "curriculum": budget.stages[name], "seeds": {}}
        for seed in seeds:
            run_dir, eval_dir = out_dir / "runs" / name / f"seed{seed}", out_dir / "eval" / name / f"seed{seed}"
            if not (eval_dir / "metrics.json").exists():
                continue
            m = json.loads((eval_dir / "metrics.json").read_text())
            probe = eval_dir / "next_frame.json"
            progress = _progress(run_dir)
            entry["seeds"][str(seed)] = {
                "run": str(run_dir), "eval": str(eval_dir.relative_to(out_dir)),
                "dynamics_steps": progress["dynamics_step"], "train_wall_time_s": round(progress["wall_time_s"], 1),
                "one_step_psnr": last_eval_value(run_dir, "eval/one_step_psnr"),
                "one_step_psnr_last_frame": last_eval_value(run_dir, "eval/one_step_psnr_last_frame"),
                "parameters": m["checkpoint"]["parameters"],
                "bins": binned_scores(m, window),
                "next_frame": json.loads(probe.read_text()) if probe.exists() else None,
                "cells": json.loads((eval_dir / "cells.json").read_text()) if (eval_dir / "cells.json").exists() else None,
                "metrics": {k: m[k] for k in ("psnr", "ssim", "lpips", "ceiling", "baselines", "splits", "settings",
                                              "timing")} | {"data": {k: m["data"][k] for k in (
                                                  "env", "policy", "split", "evaluated_episodes")}},
            }
        cost = out_dir / "eval" / name / "cost.json"
        if cost.exists():
            entry["cost"] = json.loads(cost.read_text())
        done = list(entry["seeds"].values())
        if done:
            entry["dynamics_steps"] = done[0]["dynamics_steps"]
            entry["train_wall_time_s"] = float(np.mean([d["train_wall_time_s"] for d in done]))
            entry["parameters"] = done[0]["parameters"]
            entry["metrics"] = _mean_metrics([d["metrics"] for d in done])
        results["variants"][name] = entry
    results["settings"] = next((e["metrics"]["settings"] for e in results["variants"].values() if "metrics" in e),
                               results["settings"])
    write_json_atomic(out_dir / "ablations.json", results)
    write_json_atomic(out_dir / "results.json", memory_results(results))
    return results


def _mean_metrics(per_seed: list[dict]) -> dict:
    """The mean over seeds of the figures the table and plots show (the first seed's settings)."""
    def mean(*path: str) -> float | None:
        values = []
        for m in per_seed:
            for key in path:
                m = m.get(key) if isinstance(m, dict) else None
            values.append(m)
        return _mean_spread(values)[0]

    kinds = set().union(*[(m.get("splits") or {}).keys() for m in per_seed])
    return {**per_seed[0], "psnr": mean("psnr"), "ssim": mean("ssim"), "lpips": mean("lpips"),
            "ceiling": {k: mean("ceiling", k) for k in ("psnr", "ssim", "lpips")},
            "splits": {kind: {k: mean("splits", kind, k) for k in ("psnr", "ssim")} for kind in kinds} or None}


def memory_results(results: dict) -> dict:
    """results.json: per variant, PSNR / SSIM by gap bin (mean and max - min over seeds), training
    FLOPs, one-step quality, cost; the yardsticks on the same frames."""
    out = {"window": results["window"], "causal_window": results["causal_window"],
           "budget_gflop": results["budget_gflop"], "seeds": results["seeds"],
           "bins": {name: f"gap {low}-{high if math.isfinite(high) else 'inf'} frames"
                    for name, (low, high) in window_bins(results["window"]).items()}
           | {"novel": "never seen before", "all": "every generated frame"},
           "yardsticks": {}, "variants": {}}
    for name, entry in results["variants"].items():
        seeds = list(entry["seeds"].values())
        row = {"label": entry["label"], "train_gflop": entry["train_gflop"], "seeds": len(seeds),
               "dynamics_steps": entry.get("dynamics_steps")}
        if seeds:
            for bin_name in seeds[0]["bins"]:
                cell = {"frames": seeds[0]["bins"][bin_name]["frames"]}
                for metric in ("psnr", "ssim"):
                    values = [s["bins"][bin_name][metric] for s in seeds]
                    cell[metric], cell[f"{metric}_spread"] = _mean_spread(values)
                    cell[f"{metric}_seeds"] = values
                row[bin_name] = cell
            probes = [s["next_frame"] for s in seeds if s.get("next_frame")]
            for key, bins_key in (("next_frame", "bins"), ("next_frame_turns", "turn_bins")):
                cells = [p[bins_key] for p in probes if bins_key in p]
                if cells:
                    row[key] = {b: {"frames": cells[0][b]["frames"],
                                    "previous_frame_psnr": cells[0][b]["previous_frame_psnr"],
                                    **dict(zip(("psnr", "psnr_spread"), _mean_spread([c[b]["psnr"] for c in cells]))),
                                    "psnr_seeds": [c[b]["psnr"] for c in cells]}
                                for b in cells[0]}
            cells = [s["cells"] for s in seeds if s.get("cells")]
            if cells:
                row["cells"] = cell_results(cells)
                for bin_name, cell_bins in WINDOW_BIN_CELLS.items():
                    if bin_name in row:
                        row[bin_name].update(pooled_cell_accuracy(cells, "generation", cell_bins))
            row["one_step_psnr"], row["one_step_psnr_spread"] = _mean_spread([s["one_step_psnr"] for s in seeds])
            row["one_step_psnr_last_frame"] = seeds[0]["one_step_psnr_last_frame"]
            if not out["yardsticks"]:  # the same frames for every variant: take them once
                out["yardsticks"] = {b: {y: {"psnr": c.get(f"{y}_psnr"), "ssim": c.get(f"{y}_ssim")}
                                         for y in ("last_frame", "context_mean", "nearest_pose", "ceiling")
                                         if c.get(f"{y}_psnr") is not None}
                                     for b, c in seeds[0]["bins"].items()}
        if "cost" in entry:
            row["latency_ms_at_frame_1000"] = entry["cost"]["latency_ms"]
            row["state_mb_at_frame_1000"] = entry["cost"]["state_mb"]
        out["variants"][name] = row
    return out


# The memory benchmark's frame bins, by the gap since the view was last seen, as the cell bins of
# grid_cells.py that make them up (a cell's gap counts from the last frame that showed that cell).
WINDOW_BIN_CELLS = {"revisit_within_window": ("previous_frame", "within_window"),
                    "revisit_window_to_3x_window": ("window_to_3x",),
                    "revisit_beyond_3x_window": ("3x_to_10x", "beyond_10x"), "novel": ("never_seen",),
                    "all": ("previous_frame", "within_window", "window_to_3x", "3x_to_10x", "beyond_10x", "never_seen")}


def pooled_cell_accuracy(per_seed: list[dict], mode: str, cell_bins: tuple[str, ...]) -> dict:
    """Cell accuracy over the cells of several bins of cells.json (one per seed): mean, max - min and
    each seed's, and the last real frame repeated on the same cells."""
    def pooled(cells: dict, key: str) -> float | None:
        bins = [cells[mode]["bins"][b] for b in cell_bins if cells[mode]["bins"][b]["cells"]]
        n = sum(b["cells"] for b in bins)
        return sum(b[key] * b["cells"] for b in bins) / n if n else None

    values = [pooled(c, "cell_accuracy") for c in per_seed if c.get(mode)]
    mean, spread = _mean_spread(values)
    return {"cell_accuracy": mean, "cell_accuracy_spread": spread, "cell_accuracy_seeds": values,
            "cells": sum(per_seed[0][mode]["bins"][b]["cells"] for b in cell_bins) if per_seed[0].get(mode) else 0,
            "last_frame_cell_accuracy": pooled(per_seed[0], "last_frame_cell_accuracy") if per_seed[0].get(mode) else None}


def cell_results(per_seed: list[dict]) -> dict:
    """results.json's `cells` of a variant: per mode (generation, next_frame) and cell bin, cell
    accuracy (all cells, and the painted ones) mean and spread over seeds; the copy of the model's own
    frames in generation."""
    out = {"autoencoder_cell_accuracy": _mean_spread([c["autoencoder_cell_accuracy"] for c in per_seed])[0]}
    for mode in ("generation", "next_frame"):
        if not per_seed[0].get(mode):
            continue
        bins = {}
        for name, first in per_seed[0][mode]["bins"].items():
            cell = {"cells": first["cells"], "tile_cells": first.get("tile_cells"),
                    "last_frame_cell_accuracy": first["last_frame_cell_accuracy"]}
            for key in ("cell_accuracy", "tile_cell_accuracy"):
                values = [c[mode]["bins"][name].get(key) for c in per_seed]
                cell[key], cell[f"{key}_spread"] = _mean_spread(values)
                cell[f"{key}_seeds"] = values
            bins[name] = cell
        out[mode] = {"bins": bins, "psnr": _mean_spread([c[mode]["psnr"] for c in per_seed])[0],
                     "last_frame_psnr": per_seed[0][mode]["last_frame_psnr"]}
        if "self_copy" in per_seed[0][mode]:
            out[mode]["self_copy"] = {k: _mean_spread([c[mode]["self_copy"][k] for c in per_seed])[0]
                                      for k in per_seed[0][mode]["self_copy"]}
    return out


def write_reports(out_dir: Path, results: dict) -> None:
    from lssvwm_env.evaluation import plots

    memory = json.loads((out_dir / "results.json").read_text())
    cells = any(row.get("cells") for row in memory["variants"].values())
    (out_dir / "ablations.md").write_text(ablation_table(results) + "\n" + gap_table(memory)
                                          + ("\n" + cell_table(memory) if cells else ""))
    if any("metrics" in e for e in results["variants"].values()):
        plots.plot_ablations(results, out_dir / "ablations.png")
        plots.plot_ablation_gaps(results, out_dir, out_dir / "psnr_vs_gap.png")
    if cells:
        plots.plot_cell_accuracy_gaps(results, memory["window"], out_dir / "cell_accuracy_vs_gap.png")
    if all(str(results["seeds"][0]) in (results["variants"].get(v) or {}).get("seeds", {}) for v in FILMSTRIP):
        revisit_filmstrip(out_dir, results, out_dir / "revisit.png")


FILMSTRIP = ("ours", "local_attn")  # the comparison the filmstrip shows


def revisit_filmstrip(out_dir: Path, results: dict, path: Path) -> Path:
    """One revisit beyond 3x the attention window, where ours recalls the view and local attention
    does not (or the honest opposite): the episode whose revisit frames differ most between the two
    in their evaluations (first seed), generated again by both from the same noise; the frame shown
    is the one of largest difference, beside the real frame and the context frame that last showed
    the view."""
    from data_collection.dataset import Dataset
    from lssvwm_env.checkpoint import load_world_model
    from lssvwm_env.evaluation.memory import frame_scores, generate_rollouts
    from lssvwm_env.evaluation.plots import _figure, _save

    seed = str(results["seeds"][0])
    window = results["window"]
    metrics = {v: json.loads((out_dir / results["variants"][v]["seeds"][seed]["eval"] / "metrics.json").read_text())
               for v in FILMSTRIP}
    first = metrics[FILMSTRIP[0]]
    gap = np.array([[np.inf if g is None else g for g in row] for row in first["per_frame"]["gap"]], dtype=float)
    beyond = np.isfinite(gap) & (gap > 3 * window)
    if not beyond.any():
        return path
    psnr = {v: np.asarray(m["per_frame"]["psnr"]) for v, m in metrics.items()}
    difference = psnr["ours"] - psnr["local_attn"]
    per_episode = np.where(beyond, np.abs(difference), 0).sum(axis=1) / np.maximum(beyond.sum(axis=1), 1)
    e = int(per_episode.argmax())
    s = first["settings"]
    episode = Dataset.open(results["eval_data"]).load_episode(first["data"]["evaluated_episodes"][e])
    runs = {v: results["variants"][v]["seeds"][seed]["run"] for v in FILMSTRIP}
    generated, psnrs = {}, {}
    for v in FILMSTRIP:
        rollouts = generate_rollouts(load_world_model(runs[v]), [episode], s["context"], s["generate"],
                                     s["sampling_steps"], 1, seed=0)
        generated[v], truth = rollouts.generated[0].numpy(), rollouts.truth[0].numpy()
        psnrs[v] = frame_scores(rollouts)["psnr"][0]
    candidates = np.flatnonzero(beyond[e])
    t = int(candidates[np.argmax(np.abs(psnrs["ours"] - psnrs["local_attn"])[candidates])])
    seen = s["context"] + t - int(gap[e, t])  # the frame that last showed the view
    times = [max(t - 4, 0), max(t - 2, 0), t, min(t + 2, s["generate"] - 1), min(t + 4, s["generate"] - 1)]
    fig = _figure(1.3 * (len(times) + 1) + 0.8, 4.4)
    axes = fig.subplots(3, len(times) + 1, squeeze=False)
    rows = (("real", truth), ("ours", generated["ours"]), ("local attention", generated["local_attn"]))
    for r, (label, frames) in enumerate(rows):
        ax = axes[r, 0]
        ax.axis("off")
        if r == 0:
            ax.imshow(episode["frames"][seen], interpolation="nearest")
            ax.set_title(f"last seen:\nframe {seen}", fontsize=7.5)
        for c, k in enumerate(times, start=1):
            ax = axes[r, c]
            ax.imshow(frames[k], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            score = "" if r == 0 else f"\n{psnrs['ours' if r == 1 else 'local_attn'][k]:.1f} dB"
            ax.set_title(f"+{k + 1}{score}", fontsize=7.5, color="black" if k != t else "tab:red")
            if c == 1:
                ax.set_ylabel(label, fontsize=9)
    margin = psnrs["ours"][t] - psnrs["local_attn"][t]
    better = ("both are as close" if abs(margin) < 0.05 else
              f"{'ours' if margin > 0 else 'local attention'} is closer by {abs(margin):.1f} dB")
    fig.suptitle(f"episode {first['data']['evaluated_episodes'][e]}, generated frame +{t + 1}: the view was last "
                 f"seen {int(gap[e, t])} frames before (> 3x the {window}-frame window); {better}",
                 fontsize=8.5)
    return _save(fig, path)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _fmt(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ablation_table(results: dict) -> str:
    """A markdown table of ablations.json, one row per variant (means over seeds)."""
    s = results["settings"]
    header = ("| variant | PSNR | SSIM | memory PSNR | memory SSIM | novel PSNR | novel SSIM | ceiling PSNR / SSIM "
              "| training | parameters |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    rows = []
    for name, e in results["variants"].items():
        if "metrics" not in e:
            rows.append(f"| {e['label']} | not run | | | | | | | | |")
            continue
        m = e["metrics"]
        splits = m.get("splits") or {}
        memory, novel = splits.get("memory") or {}, splits.get("novel") or {}
        rows.append(f"| {e['label']} | {_fmt(m['psnr'], 2)} | {_fmt(m['ssim'], 3)} | {_fmt(memory.get('psnr'), 2)} | "
                    f"{_fmt(memory.get('ssim'), 3)} | {_fmt(novel.get('psnr'), 2)} | {_fmt(novel.get('ssim'), 3)} | "
                    f"{_fmt(m['ceiling']['psnr'], 2)} / {_fmt(m['ceiling']['ssim'], 3)} | "
                    f"{e['dynamics_steps']} steps, {e['train_gflop']:.0f} GFLOP, {_duration(e['train_wall_time_s'])} | "
                    f"{e['parameters'] / 1e6:.2f} M |")
    intro = ""
    if "context" in s:
        budget = f"{results['budget_gflop']:.0f} GFLOP of training" if results.get("budget_gflop") else "equal training"
        intro = (f"Task {s['task']}: {s['context']} frames of real context, {s['generate']} generated from actions "
                 f"alone, {s['sampling_steps']} sampling steps. Every variant: preset `{results['preset']}`, "
                 f"{budget}, the same data; means over seeds {', '.join(map(str, results['seeds']))}.\n\n")
    return intro + header + "\n".join(rows) + "\n"


def _psnr_cell(cell: dict | None) -> str:
    """A table cell: mean PSNR over seeds, ± half their range when there are several."""
    cell = cell or {}
    if cell.get("psnr") is None:
        return "–"
    spread = cell.get("psnr_spread")
    return f"{cell['psnr']:.2f}" + (f" ± {spread / 2:.2f}" if spread else "")


def gap_table(memory: dict) -> str:
    """PSNR by the gap since the view was last seen, mean ± half the spread over seeds, with cost."""
    bins = ["revisit_within_window", "revisit_window_to_3x_window", "revisit_beyond_3x_window", "novel"]
    w = memory["window"]
    titles = [f"gap <= {w}", f"gap {w + 1}-{3 * w}", f"gap > {3 * w}", "never seen"]
    lines = ["| variant | one-step PSNR | " + " | ".join(f"{t} PSNR" for t in titles)
             + f" | ms / frame at {COST_FRAME} | state MB |", "|---|---:|" + "---:|" * (len(bins) + 2)]
    for name, row in memory["variants"].items():
        cells = [_psnr_cell(row.get(b)) for b in bins]
        lines.append(f"| {name} | {_fmt(row.get('one_step_psnr'), 2)} | " + " | ".join(cells)
                     + f" | {_fmt(row.get('latency_ms_at_frame_1000'), 1)}"
                     + f" | {_fmt(row.get('state_mb_at_frame_1000'), 3)} |")
    for y in ("last_frame", "context_mean", "nearest_pose", "ceiling"):
        cells = [_fmt(((memory["yardsticks"].get(b) or {}).get(y) or {}).get("psnr"), 2) for b in bins]
        lines.append(f"| *{y.replace('_', ' ')}* | | " + " | ".join(cells) + " | | |")
    first = next(iter(memory["variants"].values()), {})
    frames = [str((first.get(b) or {}).get("frames", "–")) for b in bins]
    lines.append(f"| *frames* | | " + " | ".join(frames) + " | | |")
    for key, what in (("next_frame", "every frame of the held-out episodes"),
                      ("next_frame_turns", "only the frames reached by a turn, whose previous frame "
                                           "looked another way")):
        probed = {name: row[key] for name, row in memory["variants"].items() if row.get(key)}
        if not probed:
            continue
        lines += ["", f"Next frame from the real past ({what}, `next_frame_memory.py`), "
                  "by the gap since its view was last seen:", "",
                  "| variant | " + " | ".join(f"{t} PSNR" for t in titles) + " |", "|---|" + "---:|" * len(bins)]
        for name, probe in probed.items():
            lines.append(f"| {name} | " + " | ".join(_psnr_cell(probe.get(b)) for b in bins) + " |")
        some = next(iter(probed.values()))
        lines.append("| *previous frame* | " + " | ".join(_fmt((some.get(b) or {}).get("previous_frame_psnr"), 2)
                                                      for b in bins) + " |")
        lines.append("| *frames* | " + " | ".join(str((some.get(b) or {}).get("frames", "–")) for b in bins) + " |")
    return "\n".join(lines) + "\n"


def _accuracy_cell(cell: dict | None, key: str = "cell_accuracy") -> str:
    """A table cell: mean accuracy over seeds, ± half their range when there are several."""
    cell = cell or {}
    if cell.get(key) is None:
        return "–"
    spread = cell.get(f"{key}_spread")
    return f"{cell[key]:.3f}" + (f" ± {spread / 2:.3f}" if spread else "")


def cell_table(memory: dict) -> str:
    """Cell accuracy by the gap since each cell was last shown (colour grid), in generation and from
    the real past, with the last real frame repeated on the same cells."""
    from lssvwm_env.evaluation.grid_cells import gap_bins as cell_bins

    w = memory["window"]
    names = list(cell_bins(w))
    titles = ["previous frame", f"2-{w}", f"{w + 1}-{3 * w}", f"{3 * w + 1}-{10 * w}", f"> {10 * w}", "never seen"]
    lines = []
    for mode, what in (("generation", "generated from the actions alone after the real context (gaps count from "
                                      "the last context frame that showed the cell)"),
                       ("next_frame", "every frame from its real past")):
        rows = {name: row["cells"][mode] for name, row in memory["variants"].items()
                if (row.get("cells") or {}).get(mode)}
        if not rows:
            continue
        lines += [f"Cell accuracy, {what}; painted cells alone in brackets where the load leaves bare floor:", "",
                  "| variant | " + " | ".join(titles) + (" | own frame copied |" if mode == "generation" else " |"),
                  "|---|" + "---:|" * (len(names) + (mode == "generation"))]
        for name, r in rows.items():
            cells = []
            for b in names:
                cell = r["bins"][b]
                text = _accuracy_cell(cell)
                if cell.get("tile_cells") and cell.get("tile_cells") < cell["cells"]:
                    text += f" ({_accuracy_cell(cell, 'tile_cell_accuracy')})"
                cells.append(text)
            own = f" | {_fmt((r.get('self_copy') or {}).get('all'), 3)}" if mode == "generation" else ""
            lines.append(f"| {name} | " + " | ".join(cells) + own + " |")
        first = next(iter(rows.values()))
        lines.append("| *last frame* | " + " | ".join(_fmt(first["bins"][b]["last_frame_cell_accuracy"], 3)
                                                   for b in names) + (" | |" if mode == "generation" else " |"))
        lines.append("| *cells* | " + " | ".join(str(first["bins"][b]["cells"]) for b in names)
                     + (" | |" if mode == "generation" else " |"))
        lines.append("")
    return "\n".join(lines)

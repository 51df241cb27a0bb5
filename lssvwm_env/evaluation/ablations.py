"""The paper's ablations on our data (Po et al. 2025, §5.3; DESIGN.md "Ablations on the same data
and compute"): each variant is trained by `lssvwm train` on the same dataset with the same preset,
seed and number of steps, then run through the same memory benchmark (memory.py).

    OUT/runs/VARIANT/     training run (checkpoint, model card, TensorBoard)
    OUT/eval/VARIANT/     its memory benchmark (metrics.json, plots, videos)
    OUT/ablations.json    every variant's settings and figures
    OUT/ablations.md      the table; OUT/ablations.png the bars

Re-running the same command resumes: finished runs are kept, unfinished ones continue.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path

from lssvwm_env.models.backbone import VARIANTS


@dataclass(frozen=True)
class Ablation:
    label: str
    overrides: tuple[str, ...]  # `lssvwm train --set` overrides that make this variant


ABLATIONS: dict[str, Ablation] = {
    "ours": Ablation("ours (block-wise SSM + local attention)", ()),
    "causal_attn": Ablation("causal attention, window-limited (no SSM)", ("model.variant=causal_attn",)),
    "local_attn": Ablation("local attention only", ("model.variant=local_attn",)),
    "ssm": Ablation("SSM without block-wise scan", ("model.variant=ssm",)),
    "block1": Ablation("block-wise SSM, 1x1 blocks", ("model.variant=block1",)),
    "no_long_context": Ablation("ours without long-context training", ("model.diffusion.long_context_prob=0",)),
}
assert set(VARIANTS) <= set(ABLATIONS), "every backbone variant needs an ablation entry"


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


def training_overrides(name: str, preset_name: str, data_dir: Path, iterations: int | None,
                       causal_window: int | None, extra: list[str]) -> list[str]:
    """The `--set` list that trains variant `name` on `data_dir` with this budget."""
    from data_collection.dataset import Dataset
    from lssvwm_env.presets import preset

    config = preset(preset_name)
    overrides = list(ABLATIONS[name].overrides)
    stages = [{"window": s.window, "iterations": s.iterations, "batch_size": s.batch_size}
              for s in config.dynamics_training.curriculum]
    if iterations is not None:
        stages = scale_curriculum(stages, iterations)
        overrides.append(f"dynamics_training.curriculum={json.dumps(stages)}")
    if name == "causal_attn":
        # The paper's causal baseline attends over 192 frames, what fit its training memory; ours
        # gets the longest window it is trained on, for the same reason.
        overrides.append(f"model.causal_window={causal_window or max(s['window'] for s in stages)}")
    num_actions = Dataset.open(data_dir).manifest.num_actions
    if config.model.backbone.action.kind == "discrete" and config.model.backbone.action.n != num_actions:
        overrides.append(f"model.backbone.action.n={num_actions}")
    return overrides + list(extra)


def run_ablations(data_dir: Path, out_dir: Path, preset_name: str, variants: list[str], iterations: int | None,
                  causal_window: int | None, extra_overrides: list[str], eval_config, eval_data: Path | None,
                  threads: int = 0, log=print) -> dict:
    """Train and evaluate every variant; writes ablations.json / .md / .png and returns the results."""
    from lssvwm_env.checkpoint import load_world_model, resolve_checkpoint_dir
    from lssvwm_env.cli import main as lssvwm
    from lssvwm_env.evaluation import plots
    from lssvwm_env.evaluation.memory import evaluate_memory
    from lssvwm_env.training.data import write_json_atomic

    unknown = [v for v in variants if v not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {', '.join(ABLATIONS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"kind": "lssvwm-ablations", "data": str(data_dir.resolve()),
               "eval_data": str((eval_data or data_dir).resolve()), "preset": preset_name,
               "iterations": iterations, "extra_overrides": extra_overrides,
               "settings": {"task": eval_config.task}, "variants": {}}
    for name in variants:
        run_dir = out_dir / "runs" / name
        overrides = training_overrides(name, preset_name, data_dir, iterations, causal_window, extra_overrides)
        command = ["train", "--data", str(data_dir), "--out", str(run_dir), "--preset", preset_name]
        command += [a for o in overrides for a in ("--set", o)]
        if threads:
            command += ["--threads", str(threads)]
        if (run_dir / "checkpoint").exists():
            command.append("--resume")
        log(f"== {name}: lssvwm {shlex.join(command)}")
        entry = {"label": ABLATIONS[name].label, "overrides": overrides, "run": str(run_dir)}
        results["variants"][name] = entry
        if lssvwm(command) != 0:
            entry["error"] = f"training failed (see the output above; resume with the same command)"
            log(f"== {name}: {entry['error']}")
            continue
        progress = json.loads((resolve_checkpoint_dir(run_dir) / "training_state.json").read_text())["progress"]
        entry["train_wall_time_s"] = round(progress["wall_time_s"], 1)
        entry["dynamics_steps"] = progress["dynamics_step"]
        model = load_world_model(run_dir)
        metrics = evaluate_memory(model, eval_data or data_dir, eval_config, out_dir / "eval" / name, run_dir, log=log)
        entry["eval"] = str(Path("eval") / name)
        entry["parameters"] = metrics["checkpoint"]["parameters"]
        entry["metrics"] = {k: metrics[k] for k in ("psnr", "ssim", "lpips", "ceiling", "splits", "settings", "timing")}
        entry["metrics"]["data"] = {k: metrics["data"][k] for k in ("env", "policy", "split", "evaluated_episodes")}
        write_json_atomic(out_dir / "ablations.json", results)
    results["settings"] = next((e["metrics"]["settings"] for e in results["variants"].values() if "metrics" in e),
                               results["settings"])
    write_json_atomic(out_dir / "ablations.json", results)
    (out_dir / "ablations.md").write_text(ablation_table(results))
    if any("metrics" in e for e in results["variants"].values()):
        plots.plot_ablations(results, out_dir / "ablations.png")
    return results


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _fmt(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ablation_table(results: dict) -> str:
    """A markdown table of ablations.json, one row per variant."""
    s = results["settings"]
    header = ("| variant | PSNR | SSIM | memory PSNR | memory SSIM | novel PSNR | novel SSIM | ceiling PSNR / SSIM "
              "| training | parameters |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    rows = []
    for name, e in results["variants"].items():
        if "metrics" not in e:
            rows.append(f"| {e['label']} | {e.get('error', 'not run')} | | | | | | | | |")
            continue
        m = e["metrics"]
        splits = m.get("splits") or {}
        memory, novel = splits.get("memory") or {}, splits.get("novel") or {}
        rows.append(f"| {e['label']} | {_fmt(m['psnr'], 2)} | {_fmt(m['ssim'], 3)} | {_fmt(memory.get('psnr'), 2)} | "
                    f"{_fmt(memory.get('ssim'), 3)} | {_fmt(novel.get('psnr'), 2)} | {_fmt(novel.get('ssim'), 3)} | "
                    f"{_fmt(m['ceiling']['psnr'], 2)} / {_fmt(m['ceiling']['ssim'], 3)} | "
                    f"{e['dynamics_steps']} steps, {_duration(e['train_wall_time_s'])} | {e['parameters'] / 1e6:.2f} M |")
    intro = ""
    if "context" in s:
        budget = f"{results['iterations']} dynamics steps" if results["iterations"] else "the preset's dynamics steps"
        intro = (f"Task {s['task']}: {s['context']} frames of real context, {s['generate']} generated from actions "
                 f"alone, {s['sampling_steps']} sampling steps. Every variant: preset `{results['preset']}`, "
                 f"{budget}, the same data and seed.\n\n")
    return intro + header + "\n".join(rows) + "\n"

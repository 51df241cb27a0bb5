"""`lssvwm report`: one markdown report from evaluation outputs, our figures beside the paper's.

    lssvwm report evals/retrieval evals/reasoning evals/ablations horizon.json agents/results.md --out report/

Every input is recognised by what it holds:

    a directory with metrics.json      `lssvwm eval memory` output (retrieval or reasoning)
    a directory with ablations.json    `lssvwm eval ablations` output
    a training run directory           `lssvwm train` output (its model card)
    a .json file                       `lssvwm bench horizon --json` output (latency and memory vs horizon)
    a .md file                         results written elsewhere (e.g. agents), included as they are

REPORT_DIR gets report.md and figures/ (plots copied or drawn, videos copied), so it can be moved whole.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lssvwm_env.evaluation.paper import CITATION, PAPER_RESULTS


class ReportError(ValueError):
    pass


@dataclass
class Inputs:
    memory: list[tuple[Path, dict]] = field(default_factory=list)
    ablations: list[tuple[Path, dict]] = field(default_factory=list)
    runs: list[Path] = field(default_factory=list)
    horizon: list[Path] = field(default_factory=list)
    documents: list[Path] = field(default_factory=list)


def classify(paths: list[Path]) -> Inputs:
    """Sort the inputs by kind; ReportError names any that is none of them."""
    inputs = Inputs()
    for path in paths:
        if path.is_dir() and (path / "metrics.json").exists():
            metrics = _read_json(path / "metrics.json")
            if metrics.get("kind") != "lssvwm-memory-eval":
                raise ReportError(f"{path / 'metrics.json'} is not the output of `lssvwm eval memory`")
            inputs.memory.append((path, metrics))
        elif path.is_dir() and (path / "ablations.json").exists():
            inputs.ablations.append((path, _read_json(path / "ablations.json")))
        elif path.is_dir() and ((path / "checkpoint" / "config.json").exists() or (path / "model_card.md").exists()):
            inputs.runs.append(path)
        elif path.is_file() and path.suffix == ".json":
            data = _read_json(path)
            if not (isinstance(data, dict) and data and all(isinstance(v, dict) and "latency_ms" in v for v in data.values())):
                raise ReportError(f"{path}: a .json input must be the output of `lssvwm bench horizon --json` "
                                  "({variant: {latency_ms, peak_mem_mb, state_mb}})")
            inputs.horizon.append(path)
        elif path.is_file() and path.suffix == ".md":
            inputs.documents.append(path)
        else:
            raise ReportError(f"{path}: not a memory evaluation (metrics.json), ablations (ablations.json), training "
                              "run (checkpoint/), horizon benchmark (.json) or markdown file (.md)")
    if not any((inputs.memory, inputs.ablations, inputs.runs, inputs.horizon, inputs.documents)):
        raise ReportError("nothing to report: pass evaluation directories or files")
    return inputs


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ReportError(f"{path}: cannot read it as JSON ({err})") from err


# ---- formatting --------------------------------------------------------------------------------
def _f(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def _nest_markdown(text: str, levels: int = 2) -> str:
    """Push every heading `levels` deeper, so an included document sits under our section."""
    return re.sub(r"^(#+) ", lambda m: "#" * min(6, len(m.group(1)) + levels) + " ", text, flags=re.MULTILINE)


class Figures:
    """Copies or draws figures into REPORT_DIR/figures and gives their links relative to report.md."""

    def __init__(self, report_dir: Path) -> None:
        self.report_dir = report_dir
        self.dir = report_dir / "figures"
        self.dir.mkdir(parents=True, exist_ok=True)

    def copy(self, source: Path, name: str) -> str:
        target = self.dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return str(target.relative_to(self.report_dir))

    def path(self, name: str) -> Path:
        return self.dir / name


def _checkpoint_name(path: str) -> str:
    """A run's name for a checkpoint directory (RUN/checkpoint -> RUN)."""
    p = Path(path)
    return p.parent.name if p.name == "checkpoint" else p.name


def _unique_slugs(paths: list[Path]) -> list[str]:
    slugs, seen = [], {}
    for path in paths:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.resolve().name) or "eval"
        seen[base] = seen.get(base, 0) + 1
        slugs.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return slugs


# ---- sections ----------------------------------------------------------------------------------
def summary_section(inputs: Inputs) -> list[str]:
    """The findings in a few lines, each pointing to its section."""
    items = []
    for path, m in inputs.memory:
        s, c = m["settings"], m["ceiling"]
        paper = next((p for p in PAPER_RESULTS if p.task == m["task"]), None)
        line = (f"**{m['task'].capitalize()}** (`{path.name}`, {m['data']['env']}, {s['context']} + {s['generate']} frames): "
                f"SSIM {m['ssim']:.3f}, PSNR {m['psnr']:.2f} dB; our autoencoder alone reaches {c['ssim']:.3f} / "
                f"{c['psnr']:.2f} dB on the same frames")
        if paper:
            line += f"; the paper reports {paper.ssim:.3f} / {paper.psnr:.1f} dB on Memory Maze ({paper.context} + {paper.generate})"
        verdict = memory_verdict(m["splits"]) if m.get("splits") else None
        line += "." + (f" {verdict[1]}" if verdict else "")
        if m.get("baselines"):
            from lssvwm_env.evaluation.memory import below_yardsticks
            below = below_yardsticks(m)
            line += (f" **Below the {', '.join(n.replace('_', ' ') for n in below)} yardstick(s)**: a real context "
                     "frame shown unchanged scores better." if below else
                     f" Above every yardstick ({', '.join(n.replace('_', ' ') for n in m['baselines'])}).")
        items.append(line)
    for path, a in inputs.ablations:
        scored = {n: e for n, e in a["variants"].items() if "metrics" in e}
        if scored:
            order = sorted(scored, key=lambda n: -scored[n]["metrics"]["ssim"])
            ranking = ", ".join(f"{n} {scored[n]['metrics']['ssim']:.3f}" for n in order)
            spread = scored[order[0]]["metrics"]["ssim"] - scored[order[-1]]["metrics"]["ssim"]
            verdict = (f"best: {order[0]}" if spread >= 0.005 else
                       "all within 0.005 SSIM: no difference at this budget")
            items.append(f"**Ablations** (`{path.name}`): SSIM by variant {ranking}; {verdict}.")
    for path in inputs.horizon:
        data = json.loads(path.read_text())
        if "ours" in data and "causal_attn" in data:
            k = max(set(data["ours"]["latency_ms"]) & set(data["causal_attn"]["latency_ms"]), key=int, default=None)
            if k is not None:
                o, c = data["ours"], data["causal_attn"]
                items.append(f"**Cost** at frame {k}: ours {o['latency_ms'][k]:.1f} ms per frame with a "
                             f"{o['state_mb'][k]:.2f} MB state, causal attention {c['latency_ms'][k]:.1f} ms with "
                             f"{c['state_mb'][k]:.2f} MB ({c['latency_ms'][k] / o['latency_ms'][k]:.1f}x the latency).")
    return ["## Summary", "", *[f"- {item}" for item in items], ""] if items else []


def scale_section(inputs: Inputs) -> list[str]:
    lines = ["## Scale: ours against the paper's", "",
             f"{CITATION} trains GPU-sized models on a large Memory Maze dataset with a length curriculum of "
             "400 then 800 frames, and evaluates retrieval on 400 + 400 frames and reasoning on 576 + 224. Ours "
             "(rows above the paper's) are small models trained on CPU cores from tens of episodes, so **our "
             "numbers say whether the mechanism works at our scale; they are not a replication of the paper's "
             "figures**.", ""]
    evaluated: dict[str, list[str]] = {}  # checkpoint -> evaluations that used it
    checkpoints: dict[str, dict] = {}
    for path, m in inputs.memory:
        checkpoints.setdefault(m["checkpoint"]["path"], m["checkpoint"])
        evaluated.setdefault(m["checkpoint"]["path"], []).append(f"{m['task']} (`{path.name}`)")
    rows = []
    for key, c in checkpoints.items():
        training = c.get("training") or {}
        data = c.get("training_data") or {}
        trained = (f"{training.get('autoencoder_steps')} autoencoder + {training.get('dynamics_steps')} dynamics steps, "
                   f"{training.get('wall_time_min')} min" if training else "not recorded (inference checkpoint)")
        windows = ", ".join(str(s["window"]) for s in training.get("curriculum") or []) or "–"
        source = (f"{data['env']} ({data.get('policy')} policy), {data.get('episodes')} episodes, {data.get('frames')} frames"
                  if data.get("env") else (data.get("path") or "not recorded"))
        preset = f"{c['preset']} preset" if c.get("preset") else "preset not recorded"
        rows.append(f"| `{_checkpoint_name(c['path'])}` (variant {c['variant']}, {preset}) | {_params(c['parameters'])} | "
                    f"{trained} | {windows} | {source} | {', '.join(evaluated[key])} |")
    for path, a in inputs.ablations:
        runs = [e for e in a["variants"].values() if "metrics" in e]
        if runs:
            steps = runs[0]["dynamics_steps"]
            low, high = min(e["parameters"] for e in runs), max(e["parameters"] for e in runs)
            size = _params(low) if low == high else f"{_params(low)} to {_params(high)}"
            rows.append(f"| ablations (`{path.name}`): {len(runs)} variants, `{a['preset']}` preset | {size} | "
                        f"{steps} dynamics steps each | – | `{a['data']}` | ablations |")
    if rows:
        lines += ["| model | parameters | training | training windows (frames) | training data | evaluated in |",
                  "|---|---:|---|---|---|---|", *rows,
                  "| paper (Po et al. 2025) | GPU scale | — | 400, then 800 | Memory Maze dataset | "
                  "retrieval 400 + 400, reasoning 576 + 224 |", ""]
    return lines


def headline_section(inputs: Inputs) -> list[str]:
    from lssvwm_env.evaluation.ablations import variant_label

    lpips_notes = {m["lpips_note"] for _, m in inputs.memory if m.get("lpips") is None}
    lines = ["## Ours beside the paper", "",
             "Mean over every generated frame; the paper's rows are its reported Memory Maze figures.", "",
             "| task | model | frames | SSIM ↑ | PSNR (dB) ↑ | LPIPS ↓ | autoencoder ceiling (SSIM / PSNR) |",
             "|---|---|---|---:|---:|---:|---|"]
    for task in ("retrieval", "reasoning"):
        for p in PAPER_RESULTS:
            if p.task == task:
                lines.append(f"| {task} | paper — {p.model} | {p.context} + {p.generate} | {p.ssim:.3f} | {p.psnr:.1f} | "
                             f"{p.lpips:.3f} | not reported |")
        for path, m in inputs.memory:
            if m["task"] == task:
                s, c = m["settings"], m["ceiling"]
                lines.append(f"| {task} | **lssvwm — {variant_label(m['checkpoint']['variant'])}** (`{path.name}`, {m['data']['env']}) | "
                             f"{s['context']} + {s['generate']} | **{m['ssim']:.3f}** | **{m['psnr']:.2f}** | "
                             f"{_f(m.get('lpips'), 3) if m.get('lpips') is not None else 'not computed'} | "
                             f"{c['ssim']:.3f} / {c['psnr']:.2f} |")
        for path, a in inputs.ablations:
            if a["settings"].get("task") != task:
                continue
            for name, e in a["variants"].items():
                if "metrics" in e:
                    m, s = e["metrics"], e["metrics"]["settings"]
                    env = (m.get("data") or {}).get("env", "?")
                    lines.append(f"| {task} | lssvwm ablation — {e['label']} (`{path.name}`, {env}) | {s['context']} + {s['generate']} | "
                                 f"{m['ssim']:.3f} | {m['psnr']:.2f} | {_f(m.get('lpips'), 3) if m.get('lpips') is not None else 'not computed'} | "
                                 f"{m['ceiling']['ssim']:.3f} / {m['ceiling']['psnr']:.2f} |")
    lines.append("")
    for note in sorted(lpips_notes):
        lines += [f"{note}.", ""]
    return lines


def memory_section(path: Path, m: dict, figures: Figures, slug: str) -> list[str]:
    s, d = m["settings"], m["data"]
    title = {"retrieval": "Retrieval", "reasoning": "Reasoning"}[m["task"]]
    lines = [f"## {title}: `{path.name}`", "",
             f"{m['task_description'][0].upper() + m['task_description'][1:]}. "
             f"{len(d['evaluated_episodes'])} {d['split']} episode(s) of `{d['env']}` collected with the "
             f"`{d['policy']}` policy; {s['context']} frames of real context, then {s['generate']} frames generated "
             f"from the recorded actions alone with {s['sampling_steps']} denoising steps each "
             f"({m['timing']['ms_per_generated_frame']:.1f} ms per frame at batch {m['timing']['batch_size']}). "
             f"Checkpoint `{m['checkpoint']['path']}`.", ""]
    if s.get("clamped"):
        lines += [f"> **Lengths clamped.** {s['clamp_note']}", ""]
    splits = m.get("splits")
    if splits:
        lines += ["Frames by what the model was shown before (same view = "
                  f"{m['definitions']['same view']}):", "",
                  "| generated frames | count | PSNR (dB) | SSIM | ceiling PSNR | ceiling SSIM | PSNR below ceiling |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        labels = {"memory": "view shown in the context (memory)", "revisit_in_generation": "view seen only in generated frames",
                  "novel": "view never seen before"}
        for kind, label in labels.items():
            x = splits[kind]
            below = None if x["psnr"] is None else x["ceiling_psnr"] - x["psnr"]
            lines.append(f"| {label} | {x['frames']} | {_f(x['psnr'], 2)} | {_f(x['ssim'], 3)} | {_f(x['ceiling_psnr'], 2)} | "
                         f"{_f(x['ceiling_ssim'], 3)} | {_f(below, 2)} |")
        c = m["ceiling"]
        total = sum(x["frames"] for x in splits.values())
        lines += [f"| **all** | {total} | **{m['psnr']:.2f}** | **{m['ssim']:.3f}** | {c['psnr']:.2f} | {c['ssim']:.3f} | "
                  f"{c['psnr'] - m['psnr']:.2f} |", ""]
        verdict = memory_verdict(splits)
        if verdict:
            lines += [" ".join(verdict), ""]
    else:
        lines += [f"{m['definitions'].get('note', '')}", ""]
    lines += yardstick_lines(m)
    files = m["files"]
    lines += [f"![PSNR and SSIM over time]({figures.copy(path / files['time_plot'], f'{slug}/over_time.png')})", "",
              "*Per generated frame, mean over episodes, against the autoencoder's reconstruction of the same real "
              "frame (dashed). The strip below shows which frames' views the context showed.*", ""]
    if "gap_plot" in files:
        lines += [f"![PSNR and SSIM against the gap]({figures.copy(path / files['gap_plot'], f'{slug}/vs_gap.png')})", "",
                  "*Binned by the frames since the agent last had the same view (octaves); frames with no earlier "
                  "view on the right.*", ""]
    lines += [f"![Frames]({figures.copy(path / files['filmstrip'], f'{slug}/frames.png')})", ""]
    videos = [figures.copy(path / v, f"{slug}/{Path(v).name}") for v in files.get("videos", [])]
    if videos:
        lines += ["Videos (ground truth | generated | error): " + ", ".join(f"[{Path(v).name}]({v})" for v in videos), ""]
    return lines


def yardstick_lines(m: dict) -> list[str]:
    """The model beside the yardsticks on the same frames, overall and by frames since the context."""
    if not m.get("baselines"):
        return []  # metrics.json written before the yardsticks existed
    from lssvwm_env.evaluation.memory import below_yardsticks
    names = list(m["baselines"])
    lines = ["Against trivial predictions of the same frames (PSNR dB / SSIM; yardsticks.py):", "",
             "| frames after the context | model | " + " | ".join(n.replace("_", " ") for n in names) + " |",
             "|---|---:|" + "---:|" * len(names)]
    rows = [("all", m["psnr"], m["ssim"], m["baselines"])] + [
        (label, h["psnr"], h["ssim"], h["baselines"]) for label, h in m.get("horizon", {}).items()]
    for label, psnr, ssim, baselines in rows:
        lines.append(f"| {label} | {psnr:.2f} / {ssim:.3f} | " + " | ".join(
            f"{baselines[n]['psnr']:.2f} / {baselines[n]['ssim']:.3f}" for n in names) + " |")
    below = below_yardsticks(m)
    if below:
        lines += ["", f"> **Below the {', '.join(n.replace('_', ' ') for n in below)} yardstick(s):** over all generated "
                      "frames the model scores worse than showing a real context frame unchanged; it has not learnt the "
                      "world yet, whatever its PSNR."]
    return lines + [""]


def memory_verdict(splits: dict) -> tuple[str, str] | None:
    """(measurement, conclusion): do remembered views come out better than new ones, measured as the
    distance below the ceiling of the same frames (which removes how hard each kind of view is to encode)."""
    mem, novel = splits["memory"], splits["novel"]
    if not (mem["frames"] and novel["frames"]):
        return None
    below_mem, below_novel = mem["ceiling_psnr"] - mem["psnr"], novel["ceiling_psnr"] - novel["psnr"]
    text = (f"Below the autoencoder ceiling of the same frames: {below_mem:.2f} dB on views the context showed, "
            f"{below_novel:.2f} dB on new views.")
    if below_novel - below_mem > 0.5:
        return text, "Remembered views come out closer to what the autoencoder can reproduce: the model draws on its memory."
    if below_mem - below_novel > 0.5:
        return text, "Remembered views come out worse than new ones: no sign of retrieval."
    return text, "The difference is under 0.5 dB: no clear sign of retrieval at this scale."


def ablations_section(path: Path, a: dict, figures: Figures, slug: str) -> list[str]:
    from lssvwm_env.evaluation.ablations import ablation_table

    lines = [f"## Ablations: `{path.name}`", "",
             "Each variant trained by `lssvwm train` on the same data with the same preset, seed and steps, then "
             "evaluated as above. The paper's ablations are at its scale; ours show the ordering at ours.", "",
             ablation_table(a).rstrip(), ""]
    if (path / "ablations.png").exists():
        lines += [f"![Ablations]({figures.copy(path / 'ablations.png', f'{slug}/ablations.png')})", ""]
    return lines


def horizon_section(path: Path, figures: Figures, slug: str) -> list[str]:
    from lssvwm_env.evaluation.ablations import ABLATIONS, variant_label
    from lssvwm_env.evaluation.plots import HORIZON_LABELS, plot_horizon

    data = json.loads(path.read_text())
    png = plot_horizon(path, figures.path(f"{slug}.png"), {name: a.label for name, a in ABLATIONS.items()})
    frames = sorted({int(f) for v in data.values() for f in v["latency_ms"]})
    lines = ["## Cost against the horizon", "",
             f"One generated frame after k frames of history (`{path.name}`, from `lssvwm bench horizon --json`). "
             "Our state is constant-size, so latency and memory stay flat; a causal-attention model keeps a KV "
             "cache of every past frame.", "",
             f"![Latency and memory against the horizon]({png.relative_to(figures.report_dir)})", "",
             "| variant | " + " | ".join(f"k = {k}" for k in frames) + " |",
             "|---|" + "---:|" * len(frames)]
    for variant, r in data.items():
        cells = []
        for k in frames:
            key = str(k)
            if key in r["latency_ms"]:
                synthetic = r.get("history", {}).get(key) == "synthetic"
                cells.append(f"{r['latency_ms'][key]:.1f} ms, {r['state_mb'][key]:.2f} MB state"
                             + (" (synthetic cache)" if synthetic else ""))
            else:
                cells.append("–")
        lines.append(f"| {HORIZON_LABELS.get(variant) or variant_label(variant)} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def document_section(path: Path) -> list[str]:
    text = path.read_text().strip()
    first = re.match(r"^#+ (.+)$", text, flags=re.MULTILINE)
    title = first.group(1) if first and text.startswith("#") else path.stem
    if first and text.startswith("#"):
        text = text[first.end():].strip()
    return [f"## {title}", "", f"*Included from `{path}`.*", "", _nest_markdown(text, 1), ""]


def run_section(path: Path) -> list[str]:
    card = path / "checkpoint" / "model_card.md"  # written with the weights the evaluations loaded
    if not card.exists():
        card = path / "model_card.md"
    if not card.exists():
        return [f"## Training run `{path.name}`", "", "No model card found.", ""]
    text = card.read_text().strip()
    text = re.sub(r"^# .*\n", "", text).strip()
    return [f"## Training run `{path.name}`", "", _nest_markdown(text, 1), ""]


def caveats(inputs: Inputs) -> list[str]:
    lines = ["## What differs from the paper", ""]
    items = ["**Scale.** Tiny models trained on a CPU for minutes, from tens of episodes; the paper's models and "
             "data are orders of magnitude larger. Compare orderings and the gap to the ceiling, not absolute values."]
    envs = sorted({m["data"]["env"] for _, m in inputs.memory})
    if envs and any(not e.startswith("memory-maze-9x9") for e in envs):
        items.append(f"**Environment.** Evaluated on {', '.join(f'`{e}`' for e in envs)}; the paper's figures are "
                     "Memory Maze.")
    if any(m["settings"].get("clamped") for _, m in inputs.memory):
        items.append("**Lengths.** Some evaluations use shorter context and generation than the paper's, because the "
                     "episodes are shorter (see the clamp notes above).")
    if any(m.get("lpips") is None for _, m in inputs.memory):
        items.append("**LPIPS** is missing: its pretrained network is not available offline here.")
    items.append("**Ceiling.** Our autoencoder's reconstruction bounds every generated frame; the paper does not "
                 "report its own, so part of any gap to its figures is the autoencoder's.")
    items.append("**Revisits** come from the recorded pose (same maze cell, similar heading), a proxy for "
                 "\"the same view\": walls between cells and objects are not modelled.")
    return lines + [f"- {item}" for item in items] + [""]


def render(inputs: Inputs, out_dir: Path, title: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = Figures(out_dir)
    lines = [f"# {title}", "", f"*Generated by `lssvwm report` on {datetime.date.today().isoformat()}.*", ""]
    lines += summary_section(inputs)
    lines += scale_section(inputs)
    if inputs.memory or inputs.ablations:
        lines += headline_section(inputs)
    for (path, m), slug in zip(inputs.memory, _unique_slugs([p for p, _ in inputs.memory])):
        lines += memory_section(path, m, figures, slug)
    for (path, a), slug in zip(inputs.ablations, _unique_slugs([p for p, _ in inputs.ablations])):
        lines += ablations_section(path, a, figures, slug)
    for path, slug in zip(inputs.horizon, _unique_slugs([p.with_suffix("") for p in inputs.horizon])):
        lines += horizon_section(path, figures, slug)
    for path in inputs.runs:
        lines += run_section(path)
    for path in inputs.documents:
        lines += document_section(path)
    lines += caveats(inputs)
    report = out_dir / "report.md"
    report.write_text("\n".join(lines).rstrip() + "\n")
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                        help="eval memory / eval ablations output directories, training run directories, "
                             "`lssvwm bench horizon --json` output (.json), markdown results (.md)")
    parser.add_argument("--out", type=Path, required=True, help="report directory: report.md and figures/")
    parser.add_argument("--title", default="lssvwm: long-context memory of the world model")


def run(args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.inputs if not p.exists()]
    if missing:
        print(f"lssvwm report: error: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 1
    try:
        report = render(classify(args.inputs), args.out, args.title)
    except ReportError as err:
        print(f"lssvwm report: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {report}")
    return 0

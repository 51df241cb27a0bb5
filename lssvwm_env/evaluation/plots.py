"""The evaluation's figures, as PNG files (matplotlib, no display needed).

Each function takes results as written to disk (metrics.json of `lssvwm eval memory`, the JSON of
`lssvwm bench horizon --json`, ablations.json) and writes one PNG, so the report can redraw any of them
from files alone:

    plot_horizon(Path("horizon.json"), Path("horizon.png"))
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

COLORS = {"generated": "#1f77b4", "ceiling": "#7f7f7f", "memory": "#2ca02c",
          "revisit_in_generation": "#ff7f0e", "novel": "#d62728"}
KIND_LABELS = {"memory": "shown in the context (memory)", "revisit_in_generation": "seen only in generated frames",
               "novel": "never seen before"}
# In the horizon benchmark the causal baseline keeps every past frame (no window): label it so.
HORIZON_LABELS = {"ours": "ours (constant-size state)", "causal_attn": "causal attention (KV cache of all past frames)"}
VARIANT_COLORS = {"ours": "#1f77b4", "causal_attn": "#d62728", "local_attn": "#9467bd", "ssm": "#8c564b",
                  "block1": "#e377c2", "no_long_context": "#17becf", "causal_full": "#d62728",
                  "causal_window": "#ff7f0e", "ssm_only": "#bcbd22", "ours_floor": "#2ca02c"}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display backend
    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average, shrinking at the ends (so the curve keeps its length)."""
    if window <= 1:
        return values
    kernel = np.ones(window)
    return np.convolve(values, kernel, mode="same") / np.convolve(np.ones_like(values), kernel, mode="same")


def _title(metrics: dict) -> str:
    s = metrics["settings"]
    return (f"{metrics['task']}: {s['context']} context + {s['generate']} generated frames, "
            f"{len(metrics['data']['evaluated_episodes'])} episode(s) of {metrics['data']['env']}")


# ---- memory benchmark --------------------------------------------------------------------------
YARDSTICK_STYLES = {"last_frame": {"color": "#d62728", "linestyle": ":"},
                    "context_mean": {"color": "#9467bd", "linestyle": ":"},
                    "nearest_pose": {"color": "#8c564b", "linestyle": "-."}}


def plot_memory_over_time(metrics: dict, path: Path) -> Path:
    """PSNR and SSIM of each generated frame (mean over episodes) against frames since the context
    ended, with the autoencoder ceiling; below, which share of frames showed a view from memory."""
    curves = metrics["curves"]["time"]
    kinds = metrics["per_frame"]["kind"]
    n = len(curves["psnr"])
    x = np.arange(1, n + 1)
    window = max(1, n // 40)
    fig = _figure(10, 4.6 if kinds else 3.6)
    grid = fig.add_gridspec(2 if kinds else 1, 2, height_ratios=[3, 1] if kinds else [1])
    for column, (name, unit) in enumerate((("psnr", "PSNR (dB)"), ("ssim", "SSIM"))):
        ax = fig.add_subplot(grid[0, column])
        values = np.asarray(curves[name])
        ax.plot(x, values, color=COLORS["generated"], alpha=0.25, linewidth=0.8)
        ax.plot(x, smooth(values, window), color=COLORS["generated"], linewidth=1.8,
                label="generated" + (f" ({window}-frame mean)" if window > 1 else ""))
        ax.plot(x, smooth(np.asarray(curves[f"ceiling_{name}"]), window), color=COLORS["ceiling"],
                linestyle="--", linewidth=1.4, label="autoencoder ceiling")
        for yardstick, style in YARDSTICK_STYLES.items():
            if f"{yardstick}_{name}" in curves:
                ax.plot(x, smooth(np.asarray(curves[f"{yardstick}_{name}"]), window), linewidth=1.1, **style,
                        label=yardstick.replace("_", " ") + " (yardstick)")
        ax.set_ylabel(unit)
        ax.set_xlim(1, max(n, 2))
        ax.grid(alpha=0.3)
        if column == 0:
            ax.legend(loc="lower left", fontsize=8)
        if not kinds:
            ax.set_xlabel("frames generated since the context ended")
    if kinds:
        ax = fig.add_subplot(grid[1, :])
        kinds = np.asarray(kinds)
        shares = [np.mean(kinds == kind, axis=0) for kind in KIND_LABELS]
        ax.stackplot(x, *shares, colors=[COLORS[k] for k in KIND_LABELS], labels=list(KIND_LABELS.values()),
                     alpha=0.7, step="mid")
        ax.set_xlim(1, max(n, 2))
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of\nframes", fontsize=8)
        ax.set_xlabel("frames generated since the context ended")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.55), ncol=3, fontsize=8, frameon=False)
    fig.suptitle(_title(metrics), fontsize=10)
    return _save(fig, path)


def plot_memory_vs_gap(metrics: dict, path: Path) -> Path:
    """Mean PSNR and SSIM of generated frames binned by the gap since the view was last seen
    (octave bins), with never-seen views apart, and the ceiling of the same frames."""
    gap = metrics["curves"]["gap"]
    rows = list(gap["bins"])
    labels = [f"{r['low']}" if r["high"] - r["low"] == 1 else f"{r['low']}–{r['high'] - 1}" for r in rows]
    if gap["never"]["frames"]:
        rows.append(gap["never"])
        labels.append("never")
    fig = _figure(10, 3.8)
    if not rows:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no generated frames", ha="center", va="center")
        return _save(fig, path)
    x = np.arange(len(rows))
    for column, (name, unit) in enumerate((("psnr", "PSNR (dB)"), ("ssim", "SSIM"))):
        ax = fig.add_subplot(1, 2, column + 1)
        values = [r[name] for r in rows]
        ceiling = [r[f"ceiling_{name}"] for r in rows]
        seen = len(gap["bins"])
        ax.plot(x[:seen], values[:seen], "o-", color=COLORS["generated"], label="generated", zorder=3)
        ax.plot(x[:seen], ceiling[:seen], "s--", color=COLORS["ceiling"], label="autoencoder ceiling")
        if seen < len(rows):  # the never-seen point stands apart: it has no gap
            ax.plot(x[seen:], values[seen:], "o", color=COLORS["novel"], label="never seen before", zorder=3)
            ax.plot(x[seen:], ceiling[seen:], "s", color=COLORS["ceiling"])
            ax.axvline(seen - 0.5, color="black", linewidth=0.6, alpha=0.4)
        ax.set_xticks(x, labels, rotation=45 if len(rows) > 8 else 0, fontsize=8)
        ax.set_xlabel("gap: frames since the agent last had this view")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        for xi, r in zip(x, rows):  # frame counts along the top edge, clear of the data
            ax.annotate(f"n={r['frames']}", (xi, 1.0), xycoords=("data", "axes fraction"), textcoords="offset points",
                        xytext=(0, -3), ha="center", va="top", fontsize=7, color="#555555")
        ax.margins(y=0.15)
        if column == 0:
            ax.legend(fontsize=8, loc="best")
    fig.suptitle(_title(metrics) + f"; same view = same cell, heading within "
                 f"{metrics['settings']['heading_tolerance_deg']:g}°", fontsize=10)
    return _save(fig, path)


def plot_filmstrip(truth: np.ndarray, generated: np.ndarray, metrics: dict, path: Path, columns: int = 8) -> Path:
    """Ground truth, generated and error frames of one episode at evenly spaced times; each column
    says how far into the generation it is and whether the context showed the view."""
    from lssvwm_env.evaluation.videos import error_map

    n = len(truth)
    times = np.unique(np.linspace(0, n - 1, min(columns, n)).round().astype(int))
    kinds = metrics["per_frame"]["kind"]
    gaps = metrics["per_frame"]["gap"]
    fig = _figure(1.25 * len(times) + 0.9, 4.3)
    rows = (("ground truth", truth), ("generated", generated), ("error", error_map(generated, truth)))
    axes = fig.subplots(3, len(times), squeeze=False)
    short = {"memory": "memory", "revisit_in_generation": "gen. revisit", "novel": "novel"}
    for c, t in enumerate(times):
        for r, (label, frames) in enumerate(rows):
            ax = axes[r, c]
            ax.imshow(frames[t], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
        title = f"+{t + 1}"
        if kinds:
            kind, gap = kinds[0][t], gaps[0][t]
            title += f"\n{short[kind]}" + (f", gap {gap}" if gap is not None else "")
            axes[0, c].set_title(title, fontsize=7.5, color=COLORS[kind])
        else:
            axes[0, c].set_title(title, fontsize=7.5)
    fig.suptitle(f"episode {metrics['data']['evaluated_episodes'][0]}: frames after the context "
                 f"(+k = k-th generated frame)", fontsize=9)
    return _save(fig, path)


# ---- horizon benchmark -------------------------------------------------------------------------
def plot_horizon(json_path: Path, path: Path, labels: dict[str, str] | None = None) -> Path:
    """The JSON of `lssvwm bench horizon --json` ({variant: {"latency_ms": {frame: ms}, "peak_mem_mb":
    {...}, "state_mb": {...}, "history": {frame: "real"|"synthetic"}}}) -> latency, peak memory and
    state size against the frame index (log x). Points measured on a synthetic KV cache (history
    grown with random keys of the real size) are drawn hollow."""
    results = json.loads(Path(json_path).read_text())
    if not isinstance(results, dict) or not results:
        raise ValueError(f"{json_path}: expected the JSON object printed by `lssvwm bench horizon --json`")
    panels = (("latency_ms", "latency per frame (ms)", False), ("peak_mem_mb", "peak memory, process RSS (MB)", False),
              ("state_mb", "recurrent state (MB)", True))
    fig = _figure(12, 3.8)
    axes = fig.subplots(1, 3)
    order = sorted(results, key=lambda v: (v != "ours", v != "causal_attn", v))
    any_synthetic = False
    for ax, (key, label, log_y) in zip(axes, panels):
        for variant in order:
            series = results[variant].get(key)
            if not series:
                continue
            frames = sorted(series, key=int)
            x = np.array([int(f) for f in frames])
            y = np.array([series[f] for f in frames], dtype=float)
            color = VARIANT_COLORS.get(variant)
            label = HORIZON_LABELS.get(variant) or (labels or {}).get(variant, variant)
            line = ax.plot(x, y, "-", color=color, linewidth=1.6, label=label)[0]
            synthetic = np.array([results[variant].get("history", {}).get(f) == "synthetic" for f in frames])
            any_synthetic |= bool(synthetic.any())
            ax.plot(x[~synthetic], y[~synthetic], "o", color=line.get_color())
            ax.plot(x[synthetic], y[synthetic], "o", markerfacecolor="white", color=line.get_color())
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("frame index (frames already in the context)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    note = "; hollow points: KV cache grown with random keys and values of the real size" if any_synthetic else ""
    fig.suptitle(f"cost of one generated frame against the horizon{note}", fontsize=10)
    return _save(fig, path)


# ---- ablations ---------------------------------------------------------------------------------
def plot_ablations(results: dict, path: Path) -> Path:
    """ablations.json -> PSNR and SSIM per variant as points (close values stay readable): all
    generated frames, those whose view the context showed (memory) and never-seen ones, with each
    variant's autoencoder ceiling as a black bar."""
    variants = [v for v in results["variants"] if results["variants"][v].get("metrics")]
    groups = (("all", None, "o"), ("memory", "memory", "^"), ("novel", "novel", "v"))
    fig = _figure(max(8.0, 1.1 * len(variants) + 4), 4.0)
    axes = fig.subplots(1, 2)
    x = np.arange(len(variants))
    for ax, (name, unit) in zip(axes, (("psnr", "PSNR (dB)"), ("ssim", "SSIM"))):
        ceilings = [results["variants"][v]["metrics"]["ceiling"][name] for v in variants]
        ax.plot(x, ceilings, "_", color="black", markersize=28, markeredgewidth=1.5, label="autoencoder ceiling")
        for g, (group, kind, marker) in enumerate(groups):
            values = []
            for v in variants:
                m = results["variants"][v]["metrics"]
                value = m[name] if kind is None else ((m.get("splits") or {}).get(kind) or {}).get(name)
                values.append(np.nan if value is None else value)
            color = COLORS["generated"] if kind is None else COLORS[kind]
            label = "all generated frames" if kind is None else KIND_LABELS[kind]
            ax.plot(x + (g - 1) * 0.18, values, marker, color=color, markersize=8, linestyle="none", label=label)
        ax.set_xticks(x, variants, rotation=20 if len(variants) > 4 else 0, fontsize=8)
        ax.set_xlim(-0.6, len(variants) - 0.4)
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"ablations ({results['settings']['task']}): same data, preset and training steps", fontsize=10)
    return _save(fig, path)


def plot_ablation_gaps(results: dict, out_dir: Path, path: Path) -> Path:
    """ablations.json (and the evaluations under out_dir) -> PSNR of generated frames against the gap since the view was last seen
    (octave bins), one line per variant (mean over seeds, the seeds' range as a band), the
    yardsticks of the same frames dashed, and the attention window marked."""
    from lssvwm_env.evaluation.revisits import gap_bins

    per_variant = {}
    max_gap = 1
    for name, entry in results["variants"].items():
        runs = []
        for seed in entry["seeds"].values():
            m = json.loads((Path(out_dir) / seed["eval"] / "metrics.json").read_text())
            gap = np.array([[np.inf if g is None else g for g in row] for row in m["per_frame"]["gap"]], dtype=float)
            runs.append((gap, {k: np.asarray(v) for k, v in m["per_frame"].items() if k.endswith("psnr")}))
            finite = gap[np.isfinite(gap)]
            max_gap = max(max_gap, int(finite.max()) if finite.size else 1)
        if runs:
            per_variant[name] = runs
    bins = gap_bins(max_gap)
    centers = np.array([np.sqrt(low * (high - 1)) if high - low > 1 else low for low, high in bins])

    def curve(runs, key):
        rows = []
        for gap, scores in runs:
            rows.append([scores[key][(gap >= low) & (gap < high)].mean() if ((gap >= low) & (gap < high)).any()
                         else np.nan for low, high in bins])
        return np.array(rows)

    fig = _figure(8.5, 4.2)
    ax = fig.add_subplot()
    for name, runs in per_variant.items():
        values = curve(runs, "psnr")
        keep = ~np.isnan(values).all(axis=0)  # bins with frames in some seed
        values, x = values[:, keep], centers[keep]
        color = VARIANT_COLORS.get(name)
        ax.plot(x, np.nanmean(values, axis=0), "o-", color=color, label=name, zorder=3)
        if len(runs) > 1:
            ax.fill_between(x, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=color, alpha=0.15)
    first = next(iter(per_variant.values()), None)
    if first:
        for key, style in (("last_frame_psnr", ":"), ("context_mean_psnr", "--"), ("nearest_pose_psnr", "-.")):
            if key in first[0][1]:
                values = curve(first[:1], key)[0]
                label = key.removesuffix("_psnr").replace("_", " ") + " (yardstick)"
                if np.nanmax(values) > 60:  # exact recall (e.g. MiniGrid: same pose, same frame) would flatten the rest
                    ax.plot([], [], style, color="black", alpha=0.6,
                            label=f"{label}: {np.nanmin(values):.0f}-{np.nanmax(values):.0f} dB, off the axis")
                    continue
                ax.plot(centers[~np.isnan(values)], values[~np.isnan(values)], style, color="black", alpha=0.6,
                        label=label)
    window = results.get("window")
    if window:
        for x, text in ((window, "window"), (3 * window, "3x window")):
            ax.axvline(x, color="grey", linewidth=0.8, alpha=0.6)
            ax.text(x, 1.0, f" {text}", transform=ax.get_xaxis_transform(), fontsize=7, va="top", color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("gap: frames since the agent last had this view (octave bins)")
    ax.set_ylabel("PSNR of generated frames (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, frameon=False)
    seeds = ", ".join(map(str, results.get("seeds", [])))
    fig.suptitle(f"ablations: PSNR against the revisit gap (mean over seeds {seeds}; band: their range)", fontsize=10)
    return _save(fig, path)


def plot_cell_accuracy_gaps(results: dict, window: int, path: Path) -> Path:
    """Colour grid: cell accuracy against the frames since each cell was last shown (octave bins),
    in generation and from the real past, one line per variant (mean over seeds, their range as a
    band), the last real frame repeated dashed, and each variant's accuracy on never-seen cells (a
    guess: its chance) dotted."""
    fig = _figure(11, 4.2)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, mode, title in zip(axes, ("generation", "next_frame"),
                               ("generated from the actions after the real context", "every frame from its real past")):
        yardstick = None
        for name, entry in results["variants"].items():
            runs = [seed["cells"][mode] for seed in entry["seeds"].values() if (seed.get("cells") or {}).get(mode)]
            if not runs:
                continue
            lows = sorted({point["low"] for run in runs for point in run["gap_curve"]})
            values = np.array([[next((p["cell_accuracy"] for p in run["gap_curve"] if p["low"] == low), np.nan)
                                for low in lows] for run in runs])
            x = np.array([np.sqrt(low * (2 * low - 1)) for low in lows])
            color = VARIANT_COLORS.get(name)
            ax.plot(x, np.nanmean(values, axis=0), "o-", color=color, label=name, zorder=3)
            if len(runs) > 1:
                ax.fill_between(x, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=color, alpha=0.15)
            guess = np.mean([run["bins"]["never_seen"]["cell_accuracy"] for run in runs
                             if run["bins"]["never_seen"]["cells"]] or [np.nan])
            ax.axhline(guess, color=color, linestyle=":", linewidth=1, alpha=0.8)
            if yardstick is None:
                yardstick = (x, [next(p["last_frame_cell_accuracy"] for p in runs[0]["gap_curve"] if p["low"] == low)
                                 if any(p["low"] == low for p in runs[0]["gap_curve"]) else np.nan for low in lows])
        if yardstick is not None:
            ax.plot(*yardstick, "--", color="black", alpha=0.6, label="last real frame repeated")
        ax.plot([], [], ":", color="grey", label="never-seen cells (a guess)")
        for x, text in ((window, "window"), (3 * window, "3x window")):
            ax.axvline(x, color="grey", linewidth=0.8, alpha=0.6)
            ax.text(x, 1.0, f" {text}", transform=ax.get_xaxis_transform(), fontsize=7, va="top", color="grey")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("frames since the cell was last shown (octave bins)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("cell accuracy (colour drawn right)")
    axes[0].legend(fontsize=7, frameon=False)
    seeds = ", ".join(map(str, results.get("seeds", [])))
    fig.suptitle(f"colour grid: cell accuracy against the gap (mean over seeds {seeds}; band: their range)", fontsize=10)
    return _save(fig, path)

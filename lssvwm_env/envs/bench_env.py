"""`lssvwm bench env`: imagined steps per second of the batched env at several batch sizes, beside
the real env's steps per second measured in the same run: in one process, and machine-wide with one
process per core (`--real-workers`), as its users run it (SB3's SubprocVecEnv, Gymnasium's
AsyncVectorEnv); the last lines give imagined / real machine-wide.

Imagined steps are timed without resets (priming is timed apart, as "reset s"): a step's cost is
the same at any horizon, so the figure holds for any episode length. The real env's first
--context frames and actions also prime the imagined envs when the checkpoint ships no context.npz.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint or run directory (default: the model shipped with the package)")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 8, 32, 128], help="batch sizes to time")
    parser.add_argument("--steps", type=int, default=20, help="timed batch steps per batch size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batch steps first")
    parser.add_argument("--context", type=int, default=32, help="frames of real context per reset")
    parser.add_argument("--sampling-steps", type=int, default=None, help="denoising steps per frame (default: the model's)")
    parser.add_argument("--dataset", type=Path, default=None, help="prime on this dataset's eval episodes")
    parser.add_argument("--obs-type", choices=("pixels", "latent", "features"), default="pixels",
                        help="what the imagined envs observe: latent and features skip the decoder (default pixels)")
    parser.add_argument("--decoder", choices=("full", "student"), default="full",
                        help="the checkpoint's decoder, or its student (lssvwm distill-decoder)")
    parser.add_argument("--real-env", default="memory-maze-9x9", help="the real env to time ('none': skip)")
    parser.add_argument("--real-steps", type=int, default=200, help="timed steps of the real env (per process)")
    parser.add_argument("--real-workers", type=int, default=os.cpu_count() or 1,
                        help="processes for the machine-wide real figure (default: the number of cores; 1: skip)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here ('-': stdout)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile --steps batch steps at the largest batch size: the share of a step in "
                             "denoising passes, the commit pass, the decoder and the rest, and the costliest ops")


def bench_real_env(name: str, steps: int, seed: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Random actions in the real env: (figures, the episode's frames and actions)."""
    from data_collection.envs import make_env

    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    with make_env(name) as env:
        step = env.reset(seed)
        reset_s = time.perf_counter() - start
        frames, actions = [step.frame], []
        start = time.perf_counter()
        for _ in range(steps):
            actions.append(int(rng.integers(env.action_space.n)))
            step = env.step(actions[-1])
            frames.append(step.frame)
            if step.terminated or step.truncated:
                break
        elapsed = time.perf_counter() - start
    figures = {"env": f"real {name}", "num_envs": 1, "steps": len(actions), "steps_per_s": len(actions) / elapsed,
               "ms_per_batch_step": 1000 * elapsed / len(actions), "reset_s": reset_s}
    # Dataset alignment: actions[t] after frames[t]; the last frame has no action yet.
    return figures, {"frames": np.stack(frames), "actions": np.array(actions + [0], dtype=np.int64)}


def bench_imagined(num_envs: int, args: argparse.Namespace, options: dict[str, Any],
                   profile: bool = False) -> dict[str, Any]:
    from lssvwm_env.envs.world_model_env import ImaginedBatch, ImaginedEnvOptions

    batch = ImaginedBatch(num_envs, ImaginedEnvOptions(checkpoint=args.checkpoint, device=args.device,
                                                       sampling_steps=args.sampling_steps, context=args.context,
                                                       dataset=args.dataset, obs_type=args.obs_type,
                                                       decoder=args.decoder))
    batch.seed(np.random.default_rng(args.seed), reseed=True)
    batch.set_source(options)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    batch.reset(np.ones(num_envs, dtype=bool))
    reset_s = time.perf_counter() - start
    for _ in range(args.warmup):
        batch.step(rng.integers(batch.num_actions, size=num_envs))
    start = time.perf_counter()
    for _ in range(args.steps):
        batch.step(rng.integers(batch.num_actions, size=num_envs))
    elapsed = time.perf_counter() - start
    row = {"env": f"imagined ({Path(batch.checkpoint_dir).name}, {args.obs_type})",
           "checkpoint": str(batch.checkpoint_dir),
           "num_envs": num_envs, "steps": args.steps * num_envs,
           "steps_per_s": args.steps * num_envs / elapsed, "ms_per_batch_step": 1000 * elapsed / args.steps,
           "reset_s": reset_s, "state_bytes_per_env": batch.state.nbytes() // num_envs}
    if profile:  # after the timing, which the profiler would slow
        row["profile"] = profile_steps(batch, args.steps, rng)
    return row


PROFILE_STEP = "imagined batch step"
PROFILE_TOP_OPS = 12


def profile_steps(batch, steps: int, rng: np.random.Generator) -> dict[str, Any]:
    """Where a batch step's time goes: each part's share of it (WorldModel's profiler labels; the rest
    is the env's own work: actions, observations, copies) and the ops with the most CPU time of their own."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from lssvwm_env.models.world_model import PROFILE_COMMIT, PROFILE_DECODE, PROFILE_DENOISE

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            with record_function(PROFILE_STEP):
                batch.step(rng.integers(batch.num_actions, size=batch.num_envs))
    events = {e.key: e for e in prof.key_averages()}
    total = events[PROFILE_STEP].cpu_time_total
    parts = {label: events[label].cpu_time_total / total if label in events else 0.0
             for label in (PROFILE_DENOISE, PROFILE_COMMIT, PROFILE_DECODE)}
    parts["rest of the step"] = max(0.0, 1.0 - sum(parts.values()))
    labels = {PROFILE_STEP, PROFILE_DENOISE, PROFILE_COMMIT, PROFILE_DECODE}
    ops = sorted((e for e in prof.key_averages() if e.key not in labels), key=lambda e: -e.self_cpu_time_total)
    self_total = sum(e.self_cpu_time_total for e in prof.key_averages())
    return {"num_envs": batch.num_envs, "steps": steps, "ms_per_batch_step": total / 1000 / steps,
            "share_of_step": parts,
            "top_ops_share_of_self_time": {e.key: e.self_cpu_time_total / self_total for e in ops[:PROFILE_TOP_OPS]}}


def format_profile(profile: dict[str, Any]) -> str:
    lines = [f"profile of {profile['steps']} batch steps of {profile['num_envs']} envs "
             f"({profile['ms_per_batch_step']:.1f} ms per step under the profiler):"]
    lines += [f"  {share:6.1%}  {part}" for part, share in profile["share_of_step"].items()]
    lines.append("  ops with the most CPU time of their own:")
    lines += [f"  {share:6.1%}  {op}" for op, share in profile["top_ops_share_of_self_time"].items()]
    return "\n".join(lines)


def _real_worker(job: tuple[str, int, int]) -> tuple[int, float, float]:
    name, steps, seed = job
    figures, _ = bench_real_env(name, steps, seed)
    return figures["steps"], figures["steps"] / figures["steps_per_s"], figures["reset_s"]


def bench_real_env_workers(name: str, steps: int, seed: int, workers: int) -> dict[str, Any]:
    """`workers` processes, each stepping its own real env with random actions at the same time:
    machine-wide steps/s = all their steps over the longest one's stepping time."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        results = pool.map(_real_worker, [(name, steps, seed + w) for w in range(workers)])
    total, slowest = sum(r[0] for r in results), max(r[1] for r in results)
    return {"env": f"real {name}, {workers} processes", "num_envs": workers, "steps": total,
            "steps_per_s": total / slowest, "ms_per_batch_step": 1000 * slowest / (total / workers),
            "reset_s": max(r[2] for r in results)}


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'env':<48} {'num_envs':>8} {'steps/s':>10} {'ms/batch step':>14} {'reset s':>8} {'state KB/env':>13}"]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['env']:<48} unavailable: {row['error']}")
            continue
        state = f"{row['state_bytes_per_env'] / 1024:.1f}" if "state_bytes_per_env" in row else "-"
        lines.append(f"{row['env'][:48]:<48} {row['num_envs']:>8} {row['steps_per_s']:>10.1f} "
                     f"{row['ms_per_batch_step']:>14.1f} {row['reset_s']:>8.2f} {state:>13}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    from lssvwm_env.checkpoint import resolve_checkpoint_dir
    from lssvwm_env.envs.context import CONTEXT_FILE

    if args.threads:
        torch.set_num_threads(args.threads)
    real_rows: list[dict[str, Any]] = []
    options: dict[str, Any] = {}
    if args.real_env and args.real_env != "none":
        try:
            real, episode = bench_real_env(args.real_env, args.real_steps, args.seed)
            real_rows.append(real)
            # given frames are primed whole: --context cuts them as it cuts the env's own contexts
            options = {name: values[:args.context] for name, values in episode.items()}
        except Exception as err:  # a missing renderer must not hide the imagined figures
            real_rows.append({"env": f"real {args.real_env}", "error": f"{type(err).__name__}: {err}"})
        if args.real_workers > 1 and "error" not in real_rows[0]:
            real_rows.append(bench_real_env_workers(args.real_env, args.real_steps, args.seed, args.real_workers))
    if args.dataset is not None or (resolve_checkpoint_dir(args.checkpoint) / CONTEXT_FILE).exists():
        options = {}  # the env's own context source
    rows = []
    for num_envs in args.num_envs:
        rows.append(bench_imagined(num_envs, args, options, profile=args.profile and num_envs == max(args.num_envs)))
        print(format_table(rows[-1:]).splitlines()[-1], file=sys.stderr)
    rows += real_rows
    print(format_table(rows))
    for row in rows:
        if "profile" in row:
            print(format_profile(row["profile"]))
    machine = next((r for r in reversed(real_rows) if "error" not in r), None)
    ratios = {}
    if machine is not None:
        for row in rows[:len(args.num_envs)]:
            ratios[str(row["num_envs"])] = row["steps_per_s"] / machine["steps_per_s"]
            print(f"imagined / real machine-wide ({machine['env']}) at {row['num_envs']} envs: "
                  f"{ratios[str(row['num_envs'])]:.2f}x")
    result = {"threads": torch.get_num_threads(), "sampling_steps": args.sampling_steps, "context": args.context,
              "decoder": args.decoder,
              "obs_type": args.obs_type, "rows": rows, "imagined_over_real_machine_wide": ratios}
    if args.json is not None:
        text = json.dumps(result, indent=2)
        if str(args.json) == "-":
            print(text)
        else:
            args.json.write_text(text + "\n")
    return 0

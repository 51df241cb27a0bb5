"""`lssvwm bench`: benchmarks that print figures (never timed tests).

    lssvwm bench horizon --preset cpu --frames 10,100,1000,10000 [--json]
        per-frame latency and peak memory of one imagined rollout per variant, at the frame indices
        asked for: `ours` should stay flat, `causal_attn` (KV cache of every past frame) grows.
    lssvwm bench train --preset cpu
        training throughput (frames/s, tokens/s) and the achieved fraction of the matmul peak.
    lssvwm bench env ...
        imagined env steps/s against the real env (lssvwm_env/envs/bench_env.py).

How the rollout reaches frame k: frames between measurement points are committed in parallel blocks
(the teacher-forced pass at noise level 0 over model-generated latents: the same state update as
`imagine`, without the denoising passes), so reaching frame 10,000 costs minutes, not hours. For a
variant whose state grows with history (causal attention), advancing past `--real-history-limit`
frames would cost O(T^2); there the KV cache is filled up to frame k with random keys and values of
the real size, and the output says so ("history": "synthetic") — latency and memory depend on the
cache's size, not on its contents.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

# Peak matmul rates measured on this project's 2-core CPU machines (2048^2 products), for the
# "fraction of peak" figures; pass --peak-gflops for other hardware.
PEAK_GFLOPS = {"bf16": 826.0, "fp32": 154.0}


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS since the last reset) of this process in MB, from /proc."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount, _ = line.split()
                values[key[:-1]] = int(amount) / 1024
    return values["VmRSS"], values["VmHWM"]


def reset_peak_rss() -> None:
    """Return freed heap to the OS (glibc keeps it after the big parallel passes that advance the
    rollout), then restart the peak-RSS counter, so the peak seen next belongs to what follows."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    register_cpu_attention_flops()
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def register_cpu_attention_flops() -> None:
    """PyTorch's FLOP counter knows the fused attention kernels of CUDA but not the CPU one that
    scaled_dot_product_attention takes with a boolean mask (it would count 0); count it as the dense
    attention it computes, the same formulas."""
    import torch
    from torch.utils import flop_counter as fc
    aten = torch.ops.aten
    forward, backward = (aten._scaled_dot_product_flash_attention_for_cpu,
                         aten._scaled_dot_product_flash_attention_for_cpu_backward)
    if forward not in fc.flop_registry:
        fc.register_flop_formula(forward)(
            lambda query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs:
            fc.sdpa_flop_count(query_shape, key_shape, value_shape))
    if backward not in fc.flop_registry:
        fc.register_flop_formula(backward)(
            lambda grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs:
            fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape))


def build_model(preset_name: str, variant: str, checkpoint: Path | None, device: str = "cpu"):
    import torch
    from lssvwm_env.checkpoint import check_device, load_world_model
    from lssvwm_env.models import WorldModel
    from lssvwm_env.presets import preset
    device = check_device(device)
    if checkpoint is not None:
        model = load_world_model(checkpoint)
        config = replace(model.config, variant=variant)
        fresh = WorldModel(config)
        fresh.load_state_dict(model.state_dict(), strict=False)  # variants share what they can
        return fresh.to(device).eval()
    torch.manual_seed(0)
    return WorldModel(replace(preset(preset_name).model, variant=variant)).to(device).eval()


def memory_mb(device) -> tuple[float, float]:
    """(current, peak since the last reset) memory in MB: the process's RSS on CPU, PyTorch's
    allocations on a GPU."""
    import torch
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20, torch.cuda.max_memory_allocated(device) / 2**20
    return rss_mb()


def reset_peak_memory(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak_rss()


def fill_history(model, state, frames: int):
    """The state after `frames` committed frames, for a variant whose KV cache keeps all history:
    the cache gets `frames` entries of random keys/values (size exact, contents synthetic)."""
    import torch
    grown_keys, grown_values = [], []
    for keys, values in zip(state.keys, state.values):
        if keys.dim() == 2:  # layer without attention
            grown_keys.append(keys)
            grown_values.append(values)
            continue
        shape = (keys.size(0), frames, *keys.shape[2:])
        grown_keys.append(torch.randn(shape, dtype=keys.dtype, device=keys.device))
        grown_values.append(torch.randn(shape, dtype=values.dtype, device=values.device))
    index = torch.arange(frames, device=state.key_index.device).unsqueeze(0).expand(state.batch_size, -1).contiguous()
    return replace(state, keys=grown_keys, values=grown_values, key_index=index,
                   frame_count=torch.full_like(state.frame_count, frames))


def horizon(model, frame_points: list[int], repeats: int, real_history_limit: int, block: int,
            sampling_steps: int | None, progress) -> dict:
    import torch
    device = model.device
    state = model.initial_state(1)
    grows = model.config.variant == "causal_attn"
    generator = torch.Generator(device=device).manual_seed(0)
    action = torch.ones(1, dtype=torch.long, device=device)
    latency, peak, state_mb, history = {}, {}, {}, {}
    frame = 0
    last_latent = None
    for point in sorted(frame_points):
        if grows and point > real_history_limit:
            state = fill_history(model, state, point)
            frame, history[point] = point, "synthetic"
        else:
            while frame < point:  # commit frames in parallel blocks up to `point`
                n = min(block, point - frame)
                if last_latent is None:
                    last_latent, _ = model.generate_latent(state, action, generator, sampling_steps)
                latents = last_latent.expand(1, n, *last_latent.shape[2:]).contiguous()
                latents = latents + 0.1 * torch.randn(latents.shape, generator=generator, device=device)
                with torch.no_grad():
                    _, _, state = model.step_latents(state, latents, action.view(1, 1).expand(1, n))
                frame += n
                progress.update(n)
            history[point] = "real"
        times = []
        reset_peak_memory(device)
        for _ in range(repeats):  # measure at frame `point` without advancing: branch from a clone
            start = time.perf_counter()
            model.imagine(state.clone(), action, generator, sampling_steps)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        latency[point] = 1000 * sorted(times)[len(times) // 2]
        peak[point] = memory_mb(device)[1]
        state_mb[point] = state.nbytes() / 2**20
    return {"latency_ms": {str(k): v for k, v in latency.items()},
            "peak_mem_mb": {str(k): v for k, v in peak.items()},
            "state_mb": {str(k): v for k, v in state_mb.items()},
            "history": {str(k): v for k, v in history.items()}}


def run_horizon(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm
    if args.threads:
        torch.set_num_threads(args.threads)
    points = [int(p) for p in args.frames.split(",")]
    results = {}
    for variant in args.variants.split(","):
        model = build_model(args.preset, variant, args.checkpoint, args.device)
        with tqdm(total=max(points), desc=f"horizon {variant}", disable=args.json, leave=False) as bar:
            results[variant] = horizon(model, points, args.repeats, args.real_history_limit, args.block,
                                       args.sampling_steps, bar)
        action = torch.ones(1, dtype=torch.long, device=model.device)
        flops = count_flops(lambda: model.imagine(model.initial_state(1), action))
        first = results[variant]["latency_ms"][str(min(points))]
        results[variant]["flops_per_frame"] = flops
        precision = "bf16" if model.config.bf16 else "fp32"
        results[variant]["achieved_gflops"] = flops / (first / 1000) / 1e9
        results[variant]["fraction_of_peak"] = results[variant]["achieved_gflops"] / PEAK_GFLOPS[precision]
        results[variant]["precision"] = precision
        del model
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"imagined rollout, preset {args.preset}, {torch.get_num_threads()} threads; latency = one imagine() "
          f"({'model default' if args.sampling_steps is None else args.sampling_steps} sampling steps + commit + decode)")
    memory = "peak RSS MB" if args.device == "cpu" else "peak GPU MB"
    print(f"{'variant':12} {'frame':>7} {'latency ms':>11} {memory:>12} {'state MB':>9}  history")
    for variant, r in results.items():
        for point in points:
            k = str(point)
            print(f"{variant:12} {point:7d} {r['latency_ms'][k]:11.1f} {r['peak_mem_mb'][k]:12.1f} "
                  f"{r['state_mb'][k]:9.2f}  {r['history'][k]}")
        print(f"{variant:12} {r['flops_per_frame'] / 1e9:.3f} GFLOP per imagined frame, "
              f"{r['achieved_gflops']:.1f} GFLOP/s = {100 * r['fraction_of_peak']:.1f}% of the {r['precision']} "
              f"matmul peak ({PEAK_GFLOPS[r['precision']]:.0f} GFLOP/s)")
    return 0


def dynamics_training_step(config, batch: int, window: int, seed: int = 0):
    """One optimizer step of the dynamics on random latents of (batch, window) frames, through the
    trainer's own loss (training/losses.py): what `bench train` times and the ablations' equal-compute
    budgets count (the data path is not part of it). Returns the step as a callable."""
    import torch
    from lssvwm_env.models import WorldModel
    from lssvwm_env.training.losses import dynamics_loss
    dyn = config.dynamics_training
    torch.manual_seed(seed)
    model = WorldModel(config.model)
    params = list(model.backbone.parameters()) + list(model.heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    grid, channels = config.model.autoencoder.grid, config.model.autoencoder.latent_channels
    window_batch = {
        "latents": torch.randn(batch, window, *grid, channels),
        "actions": torch.randint(0, config.model.backbone.action.n, (batch, window)),
        "rewards": torch.zeros(batch, window), "terminated": torch.zeros(batch, window, dtype=torch.bool),
        "has_transition": torch.ones(batch, window, dtype=torch.bool),
        "valid": torch.ones(batch, window, dtype=torch.bool),
    }

    def step() -> None:
        losses = dynamics_loss(model, window_batch, model.initial_state(batch), dyn.objective,
                               dyn.reward_loss_weight, dyn.carry_clean_state)
        optimizer.zero_grad()
        losses.total.backward()
        optimizer.step()

    return step


def run_train(args: argparse.Namespace) -> int:
    """Training steps of the dynamics on random latents (`dynamics_training_step`)."""
    import torch
    from lssvwm_env.training.train import build_config, resolve_precision
    if args.threads:
        torch.set_num_threads(args.threads)
    config = build_config(args.preset, args.set)
    resolve_precision(config, args.precision, torch.device("cpu"))
    dyn = config.dynamics_training
    stage = dyn.curriculum[0]
    batch, window = args.batch or stage.batch_size, args.window or stage.window
    grid = config.model.autoencoder.grid
    step = dynamics_training_step(config, batch, window)
    step()
    flops = count_flops(step)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - start) / args.steps
    frames = batch * window
    tokens = frames * grid[0] * grid[1]
    precision = "bf16" if config.model.bf16 else "fp32"
    achieved = flops / seconds / 1e9
    figures = {"preset": args.preset, "objective": dyn.objective, "batch": batch, "window": window, "threads": torch.get_num_threads(),
               "s_per_step": seconds, "frames_per_s": frames / seconds, "tokens_per_s": tokens / seconds,
               "gflop_per_step": flops / 1e9, "achieved_gflops": achieved, "precision": precision,
               "fraction_of_peak": achieved / PEAK_GFLOPS[precision],
               "fraction_of_bf16_peak": achieved / PEAK_GFLOPS["bf16"], "overrides": " ".join(args.set) or "-"}
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:22} {value:.4g}" if isinstance(value, float) else f"{key:22} {value}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    h = sub.add_parser("horizon", help="per-frame latency and memory against frame index, per variant")
    h.add_argument("--preset", default="cpu", help="model size (random weights) when no --checkpoint")
    h.add_argument("--checkpoint", type=Path, default=None, help="use trained weights (variants share them)")
    h.add_argument("--frames", default="10,100,1000,10000", help="frame indices to measure at")
    h.add_argument("--variants", default="ours,causal_attn")
    h.add_argument("--repeats", type=int, default=3, help="imagined frames timed at each point (median)")
    h.add_argument("--block", type=int, default=100, help="frames committed per parallel pass between points")
    h.add_argument("--real-history-limit", type=int, default=1000,
                   help="growing-state variants: beyond this many frames the history is synthetic")
    h.add_argument("--sampling-steps", type=int, default=None)
    h.add_argument("--threads", type=int, default=0)
    h.add_argument("--device", default="cpu", help="cpu or cuda (peak memory: RSS on cpu, allocated on cuda)")
    h.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    h.set_defaults(_bench=run_horizon)
    t = sub.add_parser("train", help="training throughput and fraction of the matmul peak")
    t.add_argument("--preset", default="cpu")
    t.add_argument("--batch", type=int, default=0, help="default: the preset's first curriculum stage")
    t.add_argument("--window", type=int, default=0)
    t.add_argument("--steps", type=int, default=3)
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="autocast of the backbone, as `lssvwm train --precision` (auto: bf16 where the CPU has it)")
    t.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field as `lssvwm train --set` does, e.g. model.backbone.attention.window=4")
    t.add_argument("--json", action="store_true")
    t.set_defaults(_bench=run_train)
    from lssvwm_env.envs import bench_env
    e = sub.add_parser("env", help="imagined env steps/s against the real env")
    bench_env.add_arguments(e)
    e.set_defaults(_bench=bench_env.run)


def run(args: argparse.Namespace) -> int:
    from lssvwm_env.checkpoint import CheckpointError
    try:
        return args._bench(args)
    except (CheckpointError, ValueError) as err:  # ConfigError is a ValueError
        print(f"lssvwm bench: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="lssvwm bench")
    add_arguments(p)
    sys.exit(run(p.parse_args()))

"""`lssvwm eval`: the memory benchmark, the ablations, and the transitions agents depend on.

    lssvwm eval memory --data data/mm9-retrace --task retrieval --context 400 --generate 400 --out evals/retrieval
    lssvwm eval memory --checkpoint runs/cpu-mm9 --data data/mm9 --task reasoning --out evals/reasoning
    lssvwm eval ablations --data data/mm9-retrace --preset cpu --iterations 1000 --out evals/ablations
    lssvwm eval transitions --checkpoint runs/cpu-mgS7 --data data/mgS7 --episodes 40
    lssvwm eval context --data data/mm9 --contexts 8 32 100 200 400 --out evals/context
    lssvwm eval cells --checkpoint runs/cg --data data/cg-full --out evals/cells    (the colour grid)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _add_memory_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=("retrieval", "reasoning"), default="retrieval",
                        help="retrieval: retrace episodes, paper 400 + 400 frames; reasoning: the continuation "
                             "of a trajectory, paper 576 + 224 (default retrieval)")
    parser.add_argument("--context", type=int, default=None, metavar="Lc",
                        help="frames of real context (default: the paper's for the task)")
    parser.add_argument("--generate", type=int, default=None, metavar="Lg",
                        help="frames generated from the real actions alone (default: the paper's for the task); "
                             "shorter episodes shrink both lengths in proportion, with a message")
    parser.add_argument("--episodes", type=int, default=8, help="episodes evaluated (default 8)")
    parser.add_argument("--split", default="eval", choices=("eval", "train"), help="dataset split (default eval)")
    parser.add_argument("--sampling-steps", type=int, default=None, help="denoising steps per frame (default: the model's)")
    parser.add_argument("--heading-tolerance", type=float, default=45.0, metavar="DEG",
                        help="same view = same maze cell and heading within DEG degrees (default 45)")
    parser.add_argument("--batch-size", type=int, default=4, help="episodes generated together (default 4)")
    parser.add_argument("--videos", type=int, default=2, help="episodes written as mp4 (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="eval_command", metavar="BENCHMARK", required=True)
    memory = sub.add_parser("memory", help="generate from actions after real context; PSNR/SSIM against the real frames",
                            description="Prime the model on Lc real frames, generate Lg frames from the recorded "
                                        "actions alone, and compare them with the real frames: PSNR and SSIM per "
                                        "frame, over time, against the gap since the view was last seen, beside "
                                        "the autoencoder's ceiling. Writes OUT/metrics.json, PNG plots and videos.")
    memory.add_argument("--checkpoint", type=Path, default=None,
                        help="run or checkpoint directory (default: the model shipped with the package)")
    memory.add_argument("--data", type=Path, required=True, help="dataset directory (lssvwm collect)")
    memory.add_argument("--out", type=Path, required=True, help="output directory: metrics.json, PNG plots, videos/")
    _add_memory_options(memory)
    memory.add_argument("--device", default="cpu")

    ablations = sub.add_parser("ablations", help="train every variant on the same data and budget, evaluate each",
                               description="Train each variant with `lssvwm train` (same data, preset, seed and "
                                           "steps), run `eval memory` on each, write OUT/ablations.md, .json and "
                                           ".png. Re-running the same command resumes.")
    ablations.add_argument("--data", type=Path, required=True, help="training dataset; its eval split is evaluated")
    ablations.add_argument("--eval-data", type=Path, default=None, help="evaluate on this dataset instead (same env)")
    ablations.add_argument("--out", type=Path, required=True, help="output directory (runs/, eval/, ablations.md)")
    ablations.add_argument("--preset", default="cpu", choices=("tiny", "cpu", "paper"))
    ablations.add_argument("--variants", nargs="+", default=None, metavar="VARIANT",
                           help="ours local_attn ssm_only block1 causal_full causal_window (the default), "
                                "ssm, no_long_context, ours_floor")
    ablations.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED",
                           help="training seeds per variant (default 0); figures are their mean and spread")
    ablations.add_argument("--iterations", type=int, default=None,
                           help="dynamics steps of `ours`, spread over the preset's curriculum (default: the "
                                "preset's); every other variant gets the steps of the same training FLOPs")
    ablations.add_argument("--causal-window", type=int, default=None,
                           help="frames causal_window attends to (default: the window whose FLOPs per imagined "
                                "frame equal ours')")
    ablations.add_argument("--init-autoencoder", type=Path, default=None, metavar="RUN_OR_CHECKPOINT",
                           help="every variant starts from this autoencoder and does not train its own "
                                "(as lssvwm train --init-autoencoder)")
    ablations.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                           help="a training override applied to every variant (as lssvwm train --set)")
    _add_memory_options(ablations)

    context = sub.add_parser("context", help="the same target frames after more real context: next-frame and "
                                             "short-horizon PSNR against context length",
                             description="For each context length, observe that many real frames before the "
                                         "same target points, generate --horizon frames from the recorded actions, "
                                         "and score them beside the yardsticks. More context must not hurt.")
    context.add_argument("--checkpoint", type=Path, default=None,
                         help="run or checkpoint directory (default: the model shipped with the package)")
    context.add_argument("--data", type=Path, required=True, help="dataset directory of the model's env")
    context.add_argument("--contexts", type=int, nargs="+", default=[8, 32, 100, 200, 400], metavar="L",
                         help="context lengths in frames (default 8 32 100 200 400)")
    context.add_argument("--horizon", type=int, default=10, help="frames generated after each context (default 10)")
    context.add_argument("--episodes", type=int, default=4, help="episodes (default 4)")
    context.add_argument("--targets", type=int, default=4, help="target points per episode (default 4)")
    context.add_argument("--split", default="eval", choices=("eval", "train"))
    context.add_argument("--sampling-steps", type=int, default=None, help="denoising steps per frame (default: the model's)")
    context.add_argument("--batch-size", type=int, default=8, help="target points generated together (default 8)")
    context.add_argument("--seed", type=int, default=0)
    context.add_argument("--out", type=Path, default=None, help="write OUT/context.json and OUT/context.png")
    context.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    context.add_argument("--device", default="cpu")

    transitions = sub.add_parser(
        "transitions", help="on real held-out episodes: termination and reward heads, and next-frame prediction",
        description="Feed real episodes to the model: does it end episodes and give rewards where the real env "
                    "did, and does its denoiser predict the next latent from the past (at noise level 1) better "
                    "than the mean latent? What an agent trained inside the model depends on.")
    transitions.add_argument("--checkpoint", type=Path, default=None,
                             help="run or checkpoint directory (default: the model shipped with the package)")
    transitions.add_argument("--data", type=Path, required=True, help="dataset directory of the model's env")
    transitions.add_argument("--episodes", type=int, default=40, help="episodes evaluated (default 40)")
    transitions.add_argument("--split", default="eval", choices=("eval", "train"))
    transitions.add_argument("--generation-frames", type=int, default=64,
                             help="first frames of each episode predicted from noise (default 64)")
    transitions.add_argument("--out", type=Path, default=None, help="write OUT/transitions.json")
    transitions.add_argument("--seed", type=int, default=0)
    transitions.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    transitions.add_argument("--device", default="cpu")

    cells = sub.add_parser("cells", help="colour grid: cell accuracy by the frames since each cell was last seen",
                           description="Score a colour-grid model cell by cell (evaluation/grid_cells.py): every frame "
                                       "predicted from the real past, and frames generated from actions after real "
                                       "context, each cell binned by the frames since it was last in view, beside "
                                       "the last real frame repeated. Writes OUT/cells.json.")
    cells.add_argument("--checkpoint", type=Path, required=True, help="run or checkpoint directory")
    cells.add_argument("--data", type=Path, required=True, help="a colour-grid dataset (lssvwm collect --env colour-grid)")
    cells.add_argument("--out", type=Path, default=None, help="write OUT/cells.json")
    cells.add_argument("--episodes", type=int, default=8)
    cells.add_argument("--context", type=int, default=50, help="generation: real frames before the generated ones")
    cells.add_argument("--generate", type=int, default=100, help="generation: frames from the actions alone")
    cells.add_argument("--split", default="eval", choices=("eval", "train"))
    cells.add_argument("--sampling-steps", type=int, default=None)
    cells.add_argument("--seed", type=int, default=0)
    cells.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    cells.add_argument("--device", default="cpu")


def _run_cells(args: argparse.Namespace) -> int:
    from data_collection.files import write_json_atomic
    from lssvwm_env.checkpoint import load_world_model
    from lssvwm_env.evaluation.grid_cells import GridCellsConfig, evaluate_grid_cells, summary_lines

    config = GridCellsConfig(args.episodes, args.context, args.generate, args.split, args.sampling_steps, args.seed)
    model = load_world_model(args.checkpoint, device=args.device)
    result = evaluate_grid_cells(model, args.data, config)
    print("\n".join(summary_lines(result)))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out / "cells.json", result)
        print(f"wrote {args.out / 'cells.json'}")
    return 0


def _memory_config(args: argparse.Namespace):
    from lssvwm_env.evaluation.memory import MemoryEvalConfig
    return MemoryEvalConfig(task=args.task, context=args.context, generate=args.generate, episodes=args.episodes,
                            split=args.split, sampling_steps=args.sampling_steps,
                            heading_tolerance_deg=args.heading_tolerance, batch_size=args.batch_size,
                            seed=args.seed, videos=args.videos)


def _print_summary(metrics: dict, out: Path) -> None:
    s = metrics["settings"]
    print(f"{metrics['task']}: {len(metrics['data']['evaluated_episodes'])} episode(s), {s['context']} context + "
          f"{s['generate']} generated frames: PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f} "
          f"(autoencoder ceiling {metrics['ceiling']['psnr']:.2f} dB, {metrics['ceiling']['ssim']:.3f})")
    from lssvwm_env.evaluation.memory import below_yardsticks
    print("  yardsticks on the same frames: " + ", ".join(
        f"{name.replace('_', ' ')} {y['psnr']:.2f} dB / {y['ssim']:.3f}" for name, y in metrics["baselines"].items()))
    below = below_yardsticks(metrics)
    if below:
        print(f"  BELOW the {', '.join(n.replace('_', ' ') for n in below)} yardstick(s): the model does not yet "
              "beat showing a real context frame unchanged")
    for label, h in metrics["horizon"].items():
        print(f"  frames {label:>8} after the context: PSNR {h['psnr']:.2f} dB (" + ", ".join(
            f"{name.replace('_', ' ')} {y['psnr']:.2f}" for name, y in h["baselines"].items()) + ")")
    for kind, split in (metrics["splits"] or {}).items():
        if split["frames"]:
            print(f"  {kind:22} {split['frames']:6d} frames: PSNR {split['psnr']:.2f} dB, SSIM {split['ssim']:.3f} "
                  f"(context mean {split['context_mean_psnr']:.2f} dB)")
    print(f"  {metrics['lpips_note']}")
    print(f"wrote {out / 'metrics.json'}, {', '.join(v for k, v in metrics['files'].items() if k != 'videos')}, "
          f"{len(metrics['files']['videos'])} video(s)")


def _run_context(args: argparse.Namespace) -> int:
    from lssvwm_env.checkpoint import load_world_model
    from lssvwm_env.evaluation.context_length import ContextCurveConfig, evaluate_context_curve, plot_context_curve
    from data_collection.files import write_json_atomic

    config = ContextCurveConfig(tuple(args.contexts), args.horizon, args.episodes, args.targets, args.split,
                                args.sampling_steps, args.batch_size, args.seed)
    model = load_world_model(args.checkpoint, device=args.device)
    result = evaluate_context_curve(model, args.data, config)
    print(result["verdict"])
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out / "context.json", result)
        plot_context_curve(result, args.out / "context.png")
        print(f"wrote {args.out / 'context.json'}, {args.out / 'context.png'}")
    return 0


def run(args: argparse.Namespace) -> int:
    import torch

    from data_collection.dataset import DatasetError
    from lssvwm_env.checkpoint import CheckpointError
    from lssvwm_env.config_io import ConfigError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.eval_command == "transitions":
            from lssvwm_env.evaluation.transitions import run_transitions, summary
            metrics = run_transitions(args.checkpoint, args.data, args.episodes, args.split, args.seed, args.out,
                                      args.generation_frames, args.device)
            print(summary(metrics))
            return 0
        if args.eval_command == "context":
            return _run_context(args)
        if args.eval_command == "cells":
            return _run_cells(args)
        config = _memory_config(args)
        if args.eval_command == "memory":
            from lssvwm_env.checkpoint import load_world_model
            from lssvwm_env.evaluation.memory import evaluate_memory
            model = load_world_model(args.checkpoint, device=args.device)
            metrics = evaluate_memory(model, args.data, config, args.out, args.checkpoint)
            _print_summary(metrics, args.out)
            return 0
        from lssvwm_env.evaluation.ablations import DEFAULT_VARIANTS, run_ablations
        results = run_ablations(args.data, args.out, args.preset, args.variants or list(DEFAULT_VARIANTS),
                                args.iterations, args.causal_window, args.overrides, config, args.eval_data,
                                args.threads, tuple(args.seeds), args.init_autoencoder)
        print((args.out / "ablations.md").read_text())
        print(f"wrote {args.out / 'ablations.md'}, {args.out / 'ablations.json'}, {args.out / 'results.json'}")
        missing = [f"{name} seed {seed}" for name, e in results["variants"].items() for seed in args.seeds
                   if str(seed) not in e["seeds"]]
        if missing:
            print(f"lssvwm eval ablations: not trained or evaluated: {', '.join(missing)} (re-run to resume)",
                  file=sys.stderr)
        return 1 if missing else 0
    except CheckpointError as err:
        hint = (" (the shipped model is not there yet: pass --checkpoint RUN_DIR)"
                if getattr(args, "checkpoint", 0) is None else "")
        print(f"lssvwm eval: error: {err}{hint}", file=sys.stderr)
    except (DatasetError, ConfigError, ValueError) as err:
        print(f"lssvwm eval: error: {err}", file=sys.stderr)
    return 1

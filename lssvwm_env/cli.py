"""The `lssvwm` command. Each subcommand lives in the module that owns the work; this file only
routes. Subcommand modules expose `add_arguments(parser)` and `run(args) -> int`, and keep their
heavy imports (torch, mujoco) inside `run` so that `lssvwm --help` stays instant."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("data_collection.collect", "collect episodes from a real environment into a dataset"),
    "data": ("data_collection.cli", "inspect and validate a dataset (info, validate); Minari in and out"),
    "train": ("lssvwm_env.training.train", "train the world model (autoencoder, then dynamics)"),
    "bench": ("lssvwm_env.bench", "benchmarks that print figures (horizon, train, env)"),
    "distill": ("lssvwm_env.training.distill", "fewer denoising passes per imagined frame: distil the sampler"),
    "distill-decoder": ("lssvwm_env.training.student_decoder", "a cheaper decoder for imagination, learnt from the "
                        "checkpoint's own"),
    "export": ("lssvwm_env.export", "make an inference checkpoint (weights, config, context) from a run"),
    "play": ("lssvwm_env.envs.play", "drive the world model from the keyboard or write a video"),
    "eval": ("lssvwm_env.evaluation.cli", "memory benchmarks and ablations"),
    "pipeline": ("lssvwm_env.pipeline", "the end-to-end paths: main job on the shipped model, or --from-scratch"),
    "report": ("lssvwm_env.evaluation.report", "write a markdown report for a run"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lssvwm", description="Long-context state-space video world models: collect data from real envs, "
        "train, serve as Gymnasium envs, evaluate memory. `lssvwm COMMAND --help` for each command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or only == name:
            module = importlib.import_module(module_name)
            module.add_arguments(sp)
            sp.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=chosen if chosen in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

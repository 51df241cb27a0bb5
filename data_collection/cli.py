"""`lssvwm data`: look at a dataset made by `lssvwm collect`.

    lssvwm data validate DIR     every problem, naming file and field (exit 1), or "OK: ..." (exit 0)
    lssvwm data info DIR         summary table: episodes, frames, splits, actions, returns, disk size
                                 (--effects: per action, how often the frame stayed the same)
    lssvwm data windows DIR      how fast training windows are sampled (windows/s)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data_collection.dataset import DatasetError, dataset_info, read_manifest, validate_dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    validate = sub.add_parser("validate", help="check the manifest and every episode file")
    validate.add_argument("dir", type=Path)
    info = sub.add_parser("info", help="print a summary table")
    info.add_argument("dir", type=Path)
    info.add_argument("--effects", action="store_true",
                      help="also read the frames: per action, how often the observation stayed the same (an action "
                           "the data never shows failing, such as walking into a wall, is one a world model gets wrong)")
    windows = sub.add_parser("windows", help="measure window sampling speed (windows/s)")
    windows.add_argument("dir", type=Path)
    windows.add_argument("--split", default="train", choices=("train", "eval"))
    windows.add_argument("--window", type=int, default=64, help="frames per window (default 64)")
    windows.add_argument("--batch-size", type=int, default=16)
    windows.add_argument("--seconds", type=float, default=3.0, help="how long to sample (default 3)")
    windows.add_argument("--loader-workers", type=int, default=0, help="DataLoader worker processes (default 0)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.data_command == "validate":
            return _validate(args.dir)
        if args.data_command == "info":
            print(dataset_info(args.dir, effects=args.effects).format())
            return 0
        if args.data_command == "windows":
            from data_collection.windows import benchmark_windows

            print(benchmark_windows(args.dir, args.split, args.window, args.batch_size, args.seconds, args.loader_workers).format())
            return 0
    except DatasetError as exc:
        print(f"lssvwm data: error: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(f"unhandled data command {args.data_command!r}")


def _validate(root: Path) -> int:
    problems = validate_dataset(root)
    if problems:
        for problem in problems:
            print(problem)
        print(f"INVALID: {len(problems)} problem(s) in {root}", file=sys.stderr)
        return 1
    manifest = read_manifest(root)
    episodes = len(manifest.episodes)
    frames = sum(e.length for e in manifest.episodes.values())
    note = "" if episodes >= manifest.episodes_requested else f" (incomplete: {episodes} of {manifest.episodes_requested} requested)"
    print(f"OK: {episodes} episodes, {frames} frames{note}")
    return 0

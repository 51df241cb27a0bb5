"""`lssvwm data`: look at a dataset made by `lssvwm collect`, or bring one in from Minari.

    lssvwm data validate DIR     every problem, naming file and field (exit 1), or "OK: ..." (exit 0)
    lssvwm data info DIR         summary table: episodes, frames, splits, actions, returns, disk size
                                 (--effects: per action, how often the frame stayed the same)
    lssvwm data windows DIR      how fast training windows are sampled (windows/s)
    lssvwm data import-minari ID_OR_PATH --out DIR     a local Minari dataset as a dataset (minari_io.py)
    lssvwm data export-minari DIR --out ROOT [--id ID]  a dataset as a Minari dataset under ROOT
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
    imports = sub.add_parser("import-minari", help="write a local Minari dataset (image observations, or --render) "
                                                   "as a dataset")
    imports.add_argument("source", metavar="DATASET_ID_OR_PATH",
                         help="a Minari dataset id (looked up under MINARI_DATASETS_PATH, never downloaded) or its directory")
    imports.add_argument("--out", type=Path, required=True, help="new dataset directory (must not hold anything)")
    imports.add_argument("--eval-fraction", type=float, default=0.1,
                         help="share of episodes in the eval split, at most 0.5 (default 0.1; an export's own splits win)")
    imports.add_argument("--render", action="store_true",
                         help="observations are not images: replay each episode in the dataset's env from its seed and "
                              "take the env's renders as frames (checked against the recorded observations)")
    exports = sub.add_parser("export-minari", help="write a dataset as a Minari dataset (minari.load_dataset opens it)")
    exports.add_argument("dir", type=Path)
    exports.add_argument("--out", type=Path, required=True,
                         help="Minari datasets root: the dataset goes to OUT/ID (load it with MINARI_DATASETS_PATH=OUT)")
    exports.add_argument("--id", dest="dataset_id", default=None,
                         help="Minari dataset id, [NAMESPACE/]NAME-vN (default lssvwm/<directory name>-v0)")


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
        if args.data_command == "import-minari":
            from data_collection.minari_io import import_minari

            manifest = import_minari(args.source, args.out, args.eval_fraction, args.render)
            frames = sum(e.length for e in manifest.episodes.values())
            print(f"imported {len(manifest.episodes)} episodes ({frames:,} frames, actions {manifest.action_space['type']}) "
                  f"into {args.out}")
            return 0
        if args.data_command == "export-minari":
            from data_collection.minari_io import export_minari

            dataset_id = export_minari(args.dir, args.out, args.dataset_id)
            print(f"exported {args.dir} as Minari dataset {dataset_id!r} in {args.out}: "
                  f"MINARI_DATASETS_PATH={args.out} python -c \"import minari; minari.load_dataset('{dataset_id}')\"")
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

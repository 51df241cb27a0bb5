"""`lssvwm export RUN --data DIR --out CKPT`: make an inference checkpoint from a training run: the
config, the EMA weights and the model card, without optimizer state, plus `context.npz` (real frames
from the dataset's held-out episodes that the env primes on). This is how the default model that
ships in `lssvwm_env/checkpoints/default/` is made."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from lssvwm_env.models.heads import PREDICT_FROM, HeadsConfig
from data_collection.files import write_json_atomic


def export_checkpoint(run: Path, data: Path, out: Path, context_episodes: int, context_frames: int,
                      predict_from: str | None = None) -> Path:
    """predict_from: which features the reward and termination heads read when imagining
    (models/heads.py; None: the run's setting). Training is the same for both, so it can be chosen here."""
    from lssvwm_env.checkpoint import load_world_model, replace_directory, resolve_checkpoint_dir
    from lssvwm_env.envs.context import write_context_file

    if predict_from is not None:
        HeadsConfig(predict_from=predict_from)  # refuse an unknown choice before anything is written
    source = resolve_checkpoint_dir(run)
    load_world_model(source)  # refuse to export what would not load
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "training.json", "model_card.md"):
        if (source / name).exists():
            shutil.copy2(source / name, tmp / name)
    if predict_from is not None:
        config = json.loads((tmp / "config.json").read_text())
        config["model"].setdefault("heads", {})["predict_from"] = predict_from
        write_json_atomic(tmp / "config.json", config)
    write_context_file(tmp, data, episodes=context_episodes, frames=context_frames)
    replace_directory(tmp, out)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="run or checkpoint directory")
    parser.add_argument("--data", type=Path, required=True, help="dataset whose eval episodes give the context")
    parser.add_argument("--out", type=Path, required=True, help="the inference checkpoint directory to write")
    parser.add_argument("--context-episodes", type=int, default=4)
    parser.add_argument("--context-frames", type=int, default=64)
    parser.add_argument("--predict-from", choices=list(PREDICT_FROM),
                        help="heads read the committed frame or the prior (first denoising pass); default: the run's")


def run(args: argparse.Namespace) -> int:
    from lssvwm_env.checkpoint import CheckpointError
    from lssvwm_env.envs.context import ContextError
    try:
        out = export_checkpoint(args.run, args.data, args.out, args.context_episodes, args.context_frames,
                                args.predict_from)
    except (CheckpointError, ContextError, OSError) as err:
        print(f"lssvwm export: error: {err}", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"exported {out} ({size:.1f} MB)")
    return 0

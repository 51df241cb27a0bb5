"""Checkpoints: safetensors weights + a JSON config, never pickles.

A checkpoint is a directory holding `config.json` (the run config, with the model config under
"model") and `model.safetensors` (the EMA weights used for inference), plus, for training runs,
`training_state.safetensors` / `training_state.json` (raw weights, optimizer, EMA, carried state,
counters) and `model_card.md`. A run directory keeps its latest checkpoint in `RUN/checkpoint/`;
the whole directory is replaced at once, so a kill leaves either the old or the new checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from data_collection.envs import ActionSpace
from lssvwm_env.config_io import ConfigError
from lssvwm_env.models.world_model import WorldModel, WorldModelConfig, native_bf16

FORMAT = "lssvwm-checkpoint"
SHIPPED_CHECKPOINTS = Path(__file__).parent / "checkpoints"
DEFAULT_CHECKPOINT = SHIPPED_CHECKPOINTS / "default"  # Memory Maze 9x9: LSSVWM-Memory-v0 and every command's default
MINIGRID_CHECKPOINT = SHIPPED_CHECKPOINTS / "minigrid"  # MiniGrid-MemoryS7: LSSVWM-MiniGrid-v0's default


class CheckpointError(RuntimeError):
    pass


def resolve_checkpoint_dir(path: str | Path | None) -> Path:
    """A checkpoint directory from a run directory, a checkpoint directory, or None (the shipped model)."""
    if path is None:
        path = DEFAULT_CHECKPOINT
    path = Path(path)
    if (path / "checkpoint" / "config.json").exists():
        return path / "checkpoint"
    if (path / "config.json").exists():
        return path
    if (path / "checkpoint.old" / "config.json").exists():  # a kill landed between the two renames
        return path / "checkpoint.old"
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    raise CheckpointError(f"{path} holds no checkpoint (expected config.json and model.safetensors, "
                          "or a run directory with checkpoint/)")


def read_config(checkpoint_dir: Path) -> dict:
    config_path = checkpoint_dir / "config.json"
    try:
        data = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{config_path}: cannot read the checkpoint config ({err})") from err
    if data.get("format") != FORMAT or "model" not in data:
        raise CheckpointError(f"{config_path}: not an lssvwm checkpoint config (missing 'format': "
                              f"'{FORMAT}' or the 'model' field)")
    return data


def check_device(device: str | torch.device) -> torch.device:
    """The device, if this PyTorch can use it; otherwise an error that says what to do."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a device PyTorch knows ({err}); use 'cpu' or 'cuda'") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        why = ("this PyTorch is a CPU-only build" if not torch.backends.cuda.is_built()
               else "PyTorch sees no CUDA GPU on this machine")
        raise ValueError(f"device={str(device)!r}: {why} (torch {torch.__version__}); use device='cpu', or on a "
                         "GPU machine install a CUDA build of PyTorch (README, set-up)")
    return device


DECODERS = ("full", "student")  # the autoencoder's decoder, or the cheaper one distilled from it
STUDENT_DECODER = "student_decoder"  # CHECKPOINT/student_decoder.safetensors and .json


def load_world_model(path: str | Path | None = None, device: str | torch.device = "cpu",
                     decoder: str = "full") -> WorldModel:
    """Load a world model for inference (EMA weights) from a checkpoint or run directory; None loads
    the model shipped with the package. decoder "student": frames are drawn by the checkpoint's
    student decoder (`lssvwm distill-decoder`), not the autoencoder's own."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder={decoder!r}: choose from {', '.join(DECODERS)}")
    device = check_device(device)
    checkpoint_dir = resolve_checkpoint_dir(path)
    data = read_config(checkpoint_dir)
    try:
        config = WorldModelConfig.from_dict(data["model"])
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"{checkpoint_dir / 'config.json'}: invalid model config: {err}") from err
    if config.bf16 and not native_bf16(device):
        # A checkpoint's bf16 says how it was trained (where that hardware computed bf16 natively);
        # inference follows the hardware it runs on: emulated bf16 is slower than fp32 and no more exact.
        config = replace(config, bf16=False)
    model = WorldModel(config)
    weights_path = checkpoint_dir / "model.safetensors"
    try:
        weights = load_file(str(weights_path))
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"{weights_path}: cannot read the weights ({err}); the file is missing or "
                              "corrupt, re-download or re-train it") from err
    expected = model.state_dict()
    for name, tensor in weights.items():
        if name in expected and tensor.shape != expected[name].shape:
            raise CheckpointError(f"{weights_path}: tensor {name!r} has shape {tuple(tensor.shape)}, but the config in "
                                  f"{checkpoint_dir / 'config.json'} makes it {tuple(expected[name].shape)}: the two "
                                  "files come from different models")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{weights_path}: weights do not match the config in config.json "
                              f"(missing: {missing[:5]}, unexpected: {unexpected[:5]})")
    apply_training_data(model, data.get("training_data"))
    if decoder == "student":
        model.autoencoder.decoder = load_student_decoder(checkpoint_dir, config)
    return model.to(device).eval()


def load_student_decoder(checkpoint_dir: Path, config: WorldModelConfig) -> torch.nn.Module:
    """The checkpoint's student decoder (training/student_decoder.py), checked against its record."""
    from lssvwm_env.models.autoencoder import build_decoder

    record_path = checkpoint_dir / f"{STUDENT_DECODER}.json"
    weights_path = checkpoint_dir / f"{STUDENT_DECODER}.safetensors"
    if not record_path.exists() or not weights_path.exists():
        raise CheckpointError(f"{checkpoint_dir}: no student decoder ({record_path.name} and {weights_path.name}); "
                              f"make one with `lssvwm distill-decoder --checkpoint {checkpoint_dir} --data DATA --out DIR`")
    record = json.loads(record_path.read_text())
    decoder = build_decoder(config.autoencoder.latent_channels, list(record["channels"]))
    try:
        decoder.load_state_dict(load_file(str(weights_path)))
    except (OSError, SafetensorError, RuntimeError) as err:
        raise CheckpointError(f"{weights_path}: does not hold the student decoder {record_path.name} describes "
                              f"({err})") from err
    return decoder


def action_space(checkpoint_dir: Path, model: WorldModel) -> ActionSpace:
    """The action space an env serving the checkpoint takes: its training data's (recorded since box
    actions existed, bounds included), else Discrete(n) from the model config; a continuous model
    without the record gets [-1, 1] bounds."""
    record = (read_config(checkpoint_dir).get("training_data") or {}).get("action_space")
    if record is not None:
        return ActionSpace.from_json(record)
    action = model.config.backbone.action
    if action.kind == "continuous":
        return ActionSpace(action.n, kind="box", low=(-1.0,) * action.n, high=(1.0,) * action.n)
    return ActionSpace(action.n)


def apply_training_data(model: WorldModel, record: dict | None) -> None:
    """Keep the model's rewards inside the range its training data paid (heads.training_data_record);
    a checkpoint without the record predicts unclamped rewards."""
    if record and record.get("reward_range"):
        model.heads.reward_range.copy_(torch.tensor(record["reward_range"], dtype=model.heads.reward_range.dtype))


def write_checkpoint_dir(run_dir: Path, files: dict[str, bytes | dict | dict[str, torch.Tensor]]) -> Path:
    """Write a checkpoint directory atomically: everything goes into RUN/checkpoint.tmp, which then
    replaces RUN/checkpoint. `files`: name -> JSON-able dict (*.json), tensors (*.safetensors) or
    text bytes (anything else)."""
    tmp, final = run_dir / "checkpoint.tmp", run_dir / "checkpoint"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name, content in files.items():
            target = tmp / name
            if name.endswith(".safetensors"):
                save_file({k: v.detach().contiguous().cpu() for k, v in content.items()}, str(target))
            elif name.endswith(".json"):
                target.write_text(json.dumps(content, indent=2))
            else:
                target.write_bytes(content)
            with open(target, "rb") as f:
                os.fsync(f.fileno())
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"could not write a checkpoint in {run_dir} ({err}); the previous checkpoint "
                              "is untouched") from err
    replace_directory(tmp, final)
    return final


def replace_directory(new: Path, final: Path) -> None:
    """Put directory `new` in place of `final`: two renames, so a kill leaves `final` or `final.old`
    (which `resolve_checkpoint_dir` also reads), never a half-written directory."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)


def save_world_model(model: WorldModel, checkpoint_dir: str | Path) -> Path:
    """Write an inference checkpoint that `load_world_model` reads: `config.json` (the model config)
    and `model.safetensors` (the model's weights as they are). For models made outside `lssvwm train`
    (tests, conversions); training runs write their checkpoints with `write_checkpoint_dir`."""
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    weights = {name: t.detach().contiguous().cpu() for name, t in model.state_dict().items()}
    save_file(weights, str(checkpoint_dir / "model.safetensors"))
    config = {"format": FORMAT, "version": 1, "model": model.config.to_dict()}
    (checkpoint_dir / "config.json").write_text(json.dumps(config, indent=2))
    return checkpoint_dir

"""`lssvwm distill-decoder --checkpoint CKPT --data DIR --out OUT`: a cheaper decoder for imagination.

An imagined step of the size-M default spent half its time in the autoencoder's decoder (issue 36:
decoder 49%, denoising pass 26%, commit pass 25% of one batched step). A student decoder of the same
shape with fewer channels (default [16, 32, 64] against [32, 64, 128]: about a quarter of the
multiply-adds) learns to draw what the teacher decoder draws from the same latents, so the latent
space, the backbone and everything trained on them stay as they are. Latents come from the
checkpoint's own encoder on the dataset's frames, with noise added up to `latent_noise` standard
deviations (generated latents are not exactly encoded ones); the target is the teacher's output, in
the decoder's [-1, 1] space, by MSE + L1 (as the autoencoder trains).

OUT gets the checkpoint (copied, unless OUT is the checkpoint) and `student_decoder.safetensors` /
`student_decoder.json` beside it (channels, and PSNR against the held-out real frames of teacher and
student). Serve it with `gym.make(..., decoder="student")` or `load_world_model(OUT, decoder="student")`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

STUDENT_CHANNELS = [16, 32, 64]


@dataclass
class StudentDecoderConfig:
    channels: list[int] = field(default_factory=lambda: list(STUDENT_CHANNELS))
    iterations: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    latent_noise: float = 0.3  # noise added to latents, up to this many of their standard deviations
    eval_frames: int = 512  # held-out frames the PSNRs are measured on
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "eval_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.channels or any(c < 8 or c % 8 for c in self.channels):
            raise ValueError(f"--channels must be multiples of 8 (GroupNorm's 8 groups), got {self.channels}")
        if self.latent_noise < 0:
            raise ValueError(f"--latent-noise must be >= 0, got {self.latent_noise}")


def psnr_of(images: torch.Tensor, frames: torch.Tensor) -> float:
    """PSNR (dB) of decoder outputs (N, 3, H, W) in [-1, 1] against frames (N, H, W, 3) uint8, pooled."""
    from lssvwm_env.models.autoencoder import FrameAutoencoder
    drawn = FrameAutoencoder.output_to_frames(images).float()
    mse = (drawn - frames.float()).pow(2).mean().item()
    return 100.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def train_student_decoder(model, train_episodes: list[dict], eval_episodes: list[dict], config: StudentDecoderConfig,
                          progress=None) -> tuple[torch.nn.Module, dict]:
    """The student decoder and its record (PSNRs on held-out frames, wall time)."""
    from lssvwm_env.models.autoencoder import build_decoder
    from lssvwm_env.training.data import sample_frames

    ae = model.autoencoder
    teacher = ae.decoder.eval().requires_grad_(False)
    torch.manual_seed(config.seed)
    student = build_decoder(ae.config.latent_channels, config.channels)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step / config.iterations, 1.0))))
    std = model.latent_std.view(1, -1, 1, 1)
    started = time.time()
    for _ in range(config.iterations):
        frames = sample_frames(train_episodes, config.batch_size, generator)
        with torch.no_grad():
            latents = ae.encode(frames).permute(0, 3, 1, 2)
            scale = torch.rand(len(latents), 1, 1, 1, generator=generator) * config.latent_noise
            latents = latents + scale * std * torch.randn(latents.shape, generator=generator)
            target = teacher(latents)
        drawn = student(latents)
        loss = (drawn - target).pow(2).mean() + (drawn - target).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.4f}")
    student.eval()
    frames = sample_frames(eval_episodes, config.eval_frames, torch.Generator().manual_seed(config.seed + 1))
    with torch.no_grad():
        latents = torch.cat([ae.encode(frames[i:i + 128]) for i in range(0, len(frames), 128)]).permute(0, 3, 1, 2)
        teacher_images, student_images = teacher(latents), student(latents)
    record = {
        "channels": list(config.channels), "teacher_channels": list(ae.config.channels),
        "parameters": sum(p.numel() for p in student.parameters()),
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "held_out_frames": config.eval_frames,
        "teacher_psnr": psnr_of(teacher_images, frames), "student_psnr": psnr_of(student_images, frames),
        "student_psnr_against_teacher": psnr_of(student_images, ae.output_to_frames(teacher_images)),
        "train_seconds": round(time.time() - started, 1), "settings": asdict(config),
    }
    return student, record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="the teacher: a checkpoint or run directory (default: the shipped model)")
    parser.add_argument("--data", type=Path, required=True, help="a dataset of the checkpoint's env (frames to learn on)")
    parser.add_argument("--out", type=Path, required=True,
                        help="checkpoint directory to write: the checkpoint with the student beside it (may be the "
                             "checkpoint itself, which then only gains the student's two files)")
    parser.add_argument("--channels", type=int, nargs="+", default=list(STUDENT_CHANNELS),
                        help=f"the student's channels per stage, the encoder's order (default {STUDENT_CHANNELS})")
    parser.add_argument("--iterations", type=int, default=StudentDecoderConfig.iterations)
    parser.add_argument("--batch-size", type=int, default=StudentDecoderConfig.batch_size)
    parser.add_argument("--lr", type=float, default=StudentDecoderConfig.lr)
    parser.add_argument("--latent-noise", type=float, default=StudentDecoderConfig.latent_noise)
    parser.add_argument("--eval-frames", type=int, default=StudentDecoderConfig.eval_frames)
    parser.add_argument("--train-episodes", type=int, default=None, help="the first N train episodes (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")


def run(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file
    from tqdm import tqdm

    from data_collection.dataset import DatasetError
    from data_collection.files import write_json_atomic
    from lssvwm_env.checkpoint import STUDENT_DECODER, CheckpointError, load_world_model, resolve_checkpoint_dir
    from lssvwm_env.evaluation.memory import check_compatible
    from lssvwm_env.training.data import load_split

    try:
        config = StudentDecoderConfig(channels=args.channels, iterations=args.iterations, batch_size=args.batch_size,
                                      lr=args.lr, latent_noise=args.latent_noise, eval_frames=args.eval_frames,
                                      seed=args.seed)
        source = resolve_checkpoint_dir(args.checkpoint)
        out = args.out
        same = out.exists() and out.resolve() == source.resolve()
        if out.exists() and not same and any(out.iterdir()):
            raise ValueError(f"--out {out} exists and is not the checkpoint {source}; choose a new directory")
        if args.threads:
            torch.set_num_threads(args.threads)
        model = load_world_model(source)
        from data_collection.dataset import Dataset
        check_compatible(model, Dataset.open(args.data), args.data)
        train, held_out = load_split(args.data, "train", args.train_episodes), load_split(args.data, "eval")
    except (ValueError, CheckpointError, DatasetError) as err:
        print(f"lssvwm distill-decoder: error: {err}", file=sys.stderr)
        return 1
    with tqdm(total=config.iterations, desc="student decoder") as progress:
        student, record = train_student_decoder(model, train, held_out, config, progress)
    record.update({"teacher": str(source), "data": str(args.data), "command": sys.argv})
    if not same:  # a copy of the checkpoint, then the student beside it; a failure leaves no half directory
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp)
        save_file({k: v.contiguous() for k, v in student.state_dict().items()}, str(tmp / f"{STUDENT_DECODER}.safetensors"))
        write_json_atomic(tmp / f"{STUDENT_DECODER}.json", record)
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    else:
        weights = out / f"{STUDENT_DECODER}.safetensors"
        save_file({k: v.contiguous() for k, v in student.state_dict().items()}, str(weights.with_suffix(".tmp")))
        weights.with_suffix(".tmp").replace(weights)
        write_json_atomic(out / f"{STUDENT_DECODER}.json", record)
    print(f"student decoder ({record['parameters'] / 1e6:.2f} M parameters, teacher {record['teacher_parameters'] / 1e6:.2f} M): "
          f"{record['student_psnr']:.2f} dB on {config.eval_frames} held-out frames, teacher {record['teacher_psnr']:.2f} dB "
          f"({record['student_psnr_against_teacher']:.2f} dB against the teacher's drawings); wrote {out}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="lssvwm distill-decoder", description=__doc__)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))

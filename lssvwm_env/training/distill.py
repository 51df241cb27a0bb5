"""`lssvwm distill CHECKPOINT --data DIR --out CKPT --steps 2`: fewer denoising passes per imagined frame.

Every imagined frame costs the sampler's denoising passes, a commit pass and a decode
(WorldModel.imagine_step); with 4 steps the denoising is two thirds of it. Progressive distillation
(Salimans & Ho 2022) of the flow-matching sampler (models/diffusion.py) halves the steps: a student,
initialised from its teacher, learns to take in one Euler step the two its teacher takes; 4 -> 2 -> 1,
each halving's student the next one's teacher.

Every frame is taught under the condition it is generated in, from the clean real frames before it
(Backbone.forward_clean_context, as WorldModel.predict_each_next): a window of frames at once, each at
a noise level of the student's schedule, noised from the real latent. The student is the whole model:
the commit pass (noise level 0) and the heads are its own, and its clean path is trained too, so it
may change what the state keeps; the evaluation after each halving (next frame from the real past,
rollouts from actions alone, the teacher beside it at both step counts) says whether it did.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from lssvwm_env.models.diffusion import DiffusionConfig, add_noise, denoised_estimate


@dataclass
class DistillConfig:
    steps: int = 2  # the student's sampling steps: the teacher's, halved once or more
    iterations: int = 1000  # optimizer steps per halving
    window: int = 30  # frames per training window; each is taught from the real frames before it
    batch_size: int = 4
    lr: float = 1e-4
    warmup: int = 50
    grad_clip: float = 1.0
    seed: int = 0
    train_episodes: int | None = None  # the first N train episodes (None: all)
    eval_episodes: int = 4  # held-out episodes for the evaluation after each halving
    eval_frames: int = 200  # next frame at each of their first frames
    eval_context: int = 32  # rollouts: real frames, then
    eval_rollout: int = 100  # frames from the recorded actions alone

    def __post_init__(self) -> None:
        for name in ("steps", "iterations", "window", "batch_size", "eval_episodes", "eval_frames",
                     "eval_context", "eval_rollout"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.train_episodes is not None and self.train_episodes < 1:
            raise ValueError(f"--train-episodes must be >= 1, got {self.train_episodes}")
        if self.window < 2:
            raise ValueError(f"--window must be >= 2 (a frame and its past), got {self.window}")


class DistillationDiverged(RuntimeError):
    """The loss stopped being finite: the student's weights are garbage from there on."""


def halvings(teacher_steps: int, steps: int) -> list[int]:
    """The student step counts from `teacher_steps` down to `steps`: 4, 1 -> [2, 1]."""
    ratio = teacher_steps // steps if steps >= 1 else 0
    if steps < 1 or steps >= teacher_steps or teacher_steps % steps or ratio & (ratio - 1):
        reachable = [str(teacher_steps >> k) for k in range(1, teacher_steps.bit_length())
                     if teacher_steps % (1 << k) == 0]
        raise ValueError(f"--steps {steps}: the teacher samples in {teacher_steps} steps, so the student's must be "
                         f"that halved once or more: {', '.join(reachable) or 'none (nothing left to distil)'}")
    chain = [teacher_steps]
    while chain[-1] > steps:
        chain.append(chain[-1] // 2)
    return chain[1:]


def _per_frame(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return sigma.view(*sigma.shape, *([1] * (like.dim() - 2)))


def euler_steps(noisy: torch.Tensor, prediction: torch.Tensor, sigma: torch.Tensor, next_sigma: torch.Tensor,
                config: DiffusionConfig) -> torch.Tensor:
    """diffusion.euler_step with a noise level per frame: sigma, next_sigma (B, T), sigma > next_sigma."""
    x0 = denoised_estimate(noisy, prediction, sigma, config)
    return x0 + _per_frame(next_sigma, noisy) * (noisy - x0) / _per_frame(sigma, noisy)


def student_target(noisy: torch.Tensor, teacher_next: torch.Tensor, sigma: torch.Tensor, next_sigma: torch.Tensor,
                   config: DiffusionConfig) -> torch.Tensor:
    """The network output whose one Euler step (euler_steps) takes `noisy` at sigma to `teacher_next` at
    next_sigma: what the student is taught to predict."""
    s, n = _per_frame(sigma, noisy), _per_frame(next_sigma, noisy)
    if config.prediction == "velocity":  # noisy + (n - s) v = teacher_next
        return (noisy - teacher_next) / (s - n)
    ratio = n / s  # x0 + (n / s)(noisy - x0) = teacher_next
    return (teacher_next - ratio * noisy) / (1 - ratio)


def distill_loss(student, teacher, batch: dict[str, torch.Tensor], student_steps: int,
                 generator: torch.Generator) -> torch.Tensor:
    """Mean squared error, over the window's valid frames, between the student's output and the one
    that lands where two teacher steps land. Each frame is noised to a level of the student's schedule
    (1, 1 - 1/S, ..., 1/S), drawn per frame."""
    latents, actions, valid = batch["latents"], batch["actions"], batch["valid"]
    config = teacher.config.diffusion
    index = torch.randint(student_steps, latents.shape[:2], generator=generator)
    sigma = 1.0 - index.float() / student_steps
    half = 0.5 / student_steps
    noisy = add_noise(latents, torch.randn(latents.shape, generator=generator), sigma)
    state = teacher.initial_state(latents.size(0))  # the window's own frames are the whole past
    with torch.no_grad(), teacher.autocast():
        x = noisy
        for level, next_level in ((sigma, sigma - half), (sigma - half, sigma - 2 * half)):
            prediction = teacher.backbone.forward_clean_context(latents, x, level, actions, state)[0].float()
            x = euler_steps(x, prediction, level, next_level, config)
    target = student_target(noisy, x, sigma, sigma - 2 * half, config)
    with student.autocast():
        prediction = student.backbone.forward_clean_context(latents, noisy, sigma, actions, state)[0].float()
    error = (prediction - target).pow(2).mean(dim=tuple(range(2, latents.dim())))
    return (error * valid).sum() / valid.sum().clamp(min=1)


def random_windows(cache, n: int, window: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """n windows from random episodes at random starts (LatentCache.window pads short episodes)."""
    lengths = cache.episode_lengths
    parts = []
    for _ in range(n):
        episode = int(torch.randint(len(lengths), (1,), generator=generator))
        start = int(torch.randint(max(1, lengths[episode] - window + 1), (1,), generator=generator))
        parts.append(cache.window(episode, start, window))
    return {key: torch.stack([p[key] for p in parts]) for key in parts[0]}


@torch.no_grad()
def held_out_metrics(model, episodes, steps: int, config: DistillConfig) -> dict[str, float]:
    """Next-frame PSNR from the real past and rollout PSNR, sampled in `steps` steps."""
    from lssvwm_env.training.evaluate import dynamics_metrics, one_step_metrics

    saved = model.config.diffusion.sampling_steps
    model.config.diffusion.sampling_steps = steps
    try:
        generator = torch.Generator().manual_seed(0)
        metrics = one_step_metrics(model, episodes, config.eval_frames, generator)
        rollout, _ = dynamics_metrics(model, episodes, config.eval_context, config.eval_rollout, len(episodes))
    finally:
        model.config.diffusion.sampling_steps = saved
    return {**metrics, **{k: rollout[k] for k in ("rollout_psnr", "rollout_psnr_last_frame",
                                                   "rollout_psnr_context_mean", "rollout_sharpness_ratio")}}


def held_out_episodes(data: Path, config: DistillConfig) -> list[dict]:
    """The first `config.eval_episodes` eval episodes long enough for the rollouts."""
    from lssvwm_env.training.data import load_split

    need = config.eval_context + config.eval_rollout
    episodes = [ep for ep in load_split(data, "eval") if len(ep["frames"]) >= need][:config.eval_episodes]
    if not episodes:
        raise ValueError(f"{data}: no held-out episode has {need} frames "
                         f"(--eval-context {config.eval_context} + --eval-rollout {config.eval_rollout})")
    return episodes


def distill(checkpoint: Path, data: Path, out: Path, config: DistillConfig) -> dict:
    """Distil `checkpoint` into a checkpoint directory `out` that samples in `config.steps` steps;
    returns the record written to out/config.json's "distillation"."""
    from lssvwm_env.checkpoint import load_world_model, read_config, resolve_checkpoint_dir
    from lssvwm_env.training.data import build_latent_cache, load_split

    source = resolve_checkpoint_dir(checkpoint)
    teacher = original = load_world_model(source)  # `original`: the model undistilled, beside each student
    chain = halvings(teacher.config.diffusion.sampling_steps, config.steps)  # refused before any work
    eval_episodes = held_out_episodes(data, config)
    train = load_split(data, "train", config.train_episodes)
    cache = build_latent_cache(teacher, train, "encode train latents")
    torch.manual_seed(config.seed)
    record = {"teacher": str(source), "teacher_steps": teacher.config.diffusion.sampling_steps,
              "settings": asdict(config), "data": str(data), "train_episodes": len(train),
              "eval_episodes": len(eval_episodes), "halvings": []}
    record["teacher_metrics"] = held_out_metrics(teacher, eval_episodes, record["teacher_steps"], config)
    tqdm.write(f"teacher, {record['teacher_steps']} steps: {json.dumps(record['teacher_metrics'])}")
    for student_steps in chain:
        started = time.time()
        student = copy.deepcopy(teacher).train()
        for p in teacher.parameters():
            p.requires_grad_(False)
        parameters = [p for p in student.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=0.0)
        losses = []
        bar = tqdm(range(config.iterations), desc=f"distil to {student_steps} steps")
        for step in bar:
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + student_steps * 7_919 + step)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * min(1.0, (step + 1) / max(1, config.warmup))
            loss = distill_loss(student, teacher, random_windows(cache, config.batch_size, config.window, generator),
                                student_steps, generator)
            if not torch.isfinite(loss):
                raise DistillationDiverged(f"distillation to {student_steps} steps: loss {loss.item()} at step {step}; "
                                           f"nothing was written to {out}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.4f}")
        teacher = student.eval()
        metrics = held_out_metrics(teacher, eval_episodes, student_steps, config)
        undistilled = held_out_metrics(original, eval_episodes, student_steps, config)
        tail = losses[-max(1, len(losses) // 10):]
        record["halvings"].append({"steps": student_steps, "loss_first": losses[0], "loss_last_tenth": sum(tail) / len(tail),
                                   "minutes": round((time.time() - started) / 60, 1), "student": metrics,
                                   "undistilled_at_these_steps": undistilled})
        tqdm.write(f"student, {student_steps} steps: {json.dumps(metrics)}\n"
                   f"undistilled model at {student_steps} steps: {json.dumps(undistilled)}")
    write_distilled(teacher, source, out, record, read_config(source))
    return record


def write_distilled(model, source: Path, out: Path, record: dict, config: dict) -> None:
    """The student as an inference checkpoint: the teacher's config with the new step count and the
    distillation record, the student's weights, the teacher's context file and card with a section added."""
    from safetensors.torch import save_file

    from lssvwm_env.checkpoint import replace_directory

    config = copy.deepcopy(config)
    config["model"]["diffusion"]["sampling_steps"] = record["halvings"][-1]["steps"]
    config["distillation"] = record
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("context.npz", "training.json"):
        if (source / name).exists():
            shutil.copy2(source / name, tmp / name)
    card = (source / "model_card.md").read_text() if (source / "model_card.md").exists() else "# lssvwm world model\n"
    (tmp / "model_card.md").write_text(card.rstrip() + "\n\n" + distillation_section(record))
    replace_directory(tmp, out)


def distillation_section(record: dict) -> str:
    teacher = record["teacher_metrics"]
    lines = ["## Distilled sampler", "",
             f"`lssvwm distill` of `{record['teacher']}` ({record['teacher_steps']} steps) on `{record['data']}` "
             f"({record['train_episodes']} train episodes); held out, {record['eval_episodes']} episodes: next frame "
             f"from the real past at each of their first {record['settings']['eval_frames']} frames, and "
             f"{record['settings']['eval_rollout']} frames from actions after {record['settings']['eval_context']}.", "",
             "| sampler | steps | next frame | previous frame repeated | rollout | context mean | rollout sharpness / real |",
             "|---|---:|---:|---:|---:|---:|---:|",
             _row("teacher", record["teacher_steps"], teacher)]
    for halving in record["halvings"]:
        lines.append(_row("distilled", halving["steps"], halving["student"]))
        lines.append(_row("teacher, fewer steps", halving["steps"], halving["undistilled_at_these_steps"]))
    return "\n".join(lines) + "\n"


def _row(name: str, steps: int, m: dict) -> str:
    return (f"| {name} | {steps} | {m['one_step_psnr']:.2f} dB | {m['one_step_psnr_last_frame']:.2f} dB | "
            f"{m['rollout_psnr']:.2f} dB | {m['rollout_psnr_context_mean']:.2f} dB | {m['rollout_sharpness_ratio']:.2f} |")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DistillConfig()
    parser.add_argument("checkpoint", type=Path, help="the teacher: a checkpoint or run directory")
    parser.add_argument("--data", type=Path, required=True, help="its dataset: train episodes teach, eval ones measure")
    parser.add_argument("--out", type=Path, required=True, help="the distilled inference checkpoint to write")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="the student's sampling steps")
    parser.add_argument("--iterations", type=int, default=defaults.iterations, help="optimizer steps per halving")
    parser.add_argument("--window", type=int, default=defaults.window)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--train-episodes", type=int, help="use the first N train episodes (default: all)")
    parser.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes)
    parser.add_argument("--eval-frames", type=int, default=defaults.eval_frames)
    parser.add_argument("--eval-context", type=int, default=defaults.eval_context)
    parser.add_argument("--eval-rollout", type=int, default=defaults.eval_rollout)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")


def run(args: argparse.Namespace) -> int:
    from data_collection.dataset import DatasetError
    from lssvwm_env.checkpoint import CheckpointError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = DistillConfig(steps=args.steps, iterations=args.iterations, window=args.window,
                               batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                               train_episodes=args.train_episodes, eval_episodes=args.eval_episodes,
                               eval_frames=args.eval_frames, eval_context=args.eval_context,
                               eval_rollout=args.eval_rollout)
        record = distill(args.checkpoint, args.data, args.out, config)
    except (CheckpointError, DatasetError, DistillationDiverged, ValueError) as err:
        print(f"lssvwm distill: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({record['halvings'][-1]['steps']} sampling steps)")
    return 0

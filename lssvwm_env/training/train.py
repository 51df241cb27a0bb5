"""`lssvwm train`: stage 0 trains the frame autoencoder, its latents are cached, stage 1 trains the
dynamics on them with the length curriculum, truncated BPTT across consecutive windows and state
resetting. Checkpoints are atomic and `--resume` continues a killed run at the same step with the
same data order. Several processes: `torchrun --nproc_per_node=N -m lssvwm_env.training.train ...`.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lssvwm_env.checkpoint import (FORMAT, CheckpointError, apply_training_data, load_world_model,
                                   resolve_checkpoint_dir, write_checkpoint_dir)
from lssvwm_env.config_io import ConfigError, diff_configs, set_by_path
from lssvwm_env.models.heads import training_data_record
from lssvwm_env.models.world_model import WorldModel, WorldModelConfig
from lssvwm_env.presets import PRESETS, preset
from lssvwm_env.training.config import TrainConfig
from lssvwm_env.training.data import (LatentCache, WindowLanes, build_latent_cache, load_split,
                                      sample_frames, step_generator)
from lssvwm_env.training.distributed import Distributed
from lssvwm_env.training.ema import EMA
from data_collection.colour_grid import is_colour_grid
from data_collection.dataset import Dataset
from data_collection.files import write_video
from lssvwm_env.training.evaluate import autoencoder_metrics, dynamics_metrics
from lssvwm_env.training.losses import dynamics_loss


class TrainingStopped(RuntimeError):
    pass


@dataclass
class Progress:
    """Counters saved with every checkpoint."""
    stage: str = "autoencoder"  # autoencoder -> dynamics -> done
    autoencoder_step: int = 0
    dynamics_step: int = 0
    wall_time_s: float = 0.0
    metrics: list[dict] = field(default_factory=list)
    lanes: dict = field(default_factory=dict)


def cosine_lr(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class Trainer:
    def __init__(self, config: TrainConfig, data_dir: Path, run_dir: Path, device: torch.device,
                 resume: bool, command: list[str], allow_changes: bool = False,
                 init_autoencoder: Path | None = None, init_model: Path | None = None) -> None:
        self.config, self.data_dir, self.run_dir, self.device = config, data_dir, run_dir, device
        self.command, self.allow_changes = command, allow_changes
        # Recorded with the model, so that what serves it knows which real env it imagines.
        self.data_env = Dataset.open(data_dir).manifest.env
        # Checked before anything is written: a donor that cannot serve fails the run at its start.
        if init_autoencoder is not None and init_model is not None:
            raise ConfigError("--init-autoencoder and --init-model: give one (--init-model takes the autoencoder too)")
        self.donates_dynamics = init_model is not None
        source = init_model if init_model is not None else init_autoencoder
        self.donor = self.checked_donor(source) if source is not None else None
        self.dist = Distributed.from_environment(device)
        torch.manual_seed(config.seed)
        self.model = WorldModel(config.model).to(device)
        self.dist.broadcast_parameters(self.model)
        self.progress = Progress()
        self.dynamics_params = {f"backbone.{n}": p for n, p in self.model.backbone.named_parameters()}
        self.dynamics_params.update({f"heads.{n}": p for n, p in self.model.heads.named_parameters()})
        self.ae_optimizer = torch.optim.AdamW(self.model.autoencoder.parameters(),
                                              lr=config.autoencoder_training.lr, weight_decay=0.0)
        dyn = config.dynamics_training
        self.optimizer = torch.optim.AdamW(self.dynamics_params.values(), lr=dyn.lr,
                                           weight_decay=dyn.weight_decay, betas=(0.9, 0.99))
        self.ema = EMA(self.dynamics_params, dyn.ema_decay)
        self.training_data: dict | None = None  # heads.training_data_record of the train split
        self.carried = None  # the detached recurrent state carried from window to window
        self.lanes: WindowLanes | None = None
        self.started = time.time()
        if self.dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        self.dist.barrier()
        if resume:
            self.load()
        elif (run_dir / "checkpoint").exists():
            raise CheckpointError(f"{run_dir} already holds a run; pass --resume to continue it or choose "
                                  "another --out")
        self.tb = None
        if self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    # ---- checkpoints ---------------------------------------------------------------------------
    def config_record(self) -> dict:
        record = {"format": FORMAT, "version": 1, **self.config.to_dict()}
        if self.training_data is not None:
            record["training_data"] = self.training_data
        return record

    def inference_weights(self) -> dict[str, torch.Tensor]:
        weights = {k: v for k, v in self.model.state_dict().items()}
        for name, tensor in self.ema.shadow.items():
            weights[name] = tensor
        return weights

    def save(self) -> None:
        if not self.dist.is_main:
            return
        self.progress.wall_time_s += time.time() - self.started
        self.started = time.time()
        state = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        state.update({f"ema.{k}": v for k, v in self.ema.shadow.items()})
        groups = {}
        for prefix, optimizer in (("optim", self.optimizer), ("ae_optim", self.ae_optimizer)):
            sd = optimizer.state_dict()
            for index, per_param in sd["state"].items():
                for key, value in per_param.items():
                    state[f"{prefix}.{index}.{key}"] = torch.as_tensor(value)
            groups[prefix] = sd["param_groups"]
        if self.carried is not None:
            for i, tensor in enumerate(self.carried.tensors()):
                state[f"carried.{i}"] = tensor
        if self.lanes is not None:
            self.progress.lanes = self.lanes.state_dict()
        record = {"progress": self.progress.__dict__, "param_groups": groups,
                  "carried": self.carried is not None}
        write_checkpoint_dir(self.run_dir, {
            "config.json": self.config_record(),
            "model.safetensors": self.inference_weights(),
            "training_state.safetensors": state,
            "training_state.json": record,
            "training.json": self.training_record(),
            "model_card.md": self.model_card().encode(),
        })

    def load(self) -> None:
        from safetensors.torch import load_file
        try:
            checkpoint_dir = resolve_checkpoint_dir(self.run_dir)
        except CheckpointError as err:
            raise CheckpointError(f"--resume: {err}") from err
        saved = json.loads((checkpoint_dir / "config.json").read_text())
        for key in ("format", "version", "training_data"):  # not settings: what the data held
            saved.pop(key, None)
        if "model" in saved:  # a run saved before a model field existed gets the value it trained with
            saved["model"] = json.loads(json.dumps(WorldModelConfig.from_dict(saved["model"]).to_dict()))
        current = json.loads(json.dumps(self.config.to_dict()))  # tuples -> lists, as saved
        differences = [d for d in diff_configs(saved, current) if not d.startswith("threads")]
        if differences and not self.allow_changes:
            raise CheckpointError(f"--resume: {checkpoint_dir / 'config.json'} differs from this run's config in: "
                                  + "; ".join(differences) + " (pass --allow-changes to continue with the new values)")
        if differences and self.dist.is_main:
            tqdm.write("resuming with changed config: " + "; ".join(differences))
        record = json.loads((checkpoint_dir / "training_state.json").read_text())
        state = load_file(str(checkpoint_dir / "training_state.safetensors"))
        self.model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        for name in self.ema.shadow:
            self.ema.shadow[name].copy_(state[f"ema.{name}"])
        for prefix, optimizer in (("optim", self.optimizer), ("ae_optim", self.ae_optimizer)):
            per_param: dict[int, dict] = {}
            for key, value in state.items():
                if key.startswith(prefix + "."):
                    _, index, name = key.split(".", 2)
                    per_param.setdefault(int(index), {})[name] = value
            optimizer.load_state_dict({"state": per_param, "param_groups": record["param_groups"][prefix]})
        self.progress = Progress(**record["progress"])
        if self.progress.stage == "done" and self.progress.dynamics_step < self.config.dynamics_training.total_iterations:
            self.progress.stage = "dynamics"  # a finished run resumed with a longer curriculum
        if record["carried"]:
            template = self.model.initial_state(1)
            tensors = [state[f"carried.{i}"] for i in range(len(template.tensors()))]
            self.carried = template.with_tensors(tensors)
        if self.dist.is_main:
            tqdm.write(f"resumed {self.run_dir} at stage {self.progress.stage}, autoencoder step "
                       f"{self.progress.autoencoder_step}, dynamics step {self.progress.dynamics_step}")

    def training_record(self) -> dict:
        """training.json: how this checkpoint was trained, as data (the model card renders it; the
        evaluations and the report read it)."""
        c, p = self.config, self.progress
        return {
            "command": list(self.command), "data": str(self.data_dir), "env": self.data_env, "preset": c.preset, "variant": c.model.variant,
            "parameters": sum(t.numel() for t in self.model.parameters()),
            "autoencoder_parameters": sum(t.numel() for t in self.model.autoencoder.parameters()),
            "stage": p.stage, "autoencoder_steps": p.autoencoder_step,
            "autoencoder_iterations": c.autoencoder_training.iterations,
            "dynamics_steps": p.dynamics_step, "dynamics_iterations": c.dynamics_training.total_iterations,
            "curriculum": [{"window": s.window, "iterations": s.iterations, "batch_size": s.batch_size}
                           for s in c.dynamics_training.curriculum],
            "processes": self.dist.world_size, "wall_time_min": round(p.wall_time_s / 60, 1),
            "training_data": self.training_data, "metrics": p.metrics,
        }

    def model_card(self) -> str:
        return render_model_card(self.training_record())

    def log(self, step_name: str, step: int, values: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        for key, value in values.items():
            self.tb.add_scalar(key, value, step)
        path = self.run_dir / "metrics.csv"
        row = {"stage": step_name, "step": step, **values}
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["stage", "step", "key", "value"])
            for key, value in values.items():
                writer.writerow([row["stage"], step, key, value])

    # ---- stage 0: autoencoder ------------------------------------------------------------------
    def checked_donor(self, source: Path) -> WorldModel:
        """The model `--init-autoencoder` takes its autoencoder from, or `--init-model` all its weights
        (a fine-tune), checked against this run's config: the autoencoder's, or the whole model's but
        for `bf16` (precision follows the hardware)."""
        from dataclasses import asdict
        donor = load_world_model(source)
        if self.donates_dynamics:
            flag, prefix, theirs, ours = "--init-model", "model.", donor.config, self.config.model
        else:
            flag, prefix = "--init-autoencoder", "model.autoencoder."
            theirs, ours = donor.config.autoencoder, self.config.model.autoencoder
        theirs, ours = (json.loads(json.dumps(asdict(c))) for c in (theirs, ours))
        theirs.pop("bf16", None), ours.pop("bf16", None)
        differences = diff_configs(theirs, ours, prefix=prefix)
        if differences:
            raise CheckpointError(f"{flag} {source}: its {prefix.rstrip('.').replace('.', ' ')} config differs from "
                                  "this run's in " + "; ".join(differences) + f" (--set {prefix}... to match)")
        return donor

    def adopt_dynamics(self) -> None:
        """--init-model: the donor's backbone and heads (its inference, EMA, weights) as this run's
        starting point, and as the start of its EMA; the optimizer starts afresh."""
        self.model.backbone.load_state_dict(self.donor.backbone.state_dict())
        self.model.heads.load_state_dict(self.donor.heads.state_dict())
        apply_training_data(self.model, self.training_data)  # the heads' reward range: this run's data
        self.ema = EMA(self.dynamics_params, self.config.dynamics_training.ema_decay)
        if self.dist.is_main:
            tqdm.write("backbone and heads from --init-model")

    def adopt_autoencoder(self, eval_episodes) -> None:
        """Stage 0 done by another run: its autoencoder weights and latent statistics, so that variants
        compared on the same data share one autoencoder (and its ceiling)."""
        self.model.autoencoder.load_state_dict(self.donor.autoencoder.state_dict())
        self.model.latent_mean.copy_(self.donor.latent_mean)
        self.model.latent_std.copy_(self.donor.latent_std)
        self.model.autoencoder.eval()
        cfg = self.config.autoencoder_training
        metrics = autoencoder_metrics(self.model, eval_episodes, cfg.eval_frames)
        self.progress.autoencoder_step = cfg.iterations
        self.progress.metrics.append({"stage": "autoencoder", "step": cfg.iterations, **metrics})
        if self.dist.is_main:
            tqdm.write(f"autoencoder from the donor: held-out reconstruction PSNR {metrics['ae_psnr']:.2f} dB")
        if self.donates_dynamics:
            self.adopt_dynamics()
        self.progress.stage = "dynamics"
        self.save()

    def train_autoencoder(self, train_episodes, eval_episodes) -> None:
        cfg = self.config.autoencoder_training
        ae = self.model.autoencoder
        ae.train()
        bar = tqdm(total=cfg.iterations, initial=self.progress.autoencoder_step, desc="stage 0: autoencoder",
                   disable=not self.dist.is_main, dynamic_ncols=True)
        while self.progress.autoencoder_step < cfg.iterations:
            step = self.progress.autoencoder_step
            g = step_generator(self.config.seed, step, self.dist.rank, salt=1)
            frames = sample_frames(train_episodes, cfg.batch_size, g).to(self.device)
            for group in self.ae_optimizer.param_groups:
                group["lr"] = cosine_lr(step, cfg.iterations, max(1, cfg.iterations // 20), cfg.lr)
            torch.manual_seed(self.config.seed * 31 + step)
            with self.model.autoencoder_autocast():
                loss, parts = ae.loss(frames)
            self.check_finite(loss, "autoencoder", step)
            self.ae_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.dist.average_gradients(list(ae.parameters()))
            torch.nn.utils.clip_grad_norm_(ae.parameters(), 1.0)
            self.ae_optimizer.step()
            self.progress.autoencoder_step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}", frames_s=f"{(bar.format_dict['rate'] or 0) * cfg.batch_size:.0f}")
            if step % 10 == 0:
                self.log("autoencoder", step, {"ae/loss": loss.item(), **{f"ae/{k}": v for k, v in parts.items()}})
            if self.progress.autoencoder_step % self.config.checkpoint_every == 0:
                self.save()
        bar.close()
        ae.eval()
        metrics = autoencoder_metrics(self.model, eval_episodes, cfg.eval_frames)
        self.progress.metrics.append({"stage": "autoencoder", "step": self.progress.autoencoder_step, **metrics})
        self.log("autoencoder", self.progress.autoencoder_step, {f"eval/{k}": v for k, v in metrics.items()})
        if self.dist.is_main:
            tqdm.write(f"autoencoder held-out reconstruction: PSNR {metrics['ae_psnr']:.2f} dB, "
                       f"SSIM {metrics['ae_ssim']:.3f}")
        self.set_latent_statistics(train_episodes)
        self.progress.stage = "dynamics"
        self.save()

    @torch.no_grad()
    def set_latent_statistics(self, train_episodes) -> None:
        g = step_generator(self.config.seed, 0, 0, salt=2)
        frames = sample_frames(train_episodes, 1024, g).to(self.device)
        self.model.latent_mean.zero_()
        self.model.latent_std.fill_(1.0)
        latents = self.model.encode(frames.unsqueeze(0))[0].float()
        self.model.latent_mean.copy_(latents.mean(dim=(0, 1, 2)))
        self.model.latent_std.copy_(latents.std(dim=(0, 1, 2)).clamp_min(1e-3))

    def latent_cache(self, split: str, episodes) -> LatentCache:
        """Encode a split once (rank 0) and reuse it; rebuilt when the autoencoder changed."""
        path = self.run_dir / f"latents_{split}.safetensors"
        stamp = self.run_dir / f"latents_{split}.json"
        key = {"autoencoder_step": self.progress.autoencoder_step, "episodes": len(episodes),
               "frames": sum(len(ep["frames"]) + ("final_frame" in ep) for ep in episodes)}
        if self.dist.is_main and not (path.exists() and stamp.exists() and json.loads(stamp.read_text()) == key):
            build_latent_cache(self.model, episodes, desc=f"encode {split} latents").save(path)
            stamp.write_text(json.dumps(key))
        self.dist.barrier()
        return LatentCache.load(path)

    # ---- stage 1: dynamics ---------------------------------------------------------------------
    def train_dynamics(self, cache: LatentCache, eval_episodes) -> None:
        cfg = self.config.dynamics_training
        model = self.model
        model.backbone.train()
        total = cfg.total_iterations
        bar = tqdm(total=total, initial=self.progress.dynamics_step, desc="stage 1: dynamics",
                   disable=not self.dist.is_main, dynamic_ncols=True)
        stage_index = -1
        while self.progress.dynamics_step < total:
            step = self.progress.dynamics_step
            index, stage = cfg.stage_at(step)
            if index != stage_index:
                # Lanes and carried state restored from a checkpoint continue where they were;
                # a new curriculum stage starts its lanes afresh.
                resumed = self.lanes is None and self.progress.lanes.get("window") == stage.window
                self.lanes = WindowLanes(cache.episode_lengths, stage.batch_size, stage.window, cfg.state_reset_prob)
                if resumed and self.carried is not None and self.carried.batch_size == stage.batch_size:
                    self.lanes.load_state_dict(self.progress.lanes)
                else:
                    self.carried = model.initial_state(stage.batch_size)
                stage_index = index
            g = step_generator(self.config.seed, step, self.dist.rank, salt=3)
            windows, reset = self.lanes.next(g)
            lane_windows = [cache.window(e, s, stage.window) for e, s in windows]
            batch = {k: torch.stack([w[k] for w in lane_windows]).to(self.device) for k in lane_windows[0]}
            state = self.carried.where(reset.to(self.device), model.initial_state(stage.batch_size))

            losses = dynamics_loss(model, batch, state, cfg.objective, cfg.reward_loss_weight,
                                   cfg.carry_clean_state, generator=g)
            self.check_finite(losses.total, "dynamics", step)

            for group in self.optimizer.param_groups:
                group["lr"] = cosine_lr(step, total, cfg.warmup, cfg.lr)
            self.optimizer.zero_grad(set_to_none=True)
            losses.total.backward()
            params = list(self.dynamics_params.values())
            self.dist.average_gradients(params)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            self.optimizer.step()
            self.ema.update(self.dynamics_params, step)
            # Truncated BPTT: the next window of each lane starts from this window's detached state.
            self.carried = losses.carried

            self.progress.dynamics_step += 1
            frames_per_step = stage.batch_size * stage.window * self.dist.world_size
            rate = bar.format_dict["rate"] or 0.0
            bar.update(1)
            bar.set_postfix(window=stage.window, loss=f"{losses.diffusion.item():.4f}",
                            frames_s=f"{rate * frames_per_step:.0f}")
            if step % 10 == 0:
                self.log("dynamics", step, {"dyn/loss": losses.total.item(), "dyn/diffusion_loss": losses.diffusion.item(),
                                            "dyn/reward_loss": losses.reward.item(),
                                            "dyn/termination_loss": losses.termination.item(),
                                            "dyn/grad_norm": float(grad_norm), "dyn/window": stage.window,
                                            "dyn/lr": self.optimizer.param_groups[0]["lr"]})
            done = self.progress.dynamics_step
            if done % cfg.eval_every == 0 or done == total:
                self.evaluate(eval_episodes, done)
            if done % self.config.checkpoint_every == 0 or done == total:
                self.save()
        bar.close()

    def evaluate(self, eval_episodes, step: int) -> None:
        if not self.dist.is_main:
            return
        cfg = self.config.dynamics_training
        ema_model = self.ema_copy()
        context, rollout = self.eval_lengths
        metrics, video = dynamics_metrics(ema_model, eval_episodes, context, rollout,
                                          cfg.eval_episodes, seed=self.config.seed,
                                          one_step_frames=cfg.eval_one_step_frames)
        if is_colour_grid(self.data_env):  # cell by cell (evaluation/grid_cells.py)
            from lssvwm_env.evaluation.grid_cells import training_metrics
            metrics.update(training_metrics(ema_model, eval_episodes[:cfg.eval_episodes], self.data_env, self.config.seed))
            tqdm.write(f"step {step}: cells in view a frame before drawn in their colour: "
                       f"{metrics['cell_accuracy_previous_frame']:.3f} (autoencoder: {metrics['autoencoder_cell_accuracy']:.3f})")
        self.progress.metrics.append({"stage": "dynamics", "step": step, **metrics})
        self.log("dynamics", step, {f"eval/{k}": v for k, v in metrics.items()})
        one_step = (f"; every frame from its real past: {metrics['one_step_psnr']:.2f} dB (previous frame: "
                    f"{metrics['one_step_psnr_last_frame']:.2f})" if "one_step_psnr" in metrics else "")
        tqdm.write(f"step {step}: held-out next-frame PSNR {metrics['next_frame_psnr']:.2f} dB "
                   f"(last frame repeated: {metrics['next_frame_psnr_last_frame']:.2f}{one_step}), "
                   f"{rollout}-frame rollout PSNR {metrics['rollout_psnr']:.2f} dB "
                   f"(last frame: {metrics['rollout_psnr_last_frame']:.2f}, "
                   f"context mean: {metrics['rollout_psnr_context_mean']:.2f})")
        if step % self.config.video_every == 0 or step == cfg.total_iterations:
            path = write_video(self.run_dir / "samples" / f"rollout_step{step:06d}.mp4", video)
            self.tb.add_images("rollout/ground_truth|generated", video[::max(1, len(video) // 8)],
                               step, dataformats="NHWC")
            tqdm.write(f"sample video: {path}")

    def ema_copy(self) -> WorldModel:
        model = WorldModel(self.config.model).to(self.device)
        model.load_state_dict(self.inference_weights())
        apply_training_data(model, self.training_data)
        return model.eval()

    def check_finite(self, loss: torch.Tensor, stage: str, step: int) -> None:
        """Stop on a NaN/inf loss. The weights that produced it are garbage already, so they are not
        saved: the last checkpoint (written before the divergence) stays as it is."""
        if not torch.isfinite(loss):
            kept = json.loads((self.run_dir / "checkpoint" / "training_state.json").read_text())["progress"]
            raise TrainingStopped(
                f"{stage} loss is {loss.item()} at step {step}; stopped. The last good checkpoint "
                f"(autoencoder step {kept['autoencoder_step']}, dynamics step {kept['dynamics_step']}) is kept in "
                f"{self.run_dir / 'checkpoint'}: lower the learning rate (--set ...lr=) and --resume")

    # ---- the whole run -------------------------------------------------------------------------
    def fit_evaluation(self, eval_episodes) -> tuple[int, int]:
        """(context, rollout) frames of the held-out evaluation, shortened in proportion when no held-out
        episode is long enough (as `lssvwm eval memory` plans it), and said so now rather than failing
        at the first evaluation."""
        from lssvwm_env.evaluation.memory import plan_episodes
        cfg = self.config.dynamics_training
        lengths = {i: len(ep["frames"]) for i, ep in enumerate(eval_episodes)}
        try:
            plan = plan_episodes(lengths, cfg.eval_context, cfg.eval_rollout, len(lengths))
        except ValueError as err:
            raise ValueError(f"{self.data_dir}: held-out evaluation: {err}") from err
        if plan.note and self.dist.is_main:
            tqdm.write(f"note: eval_context + eval_rollout: {plan.note}")
        return plan.context, plan.generate

    def run(self) -> None:
        train_episodes = load_split(self.data_dir, "train")
        eval_episodes = load_split(self.data_dir, "eval")
        self.eval_lengths = self.fit_evaluation(eval_episodes)
        self.training_data = training_data_record(np.concatenate([ep["rewards"] for ep in train_episodes]),
                                                  np.concatenate([ep["terminated"] for ep in train_episodes]))
        # The env serves the data's action space, bounds and all (checkpoint.action_space).
        self.training_data["action_space"] = Dataset.open(self.data_dir).manifest.action_space
        apply_training_data(self.model, self.training_data)
        if not (self.run_dir / "checkpoint").exists():
            self.save()  # step 0: a run always has a checkpoint to resume from
        if self.progress.stage == "autoencoder" and self.donor is not None:
            self.adopt_autoencoder(eval_episodes)
        if self.progress.stage == "autoencoder":
            self.train_autoencoder(train_episodes, eval_episodes)
        if self.progress.stage == "dynamics":
            cache = self.latent_cache("train", train_episodes)
            self.train_dynamics(cache, eval_episodes)
            self.progress.stage = "done"
            self.save()
        if os.environ.get("LSSVWM_SAVE_RANK_WEIGHTS"):
            # Debugging aid for data parallelism (and its test): every rank writes its own weights,
            # which must be identical.
            from safetensors.torch import save_file
            save_file({k: v.contiguous() for k, v in self.model.state_dict().items()},
                      str(self.run_dir / f"rank{self.dist.rank}_weights.safetensors"))
        if self.dist.is_main:
            (self.run_dir / "model_card.md").write_text(self.model_card())
            print(f"done: {self.run_dir / 'checkpoint'} (model card: {self.run_dir / 'model_card.md'})")
        self.dist.close()


def build_config(preset_name: str, overrides: list[str]) -> TrainConfig:
    config = preset(preset_name)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        config = set_by_path(config, key, value)
    return config


def saved_model_config(run_dir: Path) -> dict | None:
    """The model section of the config a run directory was saved with, or None."""
    try:
        return json.loads((resolve_checkpoint_dir(run_dir) / "config.json").read_text()).get("model")
    except (CheckpointError, OSError, ValueError):
        return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="dataset directory (from `lssvwm collect`)")
    parser.add_argument("--out", required=True, type=Path, help="run directory: checkpoints, logs, model card")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                        help="tiny (tests, seconds), cpu (the default model), paper (GPU, ~200M parameters)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any config field, e.g. --set dynamics_training.lr=1e-4 "
                             "--set model.variant=causal_attn (values parsed as JSON)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    parser.add_argument("--allow-changes", action="store_true",
                        help="with --resume: accept config changes (e.g. a longer or shorter curriculum); "
                             "the data order stays exact only for unchanged settings")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (0: default)")
    parser.add_argument("--init-autoencoder", type=Path, default=None, metavar="RUN_OR_CHECKPOINT",
                        help="skip stage 0: take the autoencoder (and latent statistics) of this run or checkpoint, "
                             "whose autoencoder config must match; variants compared on one dataset then share it")
    parser.add_argument("--init-model", type=Path, default=None, metavar="RUN_OR_CHECKPOINT",
                        help="fine-tune: start from all the weights of this run or checkpoint (e.g. lssvwm_env/"
                             "checkpoints/default), whose model config must match (--set model... to match); "
                             "stage 0 is skipped, the dynamics curriculum runs from its first step")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="the backbone's autocast: auto (the default) takes bf16 where the device computes it "
                             "natively (CPUs with AVX512-BF16 or AMX, bf16 GPUs) and fp32 elsewhere; a resumed run "
                             "keeps what it started with")


def resolve_precision(config: TrainConfig, precision: str, device: torch.device) -> str:
    """Sets config.model.bf16 from --precision and says what was chosen, and why."""
    from lssvwm_env.models.world_model import native_bf16
    if precision == "auto":
        config.model.bf16 = native_bf16(device)
        reason = f"{device.type} {'computes' if config.model.bf16 else 'does not compute'} bf16 natively"
    else:
        config.model.bf16 = precision == "bf16"
        reason = "--precision"
    chosen = "bf16" if config.model.bf16 else "fp32"
    print(f"precision: {chosen} ({reason})", file=sys.stderr)
    return chosen


def run(args: argparse.Namespace) -> int:
    from data_collection.dataset import DatasetError
    try:
        config = build_config(args.preset, args.overrides)
        # The action space comes from the data, whatever the preset says.
        from data_collection.dataset import Dataset
        actions = Dataset.open(args.data).manifest.actions
        config.model.backbone.action.kind = "continuous" if actions.continuous else "discrete"
        config.model.backbone.action.n = actions.n
        if args.threads:
            config.threads = args.threads
        if config.threads:
            torch.set_num_threads(config.threads)
        device = torch.device(args.device)
        if device.type == "cuda" and "LOCAL_RANK" in os.environ:
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        if args.resume and args.precision == "auto":
            saved = saved_model_config(args.out)
            if saved is not None:  # a resumed run keeps its precision unless one is asked for
                config.model.bf16 = bool(saved.get("bf16", False))
        else:
            resolve_precision(config, args.precision, device)
        launched_as_cli = sys.argv[0].endswith(("cli.py", "lssvwm"))
        command = ["lssvwm", *sys.argv[1:]] if launched_as_cli else ["python", "-m", __spec__.name, *sys.argv[1:]]
        Trainer(config, args.data, args.out, device, args.resume, command, args.allow_changes,
                args.init_autoencoder, args.init_model).run()
    except (ConfigError, CheckpointError, DatasetError, TrainingStopped, ValueError) as err:
        print(f"lssvwm train: error: {err}", file=sys.stderr)
        return 1
    return 0

def render_model_card(record: dict) -> str:
    """The model card (markdown) of a training.json record."""
    r, data = record, record.get("training_data")
    lines = [
        f"# lssvwm world model ({r['preset']} preset, variant `{r['variant']}`)", "",
        f"- command: `{' '.join(r['command'])}`",
        f"- data: `{r['data']}`" + (f" ({r['env']})" if r.get("env") else ""),
        f"- parameters: {r['parameters'] / 1e6:.2f} M (autoencoder {r['autoencoder_parameters'] / 1e6:.2f} M)",
        f"- stage: {r['stage']}; autoencoder steps {r['autoencoder_steps']}/{r['autoencoder_iterations']}; "
        f"dynamics steps {r['dynamics_steps']}/{r['dynamics_iterations']}",
        "- curriculum: " + ", ".join(f"{s['window']} frames x {s['iterations']} steps (batch {s['batch_size']})"
                                     for s in r["curriculum"]),
        f"- processes: {r['processes']}; wall time: {r['wall_time_min']:.1f} min",
        *([f"- training data: rewards in [{data['reward_range'][0]:g}, {data['reward_range'][1]:g}]"
           + (f" (values {', '.join(f'{v:g}' for v in data['reward_values'])})"
              if data["reward_values"] is not None else "")
           + f", {data['termination_rate']:.4f} of {data['transitions']:,} "
           "transitions end an episode; imagined rewards are kept in that range"]
          if data else []),
        "", "## Held-out metrics", "",
    ]
    metrics = r["metrics"]
    if metrics:
        keys = sorted({k for m in metrics for k in m})
        lines.append("| " + " | ".join(keys) + " |")
        lines.append("|" + "---|" * len(keys))
        for m in metrics:
            lines.append("| " + " | ".join(f"{m[k]:.4g}" if isinstance(m.get(k), float) else str(m.get(k, ""))
                                           for k in keys) + " |")
    else:
        lines.append("(none yet)")
    return "\n".join(lines) + "\n"

if __name__ == "__main__":  # torchrun --nproc_per_node=N -m lssvwm_env.training.train --data ... --out ...
    parser = argparse.ArgumentParser(prog="lssvwm_env.training.train", description=__doc__)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))

"""Does the training loss ask the SSM to remember longer, and how fast could Adam follow? Issue 35.

For each SSM head, the derivative of the diffusion loss (the objective the model trains on) with
respect to the log of the head's half-life, all else fixed: -dL/dA_log, since a frame scales a head's
state by exp(-exp(A_log) * sum dt), so raising A_log by x shortens every half-life by the factor e^x
and leaves what the head writes unchanged. Negative: remembering longer would lower the loss.

Measured on windows of W frames of held-out episodes, from a fresh state (what `w400` trains on), with
the loss over all of a window's frames, over its revisit frames only (the view was last seen 30 or
more frames before, inside the window: beyond local attention, only the SSM can carry it), and over
the frames whose view the window never showed before; with the recent past withheld (the window's
first half clean, the next 30 frames at pure noise, the loss on the 10 frames after them only: local
attention sees noise, so only the SSM can bring the clean half to them; a loss where only memory
pays); and on the same frames cut into windows of W / 4 (the control `w100`'s batch), all frames.
Over the windows, the mean, its standard error, and mean / rms: AdamW's step on A_log is about
-lr * mean / rms once its moments settle, so lr * steps * mean / rms bounds how far a run can move a
head's log half-life along this route (the dt route through in_proj and dt_bias also changes what the
head writes).

    python docs/paper-lengths/decay_gradient.py CHECKPOINT [CHECKPOINT ...] --data data/mm9-300k --windows 32 \\
        [--losses after_gap all]

Half-lives are measured on the committed pass over the same windows (ssm_timescales.RetentionRecorder).
Prints one JSON line per checkpoint, then a markdown table of each layer's longest-lived head.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from data_collection.dataset import Dataset
from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.evaluation.revisits import revisit_gaps
from lssvwm_env.evaluation.ssm_timescales import RetentionRecorder, blockwise_scans
from lssvwm_env.models.diffusion import sample_training_noise
from lssvwm_env.training.data import build_latent_cache
from lssvwm_env.training.losses import dynamics_loss

PIECES = 4  # the control's windows: the same frames in W / 4
REVISIT_GAP = 30  # frames: beyond the local attention's 10 and every head's half-life
HIDDEN, SCORED = 30, 10  # the withheld past: frames at pure noise, then frames in the loss
LOSSES = ("all", "revisit", "never_seen", "after_gap", "all_cut")  # the last: all frames, in windows of W / 4


def log_half_life_gradient(model, batch: dict[str, torch.Tensor], generator: torch.Generator,
                           noise_levels: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[np.ndarray]:
    """Per layer (heads,): d diffusion loss / d log half-life over the batch's windows, from fresh states;
    the loss over the frames batch["valid"] marks (dynamics_loss leaves the others out)."""
    model.backbone.zero_grad(set_to_none=True)
    state = model.initial_state(batch["latents"].shape[0])
    losses = dynamics_loss(model, batch, state, "diffusion_forcing", 0.0, False, generator=generator,
                           noise_levels=noise_levels)
    losses.diffusion.backward()
    return [-scan.mixer.A_log.grad.detach().numpy().copy() for scan in blockwise_scans(model)]


def withheld_past(frames: int, config, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigma, in_loss), (1, frames): the first half clean, the next HIDDEN frames at pure noise, the
    SCORED frames after them at the training's noise levels and alone in the loss."""
    sigma, _ = sample_training_noise(1, frames, config, "cpu", generator=generator, long_context=False)
    half = frames // 2
    sigma[:, :half] = 0.0
    sigma[:, half:half + HIDDEN] = 1.0
    in_loss = torch.zeros(1, frames, dtype=torch.bool)
    in_loss[:, half + HIDDEN:half + HIDDEN + SCORED] = True
    return sigma, in_loss


def summary(per_window: list[list[np.ndarray]], lr: float = 1e-4, steps: int = 1000) -> list[dict]:
    """Per layer: mean, s.e. and mean / rms of the gradient over windows, and the log half-life AdamW at
    `lr` could move a head in `steps` steps at that consistency."""
    out = []
    for layer in range(len(per_window[0])):
        g = np.stack([w[layer] for w in per_window])  # (windows, heads)
        mean, rms = g.mean(0), np.sqrt((g ** 2).mean(0))
        out.append({"mean": mean.tolist(), "se": (g.std(0, ddof=1) / math.sqrt(len(g))).tolist(),
                    "consistency": (mean / np.maximum(rms, 1e-30)).tolist(),
                    f"log_move_per_{steps}_steps_at_lr_{lr:g}": (-lr * steps * mean / np.maximum(rms, 1e-30)).tolist()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", required=True, help="a dataset with poses (agent_pos, agent_dir); its eval split")
    parser.add_argument("--episodes", type=int, default=8, help="held-out episodes the windows are drawn from")
    parser.add_argument("--window", type=int, default=400)
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--losses", nargs="+", choices=LOSSES, default=list(LOSSES), help="which losses (default all)")
    args = parser.parse_args()
    losses = [name for name in LOSSES if name in args.losses]
    if args.window % PIECES or args.window // 2 + HIDDEN + SCORED > args.window:
        parser.error(f"--window {args.window}: must be a multiple of {PIECES} and at least {2 * (HIDDEN + SCORED)}")
    torch.set_num_threads(args.threads)
    dataset = Dataset.open(args.data)
    episodes = [dataset.load_episode(e.index) for e in dataset.episodes("eval")][:args.episodes]
    episodes = [ep for ep in episodes if len(ep["frames"]) >= args.window]
    if not episodes or "agent_pos" not in episodes[0]:
        parser.error(f"--data {args.data}: needs held-out episodes of {args.window}+ frames with poses")
    pick = torch.Generator().manual_seed(args.seed)
    windows = []  # (episode, start, {loss: frame mask (W,)})
    for _ in range(args.windows):
        e = int(torch.randint(len(episodes), (1,), generator=pick))
        start = int(torch.randint(len(episodes[e]["frames"]) - args.window + 1, (1,), generator=pick))
        end = start + args.window
        gap = revisit_gaps(episodes[e]["agent_pos"][start:end], episodes[e]["agent_dir"][start:end],
                           0, 0, args.window).gap
        masks = {"all": np.ones(args.window, bool), "revisit": np.isfinite(gap) & (gap >= REVISIT_GAP),
                 "never_seen": np.isinf(gap)}
        windows.append((e, start, {k: torch.from_numpy(m) for k, m in masks.items()}))

    rows = []
    for checkpoint in args.checkpoints:
        model = load_world_model(checkpoint)
        cache = build_latent_cache(model, episodes, desc="encode")
        model.backbone.train()
        recorder = RetentionRecorder(model)
        if not recorder.scans:
            parser.error(f"{checkpoint}: this model has no block-wise SSM scan")
        grads: dict[str, list] = {name: [] for name in losses}
        frames = {name: 0 for name in losses}
        for number, (e, start, masks) in enumerate(windows):
            whole = {k: v.unsqueeze(0) for k, v in cache.window(e, start, args.window).items()}
            for name, mask in masks.items():
                if name in losses and mask.any():  # the same noise for every loss of a window
                    grads[name].append(log_half_life_gradient(
                        model, {**whole, "valid": whole["valid"] & mask}, torch.Generator().manual_seed(number)))
                    frames[name] += int(mask.sum())
            if "after_gap" in losses:
                g = torch.Generator().manual_seed(number)
                grads["after_gap"].append(log_half_life_gradient(
                    model, whole, g, withheld_past(args.window, model.config.diffusion, g)))
                frames["after_gap"] += SCORED
            if "all_cut" in losses:
                piece = args.window // PIECES
                pieces = [cache.window(e, start + i * piece, piece) for i in range(PIECES)]
                cut = {k: torch.stack([p[k] for p in pieces]) for k in pieces[0]}
                grads["all_cut"].append(log_half_life_gradient(model, cut, torch.Generator().manual_seed(number)))
                frames["all_cut"] += args.window
            with torch.no_grad(), recorder:
                model.step_latents(model.initial_state(1), whole["latents"], whole["actions"])
        result = {"checkpoint": checkpoint, "window": args.window, "revisit_gap": REVISIT_GAP,
                  "half_lives": [h.tolist() for h in recorder.half_lives()],
                  "windows": {name: len(grads[name]) for name in losses}, "frames": frames,
                  **{name: summary(grads[name]) for name in losses}}
        print(json.dumps(result), flush=True)
        rows.append(result)

    print(f"\nd loss / d log half-life of each layer's longest-lived head (± s.e. over windows; mean / rms "
          f"in brackets); heads: of the layer's, how many have d loss / d log half-life < 0 at 2 s.e.\n")
    names = {"all": f"windows of {args.window}, all frames", "revisit": f"revisit frames ({REVISIT_GAP}+ back)",
             "never_seen": "never-seen frames", "after_gap": f"{SCORED} frames after {HIDDEN} withheld",
             "all_cut": f"windows of {args.window // PIECES}, all frames"}
    print("| checkpoint | layer | longest half-life (frames) | " + " | ".join(names[n] for n in losses)
          + " | heads: " + " / ".join(losses) + " |")
    print("|---|---:|---:|" + "---:|" * len(losses) + "---:|")
    for result in rows:
        for layer, half_life in enumerate(result["half_lives"]):
            head = int(np.argmax(half_life))
            cells, counts = [], []
            for name in losses:
                s = result[name][layer]
                cells.append(f"{s['mean'][head]:+.1e} ± {s['se'][head]:.0e} ({s['consistency'][head]:+.2f})")
                counts.append(str(sum(m < -2 * se for m, se in zip(s["mean"], s["se"]))))
            print(f"| {result['checkpoint']} | {layer} | {half_life[head]:.2f} | " + " | ".join(cells)
                  + f" | {' / '.join(counts)} of {len(half_life)} |")


if __name__ == "__main__":
    main()

"""Does the training loss ask the SSM to remember longer, and how fast could Adam follow? Issue 35.

For each SSM head, the derivative of the diffusion loss (the objective the model trains on) with
respect to the log of the head's half-life, all else fixed: -dL/dA_log, since a frame scales a head's
state by exp(-exp(A_log) * sum dt), so raising A_log by x shortens every half-life by the factor e^x
and leaves what the head writes unchanged. Negative: remembering longer would lower the loss.

Measured on the same frames two ways: windows of W frames from a fresh state (what `w400` trains on),
and the same frames cut into windows of W / 4 (the control `w100`'s batch). Over the windows, the
mean, its standard error, and mean / rms: AdamW's step on A_log is about -lr * mean / rms once its
moments settle, so lr * steps * mean / rms bounds how far a run can move a head's log half-life along
this route (the dt route through in_proj and dt_bias also changes what the head writes).

    python docs/paper-lengths/decay_gradient.py --latents runs/paper-lengths/w400/latents_train.safetensors \\
        --windows 16 CHECKPOINT [CHECKPOINT ...]

Half-lives are measured on the committed pass over the same windows (ssm_timescales.RetentionRecorder).
Prints one JSON line per checkpoint, then a markdown table of each layer's longest-lived head.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.evaluation.ssm_timescales import RetentionRecorder, blockwise_scans
from lssvwm_env.training.data import LatentCache
from lssvwm_env.training.losses import dynamics_loss

PIECES = 4  # the control's windows: the same frames in W / 4


def log_half_life_gradient(model, batch: dict[str, torch.Tensor], generator: torch.Generator) -> list[np.ndarray]:
    """Per layer (heads,): d diffusion loss / d log half-life over the batch's windows, from fresh states."""
    model.backbone.zero_grad(set_to_none=True)
    state = model.initial_state(batch["latents"].shape[0])
    losses = dynamics_loss(model, batch, state, "diffusion_forcing", 0.0, False, generator=generator)
    losses.diffusion.backward()
    return [-scan.mixer.A_log.grad.detach().numpy().copy() for scan in blockwise_scans(model)]


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
    parser.add_argument("--latents", required=True, type=Path, help="a run's latents_train.safetensors")
    parser.add_argument("--window", type=int, default=400)
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.window % PIECES:
        parser.error(f"--window {args.window}: must be a multiple of {PIECES}")
    torch.set_num_threads(args.threads)
    cache = LatentCache.load(args.latents)
    lengths = cache.episode_lengths
    pick = torch.Generator().manual_seed(args.seed)
    long_enough = [e for e, n in enumerate(lengths) if n >= args.window]
    if not long_enough:
        parser.error(f"--latents {args.latents}: no episode holds a window of {args.window} frames")
    windows = []
    for _ in range(args.windows):
        e = long_enough[int(torch.randint(len(long_enough), (1,), generator=pick))]
        windows.append((e, int(torch.randint(lengths[e] - args.window + 1, (1,), generator=pick))))

    rows = []
    for checkpoint in args.checkpoints:
        model = load_world_model(checkpoint)
        model.backbone.train()
        recorder = RetentionRecorder(model)
        if not recorder.scans:
            parser.error(f"{checkpoint}: this model has no block-wise SSM scan")
        long_grads, short_grads = [], []
        for number, (e, start) in enumerate(windows):
            whole = {k: v.unsqueeze(0) for k, v in cache.window(e, start, args.window).items()}
            piece = args.window // PIECES
            pieces = [cache.window(e, start + i * piece, piece) for i in range(PIECES)]
            cut = {k: torch.stack([p[k] for p in pieces]) for k in pieces[0]}
            long_grads.append(log_half_life_gradient(model, whole, torch.Generator().manual_seed(number)))
            short_grads.append(log_half_life_gradient(model, cut, torch.Generator().manual_seed(number)))
            with torch.no_grad(), recorder:
                model.step_latents(model.initial_state(1), whole["latents"], whole["actions"])
        result = {"checkpoint": checkpoint, "window": args.window, "windows": len(windows),
                  "half_lives": [h.tolist() for h in recorder.half_lives()],
                  "long": summary(long_grads), "short": summary(short_grads)}
        print(json.dumps(result), flush=True)
        rows.append(result)

    print(f"\n| checkpoint | layer | longest half-life (frames) | dL/dlog half-life, windows of {args.window} "
          f"(± s.e.) | mean / rms | windows of {args.window // PIECES} | mean / rms | heads (of the layer) with "
          f"dL/dlog hl < 0 at 2 s.e., {args.window} / {args.window // PIECES} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for result in rows:
        for layer, half_life in enumerate(result["half_lives"]):
            head = int(np.argmax(half_life))
            long, short = result["long"][layer], result["short"][layer]

            def wants_longer(s: dict) -> int:
                return int(sum(m < -2 * se for m, se in zip(s["mean"], s["se"])))
            print(f"| {result['checkpoint']} | {layer} | {half_life[head]:.2f} | {long['mean'][head]:+.2e} "
                  f"± {long['se'][head]:.1e} | {long['consistency'][head]:+.2f} | {short['mean'][head]:+.2e} "
                  f"± {short['se'][head]:.1e} | {short['consistency'][head]:+.2f} | "
                  f"{wants_longer(long)} / {wants_longer(short)} of {len(half_life)} |")


if __name__ == "__main__":
    main()

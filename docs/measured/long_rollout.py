"""A long imagined rollout with random actions: does anything grow or go wrong? Writes JSON with the
process's memory (RSS) and the state's size at checkpoints along the way, NaN checks and steps/s.

    python docs/measured/long_rollout.py --steps 100000 --out docs/measured/long_rollout.json

The model is a tiny random one (the `tiny` preset, 1 thread): what is measured is the machinery
(state, caches, buffers), not the model's quality; a step's cost is the same for any weights.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lssvwm_env.bench import reset_peak_rss, rss_mb
from lssvwm_env.checkpoint import save_world_model
from lssvwm_env.envs.world_model_env import LSSVWMEnv
from lssvwm_env.models import WorldModel
from lssvwm_env.presets import tiny


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=5_000, help="steps between measurements")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = tiny().model
    model = WorldModel(config)
    with torch.no_grad():  # an episode that never ends: the termination head says "no" everywhere
        model.heads.net[-1].bias[1] = -50.0
    checkpoint = save_world_model(model, Path(tempfile.mkdtemp()) / "tiny")
    env = LSSVWMEnv(checkpoint=checkpoint, context=4, max_episode_steps=args.steps + 1)
    frames = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    env.reset(seed=0, options={"frames": frames, "actions": np.zeros(8, np.int64)})
    rng = np.random.default_rng(0)
    points, started, finite = [], time.perf_counter(), True
    for step in range(1, args.steps + 1):
        obs, reward, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        finite &= bool(np.isfinite(reward))
        if terminated or truncated:
            raise SystemExit(f"the episode ended at step {step}")
        if step % args.every == 0 or step == args.steps:
            gc.collect()
            reset_peak_rss()
            finite &= all(torch.isfinite(t).all().item() for t in env.core.state.tensors() if t.is_floating_point())
            points.append({"step": step, "rss_mb": round(rss_mb()[0], 1), "state_bytes": env.core.state.nbytes(),
                           "steps_per_s": round(step / (time.perf_counter() - started), 1)})
            print(json.dumps(points[-1]), flush=True)
    result = {"command": f"python docs/measured/long_rollout.py --steps {args.steps} --every {args.every} "
                         f"--out {args.out}", "threads": 1, "preset": "tiny", "finite": finite, "points": points,
              "torch": torch.__version__}
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Issue 38's snippet, scored: prime `LSSVWM-Memory-v0` on GIVEN real frames of a held-out episode
through `reset(options={"frames", "actions"})`, take the next real action, and score the env's frame
against the real one beside what the memory benchmark's rollouts (evaluation/memory.py:
generate_rollouts) score for the same window, and beside the last given frame repeated.

    python docs/measured/reset_given_frames.py --data data/mm9-issue38 --out docs/measured/reset-given-frames/after.json

One target per episode: frames [offset, offset + given) are given, frame offset + given is the target.
Per target: the reset observation against the last given frame (the env shows the last frame it was
primed on), the next frame through gym.make("LSSVWM-Memory-v0", sampling_steps=1) (the default
context=32) and through the same with context=given, and the benchmark's next frame with the env's
sampling noise and with its own (seed 0, as `lssvwm eval memory`). Runs on any commit that has these
functions, so it scores the code from before issue 38's fix too (run it with PYTHONPATH=WORKTREE).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import lssvwm_env  # noqa: F401  (registers the ids)
from data_collection.dataset import Dataset
from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.evaluation.memory import PSNR_CAP_DB, generate_rollouts
from lssvwm_env.evaluation.metrics import psnr

ENV_ID = "LSSVWM-Memory-v0"


def frame_psnr(generated: np.ndarray, real: np.ndarray) -> float:
    """PSNR in dB, capped as the benchmark caps it (equal frames: PSNR_CAP_DB)."""
    return float(psnr(torch.from_numpy(generated), torch.from_numpy(real)).clamp(max=PSNR_CAP_DB))


def env_next_frame(checkpoint: str | None, frames: np.ndarray, actions: np.ndarray, next_action: int,
                   seed: int, **options) -> tuple[np.ndarray, np.ndarray, int, float]:
    """The snippet: (reset observation, next frame, the env's noise seed, reset seconds)."""
    env = gym.make(ENV_ID, sampling_steps=1, **({"checkpoint": checkpoint} if checkpoint else {}), **options)
    start = time.perf_counter()
    obs, _ = env.reset(seed=seed, options={"frames": frames, "actions": actions})
    reset_s = time.perf_counter() - start
    noise_seed = env.unwrapped.core.generator.initial_seed()
    following, *_ = env.step(next_action)
    env.close()
    return obs, following, noise_seed, reset_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Memory Maze 9x9 episodes the model never saw")
    parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
    parser.add_argument("--given", type=int, default=400, help="real frames given to reset")
    parser.add_argument("--offset", type=int, default=50, help="the first given frame of each episode")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="reset(seed=)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_world_model(args.checkpoint)
    dataset = Dataset.open(args.data)
    entries = sorted(dataset.manifest.episodes.values(), key=lambda e: e.index)[:args.episodes]
    s, given = args.offset, args.given
    targets = []
    for entry in entries:
        episode = dataset.load_episode(entry.index)
        frames, actions = episode["frames"], episode["actions"]
        if len(frames) < s + given + 1:
            sys.exit(f"episode {entry.index} has {len(frames)} frames: --offset {s} --given {given} needs "
                     f"{s + given + 1}")
        real_next = frames[s + given]
        past, past_actions, next_action = frames[s:s + given], actions[s:s + given - 1], int(actions[s + given - 1])
        obs, env_next, noise_seed, reset_s = env_next_frame(args.checkpoint, past, past_actions, next_action,
                                                            args.seed)
        _, env_next_context, _, _ = env_next_frame(args.checkpoint, past, past_actions, next_action, args.seed,
                                                   context=given)
        window = {"frames": frames[s:s + given + 1], "actions": actions[s:s + given + 1]}
        evaluated = {name: generate_rollouts(model, [window], given, 1, 1, 1, seed).generated[0, 0].numpy()
                     for name, seed in (("env_noise", noise_seed), ("seed_0", 0))}
        targets.append({
            "episode": entry.index, "split": entry.split, "given": [s, s + given], "target": s + given,
            "reset_obs_vs_last_given_psnr": frame_psnr(obs, past[-1]),
            "env_next_psnr": frame_psnr(env_next, real_next),
            "env_context_given_next_psnr": frame_psnr(env_next_context, real_next),
            "evaluation_next_psnr": frame_psnr(evaluated["env_noise"], real_next),
            "evaluation_seed0_next_psnr": frame_psnr(evaluated["seed_0"], real_next),
            "env_equals_evaluation": bool(np.array_equal(env_next, evaluated["env_noise"])),
            "env_context_given_equals_evaluation": bool(np.array_equal(env_next_context, evaluated["env_noise"])),
            "last_given_repeated_psnr": frame_psnr(past[-1], real_next),
            "reset_s": reset_s,
        })
        print(json.dumps(targets[-1]), flush=True)
    keys = [k for k in targets[0] if k.endswith("_psnr")]
    here = Path(lssvwm_env.__file__).resolve().parent
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True).stdout
    result = {"command": " ".join(["python", "docs/measured/reset_given_frames.py", *sys.argv[1:]]),
              "code": {"commit": commit.strip(), "package": str(here)}, "checkpoint": args.checkpoint or "shipped default",
              "sampling_steps": 1, "threads": args.threads, "targets": targets,
              "mean": {k: float(np.mean([t[k] for t in targets])) for k in keys}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["mean"]))


if __name__ == "__main__":
    main()

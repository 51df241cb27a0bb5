"""Evaluate a saved policy (or a uniform random one) in the REAL env, and with --in-model also
inside the world model, in the same harness (agents.episodes); the last line printed is the real
env's `... return MEAN ± STD`.

    python -m agents.evaluate --policy runs/agent-ppo --env memory-maze-9x9 --episodes 10 \
        [--max-steps 500] [--in-model [--checkpoint runs/cpu-mm9]] [--video ep.mp4] [--json eval.json]
    python -m agents.evaluate --policy random --env minigrid-memory --episodes 20

--policy: a run directory of agents.train_ppo, a policy zip (its algorithm from the run's
summary.json or --algo), or "random". --in-model uses --checkpoint, else the checkpoint the policy
was trained in, else the shipped model. --video writes the first real episode (and, with
--in-model, NAME.in_model.mp4 beside it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from agents.envs import REAL_ENV_OF_ID, imagined_env_id, world_model_checkpoint
from agents.episodes import evaluate_in_model, evaluate_in_real_env, write_video
from agents.policies import Policy, RandomPolicy, load_policy, read_summary, run_dir_of
from agents.train_ppo import EVAL_SEED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="run directory, policy zip, or 'random'")
    parser.add_argument("--env", required=True, help="the real env (memory-maze-9x9, minigrid-memory, ...)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--max-steps", type=int, help="cut episodes at this many steps (default: the env's limit)")
    parser.add_argument("--num-envs", type=int, default=1, help="envs stepped together (the K episodes are split)")
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="seeds the episodes (and the random policy)")
    parser.add_argument("--deterministic", action="store_true", help="argmax actions (default: sampled)")
    parser.add_argument("--algo", help="the algorithm of a policy zip without a summary.json (ppo, recurrent_ppo)")
    parser.add_argument("--in-model", action="store_true", help="also evaluate inside the world model")
    parser.add_argument("--checkpoint", help="world model for --in-model (default: the policy's, else the shipped one)")
    parser.add_argument("--model-env", help="the imagined id for --in-model (default: the one of --env)")
    parser.add_argument("--context", type=int, default=32, help="--in-model: real frames priming each episode")
    parser.add_argument("--video", type=Path, help="write the first real episode here (mp4)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")


def policy_from_arg(spec: str, action_space: Any, seed: int, algo: str | None,
                    device: str) -> tuple[Policy, str, dict[str, Any]]:
    """(policy, algo name, its run summary or {}) for --policy."""
    if spec == "random":
        return RandomPolicy(action_space, seed), "random", {}
    policy, algo = load_policy(spec, algo, device)
    run_dir = run_dir_of(spec)
    return policy, algo, read_summary(run_dir) if run_dir is not None else {}


def run(args: argparse.Namespace) -> int:
    from data_collection.envs import env_spec

    if args.threads:
        torch.set_num_threads(args.threads)
    policy, algo, summary = policy_from_arg(args.policy, env_spec(args.env).action_space.gymnasium(), args.seed,
                                            args.algo, args.device)
    record = args.video is not None
    # A policy that observes the world model's latent or features sees the real env through that model.
    obs_type = summary.get("settings", {}).get("obs_type", "pixels")
    model_of_policy = (world_model_checkpoint(summary["env"], summary.get("checkpoint")) if summary.get("imagined")
                       else summary.get("settings", {}).get("checkpoint"))
    results: dict[str, Any] = {"policy": args.policy, "algo": algo, "env": args.env, "max_steps": args.max_steps,
                               "obs_type": obs_type}
    lines = []
    if args.in_model:
        model_env = imagined_env_id(args.model_env or next(
            (i for i, real in REAL_ENV_OF_ID.items() if real == args.env), "LSSVWM-Memory-v0"))
        if model_env is None:
            raise SystemExit(f"--model-env {args.model_env!r} is not an LSSVWM id ({', '.join(REAL_ENV_OF_ID)})")
        checkpoint = args.checkpoint or (summary.get("checkpoint") if summary.get("imagined") else None)
        imagined = evaluate_in_model(policy, model_env, checkpoint, args.episodes, args.max_steps, args.seed,
                                     args.num_envs, args.deterministic, record, args.device, context=args.context,
                                     obs_type=obs_type)
        results["in_model"] = imagined.to_json()
        lines.append(f"world model: {imagined.line()}")
        if record:
            write_video(args.video.with_name(f"{args.video.stem}.in_model{args.video.suffix}"), imagined.frames)
    real = evaluate_in_real_env(policy, args.env, args.episodes, args.max_steps, args.seed, args.num_envs,
                                args.deterministic, record, obs_type, model_of_policy, args.device)
    results["real"] = real.to_json()
    if args.in_model:
        results["imagination_gap"] = results["in_model"]["mean_return"] - real.mean_return
        lines.append(f"imagination gap (model - real mean return): {results['imagination_gap']:+.3f}")
    if record:
        write_video(args.video, real.frames)
        lines.append(f"video: {args.video} ({len(real.frames)} frames)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    lines.append(f"real env {real.line()}")
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.evaluate", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

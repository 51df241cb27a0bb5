"""Train an agent in imagination: SB3 PPO (CnnPolicy) or sb3-contrib RecurrentPPO (CnnLstmPolicy)
inside the world model, all M envs stepped in one forward pass (LSSVWMSB3VecEnv); evaluated every
--eval-every timesteps in the REAL env. --env may also name a real env, for model-free baselines
trained directly in it (M real envs, DummyVecEnv or --subprocesses).

    python -m agents.train_ppo --env LSSVWM-Memory-v0 --algo ppo --timesteps 200000 --num-envs 8 \
        --out runs/agent-ppo [--checkpoint runs/cpu-mm9] [--real-env memory-maze-9x9] \
        [--eval-every 20000] [--eval-episodes 5] [--eval-max-steps 500] [--seed 0]
    python -m agents.train_ppo --env minigrid-memory --algo ppo --timesteps 50000 --num-envs 4 --out runs/mf

Imagined episodes start from real context: by default the first frames of the checkpoint's
context.npz episodes. `--context-dataset DIR --context-split train --context-start random
--max-episode-steps 16` starts short episodes anywhere in the dataset instead (as Dreamer imagines
from replayed states); PPO bootstraps the value at the step limit.

`--bc-dataset DIR` warm-starts the policy from a dataset before PPO (agents/behavior_cloning.py):
the actor imitates the data's actions and the critic regresses its discounted returns, for
--bc-epochs passes over the train episodes. With --timesteps 0 that is the whole training: the
behaviour-cloning baseline. `--bc-anchor` then keeps PPO near the warm start: the entropy bonus
becomes a penalty on KL(policy ‖ warm start), weighed by --ent-coef (agents/anchor.py).

Writes DIR/policy.zip (SB3's zip), DIR/checkpoints/policy_<steps>_steps.zip, DIR/tensorboard/ and
DIR/summary.json (settings, real env steps used, wall time, timesteps/s, evaluations), which is
rewritten after every evaluation and says "status": "running" | "done" | "interrupted".
SB3 rounds the timesteps up to whole rollouts (n_steps x num_envs).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import gymnasium
import sb3_contrib
import stable_baselines3
import torch
from stable_baselines3.common.callbacks import CheckpointCallback
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from agents.anchor import AnchoredCnnPolicy
from agents.behavior_cloning import CloneConfig, clone_behavior
from agents.callbacks import RealEnvEvalCallback, TqdmProgressCallback
from agents.envs import (REAL_ENV_OF_ID, imagined_env_id, make_imagined_vec_env, make_real_vec_env,
                         world_model_checkpoint)
from agents.episodes import EvalResult
from agents.policies import ALGOS, POLICY_FILE, SUMMARY_FILE
from data_collection.dataset import SPLITS, Dataset
from data_collection.files import write_json_atomic
from lssvwm_env.envs.context import CONTEXT_STARTS
from lssvwm_env.envs.world_model_env import OBS_TYPES

EVAL_SEED = 10_000  # evaluation episodes are seeded apart from the training envs' seeds


@dataclass
class TrainArgs:
    """Every setting of a run; all of it is written to summary.json."""

    env: str  # an LSSVWM id (imagination) or a real env name (model-free)
    out: Path
    algo: str = "ppo"
    timesteps: int = 100_000
    num_envs: int = 8
    seed: int = 0
    # the world model (imagined envs only)
    checkpoint: str | None = None  # None: the model shipped with the package
    context: int = 32  # real frames that prime each imagined episode
    context_dataset: str | None = None  # take them from this dataset (default: CHECKPOINT/context.npz)
    context_split: str = "eval"  # ... from these of its episodes
    context_start: str = "first"  # ... from their first frames, or "random": from anywhere in them
    sampling_steps: int | None = None  # denoising steps per frame (None: the model config's)
    max_episode_steps: int | None = None  # training episodes' step limit (None: the env's own)
    # what the policy observes: "pixels" (a CNN reads the frame), or "latent" / "features" (an MLP reads
    # the world model's latent or backbone features; in the real env the model observes the frames)
    obs_type: str = "pixels"
    # warm start (PPO only): behaviour cloning + value regression on a dataset before PPO
    bc_dataset: str | None = None
    bc_epochs: int = 4
    bc_anchor: float | None = None  # COEF: PPO's entropy bonus becomes COEF * KL(policy ‖ warm start) (agents/anchor.py)
    subprocesses: bool = False  # real envs: one process each
    # evaluation in the real env
    real_env: str | None = None  # None: the env itself (model-free) or the id's real env
    eval_every: int = 10_000  # timesteps; 0: only the final evaluation
    eval_episodes: int = 5  # 0: no evaluation at all
    eval_max_steps: int | None = None
    eval_envs: int = 1
    eval_seed: int = EVAL_SEED
    deterministic_eval: bool = False
    # PPO (defaults: SB3 zoo's Atari settings)
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 2.5e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    clip_range: float = 0.1
    # the run
    save_every: int = 50_000  # timesteps between policy checkpoints; 0: none
    device: str = "cpu"
    threads: int | None = None  # torch threads (None: torch's default)
    progress: bool = True
    overwrite: bool = False

    def to_json(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


# Flags agents.compare shares with this command: one declaration, one meaning (TrainArgs' fields).
def add_world_model_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainArgs(env="", out=Path())
    group = parser.add_argument_group("world model (imagined envs)")
    group.add_argument("--checkpoint", help="world model checkpoint or run directory (default: the shipped model)")
    group.add_argument("--context", type=int, default=defaults.context, help="real frames priming each episode")
    group.add_argument("--context-dataset", help="dataset whose episodes prime the episodes "
                                                 "(default: CHECKPOINT/context.npz)")
    group.add_argument("--context-split", choices=list(SPLITS), default=defaults.context_split,
                       help="which of the dataset's episodes")
    group.add_argument("--context-start", choices=list(CONTEXT_STARTS), default=defaults.context_start,
                       help="first: their first frames (where real episodes start); random: a window anywhere "
                            "in them, for short imagined episodes from every situation the data holds")
    group.add_argument("--sampling-steps", type=int, help="denoising steps per frame (default: the model's)")
    group.add_argument("--max-episode-steps", type=int, help="training episodes' step limit (default: the env's)")
    group.add_argument("--obs-type", choices=list(OBS_TYPES), default=defaults.obs_type,
                       help="what the policy observes: pixels (a CNN on the frame), latent or features (an MLP on "
                            "the world model's latent or features, which carry its memory; in the real env the "
                            "model observes the real frames)")


def add_warm_start_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainArgs(env="", out=Path())
    group = parser.add_argument_group("warm start (agents/behavior_cloning.py)")
    group.add_argument("--bc-dataset", help="before PPO, imitate this dataset's actions and regress its returns "
                                            "(usually the world model's dataset); with --timesteps 0, only that")
    group.add_argument("--bc-epochs", type=int, default=defaults.bc_epochs, help="passes over its train episodes")
    group.add_argument("--bc-anchor", type=float, metavar="COEF",
                       help="keep PPO near the warm start: its entropy bonus becomes COEF * KL(policy ‖ warm "
                            "start) (on Memory Maze 0.1 and 0.3 held it; docs/agents/README.md)")


def add_ppo_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainArgs(env="", out=Path())
    group = parser.add_argument_group("PPO")
    group.add_argument("--algo", choices=list(ALGOS), default=defaults.algo)
    group.add_argument("--num-envs", type=int, default=defaults.num_envs, help="training envs")
    group.add_argument("--seed", type=int, default=defaults.seed, help="training seed")
    for name in ("n_steps", "batch_size", "n_epochs"):
        group.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("learning_rate", "gamma", "gae_lambda", "ent_coef", "clip_range"):
        group.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    group.add_argument("--subprocesses", action="store_true", help="real envs: one process per env")
    group.add_argument("--device", default=defaults.device)
    group.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    group.add_argument("--no-progress", dest="progress", action="store_false")


SHARED_FIELDS = ("checkpoint", "context", "context_dataset", "context_split", "context_start", "sampling_steps",
                 "max_episode_steps", "obs_type", "bc_dataset", "bc_epochs", "bc_anchor", "algo", "num_envs", "seed", "n_steps",
                 "batch_size", "n_epochs", "learning_rate", "gamma", "gae_lambda", "ent_coef", "clip_range",
                 "subprocesses", "device", "threads", "progress")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainArgs(env="", out=Path())
    parser.add_argument("--env", required=True,
                        help="LSSVWM-Memory-v0 / LSSVWM-MiniGrid-v0 (train inside the world model) or a real env "
                             "(memory-maze-9x9, minigrid-memory, ...) for a model-free baseline")
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--timesteps", type=int, default=defaults.timesteps)
    add_world_model_arguments(parser)
    add_warm_start_arguments(parser)
    add_ppo_arguments(parser)
    group = parser.add_argument_group("evaluation in the real env")
    group.add_argument("--real-env", help="real env to evaluate in (default: the env the id's model was trained on)")
    group.add_argument("--eval-every", type=int, default=defaults.eval_every, help="timesteps; 0: final only")
    group.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes, help="0: no evaluation")
    group.add_argument("--eval-max-steps", type=int, help="cut evaluation episodes at this many steps")
    group.add_argument("--eval-envs", type=int, default=defaults.eval_envs)
    group.add_argument("--eval-seed", type=int, default=defaults.eval_seed)
    group.add_argument("--deterministic-eval", action="store_true", help="argmax actions (default: sampled)")
    parser.add_argument("--save-every", type=int, default=defaults.save_every, help="timesteps; 0: no checkpoints")
    parser.add_argument("--overwrite", action="store_true", help="reuse an --out that holds a finished run")


def check_flags(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> None:
    """Flags that only mean something together, checked before anything loads: --context-split and
    --context-start say where in --context-dataset's episodes to start; --bc-dataset warm-starts ppo."""
    if ns.context_dataset is None and (ns.context_split, ns.context_start) != ("eval", "first"):
        parser.error(f"--context-split {ns.context_split} --context-start {ns.context_start} choose where in a "
                     "dataset's episodes imagined episodes start; pass --context-dataset DIR too")
    if ns.bc_dataset is not None and ALGOS[ns.algo].recurrent:
        parser.error(f"--bc-dataset warm-starts --algo ppo only, not {ns.algo} (its LSTM would need whole "
                     "sequences)")
    if ns.bc_dataset is not None and ns.obs_type != "pixels":
        parser.error(f"--bc-dataset clones the dataset's frames: it warm-starts --obs-type pixels only, not "
                     f"{ns.obs_type}")
    if ns.bc_anchor is not None and ns.bc_dataset is None:
        parser.error("--bc-anchor keeps PPO near the warm start; pass --bc-dataset DIR too")
    if ns.bc_anchor is not None and ns.bc_anchor <= 0:
        parser.error(f"--bc-anchor {ns.bc_anchor}: the KL coefficient must be > 0")


def args_from_namespace(ns: argparse.Namespace) -> TrainArgs:
    return TrainArgs(**{f.name: getattr(ns, f.name) for f in fields(TrainArgs)})


def make_training_env(args: TrainArgs) -> tuple[VecEnv, str | None, str]:
    """(VecEnv, imagined id or None, real env to evaluate in)."""
    env_id = imagined_env_id(args.env)
    if env_id is None:
        venv = make_real_vec_env(args.env, args.num_envs, args.max_episode_steps, args.seed, args.subprocesses,
                                 args.obs_type, args.checkpoint, args.device)
        return venv, None, args.real_env or args.env
    real_env = args.real_env or REAL_ENV_OF_ID.get(env_id)
    if real_env is None and args.eval_episodes:
        raise ValueError(f"{env_id}: no real env is known for it; pass --real-env NAME or --eval-episodes 0")
    venv = make_imagined_vec_env(env_id, args.num_envs, seed=args.seed, checkpoint=args.checkpoint, device=args.device,
                                 sampling_steps=args.sampling_steps, context=args.context,
                                 max_episode_steps=args.max_episode_steps, dataset=args.context_dataset,
                                 dataset_split=args.context_split, context_start=args.context_start,
                                 obs_type=args.obs_type)
    return venv, env_id, real_env


def train(args: TrainArgs) -> dict[str, Any]:
    """Run training; returns the summary written to OUT/summary.json."""
    if args.algo not in ALGOS:
        raise ValueError(f"unknown algo {args.algo!r}; choose from {', '.join(ALGOS)}")
    if args.num_envs < 1 or args.timesteps < (0 if args.bc_dataset else 1) or args.bc_epochs < 1:
        raise ValueError(f"timesteps, num_envs and bc_epochs must be >= 1 (timesteps >= 0 with a bc_dataset), got "
                         f"{args.timesteps}, {args.num_envs} and {args.bc_epochs}")
    if args.bc_dataset:
        if ALGOS[args.algo].recurrent:
            raise ValueError(f"bc_dataset: behaviour cloning warm-starts ppo only, not {args.algo} (its LSTM would "
                             "need whole sequences); drop --bc-dataset or use --algo ppo")
        if args.obs_type != "pixels":
            raise ValueError(f"bc_dataset: behaviour cloning learns from the dataset's frames, so it warm-starts "
                             f"obs_type pixels only, not {args.obs_type}")
        Dataset.open(args.bc_dataset)  # a missing or bad manifest fails here, before the world model loads
    elif args.bc_anchor is not None:
        raise ValueError("bc_anchor keeps PPO near the warm start; set bc_dataset too")
    out = Path(args.out)
    if (out / SUMMARY_FILE).exists() and not args.overwrite:
        raise FileExistsError(f"{out} already holds a run ({out / SUMMARY_FILE}); choose another --out or pass "
                              "--overwrite")
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    algo = ALGOS[args.algo]
    venv, env_id, real_env = make_training_env(args)
    imagined = env_id is not None
    # The model the policy trains in, and through which a policy on its latent or features sees the real env.
    checkpoint = world_model_checkpoint(env_id, args.checkpoint) if imagined else args.checkpoint
    rollout = args.n_steps * args.num_envs
    anchored = args.bc_anchor is not None
    policy = AnchoredCnnPolicy if anchored else algo.policy_for(args.obs_type)
    model = algo.cls(policy, VecMonitor(venv), n_steps=args.n_steps,
                     batch_size=min(args.batch_size, rollout),  # SB3 needs batch_size <= n_steps x num_envs
                     n_epochs=args.n_epochs, learning_rate=args.learning_rate, gamma=args.gamma,
                     gae_lambda=args.gae_lambda, ent_coef=args.bc_anchor if anchored else args.ent_coef,
                     clip_range=args.clip_range,
                     seed=args.seed, device=args.device, tensorboard_log=str(out / "tensorboard"), verbose=0)

    summary: dict[str, Any] = {
        "algo": args.algo, "policy": policy if isinstance(policy, str) else policy.__name__,
        "env": env_id or args.env, "imagined": imagined,
        "checkpoint": str(checkpoint) if imagined else None, "real_env": real_env, "settings": args.to_json(),
        "status": "running", "timesteps": 0, "real_env_steps": {"training": 0, "evaluation": 0},
        "wall_time_s": 0.0, "evaluations": [], "final_eval": None, "behavior_cloning": None,
        "versions": {"stable_baselines3": stable_baselines3.__version__, "sb3_contrib": sb3_contrib.__version__,
                     "torch": torch.__version__, "gymnasium": gymnasium.__version__,
                     "python": platform.python_version()},
    }
    start = time.perf_counter()

    def write_summary(status: str) -> None:
        summary["status"] = status
        summary["timesteps"] = int(model.num_timesteps)
        # Model-free agents spend real env steps on training; agents in imagination spend none
        # (the world model's dataset is counted by agents.compare).
        summary["real_env_steps"] = {"training": 0 if imagined else int(model.num_timesteps),
                                     "evaluation": evaluator.real_env_steps if evaluator else 0}
        wall = time.perf_counter() - start
        eval_seconds = evaluator.seconds if evaluator else 0.0
        summary["wall_time_s"] = round(wall, 2)
        summary["eval_time_s"] = round(eval_seconds, 2)
        summary["timesteps_per_s"] = round(model.num_timesteps / max(wall - eval_seconds, 1e-9), 2)
        write_json_atomic(out / SUMMARY_FILE, summary)

    def record(result: EvalResult, timesteps: int) -> None:
        summary["evaluations"].append({"timesteps": timesteps, **result.to_json()})
        write_summary("running")

    evaluator = (RealEnvEvalCallback(real_env, args.eval_every, args.eval_episodes, args.eval_max_steps,
                                     args.eval_seed, args.eval_envs, args.deterministic_eval, record,
                                     obs_type=args.obs_type, checkpoint=checkpoint, device=args.device)
                 if args.eval_episodes and real_env else None)
    callbacks: list = [c for c in (evaluator,) if c is not None]
    if args.save_every:
        callbacks.append(CheckpointCallback(max(args.save_every // args.num_envs, 1), str(out / "checkpoints"),
                                            name_prefix="policy"))
    if args.progress:
        callbacks.append(TqdmProgressCallback(f"{args.algo} in {'imagination' if imagined else args.env}"))
    if args.bc_dataset:
        summary["behavior_cloning"] = clone_behavior(
            model.policy, CloneConfig(args.bc_dataset, epochs=args.bc_epochs, gamma=args.gamma, seed=args.seed),
            args.progress)
        if anchored:
            model.policy.set_anchor()
    write_summary("running")
    status = "interrupted"
    try:
        model.learn(total_timesteps=args.timesteps, callback=callbacks, tb_log_name=args.algo)
        status = "done"
    finally:
        model.save(out / POLICY_FILE)
        if evaluator is not None:
            if status == "done":
                evaluations = summary["evaluations"]
                if not evaluations or evaluations[-1]["timesteps"] != model.num_timesteps:
                    evaluator.evaluate()
                summary["final_eval"] = evaluations[-1]
            evaluator.close()
        write_summary(status)
        venv.close()
    return summary


def run(ns: argparse.Namespace) -> int:
    args = args_from_namespace(ns)
    summary = train(args)
    print(f"{summary['algo']} in {summary['env']}: {summary['timesteps']} timesteps in {summary['wall_time_s']:.1f} s "
          f"({summary['timesteps_per_s']:.1f} timesteps/s without evaluation); real env steps "
          f"{summary['real_env_steps']}")
    print(f"policy: {Path(args.out) / POLICY_FILE}")
    final = summary["final_eval"]
    if final is not None:
        print(f"final evaluation in the real env {final['env']} ({final['episodes']} episodes): return "
              f"{final['mean_return']:.3f} ± {final['std_return']:.3f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.train_ppo", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    ns = parser.parse_args(argv)
    check_flags(parser, ns)
    return run(ns)


if __name__ == "__main__":
    sys.exit(main())

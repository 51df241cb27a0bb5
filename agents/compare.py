"""Compare, in one harness and on the same seeded real episodes: a uniform random policy; a
model-free agent trained directly in the real env with as many real env steps as the world model's
dataset holds; and the agent trained in imagination, evaluated in the real env and inside the model
(the imagination gap). Writes OUT/comparison.md (a table), OUT/comparison.png (a bar plot) and
OUT/results.json.

    python -m agents.compare --out runs/compare --real-env memory-maze-9x9 --env LSSVWM-Memory-v0 \
        --checkpoint runs/cpu-mm9 --dataset data/mm9 --imagined-timesteps 200000 --episodes 10 --max-steps 500
    python -m agents.compare --out runs/compare --real-env memory-maze-9x9 --dataset data/mm9 \
        --imagined-policy runs/agent-ppo --model-free-policy runs/mf-ppo     # collect finished runs

Budgets are flags: --real-steps (default: the dataset's steps), --imagined-timesteps, --episodes,
--max-steps, --num-envs. Training runs go to OUT/model_free and OUT/imagined; a finished run there
with the same budget is reused, so an interrupted comparison restarts where it stopped. When only the
world model changed, --baselines-from OUT_BEFORE takes the random and model-free rows from an earlier
comparison on the same seeded episodes instead of evaluating them again.

--bc-dataset DIR warm-starts the imagination agent from that dataset (agents/behavior_cloning.py)
and adds the row that tells what imagination added: the same warm start alone, no PPO
(OUT/behavior_cloning). --bc-anchor COEF then keeps the imagination agent near that warm start: its
entropy bonus becomes COEF * KL(policy ‖ warm start) (agents/anchor.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.envs import REAL_ENV_OF_ID, imagined_env_id, world_model_checkpoint
from agents.episodes import EvalResult, evaluate_in_model, evaluate_in_real_env
from agents.policies import SUMMARY_FILE, RandomPolicy, load_policy, read_summary
from agents.train_ppo import (EVAL_SEED, SHARED_FIELDS, TrainArgs, add_ppo_arguments, add_warm_start_arguments,
                              add_world_model_arguments, check_flags, train)
from data_collection.files import write_json_atomic


@dataclass
class Row:
    agent: str
    trained_in: str
    real_steps: int  # real env steps the agent's training cost (for imagination: the world model's dataset)
    real: EvalResult
    in_model: EvalResult | None = None
    policy: str | None = None  # the evaluated run's directory (None: the random policy)

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "trained_in": self.trained_in, "real_steps": self.real_steps,
                "policy": self.policy, "real": self.real.to_json(),
                "in_model": self.in_model.to_json() if self.in_model else None}

    @staticmethod
    def from_json(data: dict[str, Any]) -> "Row":
        return Row(data["agent"], data["trained_in"], data["real_steps"], EvalResult.from_json(data["real"]),
                   EvalResult.from_json(data["in_model"]) if data.get("in_model") else None, data.get("policy"))


class Baselines:
    """The random and model-free rows of a previous comparison (--baselines-from), reused when they were
    evaluated on the same seeded real episodes: evaluation is seeded, so evaluating again would give
    the same numbers (tests/test_agents_compare.py) and cost as many real env steps as it did then."""

    def __init__(self, previous_out: Path | None, real_env: str, evaluation: dict[str, Any]) -> None:
        self.source, self.rows, self.reused = previous_out, [], []
        if previous_out is None:
            return
        path = previous_out / "results.json"
        try:
            previous = json.loads(path.read_text())
            rows = [Row.from_json(row) for row in previous["rows"]]
            same = previous["real_env"] == real_env and previous["evaluation"] == evaluation
        except FileNotFoundError:
            raise SystemExit(f"--baselines-from: {path} does not exist (pass a previous agents.compare --out)")
        except (ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"--baselines-from: {path} is not an agents.compare results file: {error!r}")
        if not same:
            print(f"not reusing {path}: it evaluated {previous['real_env']} with {previous['evaluation']}, "
                  f"this run {real_env} with {evaluation}")
            return
        self.rows = rows

    def find(self, agent_prefix: str, policy: str | None) -> Row | None:
        for row in self.rows:
            if row.agent.startswith(agent_prefix) and row.in_model is None and row.policy == policy:
                print(f"reusing the {row.agent} row of {self.source / 'results.json'}")
                self.reused.append(row.agent)
                return row
        return None


def dataset_steps(dataset: str | Path) -> dict[str, int]:
    """Real env steps in a dataset: {"total", "train", "eval"} sums of episode lengths (manifest.json)."""
    from data_collection.dataset import Dataset

    ds = Dataset.open(dataset)
    return {"total": sum(e.length for e in ds.episodes()),
            **{split: sum(e.length for e in ds.episodes(split)) for split in ("train", "eval")}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--real-env", required=True, help="the real env (memory-maze-9x9, minigrid-memory, ...)")
    parser.add_argument("--env", help="the imagined id (default: the one of --real-env)")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--dataset", help="the world model's dataset: the model-free agent gets as many real steps "
                                          "as all its episodes hold")
    budget.add_argument("--real-steps", type=int, help="real env steps for the model-free agent")
    parser.add_argument("--imagined-policy", help="a finished agents.train_ppo run in imagination (else: train one)")
    parser.add_argument("--imagined-timesteps", type=int, default=100_000, help="imagined steps when training one")
    parser.add_argument("--model-free-policy", help="a finished model-free run (else: train one)")
    # The agents trained here take agents.train_ppo's flags, with its meanings (--bc-dataset also adds
    # the warm start alone as a row).
    add_world_model_arguments(parser)
    add_warm_start_arguments(parser)
    add_ppo_arguments(parser)
    group = parser.add_argument_group("evaluation (the same seeded real episodes for every agent)")
    group.add_argument("--episodes", type=int, default=10, help="evaluation episodes per agent and env")
    group.add_argument("--max-steps", type=int, help="cut evaluation episodes at this many steps")
    group.add_argument("--eval-envs", type=int, default=1)
    group.add_argument("--eval-seed", type=int, default=EVAL_SEED)
    group.add_argument("--deterministic-eval", action="store_true", help="argmax actions (default: sampled)")
    group.add_argument("--baselines-from", type=Path,
                       help="a previous agents.compare --out: reuse its random and model-free rows if they were "
                            "evaluated on the same real episodes (and the model-free one from --model-free-policy)")


def trained_run(out: Path, train_args: TrainArgs, progress: bool) -> Path:
    """OUT/<run>: reuse a finished run with the same env and budget, else train (again)."""
    if (out / SUMMARY_FILE).exists():
        settings = read_summary(out)
        wanted, defaults = train_args.to_json(), TrainArgs(env="", out=Path()).to_json()
        # Runs written before a setting existed ran with its default.
        saved = {**defaults, **settings.get("settings", {})}
        saved["bc_anchor"] = anchor_coef(saved)
        keys = ["env", "timesteps", "algo", "checkpoint", "context", "context_dataset", "context_split",
                "context_start", "max_episode_steps", "bc_dataset", "bc_epochs", "bc_anchor"]
        if wanted["bc_anchor"] is None:  # anchored, the KL coefficient replaces the entropy's
            keys.append("ent_coef")
        same = all(saved[k] == wanted[k] for k in keys)
        if settings.get("status") == "done" and same:
            print(f"reusing {out} (done, {settings['timesteps']} timesteps)")
            return out
    train_args.overwrite, train_args.progress = True, progress
    train(train_args)
    return out


def run(args: argparse.Namespace) -> int:
    from data_collection.envs import env_spec

    if args.threads:
        torch.set_num_threads(args.threads)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    env_id = imagined_env_id(args.env or next((i for i, r in REAL_ENV_OF_ID.items() if r == args.real_env), ""))
    if env_id is None:
        raise SystemExit(f"no imagined id for --real-env {args.real_env!r}; pass --env ({', '.join(REAL_ENV_OF_ID)})")
    budget = dataset_steps(args.dataset) if args.dataset else None
    real_steps = budget["total"] if budget else args.real_steps
    evaluation = dict(episodes=args.episodes, max_steps=args.max_steps, seed=args.eval_seed, num_envs=args.eval_envs,
                      deterministic=args.deterministic_eval)
    shared = {name: getattr(args, name) for name in SHARED_FIELDS}
    world_model = {k: shared.pop(k) for k in ("checkpoint", "context", "context_dataset", "context_split",
                                             "context_start", "sampling_steps", "obs_type")}
    warm_start = {k: shared.pop(k) for k in ("bc_dataset", "bc_epochs", "bc_anchor")}
    subprocesses = shared.pop("subprocesses")
    common = dict(shared, eval_episodes=0)  # PPO, the run, and the training episodes' step limit
    rows: list[Row] = []
    baselines = Baselines(args.baselines_from, args.real_env, evaluation)

    action_space = env_spec(args.real_env).action_space.gymnasium()
    rows.append(baselines.find("random", None) or Row(
        "random", "-", 0, evaluate_in_real_env(RandomPolicy(action_space, args.eval_seed), args.real_env, **evaluation)))
    print(f"random: {rows[-1].real.line()}")

    model_free_dir = Path(args.model_free_policy) if args.model_free_policy else trained_run(
        out / "model_free", TrainArgs(env=args.real_env, out=out / "model_free", timesteps=real_steps,
                                      subprocesses=subprocesses, **common), args.progress)
    model_free_path = str(model_free_dir.resolve())
    model_free_row = baselines.find("model-free", model_free_path)
    if model_free_row is None:
        policy, algo = load_policy(model_free_dir, device=args.device)
        spent = read_summary(model_free_dir)["real_env_steps"]["training"]
        model_free_row = Row(f"model-free {algo}", args.real_env, spent,
                             evaluate_in_real_env(policy, args.real_env, **evaluation), policy=model_free_path)
    rows.append(model_free_row)
    print(f"model-free: {rows[-1].real.line()}")

    if args.bc_dataset:
        # The warm start alone: PPO's policy network after behaviour cloning, zero PPO steps.
        cloned_dir = trained_run(out / "behavior_cloning", TrainArgs(
            env=args.real_env, out=out / "behavior_cloning", timesteps=0, bc_dataset=args.bc_dataset,
            bc_epochs=args.bc_epochs, **{**common, "num_envs": 1}), args.progress)
        policy, algo = load_policy(cloned_dir, device=args.device)
        rows.append(Row(f"behaviour cloning {algo} (no imagination)", f"{args.bc_dataset} (offline)",
                        dataset_steps(args.bc_dataset)["total"],
                        evaluate_in_real_env(policy, args.real_env, **evaluation), policy=str(cloned_dir.resolve())))
        print(f"behaviour cloning: {rows[-1].real.line()}")

    imagined_dir = Path(args.imagined_policy) if args.imagined_policy else trained_run(
        out / "imagined", TrainArgs(env=env_id, out=out / "imagined", timesteps=args.imagined_timesteps,
                                    real_env=args.real_env, **world_model, **warm_start, **common), args.progress)
    policy, algo = load_policy(imagined_dir, device=args.device)
    summary = read_summary(imagined_dir)
    checkpoint = world_model_checkpoint(env_id, args.checkpoint or summary.get("checkpoint"))
    obs_type = summary.get("settings", {}).get("obs_type", "pixels")
    rows.append(Row(f"imagination {algo}" + ("" if obs_type == "pixels" else f" on {obs_type}"),
                    imagined_training(summary), real_steps,
                    evaluate_in_real_env(policy, args.real_env, obs_type=obs_type, checkpoint=checkpoint,
                                         device=args.device, **evaluation),
                    evaluate_in_model(policy, env_id, checkpoint, context=args.context, device=args.device,
                                      obs_type=obs_type, **evaluation), str(imagined_dir.resolve())))
    print(f"imagination, real env: {rows[-1].real.line()}")
    print(f"imagination, in model: {rows[-1].in_model.line()}")

    results = {"real_env": args.real_env, "env": env_id, "checkpoint": str(checkpoint), "dataset": args.dataset,
               "dataset_steps": budget, "real_steps": real_steps, "evaluation": evaluation,
               "reused_rows": {"from": str(args.baselines_from), "agents": baselines.reused} if baselines.reused
               else None,
               "rows": [row.to_json() for row in rows]}
    write_json_atomic(out / "results.json", results)
    (out / "comparison.md").write_text(markdown_table(rows, args.real_env, evaluation, budget, results["reused_rows"]))
    plot(rows, args.real_env, out / "comparison.png")
    print(f"wrote {out / 'comparison.md'}, {out / 'comparison.png'}, {out / 'results.json'}")
    return 0


def anchor_coef(settings: dict[str, Any]) -> float | None:
    """The KL coefficient of a run's --bc-anchor; runs from before it took COEF said `true` and used
    ent_coef as the coefficient."""
    anchor = settings.get("bc_anchor")
    return settings.get("ent_coef") if anchor is True else (anchor or None)


def imagined_training(summary: dict[str, Any]) -> str:
    """Where an imagination run trained, for the table: the id, its budget and, when not the
    checkpoint's context, where its episodes started."""
    settings = summary.get("settings", {})
    where = f"{summary['env']} ({summary['timesteps']} imagined steps"
    if settings.get("context_dataset"):
        start = "random windows" if settings.get("context_start") == "random" else "first frames"
        limit = settings.get("max_episode_steps")
        where += (f"; {limit}-step episodes" if limit else "") + (
            f" from {start} of {settings.get('context_split', 'eval')} episodes")
    if settings.get("bc_dataset"):
        where += f"; warm start: behaviour cloning on {settings['bc_dataset']}"
        if settings.get("bc_anchor"):
            where += f", held by {anchor_coef(settings)} x KL to it"
    return where + ")"


def markdown_table(rows: list[Row], real_env: str, evaluation: dict[str, Any], budget: dict[str, int] | None,
                   reused: dict[str, Any] | None = None) -> str:
    limit = f", cut at {evaluation['max_steps']} steps" if evaluation["max_steps"] else ""
    lines = [f"# Agents in {real_env}", "",
             f"Return over {evaluation['episodes']} real episodes (seed {evaluation['seed']}{limit}), mean ± std "
             "(s.e.: standard error of the mean); "
             f"{'argmax' if evaluation['deterministic'] else 'sampled'} actions. Real env steps: what training "
             "cost in the real env; for the agent trained in imagination, the world model's dataset"
             + (f" ({budget['total']} steps: {budget['train']} train, {budget['eval']} eval episodes)." if budget
                else "."), "",
             *([f"Rows evaluated by an earlier comparison on the same episodes ({reused['from']}): "
                f"{', '.join(reused['agents'])}.", ""] if reused else []),
             "| agent | trained in | real env steps | real env return | in-model return | imagination gap |",
             "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        model = f"{row.in_model.mean_return:.3f} ± {row.in_model.std_return:.3f}" if row.in_model else "-"
        gap = f"{row.in_model.mean_return - row.real.mean_return:+.3f}" if row.in_model else "-"
        lines.append(f"| {row.agent} | {row.trained_in} | {row.real_steps} | {row.real.mean_return:.3f} ± "
                     f"{row.real.std_return:.3f} (s.e. {row.real.stderr_return:.3f}) | {model} | {gap} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], real_env: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, means, stds, colors = [], [], [], []
    for row in rows:
        labels.append(f"{row.agent}\n(real env)")
        means.append(row.real.mean_return)
        stds.append(row.real.std_return)
        colors.append("tab:blue")
        if row.in_model is not None:
            labels.append(f"{row.agent}\n(in the model)")
            means.append(row.in_model.mean_return)
            stds.append(row.in_model.std_return)
            colors.append("tab:orange")
    fig, ax = plt.subplots(figsize=(max(6.0, 1.9 * len(labels) + 1), 4))  # room for the title
    ax.bar(range(len(labels)), means, yerr=stds, color=colors, capsize=4)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel("episode return (mean ± std)")
    ax.set_title(f"Agents evaluated in {real_env}")
    ax.axhline(0, color="black", linewidth=0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.compare", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    ns = parser.parse_args(argv)
    check_flags(parser, ns)
    return run(ns)


if __name__ == "__main__":
    sys.exit(main())

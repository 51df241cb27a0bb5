"""`lssvwm pipeline`: the README's end-to-end paths, as a list of the same commands a user would type.

    lssvwm pipeline --out out/main                  the main job on the shipped models:
        collect a few real Memory Maze retrace episodes -> memory benchmark of the default model ->
        horizon benchmark -> PPO inside LSSVWM-MiniGrid-v0 (the shipped MiniGrid-MemoryS7 model) ->
        evaluation in the real MiniGrid (and of a random policy) -> report
    lssvwm pipeline --out out/scratch --from-scratch
        the whole path from nothing: collect a dataset -> train a world model -> export it -> the same
        steps on that model

Each stage runs as its own process and leaves a stamp in OUT/stages/ when it finishes, so re-running
the command skips finished stages and resumes an interrupted one (collection and training resume
themselves). OUT/pipeline.json records each stage's command and wall time.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from data_collection.files import atomic_path, write_json_atomic

LSSVWM = [sys.executable, "-m", "lssvwm_env.cli"]

# Real env -> the registered imagined id whose model it trains, and that id's shipped model.
IMAGINED_ID = {"memory-maze-9x9": "LSSVWM-Memory-v0", "minigrid-memory-s7": "LSSVWM-MiniGrid-v0"}
SHIPPED_MODEL = {"memory-maze-9x9": "default", "minigrid-memory-s7": "minigrid"}  # in lssvwm_env/checkpoints/
# The env whose shipped model the agent stages train in, when it is not the pipeline's own: PPO inside
# the shipped Memory Maze model does not beat a random policy in the real maze yet (docs/agents, last
# tried on the default of 2026-11-30); inside the shipped MiniGrid-MemoryS7 model it does.
AGENT_ENV_OF_SHIPPED = {"memory-maze-9x9": "minigrid-memory-s7"}


@dataclass
class AgentBudget:
    """The agent stages in one env: PPO inside its imagined env, then real-env episodes of it and of a
    random policy."""
    timesteps: int
    envs: int
    n_steps: int
    max_episode_steps: int  # imagined training episodes
    context: int  # real frames priming each imagined episode
    eval_episodes: int
    eval_max_steps: int


@dataclass
class Scale:
    """Budgets of one pipeline run. The defaults fit the 10-minute main job on 2 CPU cores."""
    retrace_episodes: int = 2
    retrace_steps: int = 300
    context: int = 200  # retrieval: the first two thirds are context, the last third is the memory test
    generate: int = 100
    agents: dict[str, AgentBudget] = field(default_factory=lambda: {
        "memory-maze-9x9": AgentBudget(timesteps=4096, envs=8, n_steps=128, max_episode_steps=128, context=32,
                                       eval_episodes=2, eval_max_steps=200),
        # Enough episodes that the standard errors separate the agent from a random policy (0.13).
        "minigrid-memory-s7": AgentBudget(timesteps=16384, envs=16, n_steps=64, max_episode_steps=100, context=1,
                                          eval_episodes=200, eval_max_steps=100)})
    horizon_frames: str = "10,100,1000"
    # --from-scratch only
    data_episodes: int = 12
    data_steps: int = 300
    preset: str = "cpu"
    train_overrides: list[str] = field(default_factory=lambda: [
        "autoencoder_training.iterations=300",
        # Clean-context steps (the presets' recipe) cost two passes: half the steps of diffusion forcing.
        'dynamics_training.curriculum=[{"window": 30, "iterations": 75, "batch_size": 4}, '
        '{"window": 100, "iterations": 10, "batch_size": 2}]',
        "dynamics_training.eval_every=50"])


TINY_AGENT = AgentBudget(timesteps=128, envs=2, n_steps=64, max_episode_steps=32, context=4, eval_episodes=1,
                         eval_max_steps=30)
TINY_SCALE = Scale(retrace_episodes=2, retrace_steps=60, context=40, generate=20,
                   agents={env: TINY_AGENT for env in IMAGINED_ID}, horizon_frames="10,50", data_episodes=4,
                   data_steps=60, preset="tiny", train_overrides=[])


@dataclass
class Stage:
    name: str
    command: list[str] = field(default_factory=list)
    stdout: Path | None = None  # capture stdout here (for commands that print JSON)
    action: Callable[[], object] | None = None  # in-process work instead of a command


def stages(out: Path, env: str, from_scratch: bool, scale: Scale, workers: int, threads: int) -> list[Stage]:
    from lssvwm_env.checkpoint import SHIPPED_CHECKPOINTS  # here: the pipeline's own process needs no torch

    thread_args = ["--threads", str(threads)] if threads else []
    model_args: list[str] = []
    result: list[Stage] = []
    if from_scratch:
        data, run, model = out / "data", out / "world_model_run", out / "world_model"
        result += [
            Stage("collect", [*LSSVWM, "collect", "--env", env, "--policy", "explore", "--episodes",
                              str(scale.data_episodes), "--steps", str(scale.data_steps), "--workers", str(workers),
                              "--out", str(data), "--seed", "1"]),
            Stage("validate", [*LSSVWM, "data", "validate", str(data)]),
            Stage("train", [*LSSVWM, "train", "--data", str(data), "--out", str(run), "--preset", scale.preset,
                            *thread_args, *[a for o in scale.train_overrides for a in ("--set", o)]]),
            Stage("export", [*LSSVWM, "export", str(run), "--data", str(data), "--out", str(model),
                             "--context-episodes", "1", "--context-frames", str(min(64, scale.data_steps))]),
        ]
        model_args = ["--checkpoint", str(model)]
        agent_env, agent_model_args = env, model_args
    else:
        model_args = ["--checkpoint", str(SHIPPED_CHECKPOINTS / SHIPPED_MODEL[env])]
        agent_env = AGENT_ENV_OF_SHIPPED.get(env, env)
        agent_model_args = ["--checkpoint", str(SHIPPED_CHECKPOINTS / SHIPPED_MODEL[agent_env])]
    retrace = out / "retrace"
    budget = scale.agents[agent_env]
    agent, agent_eval = out / "agent", out / "agent_eval"
    horizon_args = ["--real-history-limit", "100"] + model_args
    result += [
        Stage("collect_retrace", [*LSSVWM, "collect", "--env", env, "--policy", "retrace", "--episodes",
                                  str(scale.retrace_episodes), "--steps", str(scale.retrace_steps), "--workers",
                                  str(workers), "--out", str(retrace), "--seed", "100", "--eval-fraction", "0.5"]),
        Stage("eval_memory", [*LSSVWM, "eval", "memory", *model_args, "--data", str(retrace), "--task", "retrieval",
                              "--context", str(scale.context), "--generate", str(scale.generate),
                              "--out", str(out / "memory"), *thread_args]),
        Stage("bench_horizon", [*LSSVWM, "bench", "horizon", *horizon_args, "--frames", scale.horizon_frames,
                                "--json", *thread_args], stdout=out / "horizon.json"),
        Stage("train_agent", [sys.executable, "-m", "agents.train_ppo", "--env", IMAGINED_ID[agent_env],
                              *agent_model_args, "--algo", "ppo", "--timesteps", str(budget.timesteps), "--num-envs",
                              str(budget.envs), "--n-steps", str(budget.n_steps), "--batch-size", "64",
                              "--max-episode-steps", str(budget.max_episode_steps), "--context", str(budget.context),
                              "--real-env", agent_env, "--eval-episodes", "0", "--out", str(agent), "--overwrite",
                              *thread_args]),
        Stage("eval_agent", [sys.executable, "-m", "agents.evaluate", "--policy", str(agent), "--env", agent_env,
                             "--episodes", str(budget.eval_episodes), "--max-steps", str(budget.eval_max_steps),
                             "--in-model", *agent_model_args, "--context", str(budget.context),
                             "--video", str(agent_eval / "agent_episode.mp4"),
                             "--json", str(agent_eval / "agent.json"), *thread_args]),
        Stage("eval_random", [sys.executable, "-m", "agents.evaluate", "--policy", "random", "--env", agent_env,
                              "--episodes", str(budget.eval_episodes), "--max-steps", str(budget.eval_max_steps),
                              "--json", str(agent_eval / "random.json")]),
        Stage("agents_table", action=lambda: agents_table(agent_eval)),
        Stage("report", [*LSSVWM, "report", str(out / "memory"), str(out / "horizon.json"),
                         str(agent_eval / "agents.md"), *([str(out / "world_model_run")] if from_scratch else []),
                         "--out", str(out / "report")]),
    ]
    return result


def agents_table(agent_eval: Path) -> Path:
    """A markdown table of the agent's and the random policy's returns in the real env, with standard
    errors, and whether the agent beats random by more than them."""
    from agents.episodes import EvalResult

    agent = json.loads((agent_eval / "agent.json").read_text())
    random_policy = json.loads((agent_eval / "random.json").read_text())
    rows = [("PPO trained in imagination, real env", agent["real"]),
            ("PPO trained in imagination, inside the model", agent.get("in_model")),
            ("random policy, real env", random_policy["real"])]
    lines = ["## Agents", "", f"Real env: `{agent['env']}`, episodes cut at {agent['max_steps']} steps.", "",
             "| agent | mean return | std | standard error | episodes |", "|---|---|---|---|---|"]
    for name, r in rows:
        if r:
            lines.append(f"| {name} | {r['mean_return']:.3f} | {r['std_return']:.3f} | "
                         f"{EvalResult.from_json(r).stderr_return:.3f} | {r['episodes']} |")
    trained, chance = EvalResult.from_json(agent["real"]), EvalResult.from_json(random_policy["real"])
    margin = trained.mean_return - chance.mean_return
    separated = margin > trained.stderr_return + chance.stderr_return
    lines += ["", f"The agent {'beats' if separated else 'does not beat'} the random policy in the real env: "
              f"{margin:+.3f} against standard errors of {trained.stderr_return:.3f} and {chance.stderr_return:.3f}."]
    path = agent_eval / "agents.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_stage(stage: Stage, stamps: Path) -> float:
    stamp = stamps / f"{stage.name}.done"
    if stamp.exists() and json.loads(stamp.read_text()).get("command") == stage.command:
        print(f"[pipeline] {stage.name}: done before, skipped", flush=True)
        return 0.0
    print(f"[pipeline] {stage.name}: {shlex.join(stage.command)}", flush=True)
    start = time.time()
    def failed(code: int) -> SystemExit:
        return SystemExit(f"[pipeline] stage {stage.name} failed (exit {code}); fix the cause and re-run the same "
                          "command: finished stages are skipped")

    if stage.stdout is not None:
        with atomic_path(stage.stdout) as tmp:  # the output file appears only for a finished stage
            with open(tmp, "w") as f:
                code = subprocess.run(stage.command, stdout=f).returncode
            if code != 0:
                raise failed(code)
    elif (code := subprocess.run(stage.command).returncode) != 0:
        raise failed(code)
    elapsed = time.time() - start
    write_json_atomic(stamp, {"command": stage.command, "seconds": elapsed})
    return elapsed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out/main"), help="output directory (default out/main)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="collect a dataset and train the world model first, instead of the shipped model")
    parser.add_argument("--env", default="memory-maze-9x9", choices=sorted(IMAGINED_ID), help="the real env")
    parser.add_argument("--scale", default="small", choices=("small", "tiny"),
                        help="small: the README's budgets; tiny: seconds-long stages (the tests)")
    parser.add_argument("--workers", type=int, default=2, help="collection workers")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per stage (0: default)")


def run(args: argparse.Namespace) -> int:
    scale = TINY_SCALE if args.scale == "tiny" else Scale()
    out = args.out
    (out / "stages").mkdir(parents=True, exist_ok=True)
    plan = stages(out, args.env, args.from_scratch, scale, args.workers, args.threads)
    record_path = out / "pipeline.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    start = time.time()
    for stage in plan:
        if stage.action is not None:
            stage.action()
            continue
        seconds = run_stage(stage, out / "stages")
        if seconds:
            record[stage.name] = {"command": shlex.join(stage.command), "seconds": round(seconds, 1)}
            record_path.write_text(json.dumps(record, indent=2))
    total = sum(r["seconds"] for r in record.values())
    print(f"[pipeline] finished in {time.time() - start:.0f} s this run ({total:.0f} s over all runs)")
    print(f"[pipeline] report: {out / 'report' / 'report.md'}")
    return 0

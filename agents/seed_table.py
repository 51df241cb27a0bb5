"""One table over seeds from several agents.compare outputs: for each agent, its real-env return
averaged over the runs (seeds), the spread of that mean from seed to seed, the share of episodes
that succeed, its in-model return and the imagination gap. Writes OUT.md and OUT.json.

    python -m agents.seed_table runs/agents24/*-s? --out docs/agents/minigrid-s7/table

Rows are grouped by the agent's label ("model-free ppo", "imagination recurrent_ppo on features",
...). The same trained policy found in several outputs (a model-free run passed to several
comparisons with --model-free-policy) counts once, and so does the random policy, whose seeded
episodes are the same in every comparison. All outputs must have evaluated the same real episodes.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.compare import Row
from data_collection.files import write_json_atomic


@dataclass
class AgentRuns:
    """One agent's rows, one per seed."""

    agent: str
    rows: list[Row] = field(default_factory=list)

    @property
    def real_means(self) -> list[float]:
        return [row.real.mean_return for row in self.rows]

    def spread(self) -> float:
        """Standard error of the mean over seeds (0 for one seed): PPO's seed-to-seed variation, which
        200 episodes per seed do not average out."""
        n = len(self.rows)
        return float(np.std(self.real_means, ddof=1) / np.sqrt(n)) if n > 1 else 0.0

    def success(self) -> float:
        """Share of episodes with a positive return: in MiniGrid-Memory, those that reached the matching
        object (the wrong one ends the episode with 0)."""
        return float(np.mean([r > 0 for row in self.rows for r in row.real.returns]))

    def episode_stderr(self) -> float:
        """Standard error of one seed's mean from its episodes, averaged over seeds."""
        return float(np.mean([row.real.stderr_return for row in self.rows]))

    def in_model(self) -> float | None:
        values = [row.in_model.mean_return for row in self.rows if row.in_model is not None]
        return float(np.mean(values)) if values else None

    def to_json(self) -> dict[str, Any]:
        in_model = self.in_model()
        return {"agent": self.agent, "seeds": len(self.rows), "trained_in": sorted({r.trained_in for r in self.rows}),
                "real_steps": sorted({r.real_steps for r in self.rows}), "real_return": float(np.mean(self.real_means)),
                "real_return_per_seed": self.real_means, "seed_stderr": self.spread(),
                "episode_stderr": self.episode_stderr(), "success": self.success(), "in_model_return": in_model,
                "imagination_gap": None if in_model is None else in_model - float(np.mean(self.real_means)),
                "policies": [r.policy for r in self.rows]}


def gather(outputs: list[Path]) -> tuple[list[AgentRuns], dict[str, Any]]:
    """The agents of several agents.compare outputs, in the order first seen, and the evaluation they share."""
    agents: dict[str, AgentRuns] = {}
    seen: set[tuple[str, str | None]] = set()
    evaluation: dict[str, Any] | None = None
    for out in outputs:
        path = out / "results.json"
        try:
            results = json.loads(path.read_text())
            rows = [Row.from_json(row) for row in results["rows"]]
        except FileNotFoundError:
            raise SystemExit(f"{path} does not exist (pass agents.compare --out directories)")
        except (ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"{path} is not an agents.compare results file: {error!r}")
        here = {"real_env": results["real_env"], **results["evaluation"]}
        if evaluation is None:
            evaluation = here
        elif here != evaluation:
            raise SystemExit(f"{path} evaluated {here}, the first output {evaluation}: the rows would not compare")
        for row in rows:
            key = (row.agent, row.policy)
            if key in seen:
                continue
            seen.add(key)
            agents.setdefault(row.agent, AgentRuns(row.agent)).rows.append(row)
    if evaluation is None:
        raise SystemExit("pass at least one agents.compare output")
    return list(agents.values()), evaluation


def markdown(agents: list[AgentRuns], evaluation: dict[str, Any]) -> str:
    limit = f", cut at {evaluation['max_steps']} steps" if evaluation["max_steps"] else ""
    lines = [f"Return in {evaluation['real_env']} over {evaluation['episodes']} real episodes per seed (eval seed "
             f"{evaluation['seed']}{limit}, {'argmax' if evaluation['deterministic'] else 'sampled'} actions): the "
             "mean over seeds ± its standard error over seeds (one seed: no spread), then each seed's mean; "
             "success: episodes with a positive return; gap: in-model return − real return.", "",
             "| agent | seeds | real env steps | real env return | per seed | success | in-model return | gap |",
             "|---|---:|---:|---:|---|---:|---:|---:|"]
    for a in agents:
        data = a.to_json()
        in_model = "-" if data["in_model_return"] is None else f"{data['in_model_return']:.3f}"
        gap = "-" if data["imagination_gap"] is None else f"{data['imagination_gap']:+.3f}"
        steps = ", ".join(f"{s:,}" for s in data["real_steps"])
        per_seed = ", ".join(f"{m:.3f}" for m in data["real_return_per_seed"])
        spread = f" ± {data['seed_stderr']:.3f}" if data["seeds"] > 1 else ""
        lines.append(f"| {a.agent} | {data['seeds']} | {steps} | {data['real_return']:.3f}{spread} "
                     f"| {per_seed} | {100 * data['success']:.1f}% | {in_model} | {gap} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.seed_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("outputs", nargs="+", type=Path, help="agents.compare --out directories")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md and OUT.json")
    args = parser.parse_args(argv)
    agents, evaluation = gather(args.outputs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table = markdown(agents, evaluation)
    args.out.with_suffix(".md").write_text(table)
    write_json_atomic(args.out.with_suffix(".json"),
                      {"outputs": [str(o) for o in args.outputs], "evaluation": evaluation,
                       "agents": [a.to_json() for a in agents]})
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

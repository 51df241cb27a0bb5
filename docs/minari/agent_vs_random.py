"""A policy trained in imagination against the random policy, on the same seeded real episodes, with
standard errors: agents.compare's table and figure for two rows (the random and the imagined agent),
without its model-free baseline.

    python docs/minari/agent_vs_random.py --policy runs/cartpole-ppo --real-env dmc:cartpole-swingup:repeat=4 \
        --dataset data/dmc-cartpole --episodes 20 --out docs/minari/agents

Writes OUT/comparison.md, OUT/comparison.png and OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from agents.compare import Row, dataset_steps, markdown_table, plot
from agents.episodes import evaluate_in_real_env
from agents.policies import RandomPolicy, load_policy
from agents.train_ppo import EVAL_SEED
from data_collection.envs import env_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, required=True, help="a finished agents.train_ppo run in imagination")
    parser.add_argument("--real-env", required=True)
    parser.add_argument("--dataset", type=Path, required=True, help="the world model's dataset (its real steps)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    evaluation = {"episodes": args.episodes, "max_steps": args.max_steps, "seed": args.seed, "deterministic": False}
    budget = dataset_steps(args.dataset)
    policy, _ = load_policy(args.policy)
    random = RandomPolicy(env_spec(args.real_env).action_space.gymnasium(), args.seed)
    rows = [Row("random", "-", 0, evaluate_in_real_env(random, args.real_env, args.episodes, args.max_steps, args.seed)),
            Row("PPO in imagination", "world model", budget["total"],
                evaluate_in_real_env(policy, args.real_env, args.episodes, args.max_steps, args.seed),
                policy=str(args.policy))]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.md").write_text(markdown_table(rows, args.real_env, evaluation, budget))
    plot(rows, args.real_env, args.out / "comparison.png")
    (args.out / "results.json").write_text(json.dumps({"evaluation": evaluation, "budget": budget,
                                                       "rows": [row.to_json() for row in rows]}, indent=2))
    for row in rows:
        print(f"{row.agent}: {row.real.line()} (s.e. {row.real.stderr_return:.3f})")


if __name__ == "__main__":
    main()

"""Agents trained inside the world model and evaluated in the real env (docs/design.md, the user's path:
checkpoint -> LSSVWM-Memory-v0 -> PPO -> policy, evaluated back in the real env).

    envs.py        the envs agents meet: RealImageEnv (a real env as a Gymnasium Env with the imagined
                   env's spaces), real and imagined SB3 VecEnvs
    policies.py    SB3 PPO / sb3-contrib RecurrentPPO, a uniform random policy, loading a saved policy
    episodes.py    one harness for every policy and env: K episodes -> mean ± std return, videos
    callbacks.py   periodic evaluation in the real env, a tqdm progress bar
    train_ppo.py   `python -m agents.train_ppo`: PPO in imagination (or model-free in a real env)
    evaluate.py    `python -m agents.evaluate`: a saved (or random) policy in the real env / the model
    compare.py     `python -m agents.compare`: random vs model-free vs imagination, table and plot

Modules import torch and SB3 when imported.
"""

import contextlib
import io

# Stable-Baselines3 imports the unmaintained `gym` when it is installed (memory_maze needs it), and
# gym prints a deprecation notice on import; data_collection.envs silences it the same way.
with contextlib.redirect_stderr(io.StringIO()):
    try:
        import gym  # noqa: F401
    except ImportError:
        pass

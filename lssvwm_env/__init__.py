"""lssvwm: a long-context state-space video world model served as a Gymnasium environment.

Importing the package registers its Gymnasium ids (as ale_py and minigrid do), by string entry
points so that torch is only imported when an env is made:

    import gymnasium as gym
    env = gym.make("lssvwm_env:LSSVWM-Memory-v0")            # the module is imported by gym.make
    envs = gym.make_vec("lssvwm_env:LSSVWM-Memory-v0", num_envs=8, vectorization_mode="vector_entry_point")
    env = gym.make("lssvwm_env:LSSVWM-MiniGrid-v0", checkpoint="runs/minigrid")   # no shipped model
"""

import gymnasium

_ENVS = "lssvwm_env.envs.world_model_env"


def _register() -> None:
    ids = {
        # The model shipped with the package (lssvwm_env/checkpoints/default), trained on Memory Maze 9x9.
        "LSSVWM-Memory-v0": ("LSSVWMEnv", "LSSVWMVectorEnv"),
        # A MiniGrid model must be given with checkpoint=.
        "LSSVWM-MiniGrid-v0": ("LSSVWMMiniGridEnv", "LSSVWMMiniGridVectorEnv"),
    }
    for env_id, (single, vector) in ids.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point=f"{_ENVS}:{single}",
            vector_entry_point=f"{_ENVS}:{vector}",
            max_episode_steps=1000,  # world_model_env.MAX_EPISODE_STEPS: a Memory Maze 9x9 episode
        )


_register()

"""lssvwm: a long-context state-space video world model served as a Gymnasium environment.

Importing the package registers its Gymnasium ids (as ale_py and minigrid do), by string entry
points so that torch is only imported when an env is made:

    import gymnasium as gym
    env = gym.make("lssvwm_env:LSSVWM-Memory-v0")            # the module is imported by gym.make
    envs = gym.make_vec("lssvwm_env:LSSVWM-Memory-v0", num_envs=8, vectorization_mode="vector_entry_point")
    env = gym.make("lssvwm_env:LSSVWM-MiniGrid-v0")           # the shipped MiniGrid-MemoryS7 model
    env = gym.make("lssvwm_env:LSSVWM-Memory-v0", checkpoint="runs/mine")   # any other trained model
"""

import gymnasium

_ENVS = "lssvwm_env.envs.world_model_env"


def _register() -> None:
    ids = {
        # lssvwm_env/checkpoints/default, trained on Memory Maze 9x9; truncated as a 9x9 episode is.
        "LSSVWM-Memory-v0": ("LSSVWMEnv", "LSSVWMVectorEnv", 1000),
        # lssvwm_env/checkpoints/minigrid, trained on MiniGrid-MemoryS7, whose episodes end at 5 x 7^2 steps.
        "LSSVWM-MiniGrid-v0": ("LSSVWMMiniGridEnv", "LSSVWMMiniGridVectorEnv", 245),
    }
    for env_id, (single, vector, max_episode_steps) in ids.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point=f"{_ENVS}:{single}",
            vector_entry_point=f"{_ENVS}:{vector}",
            max_episode_steps=max_episode_steps,
        )


_register()

"""The world model as a Gymnasium environment: world_model_env.py (Env, VectorEnv and their core),
sb3_vec_env.py (Stable-Baselines3 VecEnv), context.py (real context that primes each reset),
play.py (`lssvwm play`) and viewer.py (its window), bench_env.py (`lssvwm bench env`).
Nothing is imported here, so that `import lssvwm_env` stays light; the ids are registered in
lssvwm_env/__init__.py."""

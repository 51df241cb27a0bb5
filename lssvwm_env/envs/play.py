"""`lssvwm play`: drive the world model from the keyboard in a window, or, headless, write a video of
a scripted rollout (`--video out.mp4 --steps N --policy random|forward`).

Keys: arrows move (up: forward, left/right: turn, up+left/right: forward while turning, when the env
has those actions); digits pick an action by index; r starts a new episode; q or Esc quits. Envs
with a "noop" action (Memory Maze) run in real time at --fps; the others step on each key press.
In videos, frames with a green border are real (the last frame of the context), the others imagined.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

MINIGRID_ACTIONS = ("left", "right", "forward", "pickup", "drop", "toggle", "done")
ARROWS = {("up",): "forward", ("left",): "left", ("right",): "right",
          ("left", "up"): "forward_left", ("right", "up"): "forward_right"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint or run directory (default: the model shipped with the package)")
    parser.add_argument("--dataset", type=Path, default=None, help="take real context from this dataset's eval split")
    parser.add_argument("--real-env", default=None,
                        help="take real context from a live prefix of this env (e.g. memory-maze-9x9); "
                             "also names the actions")
    parser.add_argument("--context", type=int, default=32,
                        help="frames of real context before imagining, from --dataset, --real-env or the "
                             "checkpoint's context.npz; the first frame shown (green border) is the last of them")
    parser.add_argument("--sampling-steps", type=int, default=None, help="denoising steps per frame (default: the model's)")
    parser.add_argument("--max-episode-steps", type=int, default=1000, help="imagined steps before a new episode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    parser.add_argument("--video", type=Path, default=None, help="write an mp4 of a scripted rollout instead of a window")
    parser.add_argument("--steps", type=int, default=None,
                        help="imagined steps (video: default 200; window: stop after this many)")
    parser.add_argument("--policy", choices=("random", "forward"), default="random", help="the video's actions")
    parser.add_argument("--fps", type=float, default=15.0, help="frames per second of the video / the window")
    parser.add_argument("--scale", type=int, default=4, help="upscaling of the 64x64 frames (video; window x2)")


def action_names(num_actions: int, real_env: str | None) -> tuple[str, ...]:
    """Names of the model's actions: the real env's when given, else guessed from their number."""
    if real_env is not None:
        from data_collection.envs import env_spec

        return env_spec(real_env).action_space.meanings
    if num_actions == 6:
        from data_collection.envs import MEMORY_MAZE_ACTIONS

        return MEMORY_MAZE_ACTIONS
    if num_actions == 7:
        return MINIGRID_ACTIONS
    return ()


def upscale(frame: np.ndarray, scale: int, real: bool = False) -> np.ndarray:
    """(H, W, 3) -> (H * scale, W * scale, 3); a green border marks a real frame."""
    big = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
    if real:
        border = max(scale // 2, 1)
        big = big.copy()
        big[:border], big[-border:], big[:, :border], big[:, -border:] = (0, 255, 0), (0, 255, 0), (0, 255, 0), (0, 255, 0)
    return big


def run(args: argparse.Namespace) -> int:
    import torch

    from lssvwm_env.envs.world_model_env import LSSVWMEnv

    if args.threads:
        torch.set_num_threads(args.threads)
    env = LSSVWMEnv(checkpoint=args.checkpoint, device=args.device, sampling_steps=args.sampling_steps,
                    context=args.context, max_episode_steps=args.max_episode_steps, dataset=args.dataset,
                    real_env=args.real_env, render_mode="rgb_array")
    names = action_names(int(env.action_space.n), args.real_env)
    try:
        if args.video is not None:
            return record_video(env, names, args)
        return play_in_window(env, names, args)
    finally:
        env.close()


def record_video(env, names: tuple[str, ...], args: argparse.Namespace) -> int:
    from data_collection.files import write_video

    steps = 200 if args.steps is None else args.steps
    if args.policy == "forward" and "forward" not in names:
        raise SystemExit(f"--policy forward: the model's actions have no 'forward' ({names or 'unnamed'}); "
                         "use --policy random or --real-env NAME")
    rng = np.random.default_rng(args.seed)
    obs, _ = env.reset(seed=args.seed)
    frames, episodes, total_reward = [upscale(obs, args.scale, real=True)], 1, 0.0
    start = time.perf_counter()
    for _ in range(steps):
        action = names.index("forward") if args.policy == "forward" else int(rng.integers(env.action_space.n))
        obs, reward, terminated, truncated, _ = env.step(action)
        total_reward += reward
        frames.append(upscale(obs, args.scale))
        if terminated or truncated:
            obs, _ = env.reset()
            frames.append(upscale(obs, args.scale, real=True))
            episodes += 1
    elapsed = time.perf_counter() - start
    write_video(args.video, frames, fps=args.fps)
    print(f"wrote {args.video}: {steps} imagined steps ({args.policy} policy), {episodes} episode(s), "
          f"predicted return {total_reward:.3f}, {steps / elapsed:.1f} steps/s")
    return 0


def play_in_window(env, names: tuple[str, ...], args: argparse.Namespace) -> int:
    from lssvwm_env.envs.viewer import NoDisplayError, Viewer

    try:
        viewer = Viewer("lssvwm play", scale=2 * args.scale)
    except NoDisplayError as err:
        raise SystemExit(f"lssvwm play: {err}") from None
    real_time = "noop" in names
    keyed = {key: names.index(name) for key, name in ARROWS.items() if name in names}
    seed = args.seed
    obs, _ = env.reset(seed=seed)
    print(f"actions: {', '.join(f'{i}={n}' for i, n in enumerate(names)) or env.action_space}; "
          "arrows move, digits pick an action, r: new episode, q/Esc: quit")
    viewer.show(upscale(obs, 1, real=True), "lssvwm play: real context")
    steps, episode_return = 0, 0.0
    while not viewer.closed and (args.steps is None or steps < args.steps):
        tick = time.perf_counter()
        pressed = viewer.poll()
        if {"q", "escape"} & set(pressed):
            break
        if "r" in pressed:
            seed += 1
            obs, _ = env.reset(seed=seed)
            viewer.show(upscale(obs, 1, real=True), "lssvwm play: real context")
            episode_return = 0.0
            continue
        action = next((int(k) for k in pressed if k.isdigit() and int(k) < env.action_space.n), None)
        if action is None:
            arrows = tuple(sorted(viewer.held(["up", "left", "right"]) if real_time
                                  else {k for k in pressed if k in ("up", "left", "right")}))
            action = keyed.get(arrows, names.index("noop") if real_time else None)
        if action is None:
            time.sleep(1 / args.fps)
            continue
        obs, reward, terminated, truncated, _ = env.step(action)
        steps += 1
        episode_return += reward
        name = names[action] if names else str(action)
        viewer.show(obs, f"lssvwm play: step {steps} {name} reward {reward:+.2f} return {episode_return:+.2f}")
        if terminated or truncated:
            print(f"episode over after step {steps} ({'terminated' if terminated else 'truncated'}), "
                  f"return {episode_return:.3f}; new episode")
            seed += 1
            obs, _ = env.reset(seed=seed)
            viewer.show(upscale(obs, 1, real=True), "lssvwm play: real context")
            episode_return = 0.0
        if real_time:
            time.sleep(max(0.0, 1 / args.fps - (time.perf_counter() - tick)))
    viewer.close()
    return 0

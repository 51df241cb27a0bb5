"""What an agent trained inside the model depends on, measured on held-out real episodes:

- heads: fed the real frames (teacher forcing, one clean pass), does the model end episodes where
  the real env ended them (recall at the last transition, false alarms elsewhere) and predict the
  rewards (mean prediction at rewarded transitions and elsewhere)?
- generation: at noise level 1 the denoiser's estimate of the next latent can only come from the
  past and the action. Its error against the real next latent, beside the error of the mean latent
  (0: latents are standardised) and of the previous latent, says whether the model has learnt the
  dynamics (error well below the mean's) or still draws an average frame. The same error over the
  transitions whose real frame did not change (walking into a wall, actions without effect) says
  whether the model knows when nothing happens, or lets agents walk through walls.

An agent learns in imagination only what the generated frames lead the heads to report, so good
heads with average-frame generation (the model never draws the frames that end an episode) give
an env whose episodes never end.

    lssvwm eval transitions --checkpoint runs/cpu-mgS7 --data data/mgS7 --episodes 40
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from data_collection.dataset import unchanged_transitions
from lssvwm_env.models.diffusion import denoised_estimate
from data_collection.files import write_json_atomic
from lssvwm_env.training.data import model_aligned


@dataclass
class TransitionMetrics:
    episodes: int
    transitions: int
    generated: int  # next latents estimated from noise (the first generation_frames of each episode)
    terminal_transitions: int
    termination_recall: float  # share of the real terminations predicted (logit > 0)
    termination_false_alarms: float  # share of the other transitions predicted to terminate
    rewarded_transitions: int
    reward_mean_where_rewarded: float  # mean prediction at transitions with a real reward != 0
    real_reward_mean_where_rewarded: float
    reward_mean_elsewhere: float
    # At transitions that neither pay nor end: what an agent could farm by making episodes long.
    reward_mean_off_ends: float
    # At real ends that pay nothing (MiniGrid-Memory's wrong object, lava): beside the paid ends, whether
    # the model tells them apart. In MiniGrid-Memory only memory of the first room's object can.
    unpaid_ends: int
    reward_mean_at_unpaid_ends: float
    reward_mse: float
    next_latent_mse_at_noise_1: float  # the denoiser's x0 estimate from pure noise
    next_latent_mse_of_mean: float  # predicting the mean latent (0)
    next_latent_mse_of_previous: float  # copying the previous frame's latent
    unchanged_generated: int  # generated transitions whose real frame equals the one before
    next_latent_mse_where_unchanged: float  # the denoiser's error there (copying scores 0)
    final_frames: bool  # the dataset holds the outcome of each episode's last action


@torch.no_grad()
def evaluate_transitions(model, episodes: list[dict[str, np.ndarray]], seed: int = 0,
                         generation_frames: int = 64) -> TransitionMetrics:
    """generation_frames: the first frames of each episode whose latent is estimated from noise."""
    generator = torch.Generator().manual_seed(seed)
    hits = terminals = alarms = others = 0
    rewarded_pred, rewarded_real, other_pred, off_ends_pred, unpaid_ends_pred, squared = [], [], [], [], [], []
    mse_model = mse_mean = mse_previous = mse_unchanged = 0.0
    count = unchanged = 0
    final_frames = all("final_frame" in ep for ep in episodes)
    for ep in episodes:
        aligned = model_aligned(ep)
        keep = len(aligned["frames"]) - 1  # transitions with a frame after them
        if keep < 1:
            continue
        latents = model.encode(torch.from_numpy(aligned["frames"])[None])
        actions_in = torch.from_numpy(aligned["actions_in"])[None].to(model.device)
        _, features, _ = model.step_latents(model.initial_state(1), latents, actions_in)
        reward, logit = model.heads(features[0, 1:])
        real_reward = torch.from_numpy(aligned["rewards_in"][1:])
        real_end = torch.from_numpy(aligned["terminated_in"][1:])
        predicted_end = (logit > 0).cpu()
        hits += int((predicted_end & real_end).sum())
        terminals += int(real_end.sum())
        alarms += int((predicted_end & ~real_end).sum())
        others += int((~real_end).sum())
        reward = reward.float().cpu()
        rewarded = real_reward != 0
        rewarded_pred += reward[rewarded].tolist()
        rewarded_real += real_reward[rewarded].tolist()
        other_pred += reward[~rewarded].tolist()
        off_ends_pred += reward[~rewarded & ~real_end].tolist()
        unpaid_ends_pred += reward[~rewarded & real_end].tolist()
        squared += (reward - real_reward).pow(2).tolist()
        if generation_frames < 1:
            continue

        # Each next latent from pure noise, given the real past (a clean pass over frames 0..t-1).
        horizon = min(keep, generation_frames)
        still = unchanged_transitions(aligned["frames"][:horizon + 1])  # still[t - 1]: frame t equals frame t - 1
        states = [model.initial_state(1)]
        for t in range(horizon):
            states.append(model.step_latents(states[-1], latents[:, t:t + 1], actions_in[:, t:t + 1])[2])
        for t in range(1, horizon + 1):
            target = latents[:, t:t + 1]
            noise = torch.randn(target.shape, generator=generator).to(target)
            level = torch.ones(1, 1, device=target.device, dtype=target.dtype)
            prediction, _, _ = model.step_latents(states[t], noise, actions_in[:, t:t + 1], level)
            estimate = denoised_estimate(noise, prediction, level, model.config.diffusion)
            error = float((estimate - target).pow(2).mean())
            mse_model += error
            if still[t - 1]:
                mse_unchanged += error
                unchanged += 1
            mse_mean += float(target.pow(2).mean())
            mse_previous += float((latents[:, t - 1:t] - target).pow(2).mean())
            count += 1
    if not squared:
        raise ValueError("no episode has a transition to evaluate")

    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    return TransitionMetrics(
        episodes=len(episodes), transitions=len(squared), generated=count, terminal_transitions=terminals,
        termination_recall=hits / terminals if terminals else float("nan"),
        termination_false_alarms=alarms / others if others else float("nan"),
        rewarded_transitions=len(rewarded_pred), reward_mean_where_rewarded=mean(rewarded_pred),
        real_reward_mean_where_rewarded=mean(rewarded_real), reward_mean_elsewhere=mean(other_pred),
        reward_mean_off_ends=mean(off_ends_pred), unpaid_ends=len(unpaid_ends_pred),
        reward_mean_at_unpaid_ends=mean(unpaid_ends_pred),
        reward_mse=mean(squared), next_latent_mse_at_noise_1=mse_model / max(count, 1),
        next_latent_mse_of_mean=mse_mean / max(count, 1), next_latent_mse_of_previous=mse_previous / max(count, 1),
        unchanged_generated=unchanged,
        next_latent_mse_where_unchanged=mse_unchanged / unchanged if unchanged else float("nan"),
        final_frames=final_frames)


def run_transitions(checkpoint: str | Path | None, data: Path, episodes: int, split: str, seed: int,
                    out: Path | None, generation_frames: int = 64, device: str = "cpu") -> TransitionMetrics:
    from data_collection.dataset import Dataset
    from lssvwm_env.checkpoint import load_world_model

    model = load_world_model(checkpoint, device=device)
    dataset = Dataset.open(data)
    chosen = [entry.index for entry in dataset.episodes(split)][:episodes]
    if not chosen:
        raise ValueError(f"{data} has no '{split}' episodes")
    metrics = evaluate_transitions(model, [dataset.load_episode(i) for i in chosen], seed, generation_frames)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "transitions.json", {"checkpoint": str(checkpoint), "data": str(data),
                                                     "split": split, **asdict(metrics)})
    return metrics


def summary(m: TransitionMetrics) -> str:
    lines = [f"{m.episodes} episodes, {m.transitions} transitions ({m.generated} next latents from noise)"
             + ("" if m.final_frames else " (no final_frame in the dataset: each episode's last transition is left out)"),
             f"termination: {m.terminal_transitions} real ends, recall {m.termination_recall:.3f}, "
             f"false alarms {m.termination_false_alarms:.4f} of the other transitions",
             f"reward: {m.rewarded_transitions} rewarded transitions, predicted {m.reward_mean_where_rewarded:.3f} "
             f"(real {m.real_reward_mean_where_rewarded:.3f}), elsewhere {m.reward_mean_elsewhere:.4f} "
             f"(where nothing is paid and nothing ends {m.reward_mean_off_ends:.5f}); "
             f"MSE {m.reward_mse:.5f}",
             f"  at the {m.unpaid_ends} real ends that pay nothing: predicted {m.reward_mean_at_unpaid_ends:.3f} "
             "(telling them from the paid ends may take memory: MiniGrid-Memory's wrong object)",
             f"next latent from noise level 1: MSE {m.next_latent_mse_at_noise_1:.3f} (mean latent "
             f"{m.next_latent_mse_of_mean:.3f}, previous latent {m.next_latent_mse_of_previous:.3f})",
             f"  where the real frame did not change ({m.unchanged_generated} transitions: walls, actions "
             f"without effect): MSE {m.next_latent_mse_where_unchanged:.3f} (previous latent 0)"]
    return "\n".join(lines)

"""Generation from actions alone after real context, under other sampling settings: the number of
denoising steps and the noise level at which each generated frame is committed to the state
(diffusion.commit_noise). PSNR over all generated frames, the first, frames 2-10 and 11+, beside the
yardsticks of the same frames.

    python docs/memory-ablation/rollout_settings.py RUN DATA CONTEXT GENERATE EPISODES NOISE,STEPS ...
    python docs/memory-ablation/rollout_settings.py runs/ablation-mg4r/runs/ours/seed0 data/mg4r-retrace \
        150 60 4 0,4 0.1,4 0.2,4 0.3,4

One JSON line per setting. The episodes are the dataset's held-out ones (evaluation/memory.py's plan).
"""

import json
import sys
import time

import torch

from data_collection.dataset import Dataset
from lssvwm_env.checkpoint import load_world_model
from lssvwm_env.evaluation.memory import frame_scores, generate_rollouts, plan_episodes


def main() -> None:
    torch.set_num_threads(1)
    run, data, context, generate, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    model = load_world_model(run)
    dataset = Dataset.open(data)
    plan = plan_episodes({e.index: e.length for e in dataset.episodes("eval")}, context, generate, count)
    episodes = [dataset.load_episode(i) for i in plan.indices]
    for setting in sys.argv[6:]:
        noise, steps = setting.split(",")
        model.config.diffusion.commit_noise = float(noise)
        start = time.time()
        rollouts = generate_rollouts(model, episodes, plan.context, plan.generate, int(steps), 4, seed=0)
        s = frame_scores(rollouts)
        print(json.dumps({"commit_noise": float(noise), "sampling_steps": int(steps), "psnr": float(s["psnr"].mean()),
                          "psnr_frame_1": float(s["psnr"][:, 0].mean()), "psnr_2_10": float(s["psnr"][:, 1:10].mean()),
                          "psnr_11_on": float(s["psnr"][:, 10:].mean()),
                          "context_mean": float(s["context_mean_psnr"].mean()),
                          "last_frame": float(s["last_frame_psnr"].mean()), "seconds": round(time.time() - start, 1)}),
              flush=True)


if __name__ == "__main__":
    main()

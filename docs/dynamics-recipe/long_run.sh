#!/bin/bash
# The long Memory Maze 9x9 run (docs/dynamics-recipe/README.md, section 4): size M, 270 training episodes.
#   bash docs/dynamics-recipe/long_run.sh                       the first time
#   bash docs/dynamics-recipe/long_run.sh --resume [--threads 1]  every later session
# Stopped on 2026-11-30 at step 17,600 of 18,000 and shipped as the default (README.md section 4 there).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/lssvwm train --data data/mm9-300k --out runs/mm9-long --preset cpu --threads 2 \
  --init-autoencoder lssvwm_env/checkpoints/default \
  --set model.backbone.d_model=160 --set model.backbone.n_layers=6 \
  --set 'dynamics_training.curriculum=[{"window":30,"iterations":15000,"batch_size":4},{"window":100,"iterations":2000,"batch_size":2},{"window":200,"iterations":1000,"batch_size":2}]' \
  --set dynamics_training.eval_every=2000 --set dynamics_training.eval_episodes=6 \
  --set checkpoint_every=200 --set video_every=100000 "$@"

#!/bin/bash
# The shipped MiniGrid-MemoryS7 model's recipe (runs/mg6) with SSM half-life floors of 1 to 1,000 frames;
# its autoencoder, so that the dynamics differ in the floors alone.
cd "$(dirname "$0")/../../.."
exec .venv/bin/lssvwm train --data data/mgS7-bump --out runs/mg-floor --preset cpu-small --threads 1 \
  --init-autoencoder lssvwm_env/checkpoints/minigrid \
  --set 'dynamics_training.curriculum=[{"window":16,"iterations":3800,"batch_size":16},{"window":32,"iterations":1600,"batch_size":8},{"window":24,"iterations":1600,"batch_size":12}]' \
  --set 'model.backbone.ssm.half_life_frames=[1,1000]' --set model.backbone.ssm.half_life_floor=true "$@"

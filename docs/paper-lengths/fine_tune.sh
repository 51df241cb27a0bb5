#!/bin/bash
# The shipped default fine-tuned on Memory Maze 9x9 windows that hold revisits (issue 35), against a
# control at the same frames per step whose windows rarely do (docs/paper-lengths/README.md):
#   bash docs/paper-lengths/fine_tune.sh w400 [--resume]   windows of 400 frames x 1 (97.5% hold a revisit >= 30 frames back)
#   bash docs/paper-lengths/fine_tune.sh w100 [--resume]   windows of 100 frames x 4 (14.5% do)
# Both from every weight of the default (--init-model), learning rate 1e-4 (the default ended at 3e-5),
# one thread each so the two arms run side by side; checkpoints every 100 steps, resumable across sessions.
set -euo pipefail
cd "$(dirname "$0")/../.."
arm=$1
shift
case "$arm" in
  w400) curriculum='[{"window":400,"iterations":3000,"batch_size":1}]' ;;
  w100) curriculum='[{"window":100,"iterations":3000,"batch_size":4}]' ;;
  *) echo "usage: $0 w400|w100 [--resume]" >&2; exit 2 ;;
esac
exec .venv/bin/lssvwm train --data data/mm9-300k --out "runs/paper-lengths/$arm" --preset cpu --threads 1 \
  --init-model lssvwm_env/checkpoints/default \
  --set model.backbone.d_model=160 --set model.backbone.n_layers=6 \
  --set model.backbone.attention.spatial_encoding=none --set model.diffusion.pure_noise_prob=0.0 \
  --set model.diffusion.sampling_steps=1 --set dynamics_training.objective=diffusion_forcing \
  --set "dynamics_training.curriculum=$curriculum" --set dynamics_training.lr=1e-4 \
  --set dynamics_training.eval_every=1000 --set dynamics_training.eval_episodes=3 \
  --set checkpoint_every=100 --set video_every=100000 "$@"

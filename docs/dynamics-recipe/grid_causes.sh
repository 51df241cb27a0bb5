#!/usr/bin/env bash
# Issue 39's causes on the colour grid: changes one at a time to the `cpu` preset as it was before the
# issue (`old+change`), and parts removed one at a time from the recipe the presets now train with
# (`recipe-part`); each run an `lssvwm train` on the same data with the same autoencoder, one thread
# each, two runs side by side.
# Usage: docs/dynamics-recipe/grid_causes.sh VARIANT...   (re-running resumes a run)
# Every run gets the same training compute: STEPS steps of diffusion forcing, half as many of the
# clean-context objective, whose step costs two passes.
# Then:  python docs/dynamics-recipe/grid_causes.py runs/grid-causes/* --out docs/dynamics-recipe/grid-causes
#
# Data and the shared autoencoder (the `cpu` preset's stage 0, 1,000 steps):
#   lssvwm collect --env colour-grid --policy momentum --episodes 300 --steps 200 --workers 1 --out data/cg-full
#   lssvwm train --data data/cg-full --out runs/cg-control --preset cpu --threads 1 ...
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-data/cg-full}
AE=${AE:-runs/cg-control}
RUNS=${RUNS:-runs/grid-causes}
STEPS=${STEPS:-600}
SEED=${SEED:-0}

# The `cpu` preset before issue 39: diffusion forcing, logit-normal noise levels, no place in attention,
# learning rate 3e-4.
OLD="--set dynamics_training.objective=diffusion_forcing --set dynamics_training.lr=3e-4
     --set model.diffusion.pure_noise_prob=0 --set model.backbone.attention.spatial_encoding=none"

overrides() {  # `old`, `old+change+...` (changes on the old preset) or `recipe`, `recipe-part` (a part removed)
  local part
  case "$1" in
    old|old+*) echo "$OLD"; for part in $(echo "${1#old}" | tr '+' ' '); do change "$part" || return 1; done ;;
    recipe) ;;
    recipe-rope) echo "--set model.backbone.attention.spatial_encoding=none" ;;
    recipe-pure-noise) echo "--set model.diffusion.pure_noise_prob=0" ;;
    recipe-lr) echo "--set dynamics_training.lr=3e-4" ;;
    recipe-clean-context) echo "--set dynamics_training.objective=diffusion_forcing" ;;
    recipe-patch1) echo "--set model.backbone.patch=1" ;;
    *) echo "unknown variant $1" >&2; return 1 ;;
  esac
}

change() {  # one change to the old preset
  case "$1" in
    spatial-rope) echo "--set model.backbone.attention.spatial_encoding=rope" ;;
    pure-noise) echo "--set model.diffusion.pure_noise_prob=0.5" ;;
    # The deterministic next-latent predictor of the same backbone: every frame from its clean past,
    # from pure noise, x0 regressed with MSE; sampled in one step.
    mse) echo "--set dynamics_training.objective=clean_context --set model.diffusion.pure_noise_prob=1.0
               --set model.diffusion.prediction=x0 --set model.diffusion.sampling_steps=1" ;;
    clean-context) echo "--set dynamics_training.objective=clean_context" ;;
    lr1e-3) echo "--set dynamics_training.lr=1e-3" ;;
    lr3e-3) echo "--set dynamics_training.lr=3e-3" ;;
    *) echo "unknown change $1" >&2; return 1 ;;
  esac
}

train() {
  local name=$1 run=$RUNS/$1-s$SEED resume=() steps=$STEPS
  case "$name" in recipe-clean-context) ;; *clean-context*|*mse*|recipe*) steps=$((STEPS / 2)) ;; esac
  [ -f "$run/checkpoint/training_state.json" ] && resume=(--resume --allow-changes)
  mkdir -p "$run"
  # Variants that keep the autoencoder share its latents (hard link; the trainer checks their key).
  if [ ! -e "$run/latents_train.safetensors" ] && [ -e "$AE/latents_train.safetensors" ]; then
    ln "$AE/latents_train.safetensors" "$run/" && cp "$AE/latents_train.json" "$run/"
  fi
  # shellcheck disable=SC2046
  lssvwm train --data "$DATA" --out "$run" --preset cpu --threads 1 --init-autoencoder "$AE" \
    --set seed="$SEED" --set video_every=100000 --set checkpoint_every=100 \
    --set "dynamics_training.curriculum=[{\"window\":30,\"iterations\":$steps,\"batch_size\":4}]" \
    --set dynamics_training.eval_every=$((steps / 6)) --set dynamics_training.eval_rollout=20 \
    --set dynamics_training.eval_context=10 --set dynamics_training.eval_episodes=4 \
    $(overrides "$name") "${resume[@]}" > "$run.log" 2>&1
}

pids=()
for name in "$@"; do
  overrides "$name" > /dev/null
  train "$name" &
  pids+=($!)
  if [ ${#pids[@]} -eq 2 ]; then wait "${pids[@]}"; pids=(); fi
done
[ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"

#!/bin/bash
# Every held-out figure the README and the model card give for a Memory Maze 9x9 model, each beside its
# yardsticks, in the order a candidate default is judged (docs/dynamics-recipe/README.md, section 4):
#   bash docs/dynamics-recipe/evaluate.sh CHECKPOINT OUT
# After the sampler comparison every figure samples as the checkpoint's config.json says (set it from the first).
# Needs data/mm9-300k (held-out episodes) and data/mm9-retrace (retrace episodes), collected with the
# commands in docs/dynamics-recipe/README.md and docs/measured.md. About 7 minutes for size M on 2 threads.
set -euo pipefail
cd "$(dirname "$0")/../.."
checkpoint=$1 out=$2
mkdir -p "$out"
run() { echo "+ $*" >&2; "$@"; }

# 1. The sampler: 1 and 4 denoising steps on the same frames (next frame, 100-frame rollouts, sharpness).
run .venv/bin/python docs/measured/sampler_steps.py --data data/mm9-300k --threads 2 \
    "$checkpoint:4" "$checkpoint:1" > "$out/sampler_steps.jsonl"
# 2. Next frame from the real past at every frame of 3 held-out episodes x 300 (the README's row).
OMP_NUM_THREADS=2 run .venv/bin/python docs/dynamics-recipe/one_step.py --data data/mm9-300k --frames 300 \
    --episodes 3 "$checkpoint" > "$out/one_step.jsonl"
# 3. Retrieval, the paper's 400 + 400 frames on 8 held-out retrace episodes.
run .venv/bin/lssvwm eval memory --checkpoint "$checkpoint" --data data/mm9-retrace --task retrieval \
    --episodes 8 --batch-size 8 --videos 1 --threads 2 --out "$out/retrieval"
# 4. 100 frames generated after 100 of context, 4 held-out episodes.
run .venv/bin/lssvwm eval memory --checkpoint "$checkpoint" --data data/mm9-300k --task reasoning \
    --context 100 --generate 100 --episodes 4 --videos 0 --threads 2 --out "$out/reasoning"
# 5. More context must not hurt: the same targets after 8 to 400 real frames.
run .venv/bin/lssvwm eval context --checkpoint "$checkpoint" --data data/mm9-300k --contexts 8 32 100 200 400 \
    --episodes 4 --targets 4 --threads 2 --out "$out/context"
# 6. How long the SSM's state lasts, per layer and head, in frames.
run .venv/bin/python docs/memory-ablation/ssm_horizon.py "$checkpoint" data/mm9-300k 4 > "$out/ssm_horizon.txt"

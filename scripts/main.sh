#!/usr/bin/env bash
# The main job: ./scripts/main.sh [--from-scratch] [--out DIR] (see `lssvwm pipeline --help`).
# Sets up on first use, then runs the pipeline; re-running skips finished stages.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
out=out/main
for arg in "$@"; do [ "$arg" = "--from-scratch" ] && out=out/scratch; done
exec .venv/bin/python -m lssvwm_env.cli pipeline --out "$out" "$@"

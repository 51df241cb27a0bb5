#!/usr/bin/env bash
# Sets up everything lssvwm needs on a fresh Debian machine (CPU, no GPU): the system libraries for
# headless MuJoCo rendering, a project virtual environment in .venv, the CPU PyTorch wheel, and the
# package itself. Idempotent: it does nothing when pyproject.toml has not changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP=$VENV/.lssvwm-setup-stamp
want_stamp=$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ]; then
  exit 0
fi

# Headless rendering: Mesa EGL (MUJOCO_GL=egl) and OSMesa as the fallback; ffmpeg for mp4 videos.
need_apt=()
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libglib2.0-0 libosmesa6 ffmpeg; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing system packages: ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing system packages ${need_apt[*]}; run: sudo apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
fi

[ -x $VENV/bin/python ] || python3 -m venv $VENV
# PyTorch before the package, the CPU build: from PyPI, Linux's torch wheel is the multi-GB CUDA
# build. In order: a local wheel directory (pip's find-links, as on this project's machines), PyTorch's
# CPU wheel index, and last the plain requirement (which may be the CUDA build: said so).
TORCH=torch==2.13.0
PIP="$VENV/bin/pip install -q --disable-pip-version-check"
if ! $VENV/bin/python -c "import torch" >/dev/null 2>&1; then
  if $PIP --no-deps --no-index "$TORCH" >/dev/null 2>&1; then
    $PIP "$TORCH" 2>&1 | grep -v "is ignored" || true  # its dependencies, from the index
    torch_source="the local wheel directory (pip find-links)"
  elif $PIP --timeout 15 --retries 1 --index-url https://download.pytorch.org/whl/cpu "$TORCH" >/dev/null 2>&1; then
    torch_source="PyTorch's CPU wheel index"
  else
    $PIP "$TORCH" 2>&1 | grep -v "is ignored" || true
    torch_source="the default index: no CPU-only wheel was reachable, this may be the CUDA build"
  fi
  echo "setup: $TORCH from $torch_source"
fi
$VENV/bin/pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "is ignored" || true
$VENV/bin/python -c "import torch, lssvwm_env, data_collection, agents" \
  || { echo "setup: the package does not import; see the pip output above" >&2; exit 1; }
echo "$want_stamp" > "$STAMP"
echo "setup: ready ($VENV, torch $($VENV/bin/python -c 'import torch; print(torch.__version__)'))"

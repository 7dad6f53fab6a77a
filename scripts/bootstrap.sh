#!/usr/bin/env bash
# Create .venv (Python >= 3.10) with the pinned torch and every local distribution: the core, all plugins under
# plugins/, and the example plugin. Safe to re-run: pip skips what is already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip wheel setuptools
# torch first: basicsr's setup imports torch at build time (hence --no-build-isolation below)
$PIP install -q torch==2.14.1 torchvision==0.29.1
$PIP install -q --no-build-isolation basicsr==1.4.2
# every local distribution, with the optional extras their tests exercise (Ray executor, optuna, facenet-pytorch, timm)
args=(-e ".[ray,optuna]")
for p in plugins/lrbench-plugin-*/ examples/lrbench-plugin-example/; do
  p=${p%/}
  case "$p" in
    *lrbench-plugin-face) args+=(-e "$p[facenet,timm]") ;;
    *) [ -f "$p/pyproject.toml" ] && args+=(-e "$p") ;;
  esac
done
$PIP install -q "${args[@]}" "pytest>=7" pytest-xdist "ruff==0.17.6"

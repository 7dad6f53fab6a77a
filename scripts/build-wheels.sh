#!/usr/bin/env bash
# Build a wheel of every lrbench distribution (the core, the seven plugins, the example plugin) into dist/, so that
#   pip install --find-links dist lrbench-plugin-eva
# installs a plugin with this core until lrbench is on a public index (the PyPI name `lrbench` is an unrelated
# project, 0.0.0.1; the plugins require lrbench>=0.1, so pip takes the wheel from dist/).
# Usage: scripts/build-wheels.sh [OUT_DIR [DISTRIBUTION_DIR...]]   (default: dist/ and every distribution)
# Uses the current environment's setuptools (no build isolation): works offline once bootstrap.sh has run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}
out=${1:-dist}
shift || true
if [ $# -eq 0 ]; then
  set -- . plugins/lrbench-plugin-*/ examples/lrbench-plugin-example/
fi
mkdir -p "$out"
for src in "$@"; do
  "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$out" "$src"
done
ls -1 "$out"/*.whl

#!/usr/bin/env bash
# Line coverage of the core and every plugin by the whole test suite (coverage.py through pytest-cov); not CI.
#
#   bash scripts/coverage.sh                # whole suite, 2 workers; table in $COVERAGE_OUT/coverage.txt
#   bash scripts/coverage.sh tests/test_x.py -n 0   # any pytest arguments narrow it
#
# Modules no test imports are listed with 0 % (--cov names the packages, not the files tests happened to load).
# Code run only in subprocesses (CLI calls through subprocess, torchrun ranks, Ray workers) is not counted.
# Needs requirements-dev.txt installed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=${PYTHON:-$(command -v python)}
OUT=${COVERAGE_OUT:-$(mktemp -d /tmp/lrbench-coverage-XXXX)}
mkdir -p "$OUT"
cd "$ROOT"
export LRBENCH_CACHE="${LRBENCH_CACHE:-$OUT/cache}"
export COVERAGE_FILE="$OUT/.coverage"
packages=(lrbench)
for p in plugins/lrbench-plugin-*/lrbench_*/ examples/lrbench-plugin-example/lrbench_*/; do
  packages+=("$(basename "$p")")
done
cov_args=()
for p in "${packages[@]}"; do cov_args+=("--cov=$p"); done
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(-n 2 -q)
nice -n 5 "$PY" -m pytest "${cov_args[@]}" --cov-report= "${args[@]}" || echo "some tests failed (coverage still reported)"
# this checkout's files only: a subprocess may import lrbench from another editable install
# of the same venv (a git worktree's main checkout), which would be listed as a second, mostly unrun copy
"$PY" -m coverage report --include="$ROOT/*" --skip-covered --sort=cover > "$OUT/coverage.txt" || true
"$PY" -m coverage report --include="$ROOT/*" --format=total > "$OUT/total.txt" || true
for part in core plugins/lrbench-plugin-* examples/lrbench-plugin-example; do
  printf '%-40s %s%%\n' "$part" "$("$PY" -m coverage report --include="$ROOT/$part/*" --format=total 2>/dev/null)"
done > "$OUT/packages.txt"
cat "$OUT/packages.txt"
echo "total line coverage: $(cat "$OUT/total.txt")%; per module (fully covered ones omitted): $OUT/coverage.txt"

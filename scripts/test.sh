#!/usr/bin/env bash
# The whole test suite: core tests, every plugin's tests, the example plugin's test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export LRBENCH_CACHE="${LRBENCH_CACHE:-$(mktemp -d)}"
exec .venv/bin/python -m pytest -n 2 "$@"

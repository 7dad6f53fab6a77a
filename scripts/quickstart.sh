#!/usr/bin/env bash
# The main job on the embedded default: the toy CLIP on the toy world at HR, 64, 32, 16 and 8 px.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/lrbench run examples/quickstart.yaml "$@"

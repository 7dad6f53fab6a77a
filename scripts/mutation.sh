#!/usr/bin/env bash
# Mutation testing of the numeric modules with cosmic-ray (not CI: it takes tens of minutes). Each module is mutated in
# a scratch copy of the working tree and checked by ITS OWN fast tests only; results in docs/testing.md.
#
#   bash scripts/mutation.sh                 # every module below
#   bash scripts/mutation.sh metrics lrtk0-tokens   # some of them
#   MUTATION_SAMPLE=40 bash scripts/mutation.sh   # at most 40 mutants per module (a seeded random sample)
#
# Env: MUTATION_SAMPLE (0 = all, default), MUTATION_SEED (0), MUTATION_OUT (scratch dir, default a new temp dir),
# MUTATION_TIMEOUT (seconds per mutant, 120). Needs requirements-dev.txt installed (cosmic-ray).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=${PYTHON:-$(command -v python)}
BIN="$(dirname "$PY")"
OUT=${MUTATION_OUT:-$(mktemp -d /tmp/lrbench-mutation-XXXX)}
mkdir -p "$OUT"
SAMPLE=${MUTATION_SAMPLE:-0}
SEED=${MUTATION_SEED:-0}
TIMEOUT=${MUTATION_TIMEOUT:-120}

# key | module | functions to mutate (empty: all; !name: all but name) | its own tests
MODULES=(
  "metrics|core/lrbench/builtin/metrics.py||tests/test_metrics_exact.py"
  "aggregates|core/lrbench/builtin/aggregates.py||tests/test_metrics_exact.py tests/test_aggregates_method.py tests/test_aggregates_reference.py"
  "degradations|core/lrbench/builtin/degradations.py||tests/test_degradations_exact.py tests/test_degradations.py"
  "cellkeys|core/lrbench/plan.py|_hash_files,entry_identity,method_identity,build_plan|tests/test_cell_keys_exact.py"
  "contentkey|core/lrbench/cache.py|canonical_json,content_key|tests/test_cell_keys_exact.py"
  "sr-quality|plugins/lrbench-plugin-sr/lrbench_sr/quality.py||plugins/lrbench-plugin-sr/tests/test_quality_exact.py plugins/lrbench-plugin-sr/tests/test_quality.py"
  "lrtk0-tokens|plugins/lrbench-plugin-lrtk0/lrbench_lrtk0/tokens.py||plugins/lrbench-plugin-lrtk0/tests/test_tokens_exact.py plugins/lrbench-plugin-lrtk0/tests/test_tokens.py"
  "rics-selection|plugins/lrbench-plugin-rics/lrbench_rics/selection.py||plugins/lrbench-plugin-rics/tests/test_selection.py plugins/lrbench-plugin-rics/tests/test_bounds.py"
  "face-evaluation|plugins/lrbench-plugin-face/lrbench_face/evaluation.py|!plot_distance_distributions|plugins/lrbench-plugin-face/tests/test_evaluation.py"
)

# a scratch copy of the working tree (tracked and untracked, not ignored): mutants never touch the real files
SRC="$OUT/src"
mkdir -p "$SRC"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$SRC"
export PYTHONPATH=$(ls -d "$SRC"/core "$SRC"/plugins/*/ "$SRC"/examples/lrbench-plugin-example | tr '\n' ':')
export LRBENCH_CACHE="$OUT/cache"
cd "$SRC"

want=("$@")
printf '%-16s %7s %7s %9s %8s\n' module mutants killed survived score | tee "$OUT/summary.txt"
for spec in "${MODULES[@]}"; do
  IFS='|' read -r key module functions tests <<<"$spec"
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $key "* ]]; then continue; fi
  cfg="$OUT/$key.toml"
  cat >"$cfg" <<TOML
[cosmic-ray]
module-path = "$module"
timeout = $TIMEOUT.0
excluded-modules = []
test-command = "$PY -m pytest -x -q -p no:cacheprovider -n 0 $tests"

[cosmic-ray.distributor]
name = "local"
TOML
  rm -f "$OUT/$key.sqlite"
  "$BIN/cosmic-ray" init "$cfg" "$OUT/$key.sqlite" >/dev/null
  "$PY" "$ROOT/scripts/mutation_filter.py" "$OUT/$key.sqlite" --functions "$functions" --sample "$SAMPLE" \
    --seed "$SEED" >"$OUT/$key.filter.txt"
  # the unmutated module must pass its tests, or every mutant would count as killed
  if ! $PY -m pytest -x -q -p no:cacheprovider -n 0 $tests >"$OUT/$key.baseline.txt" 2>&1; then
    echo "$key: its tests fail without any mutation (see $OUT/$key.baseline.txt)" >&2
    exit 1
  fi
  nice -n 10 "$BIN/cosmic-ray" exec "$cfg" "$OUT/$key.sqlite" >"$OUT/$key.exec.log" 2>&1
  "$BIN/cr-report" --show-output "$OUT/$key.sqlite" >"$OUT/$key.report.txt" || true
  "$PY" - "$OUT/$key.sqlite" "$key" <<'PYEOF' | tee -a "$OUT/summary.txt"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT test_outcome FROM work_results").fetchall()
n = len(rows)
killed = sum(1 for (o,) in rows if "survived" not in str(o).lower())
print(f"{sys.argv[2]:16s} {n:7d} {killed:7d} {n - killed:9d} {100 * killed / max(n, 1):7.1f}%")
PYEOF
done
echo "reports (survivors with their diffs): $OUT/<module>.report.txt"

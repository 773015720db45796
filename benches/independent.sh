#!/usr/bin/env bash
# Detection on a province the engine's generator did not make: an
# independently written Decision 130 province (benches/independent/province.py,
# standard-library Python: its own catalogue, prices, case mix, numbering,
# envelope styles and frauds), run through ingest → features → detect → evaluate.
# usage: benches/independent.sh [WORK_DIR] [--scale 0.2] [--seed 1]
#   BHYT_BIN: the engine binary (default $CARGO_TARGET_DIR or target, release/bhyt, built if missing)
#   BHYT_BASELINES=1: also scikit-learn's IsolationForest on the same table
#     (benches/isoforest_compare.sh; creates its own virtual environment).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/bhyt-independent}
shift || true
bin=${BHYT_BIN:-${CARGO_TARGET_DIR:-target}/release/bhyt}
[ -x "$bin" ] || cargo build --release
rm -rf "$work" && mkdir -p "$work"
python3 benches/independent/province.py "$work/gen" "$@"
"$bin" ingest "$work/gen/claims" --registry "$work/gen/facilities.csv" \
  --budgets "$work/gen/budgets.csv" --data-dir "$work/data" --demo-key --quiet
"$bin" features --data-dir "$work/data" --period week --out "$work/features" >/dev/null
"$bin" detect --features "$work/features/facility_period.parquet" --data-dir "$work/data" \
  --model "$work/model.json" --out "$work/detect" --fit >/dev/null
"$bin" evaluate --scores "$work/detect/scores.parquet" --labels "$work/gen/labels.csv"
if [ "${BHYT_BASELINES:-0}" = 1 ]; then
  benches/isoforest_compare.sh "$work/detect" "$work/features/facility_period.parquet" \
    "$work/gen/labels.csv"
fi

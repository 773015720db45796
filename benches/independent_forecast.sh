#!/usr/bin/env bash
# Budget forecasts on a history the engine's generator did not make: an
# independently written Decision 130 province over several years
# (benches/independent/province.py --years N --shape smooth|policy), ingested
# (the envelopes deleted after), then `bhyt forecast --backtest`: the engine
# beside the naive rules on rolling origins, 12 months ahead.
# usage: benches/independent_forecast.sh [WORK_DIR] [--scale 0.1] [--seed 1]
#          [--years 4] [--year 2021] [--shape smooth] [--anomaly-year 2022]
#   BHYT_BIN: the engine binary (default $CARGO_TARGET_DIR or target, release/bhyt, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/bhyt-independent-forecast}
shift || true
bin=${BHYT_BIN:-${CARGO_TARGET_DIR:-target}/release/bhyt}
[ -x "$bin" ] || cargo build --release
rm -rf "$work" && mkdir -p "$work"
python3 benches/independent/province.py "$work/gen" --years 4 --year 2021 --scale 0.1 \
  --anomaly-year 2022 "$@"
"$bin" ingest "$work/gen/claims" --registry "$work/gen/facilities.csv" \
  --budgets "$work/gen/budgets.csv" --data-dir "$work/data" --demo-key --quiet
rm -rf "$work/gen/claims"
"$bin" forecast --data-dir "$work/data" --out "$work/forecast" --backtest

#!/usr/bin/env bash
# Scale ladder: wall time and peak RSS of every stage as the store grows.
#
# usage: benches/scale.sh WORKDIR [SCALE] [RUNGS]
#   SCALE  volume of each generated province (1 ≈ 1.53 M visits and ≈ 8.3 GB of
#          gzipped XML a year); default 1.
#   RUNGS  cumulative province counts at which the stages are measured;
#          default "1 3 6" (≈ 18 M visits at scale 1 over two years).
# Provinces are generated one at a time (own code, own seed), ingested into one
# store and their XML deleted, so the disk holds one province's XML at most.
# The registries and budgets are merged as they come. Each measurement runs the
# release binary under /usr/bin/time -v; the table goes to WORKDIR/ladder.tsv:
#   rung  provinces  visits  stage  wall_s  peak_rss_mb  input_mb  exit
# (exit 2 = done with part of the input quarantined, as the generator's bad
# records are; a failed stage is recorded and the ladder goes on).
# BHYT_SCALE_DAYS: days of history per province (default 730: the forecast
# needs 13 months).
# Set BHYT_BIN to measure another binary; BHYT_SCALE_AGGREGATE=1 also runs
# `bhyt aggregate` (a binary built with --features cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(realpath -m "$1"); scale="${2:-1}"; rungs="${3:-1 3 6}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bhyt-target}"
bin="${BHYT_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --release -q
    bin="$CARGO_TARGET_DIR/release/bhyt"
fi
codes=(93 86 82 89 79 92 94 95 96 87 83 84 80 77 75 74 72 70 68 67 66 64)
data="$work/data"; out="$work/out"; tsv="$work/ladder.tsv"
mkdir -p "$work" "$out"
[ -f "$tsv" ] || printf 'rung\tprovinces\tvisits\tstage\twall_s\tpeak_rss_mb\tinput_mb\texit\n' > "$tsv"

# measure STAGE RUNG PROVINCES VISITS INPUT_MB -- command...
measure() {
    local stage="$1" rung="$2" provs="$3" visits="$4" input_mb="$5"; shift 6
    local t="$work/$stage.time"
    local rc=0
    /usr/bin/time -v "$@" > "$work/$stage.out" 2> "$t" || rc=$?
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0;
        for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.1f", s }' "$t")
    rss=$(awk -F': ' '/Maximum resident/ { printf "%.0f", $2 / 1024 }' "$t")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rung" "$provs" "$visits" "$stage" "$wall" "$rss" "$input_mb" "$rc" | tee -a "$tsv"
}

visits_in_store() {
    "$bin" status --data-dir "$data" --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["visits"])' 2>/dev/null || echo "?"
}

# Provinces already in the store (a rerun continues the ladder).
have=$(find "$work" -maxdepth 1 -type d -name 'gen-*' | wc -l)
for rung in $rungs; do
    while [ "$have" -lt "$rung" ]; do
        i=$have; code=${codes[$i]}; gen="$work/gen-$code"
        printf 'seed = %d\nprovinces = 1\nprovince_codes = ["%s"]\nscale = %s\nstart = "2023-01-01"\ndays = %s\n' \
            $((130 + i)) "$code" "$scale" "${BHYT_SCALE_DAYS:-730}" > "$work/gen-$code.toml"
        "$bin" generate --config "$work/gen-$code.toml" --out "$gen" > /dev/null
        # Merged registry and budgets: every province's facilities stay known.
        if [ -f "$work/facilities.csv" ]; then
            tail -n +2 "$gen/facilities.csv" >> "$work/facilities.csv"
            tail -n +2 "$gen/budgets.csv" >> "$work/budgets.csv"
        else
            cp "$gen/facilities.csv" "$gen/budgets.csv" "$work/"
        fi
        mb=$(du -sm "$gen/claims" | cut -f1)
        measure ingest "$rung" $((i + 1)) "-" "$mb" -- "$bin" ingest --quiet --demo-key \
            --registry "$work/facilities.csv" --budgets "$work/budgets.csv" --data-dir "$data" "$gen/claims"
        rm -rf "$gen/claims"
        have=$((have + 1))
    done
    v=$(visits_in_store)
    measure features "$rung" "$rung" "$v" "-" -- "$bin" features --data-dir "$data" --period week --out "$out/features"
    measure detect "$rung" "$rung" "$v" "-" -- "$bin" detect --data-dir "$data" --features "$out/features/facility_period.parquet" \
        --model "$out/model.json" --fit --alerts-db "$out/alerts-$rung.sqlite" --out "$out/detect"
    measure forecast "$rung" "$rung" "$v" "-" -- "$bin" forecast --data-dir "$data" --out "$out/forecast"
    measure report "$rung" "$rung" "$v" "-" -- "$bin" report --data-dir "$data" --detect-dir "$out/detect" \
        --features "$out/features/facility_period.parquet" --model "$out/model.json" --forecast-dir "$out/forecast" --out "$out/report"
    if [ "${BHYT_SCALE_AGGREGATE:-0}" = 1 ]; then
        measure aggregate "$rung" "$rung" "$v" "-" -- "$bin" aggregate --data-dir "$data" --out "$out/aggregate"
    fi
done
echo "table: $tsv"

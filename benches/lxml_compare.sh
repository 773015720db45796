#!/usr/bin/env bash
# Compare `bhyt ingest` with Python lxml on the same Decision 130 XML.
# usage: benches/lxml_compare.sh INPUT_DIR_OR_FILE REGISTRY.csv
# Creates its own virtual environment (.venv-bench) with lxml from PyPI.
# BHYT_BIN: measure this binary instead of building the release one.
# Prints both throughputs and their ratio (bhyt's wall time includes writing
# the store; lxml's only parsing, base64 and the inner documents).
set -euo pipefail
cd "$(dirname "$0")/.."
in="$1"; registry="$2"
venv=.venv-bench
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q lxml
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bhyt-target}"
bin="${BHYT_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --release -q
    bin="$CARGO_TARGET_DIR/release/bhyt"
fi
store=$(mktemp -d)
files=$(find "$in" -type f | wc -l)
bytes=$(du -sb "$in" | cut -f1)
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
echo "== input: $files files, $mb MB (mean $((bytes / 1000 / (files > 0 ? files : 1))) kB) =="
echo "== bhyt ingest (release) =="
# Exit code 2: done, with part of the input quarantined (the generator's bad records).
/usr/bin/time -v "$bin" ingest "$in" --registry "$registry" --data-dir "$store" --demo-key --quiet 2> "$store.time" || [ $? -eq 2 ]
grep -E "Maximum resident|Elapsed|Percent of CPU" "$store.time"
bhyt_s=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0;
    for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$store.time")
echo "== python lxml =="
lxml_out=$("$venv/bin/python" benches/lxml_compare.py "$in")
echo "$lxml_out"
lxml_s=$(echo "$lxml_out" | sed -n 's/.* in \([0-9.]*\) s:.*/\1/p')
awk -v b="$bhyt_s" -v l="$lxml_s" -v mb="$mb" 'BEGIN {
    printf "bhyt %.1f MB/s, lxml %.1f MB/s: bhyt is %.1fx lxml\n", mb / b, mb / l, l / b }'
rm -rf "$store" "$store.time"

#!/usr/bin/env bash
# Compare `bhyt ingest` with Python lxml on the same Decision 130 XML.
# usage: benches/lxml_compare.sh INPUT_DIR_OR_FILE REGISTRY.csv
# Creates its own virtual environment (.venv-bench) with lxml from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
in="$1"; registry="$2"
venv=.venv-bench
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q lxml
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bhyt-target}"
cargo build --release -q
store=$(mktemp -d)
echo "== bhyt ingest (release) =="
# Exit code 2: done, with part of the input quarantined (the generator's bad records).
/usr/bin/time -v "$CARGO_TARGET_DIR/release/bhyt" ingest "$in" --registry "$registry" --data-dir "$store" --demo-key --quiet 2> "$store.time" || [ $? -eq 2 ]
grep -E "Maximum resident|Elapsed" "$store.time"
echo "== python lxml =="
"$venv/bin/python" benches/lxml_compare.py "$in"
rm -rf "$store" "$store.time"

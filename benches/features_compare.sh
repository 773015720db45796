#!/usr/bin/env bash
# Time `bhyt features` against pandas and DuckDB on the same claims store.
# usage: benches/features_compare.sh DATA_DIR
# Creates its own virtual environment (.venv-bench) with pandas, pyarrow, duckdb from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-bench
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q pandas pyarrow duckdb
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bhyt-target}"
cargo build --release -q
"$venv/bin/python" benches/features_compare.py "$1" "$CARGO_TARGET_DIR/release/bhyt"

#!/usr/bin/env bash
# Creates (or reuses) the analysts' Python environment outside the clone,
# from PyPI, and prints its python. Used by notebooks/run.sh and by the
# test that reads the store's Delta tables with Python (tests/store.rs).
set -euo pipefail
venv="${BHYT_NOTEBOOK_VENV:-$HOME/.cache/bhyt-notebooks-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q polars pyarrow deltalake matplotlib nbclient nbformat ipykernel >&2
echo "$venv/bin/python"

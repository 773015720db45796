#!/usr/bin/env bash
# Executes the notebooks headless (nbclient) against a run's outputs.
# usage: notebooks/run.sh [OUT_DIR]   (default: out/demo; run `bhyt demo` first)
# Creates its own virtual environment (outside the clone, reused) from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(notebooks/venv.sh)"
export BHYT_OUT="${1:-out/demo}"
for nb in notebooks/*.ipynb; do
    "$python" - "$nb" <<'PY'
import sys, nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=300, kernel_name="python3").execute()
errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
print(f"{path}: {len(nb.cells)} cells executed, {len(errors)} errors")
sys.exit(1 if errors else 0)
PY
done

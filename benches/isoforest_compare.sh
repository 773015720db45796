#!/usr/bin/env bash
# Compare the engine's detection with scikit-learn's IsolationForest on the
# same feature table, scored against the generator's labels.
# usage: benches/isoforest_compare.sh DETECT_OUT_DIR FEATURES_PARQUET LABELS_CSV
#   DETECT_OUT_DIR: the --out of `bhyt detect` (scores.parquet, multivariate.parquet)
# Creates its own virtual environment (.venv-bench) with scikit-learn and polars from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-bench
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q scikit-learn polars pyarrow numpy
"$venv/bin/python" benches/isoforest_compare.py "$@"

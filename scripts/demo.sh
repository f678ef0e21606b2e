#!/usr/bin/env bash
# Set up gvnfm in .venv and deploy the example network service end to end on the embedded
# defaults (in-memory broker, SQLite, process VIM): no broker or database to install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
bash scripts/ensure-venv.sh "$PY"        # installs python3-venv (root) when the venv module is missing
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
exec .venv/bin/gvnfm up examples/chain --once --report .gvnfm/chain-report.json "$@"

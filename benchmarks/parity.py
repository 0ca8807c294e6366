"""Latency parity: wattbench's timed path against bare runtime loops and vendor tools.

For one model, one thread count and batch 1, three paths are measured:

* ``wattbench``: the adapter's Session driven through
  ``wattbench.harness.protocol.timed_loop`` exactly as a run's measured window
  drives it (prepare outside, ``session.run`` inside the clock reads);
* ``bare``: the runtime's own loop, timed per call the same way
  (LiteRT: ``interpreter.invoke()`` with the input set once; OpenVINO:
  ``infer_request.infer({0: x})``), same threads and precision;
* ``tool``: the vendor benchmark in a subprocess (``litert-benchmark`` /
  ``benchmark_app``), whose own median is parsed.

wattbench and bare run in alternating blocks (``--pairs`` × ``--block-s``, order
swapped every pair) and each vendor-tool invocation is paired with a wattbench
block just before it. Ratios are taken pair by pair and the report gives their
median, so a machine whose speed drifts (a shared one) still gives meaningful
ratios. Goal: wattbench/bare <= 1.03.

Usage::

    python benchmarks/parity.py [--runtime litert openvino] [--threads 2] [--pairs 12]
                                [--block-s 1] [--tool-runs 3] [--model PATH] [--json OUT]
    python benchmarks/parity.py --runtime litert --only wattbench --queries 500

The second form loads and runs a fixed number of inferences on one path, for
timing whole processes from outside.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from PIL import Image

from wattbench.adapters.base import Adapter, AdapterOptions, Session, TensorSpec
from wattbench.harness.protocol import timed_loop
from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coral-test-data"
DEFAULT_MODEL = DATA / "mobilenet_v2_1.0_224_quant.tflite"
IMAGE = DATA / "cat.bmp"
WARMUP_S = 0.5
MIN_QUERIES = 100


def _tool(name: str) -> str:
    """The console script next to this interpreter, else on PATH."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the runtime that ships it")
    return found


def _median_ms(latencies_ns: list[int]) -> float:
    return statistics.median(latencies_ns) / 1e6


def _bare_loop(step: Callable[[], object], seconds: float) -> float:
    """Median ms of ``step()`` timed per call, for ``seconds`` after a warm-up."""
    clock = time.perf_counter_ns
    for deadline_s in (WARMUP_S, seconds):
        lat: list[int] = []
        append = lat.append
        end = clock() + int(deadline_s * 1e9)
        while True:
            t0 = clock()
            step()
            t1 = clock()
            append(t1 - t0)
            if t1 >= end and len(lat) >= MIN_QUERIES:
                break
    return _median_ms(lat)


def _wattbench_loop(session: Session, prepared: list[Any], seconds: float) -> float:
    timed_loop(session, prepared, WARMUP_S, 10)
    lat, _ = timed_loop(session, prepared, seconds, MIN_QUERIES)
    return _median_ms(lat)


def _session(adapter: Adapter, model: Path, threads: int) -> tuple[Session, list[Any]]:
    suite = MobileNetV2Suite()
    art = suite.user_model(model).model_copy(update={"precision": "int8"})
    session = adapter.load(art, AdapterOptions(device="cpu", threads=threads, precision="int8"))
    (spec,) = session.inputs()
    return session, [session.prepare({spec.name: _pixels(spec)[None]})]


def _pixels(spec: TensorSpec) -> Any:
    """The test image through the suite's own preprocessing for ``spec``."""
    with Image.open(IMAGE) as im:
        return MobileNetV2Suite().preprocess(im.convert("RGB"), spec)


class _Parity:
    """The three paths for one runtime; each is set up on first use only."""

    name: str

    def __init__(self, model: Path, threads: int) -> None:
        self.model, self.threads = model, threads

    def _adapter(self) -> Adapter:
        raise NotImplementedError

    @cached_property
    def _wattbench(self) -> tuple[Session, list[Any]]:
        return _session(self._adapter(), self.model, self.threads)

    def wattbench(self, seconds: float) -> float:
        session, prepared = self._wattbench
        return _wattbench_loop(session, prepared, seconds)

    def wattbench_fixed(self, queries: int) -> None:
        session, prepared = self._wattbench
        timed_loop(session, prepared, 0.0, queries)

    def describe(self) -> dict[str, Any]:
        return self._wattbench[0].describe().model_dump(mode="json")


# -- LiteRT ------------------------------------------------------------------------------


class LiteRtParity(_Parity):
    name = "litert"

    def _adapter(self) -> Adapter:
        from wattbench.adapters.litert import LiteRtAdapter

        return LiteRtAdapter()

    @cached_property
    def _invoke(self) -> Callable[[], object]:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(self.model), num_threads=self.threads)
        interpreter.allocate_tensors()
        (d,) = interpreter.get_input_details()
        spec = TensorSpec(name=d["name"], shape=[int(v) for v in d["shape"]], dtype="uint8")
        interpreter.set_tensor(d["index"], _pixels(spec)[None])
        return interpreter.invoke

    def bare(self, seconds: float) -> float:
        return _bare_loop(self._invoke, seconds)

    def bare_fixed(self, queries: int) -> None:
        invoke = self._invoke
        for _ in range(queries):
            invoke()

    def tool_command(self, runs: int, result_json: Path) -> list[str]:
        return [
            _tool("litert-benchmark"),
            "--model",
            str(self.model),
            "--num_threads",
            str(self.threads),
            "--warmup_runs",
            "20",
            "--num_runs",
            str(runs),
            "--result_json",
            str(result_json),
        ]

    def tool(self, runs: int) -> tuple[float, list[str]]:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "result.json"
            cmd = self.tool_command(runs, out)
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            return float(json.loads(out.read_text())["latency"]["median_ms"]), cmd


# -- OpenVINO ----------------------------------------------------------------------------


class OpenVinoParity(_Parity):
    name = "openvino"

    def _adapter(self) -> Adapter:
        from wattbench.adapters.openvino import OpenVinoAdapter

        return OpenVinoAdapter()

    @cached_property
    def _infer(self) -> Callable[[], object]:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(
            core.read_model(str(self.model)),
            "CPU",
            {
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": self.threads,
                "INFERENCE_PRECISION_HINT": "f32",
            },
        )
        request = compiled.create_infer_request()
        port = compiled.inputs[0]
        spec = TensorSpec(name=port.get_any_name(), shape=list(port.get_shape()), dtype="uint8")
        feed = {0: _pixels(spec)[None]}
        return lambda: request.infer(feed)

    def bare(self, seconds: float) -> float:
        return _bare_loop(self._infer, seconds)

    def bare_fixed(self, queries: int) -> None:
        infer = self._infer
        for _ in range(queries):
            infer()

    def tool_command(self, runs: int) -> list[str]:
        cmd = [_tool("benchmark_app"), "-m", str(self.model), "-d", "CPU"]
        if self.threads == os.cpu_count():
            cmd += ["-hint", "latency"]
        else:
            # benchmark_app takes -nthreads only with -hint none (its UI rule)
            cmd += ["-hint", "none", "-nstreams", "1", "-nthreads", str(self.threads)]
        return [*cmd, "-infer_precision", "f32", "-niter", str(runs)]

    def tool(self, runs: int) -> tuple[float, list[str]]:
        cmd = self.tool_command(runs)
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        text = res.stdout + res.stderr
        m = re.search(r"Latency:\s*\n.*?Median:\s*([\d.]+)\s*ms", text)
        threads = re.search(r"INFERENCE_NUM_THREADS:\s*(\d+)", text)
        if m is None or threads is None or int(threads.group(1)) != self.threads:
            raise SystemExit(f"unexpected benchmark_app output:\n{text[-2000:]}")
        return float(m.group(1)), cmd


RUNTIMES: dict[str, Callable[[Path, int], Any]] = {
    "litert": LiteRtParity,
    "openvino": OpenVinoParity,
}


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def measure(
    name: str, model: Path, threads: int, pairs: int, block_s: float, tool_runs: int
) -> dict[str, Any]:
    """Paired blocks of wattbench and bare (order alternated), then paired tool runs."""
    p = RUNTIMES[name](model, threads)
    load_before = _load()
    pair_rows = []
    for k in range(pairs):
        if k % 2:
            b, w = p.bare(block_s), p.wattbench(block_s)
        else:
            w, b = p.wattbench(block_s), p.bare(block_s)
        pair_rows.append({"wattbench_ms": w, "bare_ms": b})
        print(f"{name} pair {k}: wattbench {w:.3f} ms, bare {b:.3f} ms", file=sys.stderr)
    tool_rows = []
    cmd: list[str] = []
    runs = max(
        MIN_QUERIES, int(block_s * 1000 / statistics.median(r["bare_ms"] for r in pair_rows))
    )
    for k in range(tool_runs):
        w = p.wattbench(block_s)
        t, cmd = p.tool(runs)
        tool_rows.append({"wattbench_ms": w, "tool_ms": t, "tool_runs": runs})
        print(f"{name} tool {k}: wattbench {w:.3f} ms, tool {t:.3f} ms", file=sys.stderr)

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in rows))

    def ratio(rows: list[dict[str, Any]], other: str) -> float:
        return float(statistics.median(r["wattbench_ms"] / r[other] for r in rows))

    return {
        "runtime": name,
        "model": str(model),
        "threads": threads,
        "batch": 1,
        "block_s": block_s,
        "pairs": pair_rows,
        "tool_pairs": tool_rows,
        "median_ms": {
            "wattbench": med(pair_rows, "wattbench_ms"),
            "bare": med(pair_rows, "bare_ms"),
            "wattbench_beside_tool": med(tool_rows, "wattbench_ms"),
            "tool": med(tool_rows, "tool_ms"),
        },
        "min_block_median_ms": {
            "wattbench": min(r["wattbench_ms"] for r in pair_rows),
            "bare": min(r["bare_ms"] for r in pair_rows),
            "tool": min(r["tool_ms"] for r in tool_rows),
        },
        "ratio_vs_bare": ratio(pair_rows, "bare_ms"),
        "ratio_vs_tool": ratio(tool_rows, "tool_ms"),
        "tool_command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)),
        "adapter": p.describe(),
        "loadavg_before": load_before,
        "loadavg_after": _load(),
    }


def fixed_count(name: str, model: Path, threads: int, path: str, queries: int) -> None:
    """Load, then run exactly ``queries`` inferences on one path (for whole-process timing)."""
    p = RUNTIMES[name](model, threads)
    if path == "wattbench":
        p.wattbench_fixed(queries)
    else:
        p.bare_fixed(queries)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", nargs="+", choices=sorted(RUNTIMES), default=sorted(RUNTIMES))
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=12, help="wattbench/bare block pairs")
    ap.add_argument("--block-s", type=float, default=1.0, help="seconds per block")
    ap.add_argument("--tool-runs", type=int, default=3, help="vendor tool invocations")
    ap.add_argument("--json", type=Path, help="write the full results here")
    ap.add_argument(
        "--only",
        choices=["wattbench", "bare"],
        help="run --queries inferences on one path and exit (whole-process timing)",
    )
    ap.add_argument("--queries", type=int, default=500)
    args = ap.parse_args(argv)
    if not args.model.is_file():
        raise SystemExit(f"model not found: {args.model} (pass --model)")
    if args.only:
        for r in args.runtime:
            fixed_count(r, args.model, args.threads, args.only, args.queries)
        return 0
    results = [
        measure(r, args.model, args.threads, args.pairs, args.block_s, args.tool_runs)
        for r in args.runtime
    ]
    print(f"model {args.model.name}, {args.threads} threads, batch 1, load {_load()}")
    print(
        f"{'runtime':<10}{'wattbench':>11}{'bare':>9}{'w/bare':>8}"
        f"{'wattbench':>11}{'tool':>9}{'w/tool':>8}"
    )
    for res in results:
        m = res["median_ms"]
        print(
            f"{res['runtime']:<10}{m['wattbench']:>9.3f}ms{m['bare']:>7.3f}ms"
            f"{res['ratio_vs_bare']:>8.3f}{m['wattbench_beside_tool']:>9.3f}ms{m['tool']:>7.3f}ms"
            f"{res['ratio_vs_tool']:>8.3f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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
swapped every pair); each vendor-tool invocation is paired with a wattbench
block just before it. Ratios are taken pair by pair and the report gives their
median, so a machine whose speed drifts (a shared one) still gives meaningful
ratios. Each block reports its median and its 10th percentile (p10: the
queries least disturbed by other processes). Goal: wattbench/bare <= 1.03.

For LiteRT the work ``LiteRtSession.run`` adds to ``invoke()`` (one
``set_tensor`` and one ``get_tensor`` per output) is also timed on its own, in
microseconds: a figure that other processes barely disturb.

Usage::

    python benchmarks/parity.py [--runtime litert openvino] [--threads 2] [--pairs 16]
                                [--block-s 0.75] [--tool-runs 5] [--model PATH] [--json OUT]
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

from wattbench.core.adapter import Adapter, AdapterOptions, Session, TensorSpec
from wattbench.harness.protocol import timed_loop
from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coral-test-data"
DEFAULT_MODEL = DATA / "mobilenet_v2_1.0_224_quant.tflite"
IMAGE = DATA / "cat.bmp"
WARMUP_S = 0.3
MIN_QUERIES = 50

Block = dict[str, float]  # {"median_ms": ..., "p10_ms": ..., "n": ...}


def _tool(name: str) -> str:
    """The console script next to this interpreter, else on PATH."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the runtime that ships it")
    return found


def _block(latencies_ns: list[int]) -> Block:
    q = statistics.quantiles(latencies_ns, n=10)
    return {
        "median_ms": statistics.median(latencies_ns) / 1e6,
        "p10_ms": q[0] / 1e6,
        "n": float(len(latencies_ns)),
    }


def _bare_loop(step: Callable[[], object], seconds: float) -> Block:
    """``step()`` timed per call for ``seconds`` after a warm-up (clock reads as timed_loop)."""
    clock = time.perf_counter_ns
    lat: list[int] = []
    for duration_s in (WARMUP_S, seconds):
        lat = []
        append = lat.append
        start = clock()
        min_ns = int(duration_s * 1e9)
        while True:
            t0 = clock()
            step()
            t1 = clock()
            append(t1 - t0)
            if len(lat) >= MIN_QUERIES and t1 - start >= min_ns:
                break
    return _block(lat)


def _wattbench_loop(session: Session, prepared: list[Any], seconds: float) -> Block:
    timed_loop(session, prepared, WARMUP_S, 10)
    lat, _ = timed_loop(session, prepared, seconds, MIN_QUERIES)
    return _block(lat)


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
        art = MobileNetV2Suite().user_model(self.model).model_copy(update={"precision": "int8"})
        opts = AdapterOptions(device="cpu", threads=self.threads, precision="int8")
        session = self._adapter().load(art, opts)
        (spec,) = session.inputs()
        return session, [session.prepare({spec.name: _pixels(spec)[None]})]

    def wattbench(self, seconds: float) -> Block:
        session, prepared = self._wattbench
        return _wattbench_loop(session, prepared, seconds)

    def wattbench_fixed(self, queries: int) -> None:
        session, prepared = self._wattbench
        timed_loop(session, prepared, 0.0, queries)

    def describe(self) -> dict[str, Any]:
        return self._wattbench[0].describe().model_dump(mode="json")

    def extra_us(self) -> float | None:
        """Median µs of the work run() adds around the runtime call, where separable."""
        return None

    # per runtime
    def bare(self, seconds: float) -> Block:
        raise NotImplementedError

    def bare_fixed(self, queries: int) -> None:
        raise NotImplementedError

    def tool(self, runs: int) -> tuple[float, list[str]]:
        raise NotImplementedError


# -- LiteRT ------------------------------------------------------------------------------


class LiteRtParity(_Parity):
    name = "litert"

    def _adapter(self) -> Adapter:
        from wattbench.adapters.litert import LiteRtAdapter

        return LiteRtAdapter()

    @cached_property
    def _interpreter(self) -> Any:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(self.model), num_threads=self.threads)
        interpreter.allocate_tensors()
        (d,) = interpreter.get_input_details()
        spec = TensorSpec(name=d["name"], shape=[int(v) for v in d["shape"]], dtype="uint8")
        interpreter.set_tensor(d["index"], _pixels(spec)[None])
        return interpreter

    def bare(self, seconds: float) -> Block:
        return _bare_loop(self._interpreter.invoke, seconds)

    def bare_fixed(self, queries: int) -> None:
        invoke = self._interpreter.invoke
        for _ in range(queries):
            invoke()

    def extra_us(self) -> float:
        """set_tensor(input) + get_tensor(each output): what run() does besides invoke()."""
        it = self._interpreter
        ((index, arr),) = self._wattbench[1][0]
        outs = [d["index"] for d in it.get_output_details()]
        clock = time.perf_counter_ns
        lat = []
        for _ in range(5000):
            t0 = clock()
            it.set_tensor(index, arr)
            for o in outs:
                it.get_tensor(o)
            lat.append(clock() - t0)
        return statistics.median(lat) / 1e3

    def tool(self, runs: int) -> tuple[float, list[str]]:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "result.json"
            cmd = [
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
                str(out),
            ]
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

    def bare(self, seconds: float) -> Block:
        return _bare_loop(self._infer, seconds)

    def bare_fixed(self, queries: int) -> None:
        infer = self._infer
        for _ in range(queries):
            infer()

    def tool(self, runs: int) -> tuple[float, list[str]]:
        cmd = [_tool("benchmark_app"), "-m", str(self.model), "-d", "CPU"]
        if self.threads == os.cpu_count():
            cmd += ["-hint", "latency"]
        else:
            # benchmark_app takes -nthreads only with -hint none (its UI rule)
            cmd += ["-hint", "none", "-nstreams", "1", "-nthreads", str(self.threads)]
        cmd += ["-infer_precision", "f32", "-niter", str(runs)]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        text = res.stdout + res.stderr
        m = re.search(r"Latency:\s*\n.*?Median:\s*([\d.]+)\s*ms", text)
        threads = re.search(r"INFERENCE_NUM_THREADS:\s*(\d+)", text)
        if m is None or threads is None or int(threads.group(1)) != self.threads:
            raise SystemExit(f"unexpected benchmark_app output:\n{text[-2000:]}")
        return float(m.group(1)), cmd


RUNTIMES: dict[str, type[_Parity]] = {"litert": LiteRtParity, "openvino": OpenVinoParity}


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def measure(
    name: str, model: Path, threads: int, pairs: int, block_s: float, tool_runs: int
) -> dict[str, Any]:
    """Paired blocks of wattbench and bare (order alternated), then paired tool runs."""
    p = RUNTIMES[name](model, threads)
    load_before = _load()
    pair_rows: list[dict[str, Block]] = []
    for k in range(pairs):
        if k % 2:
            b, w = p.bare(block_s), p.wattbench(block_s)
        else:
            w, b = p.wattbench(block_s), p.bare(block_s)
        pair_rows.append({"wattbench": w, "bare": b})
        print(
            f"{name} pair {k}: wattbench {w['median_ms']:.3f} ms (p10 {w['p10_ms']:.3f}), "
            f"bare {b['median_ms']:.3f} ms (p10 {b['p10_ms']:.3f})",
            file=sys.stderr,
        )
    bare_med = statistics.median(r["bare"]["median_ms"] for r in pair_rows)
    runs = max(MIN_QUERIES, int(block_s * 2000 / bare_med))
    tool_rows: list[dict[str, Any]] = []
    cmd: list[str] = []
    for k in range(tool_runs):
        w = p.wattbench(block_s)
        t, cmd = p.tool(runs)
        tool_rows.append({"wattbench": w, "tool_median_ms": t, "tool_runs": runs})
        print(
            f"{name} tool {k}: wattbench {w['median_ms']:.3f} ms, tool {t:.3f} ms", file=sys.stderr
        )

    def med(values: Any) -> float:
        return float(statistics.median(values))

    return {
        "runtime": name,
        "model": str(model),
        "threads": threads,
        "batch": 1,
        "block_s": block_s,
        "pairs": pair_rows,
        "tool_pairs": tool_rows,
        "median_ms": {
            "wattbench": med(r["wattbench"]["median_ms"] for r in pair_rows),
            "bare": bare_med,
            "wattbench_beside_tool": med(r["wattbench"]["median_ms"] for r in tool_rows),
            "tool": med(r["tool_median_ms"] for r in tool_rows),
        },
        "p10_ms": {
            "wattbench": med(r["wattbench"]["p10_ms"] for r in pair_rows),
            "bare": med(r["bare"]["p10_ms"] for r in pair_rows),
        },
        "ratio_vs_bare": med(
            r["wattbench"]["median_ms"] / r["bare"]["median_ms"] for r in pair_rows
        ),
        "ratio_vs_bare_p10": med(r["wattbench"]["p10_ms"] / r["bare"]["p10_ms"] for r in pair_rows),
        "ratio_vs_tool": med(r["wattbench"]["median_ms"] / r["tool_median_ms"] for r in tool_rows),
        "extra_us": p.extra_us(),
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
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runtime", nargs="+", choices=sorted(RUNTIMES), default=sorted(RUNTIMES))
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=16, help="wattbench/bare block pairs")
    ap.add_argument("--block-s", type=float, default=0.75, help="seconds per block")
    ap.add_argument("--tool-runs", type=int, default=5, help="vendor tool invocations")
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
    print(f"model {args.model.name}, {args.threads} threads, batch 1, load now {_load()}")
    head = ("runtime", "wattbench", "bare", "w/bare", "p10 w/b", "wattbench", "tool", "w/tool")
    print("".join(f"{h:>11}" for h in (*head, "extra")))
    for res in results:
        m = res["median_ms"]
        cells = [
            res["runtime"],
            f"{m['wattbench']:.3f}ms",
            f"{m['bare']:.3f}ms",
            f"{res['ratio_vs_bare']:.3f}",
            f"{res['ratio_vs_bare_p10']:.3f}",
            f"{m['wattbench_beside_tool']:.3f}ms",
            f"{m['tool']:.3f}ms",
            f"{res['ratio_vs_tool']:.3f}",
            "-" if res["extra_us"] is None else f"{res['extra_us']:.1f}us",
        ]
        print("".join(f"{c:>11}" for c in cells))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

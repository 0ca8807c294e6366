"""Latency parity: wattbench's timed path against bare runtime loops and vendor tools.

For one model, one thread count and batch 1, up to three paths are measured per runtime:

* ``wattbench``: the adapter's Session driven through
  ``wattbench.harness.protocol.timed_loop`` exactly as a run's measured window
  drives it (prepare outside, ``session.run`` inside the clock reads);
* ``bare``: the call the vendor tool times, in a plain loop in this process, timed
  per call the same way, same threads and precision:
  LiteRT ``CompiledModel.run_by_name`` on input buffers written once (litert-benchmark's
  loop); OpenVINO ``infer_request.infer()`` with the input tensor set once
  (benchmark_app's ``-hint latency`` sync loop); ONNX Runtime
  ``InferenceSession.run(None, {name: x})`` (it ships no Python benchmark tool);
* ``tool``: the vendor benchmark in a subprocess (``litert-benchmark`` /
  ``benchmark_app``), whose own median is parsed.

wattbench and bare run in alternating blocks (``--pairs`` × ``--block-s``, order
swapped every pair); each vendor-tool invocation is paired with a wattbench
block next to it (before it, then after it, alternately). Ratios are taken pair by
pair and the report gives their median, so a machine whose speed drifts (a shared
one) still gives meaningful ratios. Each block reports its median and its 10th
percentile (p10: the queries least disturbed by other processes). Goal:
wattbench/tool <= 1.00 and wattbench/bare <= 1.00.

Two measures a shared machine barely disturbs: CPU time per query at 1 thread
(``--cpu-pairs``, ``time.process_time_ns``, alternating blocks as above), and the
per-call cost of each path on a model that does almost nothing (``y = x + 1`` on 16
floats; ``--overhead-calls``), which isolates what a path adds around the runtime.

Peak memory: each path also runs 200 inferences in a process of its own (``--rss-reps``
times) and the parent reads that child's ``ru_maxrss`` (``os.wait4``): the wattbench child
imports wattbench (adapter, harness, suite preprocessing) as a run does; the bare
child imports numpy and the runtime only, and reads the input pixels from a .npy the
parent wrote; the tool is the vendor CLI as above.

Usage::

    python benchmarks/parity.py [--runtime litert openvino onnxruntime] [--threads 2]
                                [--pairs 16] [--block-s 0.75] [--tool-runs 5]
                                [--cpu-pairs 0] [--overhead-calls 20000] [--rss-reps 3]
                                [--model PATH] [--onnx-model PATH] [--adapter-opt K=V]
                                [--json OUT]
    python benchmarks/parity.py --runtime litert --only wattbench --queries 500
    python benchmarks/parity.py --runtime litert --profile 2000

The second form loads and runs a fixed number of inferences on one path (for timing
or measuring whole processes from outside); the third profiles ``timed_loop`` on the
wattbench path with cProfile.
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

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coral-test-data"
DEFAULT_MODEL = DATA / "mobilenet_v2_1.0_224_quant.tflite"
IMAGE = DATA / "cat.bmp"
WARMUP_S = 0.3
MIN_QUERIES = 50
RSS_QUERIES = 200

Block = dict[str, float]  # {"median_ms": ..., "p10_ms": ..., "n": ...}

#: --adapter-opt KEY=VALUE for the wattbench path (e.g. api=interpreter, io_binding=off)
ADAPTER_EXTRA: dict[str, str] = {}


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


def _bare_loop(
    step: Callable[[], object], seconds: float, clock: Callable[[], int] = time.perf_counter_ns
) -> Block:
    """``step()`` timed per call for ``seconds`` after a warm-up (clock reads as timed_loop)."""
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


def _pixels(spec: Any) -> np.ndarray:
    """The test image through the suite's own preprocessing for ``spec``, as one batch."""
    from PIL import Image

    from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

    with Image.open(IMAGE) as im:
        return np.array(MobileNetV2Suite().preprocess(im.convert("RGB"), spec)[None], order="C")


class _Parity:
    """The paths for one runtime; each is set up on first use only."""

    name: str
    precision: str = "int8"
    has_tool = True

    def __init__(
        self,
        model: Path,
        threads: int,
        pixels: Path | None = None,
        feed: np.ndarray | None = None,
        precision: str | None = None,
    ) -> None:
        self.model, self.threads, self.pixels_file = model, threads, pixels
        self.feed = feed  # the input of both paths instead of the test image
        if precision is not None:
            self.precision = precision

    def _adapter(self) -> Any:
        raise NotImplementedError

    def _input(self) -> tuple[str, list[int], str]:
        """(input name, shape with batch 1, dtype) as the bare runtime reports it."""
        raise NotImplementedError

    @cached_property
    def pixels(self) -> np.ndarray:
        """The bare loops' input: from --pixels (no wattbench import) or the suite."""
        if self.feed is not None:
            return self.feed
        if self.pixels_file is not None:
            return np.load(self.pixels_file)
        from wattbench.core.adapter import TensorSpec

        name, shape, dtype = self._input()
        return _pixels(TensorSpec(name=name, shape=list(shape), dtype=dtype))

    @cached_property
    def _wattbench(self) -> tuple[Any, list[Any]]:
        from wattbench.core.adapter import AdapterOptions
        from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

        suite = MobileNetV2Suite()
        art = suite.user_model(self.model).model_copy(update={"precision": self.precision})
        opts = AdapterOptions(
            device="cpu", threads=self.threads, precision=self.precision, extra=ADAPTER_EXTRA
        )
        session = self._adapter().load(art, opts)
        (spec,) = session.inputs()
        x = self.feed if self.feed is not None else _pixels(spec)
        return session, [session.prepare({spec.name: x})]

    def wattbench(self, seconds: float, clock: Callable[[], int] = time.perf_counter_ns) -> Block:
        from wattbench.harness.protocol import timed_loop

        session, prepared = self._wattbench
        timed_loop(session, prepared, WARMUP_S, 10, clock)
        lat, _ = timed_loop(session, prepared, seconds, MIN_QUERIES, clock)
        return _block(lat)

    def wattbench_fixed(self, queries: int) -> None:
        from wattbench.harness.protocol import timed_loop

        session, prepared = self._wattbench
        timed_loop(session, prepared, 0.0, queries)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = self._wattbench[0].describe().model_dump(mode="json")
        return d

    def same_outputs(self) -> bool:
        """Whether wattbench's run() and the bare call give the same outputs here."""
        session, prepared = self._wattbench
        ours = [np.asarray(o) for o in session.run(prepared[0])]
        theirs = self.bare_outputs()
        return len(ours) == len(theirs) and all(
            a.shape == b.shape and np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True)
        )

    # per runtime
    def bare_step(self) -> Callable[[], object]:
        raise NotImplementedError

    def bare_outputs(self) -> list[np.ndarray]:
        raise NotImplementedError

    def bare(self, seconds: float, clock: Callable[[], int] = time.perf_counter_ns) -> Block:
        return _bare_loop(self.bare_step(), seconds, clock)

    def bare_fixed(self, queries: int) -> None:
        step = self.bare_step()
        for _ in range(queries):
            step()

    def tool_command(self, runs: int, result: Path) -> list[str]:
        raise NotImplementedError

    def tool_median(self, output: str, result: Path) -> float:
        raise NotImplementedError

    def tool(self, runs: int) -> tuple[float, list[str]]:
        with tempfile.TemporaryDirectory() as d:
            result = Path(d) / "result.json"
            cmd = self.tool_command(runs, result)
            res = subprocess.run(cmd, check=True, capture_output=True, text=True)
            return self.tool_median(res.stdout + res.stderr, result), cmd


# -- LiteRT ------------------------------------------------------------------------------


class LiteRtParity(_Parity):
    name = "litert"

    def _adapter(self) -> Any:
        from wattbench.adapters.litert import LiteRtAdapter

        return LiteRtAdapter()

    @cached_property
    def _compiled(self) -> tuple[Any, str, dict[str, Any], dict[str, Any]]:
        """litert-benchmark's set-up: CompiledModel on the CPU, buffers by name."""
        from ai_edge_litert.compiled_model import CompiledModel, CpuOptions, Options

        model = CompiledModel.from_file(
            str(self.model), options=Options(cpu_options=CpuOptions(num_threads=self.threads))
        )
        key = next(iter(model.get_signature_list()))
        ins = {
            n: model.create_input_buffer_by_name(key, n)
            for n in model.get_input_tensor_details(key)
        }
        outs = {
            n: model.create_output_buffer_by_name(key, n)
            for n in model.get_output_tensor_details(key)
        }
        return model, key, ins, outs

    def _input(self) -> tuple[str, list[int], str]:
        model, key, _, _ = self._compiled
        ((name, d),) = model.get_input_tensor_details(key).items()
        return name, [int(v) for v in d["shape"]], str(d["dtype"])

    def bare_step(self) -> Callable[[], object]:
        model, key, ins, outs = self._compiled
        (buf,) = ins.values()
        buf.write(self.pixels)
        return lambda: model.run_by_name(key, ins, outs)

    def bare_outputs(self) -> list[np.ndarray]:
        model, key, _, outs = self._compiled
        self.bare_step()()
        details = model.get_output_tensor_details(key)
        return [
            b.read(int(np.prod(details[n]["shape"])), details[n]["dtype"]).reshape(
                details[n]["shape"]
            )
            for n, b in outs.items()
        ]

    def tool_command(self, runs: int, result: Path) -> list[str]:
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
            str(result),
        ]

    def tool_median(self, output: str, result: Path) -> float:
        return float(json.loads(result.read_text())["latency"]["median_ms"])


# -- OpenVINO ----------------------------------------------------------------------------


class OpenVinoParity(_Parity):
    name = "openvino"

    def _adapter(self) -> Any:
        from wattbench.adapters.openvino import OpenVinoAdapter

        return OpenVinoAdapter()

    @cached_property
    def _request(self) -> tuple[Any, Any]:
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
        return compiled, compiled.create_infer_request()

    def _input(self) -> tuple[str, list[int], str]:
        compiled, _ = self._request
        port = compiled.inputs[0]
        dtype = np.dtype(port.get_element_type().to_dtype()).name
        return port.get_any_name(), list(port.get_shape()), dtype

    def bare_step(self) -> Callable[[], object]:
        import openvino as ov

        _, request = self._request
        request.set_input_tensor(0, ov.Tensor(self.pixels, shared_memory=True))
        return request.infer  # benchmark_app -hint latency: sync infer(), inputs set once

    def bare_outputs(self) -> list[np.ndarray]:
        result: Any = self.bare_step()()
        return [np.array(v) for v in result.values()]

    def tool_command(self, runs: int, result: Path) -> list[str]:
        cmd = [_tool("benchmark_app"), "-m", str(self.model), "-d", "CPU"]
        if self.threads == os.cpu_count():
            cmd += ["-hint", "latency"]
        else:
            # benchmark_app takes -nthreads only with -hint none (its UI rule)
            cmd += ["-hint", "none", "-nstreams", "1", "-nthreads", str(self.threads)]
        return [*cmd, "-infer_precision", "f32", "-niter", str(runs)]

    def tool_median(self, output: str, result: Path) -> float:
        m = re.search(r"Latency:\s*\n.*?Median:\s*([\d.]+)\s*ms", output)
        threads = re.search(r"INFERENCE_NUM_THREADS:\s*(\d+)", output)
        if m is None or threads is None or int(threads.group(1)) != self.threads:
            raise SystemExit(f"unexpected benchmark_app output:\n{output[-2000:]}")
        return float(m.group(1))


# -- ONNX Runtime ------------------------------------------------------------------------


class OnnxRuntimeParity(_Parity):
    """The suite's MobileNetV2 ONNX (fp32); ONNX Runtime ships no Python benchmark tool."""

    name = "onnxruntime"
    precision = "fp32"
    has_tool = False

    def _adapter(self) -> Any:
        from wattbench.adapters.onnxruntime import OnnxRuntimeAdapter

        return OnnxRuntimeAdapter()

    @cached_property
    def _session(self) -> Any:
        import onnxruntime as ort

        so = ort.SessionOptions()  # as the adapter sets them for --threads N
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        return ort.InferenceSession(
            str(self.model), sess_options=so, providers=["CPUExecutionProvider"]
        )

    def _input(self) -> tuple[str, list[int], str]:
        (i,) = self._session.get_inputs()
        shape = [1 if not isinstance(d, int) else d for d in i.shape]
        return i.name, shape, "float32"

    def bare_step(self) -> Callable[[], object]:
        name, _, _ = self._input()
        feed, run = {name: self.pixels}, self._session.run
        return lambda: run(None, feed)

    def bare_outputs(self) -> list[np.ndarray]:
        outputs: list[np.ndarray] = self.bare_step()()  # type: ignore[assignment]
        return outputs

    def tool_command(self, runs: int, result: Path) -> list[str]:
        raise NotImplementedError("ONNX Runtime ships no Python benchmark tool")


RUNTIMES: dict[str, type[_Parity]] = {
    "litert": LiteRtParity,
    "openvino": OpenVinoParity,
    "onnxruntime": OnnxRuntimeParity,
}


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


#: Forks and execs argv[1:] with stdout on /dev/null, then prints the child's ru_maxrss
#: (KiB) and exit code. A child forked by this (large) process would report at least
#: this process's resident set: Linux carries the high-water mark of the memory a
#: process had at exec into its ru_maxrss. Forked from this small launcher instead,
#: it starts from the launcher's few MiB.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def _maxrss_kib(cmd: list[str]) -> int:
    """Run ``cmd`` to the end; its peak resident set (KiB, Linux ``ru_maxrss``)."""
    res = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, *cmd], capture_output=True, text=True
    )
    try:
        maxrss, code = (int(v) for v in res.stdout.split()[-2:])
    except ValueError:
        maxrss, code = 0, res.returncode or 1
    if code:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return maxrss


def peak_rss(p: _Parity, model: Path, queries: int, reps: int, tool_runs: int) -> dict[str, Any]:
    """Median peak RSS (MiB) of each path in a process of its own, started in turn."""
    with tempfile.TemporaryDirectory() as d:
        npy = Path(d) / "pixels.npy"
        np.save(npy, p.pixels)
        base = [sys.executable, str(Path(__file__).resolve()), "--runtime", p.name]
        base += ["--threads", str(p.threads), "--queries", str(queries)]
        base += ["--onnx-model" if p.name == "onnxruntime" else "--model", str(model)]
        for k, v in ADAPTER_EXTRA.items():
            base += ["--adapter-opt", f"{k}={v}"]
        cmds = {
            "wattbench": [*base, "--only", "wattbench"],
            "bare": [*base, "--only", "bare", "--pixels", str(npy)],
        }
        if p.has_tool:
            cmds["tool"] = p.tool_command(tool_runs, Path(d) / "result.json")
        got: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(reps):
            for k, cmd in cmds.items():
                got[k].append(_maxrss_kib(cmd) / 1024)
    med = {k: float(statistics.median(v)) for k, v in got.items()}
    return {
        "peak_rss_mib": med,
        "runs": got,
        "queries": queries,
        "wattbench_minus_bare_mib": med["wattbench"] - med["bare"],
    }


#: ``y = x + 1`` on float32[1, 16] as a .tflite (tf.lite.TFLiteConverter, TensorFlow 2.x):
#: a model that does almost nothing, so a call's time is the path's own cost.
TINY_TFLITE_B64 = (
    "HAAAAFRGTDMUACAAHAAYABQAEAAMAAAACAAEABQAAAAcAAAAHAAAAHQAAAA8AQAATAEAAJQCAAADAAAAAAAAAAIA"
    "AAA0AAAABAAAANz///8FAAAABAAAABMAAABDT05WRVJTSU9OX01FVEFEQVRBAAgADAAIAAQACAAAAAQAAAAEAAAA"
    "EwAAAG1pbl9ydW50aW1lX3ZlcnNpb24ABgAAAMQAAAC8AAAAqAAAAJgAAAB0AAAABAAAAG7///8EAAAAYAAAABAA"
    "AAAAAAAACAAOAAgABAAIAAAAEAAAACQAAAAAAAYACAAEAAYAAAAEAAAAAAAAAAwAGAAUABAADAAEAAwAAADGMK2Y"
    "xaL+XQMAAAACAAAABAAAAAYAAAAyLjIxLjAAANr///8EAAAAEAAAADEuNS4wAAAAAAAAAAAAAAAEAAYABAAAAAAA"
    "BgAIAAQABgAAAAQAAAAEAAAAAACAP5D+//+U/v//DwAAAE1MSVIgQ29udmVydGVkLgABAAAAFAAAAAAADgAYABQA"
    "EAAMAAgABAAOAAAAFAAAABwAAABcAAAAYAAAAGQAAAAEAAAAbWFpbgAAAAABAAAAFAAAAAAADgAUAAAAEAAMAAsA"
    "BAAOAAAAEAAAAAAAAAsMAAAAEAAAABT///8BAAAAAgAAAAIAAAAAAAAAAQAAAAEAAAACAAAAAQAAAAAAAAADAAAA"
    "iAAAAEAAAAAEAAAAmv///wAAAAEQAAAAEAAAAAMAAAAYAAAAZP///wgAAABJZGVudGl0eQAAAAACAAAAAQAAABAA"
    "AADS////AAAAARAAAAAQAAAAAgAAABQAAACc////BQAAAGFkZC95AAAAAAAAAAAAFgAYABQAAAAQAAwACAAAAAAA"
    "AAAHABYAAAAAAAABEAAAABAAAAABAAAAEAAAAOD///8BAAAAeAAAAAIAAAABAAAAEAAAAAEAAAAIAAAABAAEAAQA"
    "AAA="
)


def _tiny_model(name: str, folder: Path) -> Path:
    """``y = x + 1`` on float32[1, 16] in the runtime's format."""
    if name == "litert":
        import base64

        path = folder / "tiny.tflite"
        path.write_bytes(base64.b64decode(TINY_TFLITE_B64))
    elif name == "openvino":
        import openvino as ov
        from openvino import opset13 as ops

        x = ops.parameter([1, 16], np.float32, name="x")
        model = ov.Model([ops.add(x, np.ones((1, 16), np.float32))], [x])
        path = folder / "tiny.xml"
        ov.save_model(model, str(path), compress_to_fp16=False)
    else:
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        graph = helper.make_graph(
            [helper.make_node("Add", ["x", "one"], ["y"])],
            "tiny",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
            [numpy_helper.from_array(np.ones((1, 16), np.float32), "one")],
        )
        path = folder / "tiny.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def overhead(name: str, threads: int, calls: int = 20000, reps: int = 6) -> dict[str, Any]:
    """Per-call cost (µs) of each path on a model that does almost nothing.

    The same wattbench and bare paths as the latency comparison, on ``y = x + 1``:
    what is left is each path's own cost per query (Python wrapper, bindings, output
    copy). Medians of ``calls`` calls, ``reps`` alternating blocks per path; such short
    calls are rarely preempted, so this holds on a busy machine too. For OpenVINO the
    request's own ``latency`` (what benchmark_app reports) is given as well.
    """
    from wattbench.harness.protocol import timed_loop

    feed = np.arange(16, dtype=np.float32)[None]
    with tempfile.TemporaryDirectory() as d:
        p = RUNTIMES[name](_tiny_model(name, Path(d)), threads, feed=feed, precision="fp32")
        session, prepared = p._wattbench
        same = p.same_outputs()
        step = p.bare_step()
        clock = time.perf_counter_ns
        got: dict[str, list[float]] = {"wattbench": [], "bare": []}
        for k in range(reps):
            for path in ("wattbench", "bare") if k % 2 == 0 else ("bare", "wattbench"):
                if path == "wattbench":
                    lat, _ = timed_loop(session, prepared, 0.0, calls)
                else:
                    lat = []
                    for _ in range(calls):
                        t0 = clock()
                        step()
                        lat.append(clock() - t0)
                got[path].append(statistics.median(lat) / 1e3)
        result: dict[str, Any] = {k: float(statistics.median(v)) for k, v in got.items()}
        result |= {"runs_us": got, "same_outputs_as_bare": same, "calls": calls}
        if name == "openvino":
            request = p._request[1]
            inner = []
            for _ in range(calls):
                step()
                inner.append(request.latency * 1e3)  # ms -> µs
            result["runtime_internal"] = float(statistics.median(inner))
        session.close()
    return result


def cpu_time(name: str, model: Path, pairs: int, block_s: float) -> dict[str, Any]:
    """wattbench vs bare on CPU time per query (``time.process_time_ns``), 1 thread.

    CPU time does not run while the process waits for a core, so on a shared machine it
    shows the work each path does far more steadily than wall-clock latency; with one
    runtime thread there is no spin-waiting between threads in it either. Blocks of
    ``block_s`` CPU seconds, alternated and paired as for latency.
    """
    p = RUNTIMES[name](model, 1)
    clock = time.process_time_ns
    rows: list[dict[str, Block]] = []
    for k in range(pairs):
        if k % 2:
            b, w = p.bare(block_s, clock), p.wattbench(block_s, clock)
        else:
            w, b = p.wattbench(block_s, clock), p.bare(block_s, clock)
        rows.append({"wattbench": w, "bare": b})
        print(
            f"{name} cpu pair {k}: wattbench {w['median_ms']:.3f} ms, bare {b['median_ms']:.3f} ms",
            file=sys.stderr,
        )
    ratios = [r["wattbench"]["median_ms"] / r["bare"]["median_ms"] for r in rows]
    return {
        "threads": 1,
        "pairs": rows,
        "median_ms": {
            k: float(statistics.median(r[k]["median_ms"] for r in rows))
            for k in ("wattbench", "bare")
        },
        "ratio_vs_bare": float(statistics.median(ratios)),
        "ratio_vs_bare_range": [min(ratios), max(ratios)],
    }


def measure(
    name: str,
    model: Path,
    threads: int,
    pairs: int,
    block_s: float,
    tool_runs: int,
    rss_reps: int,
    cpu_pairs: int = 0,
    cpu_block_s: float = 0.25,
    overhead_calls: int = 0,
) -> dict[str, Any]:
    """Paired blocks of wattbench and bare (order alternated), paired tool runs, then
    CPU time per query (1 thread) and peak RSS."""
    p = RUNTIMES[name](model, threads)
    load_before = _load()
    same = p.same_outputs()
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
    for k in range(tool_runs if p.has_tool else 0):
        if k % 2:
            (t, cmd), w = p.tool(runs), p.wattbench(block_s)
        else:
            w, (t, cmd) = p.wattbench(block_s), p.tool(runs)
        tool_rows.append({"wattbench": w, "tool_median_ms": t, "tool_runs": runs})
        print(
            f"{name} tool {k}: wattbench {w['median_ms']:.3f} ms, tool {t:.3f} ms", file=sys.stderr
        )
    load_after = _load()
    cpu = cpu_time(name, model, cpu_pairs, cpu_block_s) if cpu_pairs else None
    over = overhead(name, threads, overhead_calls) if overhead_calls else None
    rss = peak_rss(p, model, RSS_QUERIES, rss_reps, runs) if rss_reps else None

    def med(values: Any) -> float:
        return float(statistics.median(values))

    ratios = [r["wattbench"]["median_ms"] / r["bare"]["median_ms"] for r in pair_rows]
    tool_ratios = [r["wattbench"]["median_ms"] / r["tool_median_ms"] for r in tool_rows]
    return {
        "runtime": name,
        "model": str(model),
        "threads": threads,
        "batch": 1,
        "block_s": block_s,
        "same_outputs_as_bare": same,
        "pairs": pair_rows,
        "tool_pairs": tool_rows,
        "median_ms": {
            "wattbench": med(r["wattbench"]["median_ms"] for r in pair_rows),
            "bare": bare_med,
            "wattbench_beside_tool": med(r["wattbench"]["median_ms"] for r in tool_rows)
            if tool_rows
            else None,
            "tool": med(r["tool_median_ms"] for r in tool_rows) if tool_rows else None,
        },
        "p10_ms": {
            "wattbench": med(r["wattbench"]["p10_ms"] for r in pair_rows),
            "bare": med(r["bare"]["p10_ms"] for r in pair_rows),
        },
        "ratio_vs_bare": med(ratios),
        "ratio_vs_bare_range": [min(ratios), max(ratios)],
        "ratio_vs_bare_p10": med(r["wattbench"]["p10_ms"] / r["bare"]["p10_ms"] for r in pair_rows),
        "ratio_vs_tool": med(tool_ratios) if tool_ratios else None,
        "ratio_vs_tool_range": [min(tool_ratios), max(tool_ratios)] if tool_ratios else None,
        "tool_command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)),
        "cpu_time": cpu,
        "overhead_us": over,
        "rss": rss,
        "adapter": p.describe(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }


def profile(name: str, model: Path, threads: int, queries: int) -> None:
    """cProfile of timed_loop on the wattbench path: where the Python time goes."""
    import cProfile
    import pstats

    from wattbench.harness.protocol import timed_loop

    p = RUNTIMES[name](model, threads)
    session, prepared = p._wattbench
    timed_loop(session, prepared, WARMUP_S, 10)
    prof = cProfile.Profile()
    prof.enable()
    lat, loop_ns = timed_loop(session, prepared, 0.0, queries)
    prof.disable()
    print(
        f"{name}: {queries} queries, median {statistics.median(lat) / 1e6:.3f} ms, "
        f"loop {loop_ns / 1e9:.2f} s (under cProfile)"
    )
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(12)


def fixed_count(
    name: str, model: Path, threads: int, path: str, queries: int, pixels: Path | None
) -> None:
    """Load, then run exactly ``queries`` inferences on one path (for whole-process timing)."""
    p = RUNTIMES[name](model, threads, pixels)
    if path == "wattbench":
        p.wattbench_fixed(queries)
    else:
        p.bare_fixed(queries)


def _default_onnx() -> Path:
    """The suite's MobileNetV2 ONNX (seed 0), built into the model cache if not there."""
    from wattbench.core.cache import ModelCache
    from wattbench.core.suite import SuiteOptions
    from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

    return Path(MobileNetV2Suite(SuiteOptions(seed=0)).build_model("onnx", ModelCache()).path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runtime", nargs="+", choices=list(RUNTIMES), default=list(RUNTIMES))
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="litert/openvino model")
    ap.add_argument(
        "--onnx-model", type=Path, help="onnxruntime model (default: the suite's, seed 0)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=16, help="wattbench/bare block pairs")
    ap.add_argument("--block-s", type=float, default=0.75, help="seconds per block")
    ap.add_argument("--tool-runs", type=int, default=5, help="vendor tool invocations")
    ap.add_argument(
        "--rss-reps", type=int, default=3, help="peak-RSS child processes per path (0: none)"
    )
    ap.add_argument(
        "--cpu-pairs", type=int, default=0, help="CPU-time block pairs at 1 thread (0: none)"
    )
    ap.add_argument("--cpu-block-s", type=float, default=0.25, help="CPU seconds per block")
    ap.add_argument(
        "--overhead-calls",
        type=int,
        default=20000,
        help="calls per block on the do-nothing model (0: skip that measurement)",
    )
    ap.add_argument("--json", type=Path, help="write the full results here")
    ap.add_argument(
        "--only",
        choices=["wattbench", "bare"],
        help="run --queries inferences on one path and exit (whole-process timing)",
    )
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--pixels", type=Path, help="--only bare: the input as .npy")
    ap.add_argument(
        "--adapter-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="adapter option for the wattbench path, e.g. api=interpreter (litert)",
    )
    ap.add_argument("--profile", type=int, metavar="N", help="cProfile N wattbench queries")
    args = ap.parse_args(argv)
    ADAPTER_EXTRA.update(kv.split("=", 1) for kv in args.adapter_opt)

    def model_for(runtime: str) -> Path:
        if runtime != "onnxruntime":
            path = args.model
        else:
            path = args.onnx_model = args.onnx_model or _default_onnx()
        if not path.is_file():
            raise SystemExit(f"model not found: {path} (pass --model / --onnx-model)")
        return Path(path)

    if args.only:
        for r in args.runtime:
            fixed_count(r, model_for(r), args.threads, args.only, args.queries, args.pixels)
        return 0
    if args.profile:
        for r in args.runtime:
            profile(r, model_for(r), args.threads, args.profile)
        return 0
    start = _load()
    results = [
        measure(
            r,
            model_for(r),
            args.threads,
            args.pairs,
            args.block_s,
            args.tool_runs,
            args.rss_reps,
            args.cpu_pairs,
            args.cpu_block_s,
            args.overhead_calls,
        )
        for r in args.runtime
    ]
    print(f"{args.threads} threads, batch 1, load average {start} at the start, {_load()} now")
    head = ("runtime", "wattbench", "bare", "w/bare", "p10 w/b", "wattbench", "tool", "w/tool")
    print("".join(f"{h:>11}" for h in (*head, "cpu w/b", "RSS w/b/t")))
    for res in results:
        m = res["median_ms"]
        rss = res["rss"]["peak_rss_mib"] if res["rss"] else {}
        cells = [
            res["runtime"],
            f"{m['wattbench']:.3f}ms",
            f"{m['bare']:.3f}ms",
            f"{res['ratio_vs_bare']:.3f}",
            f"{res['ratio_vs_bare_p10']:.3f}",
            "-" if m["tool"] is None else f"{m['wattbench_beside_tool']:.3f}ms",
            "-" if m["tool"] is None else f"{m['tool']:.3f}ms",
            "-" if res["ratio_vs_tool"] is None else f"{res['ratio_vs_tool']:.3f}",
            "-" if res["cpu_time"] is None else f"{res['cpu_time']['ratio_vs_bare']:.3f}",
            "/".join(f"{rss[k]:.0f}" for k in ("wattbench", "bare", "tool") if k in rss) + "MiB",
        ]
        print("".join(f"{c:>11}" for c in cells) + ("" if res["same_outputs_as_bare"] else " !"))
    for res in results:
        o = res["overhead_us"]
        if o is not None:
            inner = (
                f", runtime's own {o['runtime_internal']:.2f}" if "runtime_internal" in o else ""
            )
            print(
                f"{res['runtime']}: per-call cost on a do-nothing model: wattbench "
                f"{o['wattbench']:.2f} us, bare {o['bare']:.2f} us{inner}"
            )
    if not all(r["same_outputs_as_bare"] for r in results):
        print("! wattbench's outputs differ from the bare call's", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

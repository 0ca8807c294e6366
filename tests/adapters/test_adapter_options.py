"""``--adapter-opt KEY=VALUE``: each adapter applies the keys it knows, on the real runtime,
records them in describe(), and refuses anything else with one line listing its keys."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wattbench.adapters.options import boolean, check_keys, choice, positive_int
from wattbench.core.adapter import AdapterOptions, ModelArtifact, Session
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ConfigError
from wattbench.core.suite import SuiteOptions
from wattbench.suites.mobilenet_v2 import MobileNetV2Suite


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# -- the helpers ---------------------------------------------------------------------------


def test_unknown_keys_are_listed_with_the_known_ones() -> None:
    check_keys("x", {"a": "1"}, {"a": "N"})  # known: fine
    with pytest.raises(ConfigError) as ei:
        check_keys("x", {"b": "1", "a": "2", "c": "3"}, {"a": "N >= 1", "d": "on|off"})
    msg = _one_line(ei)
    assert "unknown --adapter-opt b, c for x" in msg
    assert "a (N >= 1); d (on|off)" in msg
    with pytest.raises(ConfigError, match=r"for y \(known: none\)"):
        check_keys("y", {"z": ""}, {})


def test_value_parsers() -> None:
    assert choice("x", "k", "throughput", ["LATENCY", "THROUGHPUT"]) == "THROUGHPUT"
    with pytest.raises(ConfigError, match="use one of LATENCY, THROUGHPUT"):
        choice("x", "k", "fast", ["LATENCY", "THROUGHPUT"])
    assert positive_int("x", "k", "3") == 3
    for bad in ("0", "-1", "two", ""):
        with pytest.raises(ConfigError, match="integer >= 1"):
            positive_int("x", "k", bad)
    assert boolean("x", "k", "ON") is True and boolean("x", "k", "0") is False
    with pytest.raises(ConfigError, match="use on or off"):
        boolean("x", "k", "maybe")


# -- real runtimes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    pytest.importorskip("onnx")
    cache = ModelCache(tmp_path_factory.mktemp("cache"))
    return MobileNetV2Suite(SuiteOptions(seed=0)).build_model("onnx", cache)


def _feed(session: Session, seed: int = 0) -> Any:
    spec = session.inputs()[0]
    x = np.random.default_rng(seed).standard_normal((1, 3, 224, 224)).astype(np.float32)
    return session.prepare({spec.name: x})


def _ort(onnx_model: ModelArtifact, **extra: str) -> Session:
    pytest.importorskip("onnxruntime")
    from wattbench.adapters.onnxruntime import OnnxRuntimeAdapter

    return OnnxRuntimeAdapter().load(onnx_model, AdapterOptions(threads=1, extra=extra))


def test_onnxruntime_graph_optimisation_level_and_execution_mode(
    onnx_model: ModelArtifact,
) -> None:
    s = _ort(
        onnx_model,
        graph_optimization_level="disable",
        execution_mode="parallel",
        inter_op_threads="2",
    )
    opts = s.describe().options
    assert opts["graph_optimization_level"] == "ORT_DISABLE_ALL"
    assert opts["execution_mode"] == "ORT_PARALLEL"
    assert opts["inter_op_num_threads"] == 2
    assert opts["adapter_options"]["graph_optimization_level"] == "disable"
    default = _ort(onnx_model).describe().options
    assert default["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert default["io_binding"].startswith("on (")  # on by default, the CPU provider too
    # an unoptimised graph computes the same function
    out = s.run(_feed(s))[0]
    ref = _ort(onnx_model)
    np.testing.assert_allclose(out, ref.run(_feed(ref))[0], rtol=1e-4, atol=1e-4)


def test_onnxruntime_io_binding_gives_the_same_outputs(onnx_model: ModelArtifact) -> None:
    bound, plain = _ort(onnx_model, io_binding="on"), _ort(onnx_model, io_binding="off")
    assert bound.describe().options["io_binding"].startswith("on (inputs on cpu:0")
    assert plain.describe().options["io_binding"].startswith("off")
    prepared = _feed(bound)
    assert not isinstance(prepared, dict)  # device tensors, made outside the timed region
    a, b = bound.run(prepared), plain.run(_feed(plain))
    assert [o.shape for o in a] == [o.shape for o in b] == [(1, 1000)]
    np.testing.assert_array_equal(a[0], b[0])
    assert bound.run(prepared)[0] is not a[0]  # fresh arrays each call


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"graph_optimisation_level": "all"}, "unknown --adapter-opt graph_optimisation_level"),
        ({"graph_optimization_level": "max"}, "use one of disable, basic, extended, layout, all"),
        ({"inter_op_threads": "2"}, "needs execution_mode=parallel"),
        ({"io_binding": "sometimes"}, "use on or off"),
    ],
)
def test_onnxruntime_bad_options_are_one_line(
    onnx_model: ModelArtifact, extra: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConfigError) as ei:
        _ort(onnx_model, **extra)
    assert fragment in _one_line(ei)


def _ov(onnx_model: ModelArtifact, **extra: str) -> Session:
    pytest.importorskip("openvino")
    from wattbench.adapters.openvino import OpenVinoAdapter

    return OpenVinoAdapter().load(onnx_model, AdapterOptions(threads=2, extra=extra))


def test_openvino_throughput_hint_streams_and_default_requests(onnx_model: ModelArtifact) -> None:
    s = _ov(onnx_model, performance_hint="throughput", num_streams="2")
    opts = s.describe().options
    assert opts["PERFORMANCE_HINT"] == "THROUGHPUT"
    assert opts["NUM_STREAMS"] == 2
    # under THROUGHPUT the pool holds what the compiled model says it wants
    assert opts["infer_requests"] == opts["OPTIMAL_NUMBER_OF_INFER_REQUESTS"] >= 1
    assert opts["infer_requests_source"] == "OPTIMAL_NUMBER_OF_INFER_REQUESTS"
    latency = _ov(onnx_model).describe().options
    assert latency["PERFORMANCE_HINT"] == "LATENCY"
    assert (latency["infer_requests"], latency["infer_requests_created"]) == (1, 1)


def test_openvino_concurrent_callers_each_get_an_infer_request(onnx_model: ModelArtifact) -> None:
    s = _ov(onnx_model, infer_requests="1")
    feeds = [_feed(s, seed) for seed in range(4)]
    expected = [s.run(f)[0] for f in feeds]
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(4)

    def worker(k: int) -> None:
        barrier.wait()
        for _ in range(5):
            results[k] = s.run(feeds[k])[0]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):  # no request was shared between two callers at once
        np.testing.assert_allclose(results[k], expected[k], rtol=1e-5, atol=1e-5)
    opts = s.describe().options
    assert opts["infer_requests"] == 1
    assert 2 <= opts["infer_requests_created"] <= 4  # grew instead of making threads wait


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"hint": "LATENCY"}, "known: performance_hint"),
        ({"performance_hint": "fast"}, "use one of LATENCY, THROUGHPUT, CUMULATIVE_THROUGHPUT"),
        ({"num_streams": "0"}, "integer >= 1"),
        ({"infer_requests": "many"}, "integer >= 1"),
    ],
)
def test_openvino_bad_options_are_one_line(
    onnx_model: ModelArtifact, extra: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConfigError) as ei:
        _ov(onnx_model, **extra)
    assert fragment in _one_line(ei)


@pytest.mark.parametrize("api", ["compiled", "interpreter"])
def test_litert_delegate_none_runs_builtin_kernels(coral_data: Path, api: str) -> None:
    pytest.importorskip("ai_edge_litert")
    from wattbench.adapters.litert import LiteRtAdapter

    art = MobileNetV2Suite().user_model(coral_data / "mobilenet_v2_1.0_224_quant.tflite")
    art = art.model_copy(update={"precision": "int8"})
    x = {"input": np.random.default_rng(0).integers(0, 255, (1, 224, 224, 3), dtype=np.uint8)}
    sessions = {
        d: LiteRtAdapter().load(
            art, AdapterOptions(precision="int8", extra={"delegate": d, "api": api})
        )
        for d in ("xnnpack", "none")
    }
    outs = {}
    for d, s in sessions.items():
        name = s.inputs()[0].name
        outs[d] = s.run(s.prepare({name: x["input"]}))[0].astype(np.int32)
        assert s.describe().options["api"] == api
    assert sessions["none"].describe().execution_provider == "builtin kernels"
    if api == "interpreter":  # the Interpreter lists its delegate nodes; CompiledModel does not
        assert sessions["none"].describe().options["delegate_nodes"] == 0
    assert sessions["xnnpack"].describe().execution_provider == "XNNPACK"
    assert outs["none"].argmax() == outs["xnnpack"].argmax()
    assert np.abs(outs["none"] - outs["xnnpack"]).max() <= 2  # int8 rounding may differ
    with pytest.raises(ConfigError) as ei:
        LiteRtAdapter().load(art, AdapterOptions(precision="int8", extra={"threads": "2"}))
    assert "known: delegate" in _one_line(ei)
    with pytest.raises(ConfigError) as ei:
        LiteRtAdapter().load(art, AdapterOptions(precision="int8", extra={"api": "legacy"}))
    assert "use one of compiled, interpreter" in _one_line(ei)


def test_adapters_without_options_refuse_every_key(onnx_model: ModelArtifact) -> None:
    pytest.importorskip("torch")
    from wattbench.adapters.torch import TorchAdapter

    art = onnx_model.model_copy(update={"format": "torchscript"})  # refused before reading
    with pytest.raises(ConfigError) as ei:
        TorchAdapter().load(art, AdapterOptions(extra={"jit": "off"}))
    assert "unknown --adapter-opt jit for torch (known: none)" in _one_line(ei)


def test_every_adapter_declares_the_keys_its_load_accepts() -> None:
    from wattbench.core import plugins

    for name in plugins.names(plugins.ADAPTERS):
        keys = plugins.load(plugins.ADAPTERS, name).option_keys
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()), name


def test_cli_refuses_an_unknown_key_before_building_anything(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    cache = tmp_path / "cache"
    env = os.environ | {"WATTBENCH_CACHE": str(cache), "WATTBENCH_DB": f"sqlite:///{tmp_path}/x.db"}
    wattbench = Path(sys.executable).parent / "wattbench"
    p = subprocess.run(
        [str(wattbench), "run", "--suite", "mobilenet_v2", "--adapter", "litert",
         "--adapter-opt", "delegat=none", "--power", "estimate"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: unknown --adapter-opt delegat for litert (known: delegate (xnnpack|none, "
        "default xnnpack (none: LiteRT's builtin kernels)); api (compiled|interpreter, default "
        "compiled (CompiledModel, as litert-benchmark; interpreter where it cannot run the "
        "model)))"
    ]
    assert not cache.exists() or not any(cache.rglob("*.tflite"))  # no 15 s TFLite build first

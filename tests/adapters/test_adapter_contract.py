"""What every adapter must do, checked on each runtime that installs here.

onnxruntime and openvino run the suite-built MobileNetV2 ONNX (random weights);
litert runs the pretrained Coral MobileNetV2 (full-integer uint8 .tflite) from
shared/data, skipping with a reason where that data is absent, on both of its APIs
(CompiledModel, the default, and the Interpreter).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wattbench.core.adapter import Adapter, AdapterOptions, ModelArtifact, Precision, Session
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ConfigError, ModelError, UnavailableError
from wattbench.core.suite import SuiteOptions
from wattbench.harness.protocol import timed_loop
from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

CORAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coral-test-data"
CORAL_MNV2 = CORAL_DATA / "mobilenet_v2_1.0_224_quant.tflite"


@dataclass(frozen=True)
class Case:
    """One adapter with an artifact it must run."""

    adapter: str
    module: str  # the runtime's import name
    cls: Callable[[], Adapter]
    artifact: str  # "onnx" (suite-built) or "coral" (pretrained tflite)
    precision: Precision
    threads_key: str  # describe().options key that records the thread count
    corrupt_suffix: str
    foreign_format: str  # a format the adapter does not load
    api: str = ""  # litert: --adapter-opt api=...; "" = the adapter's default

    @property
    def id(self) -> str:
        return f"{self.adapter}-{self.api}" if self.api else self.adapter


def _onnxruntime() -> Adapter:
    from wattbench.adapters.onnxruntime import OnnxRuntimeAdapter

    return OnnxRuntimeAdapter()


def _openvino() -> Adapter:
    from wattbench.adapters.openvino import OpenVinoAdapter

    return OpenVinoAdapter()


def _litert() -> Adapter:
    from wattbench.adapters.litert import LiteRtAdapter

    return LiteRtAdapter()


CASES = [
    Case(
        "onnxruntime", "onnxruntime", _onnxruntime, "onnx", "fp32", "intra_op_num_threads",
        ".onnx", "tflite",
    ),
    Case(
        "openvino", "openvino", _openvino, "onnx", "fp32", "INFERENCE_NUM_THREADS",
        ".onnx", "tensorrt-plan",
    ),
    Case(
        "litert", "ai_edge_litert", _litert, "coral", "int8", "num_threads",
        ".tflite", "onnx",
    ),
    Case(
        "litert", "ai_edge_litert", _litert, "coral", "int8", "num_threads",
        ".tflite", "onnx", api="interpreter",
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    pytest.importorskip("onnx", reason="building the suite model needs onnx (wattbench[models])")
    cache = ModelCache(tmp_path_factory.mktemp("cache"))
    return MobileNetV2Suite(SuiteOptions(seed=0, weights="random")).build_model("onnx", cache)


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    c: Case = request.param
    if importlib.util.find_spec(c.module) is None:
        pytest.skip(f"{c.module} not installed (pip install 'wattbench[{c.adapter}]')")
    return c


@pytest.fixture(scope="module")
def artifact(case: Case, request: pytest.FixtureRequest) -> ModelArtifact:
    if case.artifact == "onnx":
        art: ModelArtifact = request.getfixturevalue("onnx_model")
        return art
    if not CORAL_MNV2.is_file():
        pytest.skip(f"pretrained Coral model not present at {CORAL_MNV2} (shared/data)")
    return MobileNetV2Suite().user_model(CORAL_MNV2).model_copy(update={"precision": "int8"})


@pytest.fixture(scope="module")
def adapter(case: Case) -> Adapter:
    return case.cls()


def _load(adapter: Adapter, artifact: ModelArtifact, case: Case, **kw: Any) -> Session:
    opts: dict[str, Any] = {"device": "cpu", "precision": case.precision} | kw
    if case.api:
        opts["extra"] = {"api": case.api}
    return adapter.load(artifact, AdapterOptions(**opts))


@pytest.fixture(scope="module")
def session(adapter: Adapter, artifact: ModelArtifact, case: Case) -> Iterator[Session]:
    s = _load(adapter, artifact, case, threads=1)
    yield s
    s.close()


def _feeds(session: Session, n: int) -> list[dict[str, np.ndarray]]:
    """n single-image feeds made by the suite's own preprocessing."""
    suite = MobileNetV2Suite(SuiteOptions(seed=3))
    (spec,) = session.inputs()
    samples = suite.load_inputs().samples[:n]
    return [{spec.name: suite.preprocess(s, spec)[None]} for s in samples]


# -- the adapter class -------------------------------------------------------------------


def test_declares_name_and_formats(case: Case, adapter: Adapter, artifact: ModelArtifact) -> None:
    assert type(adapter).name == case.adapter
    assert artifact.format in type(adapter).formats


def test_is_available_on_cpu(adapter: Adapter) -> None:
    avail = type(adapter).is_available("cpu")
    assert avail.available is True, avail.reason
    assert avail.reason


def test_runtime_version(adapter: Adapter) -> None:
    version = type(adapter).runtime_version()
    assert isinstance(version, str) and version


def test_unknown_device_is_unavailable_and_a_config_error(
    case: Case, adapter: Adapter, artifact: ModelArtifact
) -> None:
    avail = type(adapter).is_available("bogus")
    assert avail.available is False
    assert "bogus" in avail.reason
    with pytest.raises(ConfigError, match="bogus"):
        _load(adapter, artifact, case, device="bogus")


def test_wrong_format_is_a_config_error(
    case: Case, adapter: Adapter, artifact: ModelArtifact
) -> None:
    art = artifact.model_copy(update={"format": case.foreign_format})
    with pytest.raises(ConfigError) as ei:
        _load(adapter, art, case)
    assert case.foreign_format in str(ei.value)
    assert "\n" not in str(ei.value)


def test_corrupt_model_is_a_one_line_model_error(
    case: Case, adapter: Adapter, tmp_path: Path
) -> None:
    bad = tmp_path / f"broken{case.corrupt_suffix}"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    art = MobileNetV2Suite().user_model(bad).model_copy(update={"precision": case.precision})
    with pytest.raises(ModelError) as ei:
        _load(adapter, art, case)
    msg = str(ei.value)
    assert "\n" not in msg
    assert str(bad) in msg
    assert "--model" in msg  # names the remedy


# -- the session -------------------------------------------------------------------------


def test_session_is_a_session(session: Session) -> None:
    assert isinstance(session, Session)


def test_describe(case: Case, adapter: Adapter, session: Session) -> None:
    d = session.describe()
    assert d.adapter == case.adapter
    assert d.runtime
    assert d.runtime_version == type(adapter).runtime_version()
    assert d.device == "cpu"
    assert d.execution_provider
    assert d.precision == case.precision
    if case.adapter == "litert":  # which LiteRT API ran
        assert d.options["api"] == (case.api or "compiled")
    json.dumps(d.model_dump(mode="json"))  # storable as is


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_are_recorded(
    case: Case, adapter: Adapter, artifact: ModelArtifact, threads: int
) -> None:
    s = _load(adapter, artifact, case, threads=threads)
    try:
        assert s.describe().options[case.threads_key] == threads
    finally:
        s.close()


def test_io_specs(case: Case, session: Session) -> None:
    (i,) = session.inputs()
    (o,) = session.outputs()
    assert len(i.shape) == 4 and 3 in (i.shape[1], i.shape[3])
    assert i.dtype == ("uint8" if case.precision == "int8" else "float32")
    assert o.shape[-1] in (1000, 1001)


def test_prepare_and_run_shapes(session: Session) -> None:
    (feed,) = _feeds(session, 1)
    prepared = session.prepare(feed)
    out = session.run(prepared)
    specs = session.outputs()
    assert len(out) == len(specs)
    for arr, spec in zip(out, specs, strict=True):
        assert isinstance(arr, np.ndarray)
        assert arr.shape[0] == 1
        assert list(arr.shape[1:]) == spec.shape[1:]
        assert arr.dtype.name == spec.dtype
        assert np.all(np.isfinite(arr.astype(np.float64)))


def test_outputs_are_deterministic_and_input_dependent(session: Session) -> None:
    a, b = (session.prepare(f) for f in _feeds(session, 2))
    first = session.run(a)[0].copy()
    session.run(b)
    np.testing.assert_array_equal(session.run(a)[0], first)
    assert not np.array_equal(session.run(b)[0], first)


def test_run_returns_fresh_arrays(session: Session) -> None:
    """A later run must not overwrite what an earlier run returned."""
    a, b = (session.prepare(f) for f in _feeds(session, 2))
    out_a = session.run(a)[0]
    kept = out_a.copy()
    session.run(b)
    np.testing.assert_array_equal(out_a, kept)


def test_driven_by_the_protocol(session: Session) -> None:
    """timed_loop runs it; the suite's quality check accepts the outputs."""
    prepared = [session.prepare(f) for f in _feeds(session, 4)]
    lat, elapsed_ns = timed_loop(session, prepared, min_s=0.0, min_queries=6)
    assert len(lat) == 6 and all(t > 0 for t in lat) and elapsed_ns >= sum(lat)
    rows = [session.run(p)[0][0] for p in prepared]
    suite = MobileNetV2Suite(SuiteOptions(seed=3))
    inputs = suite.load_inputs()
    inputs = inputs.model_copy(update={"samples": inputs.samples[:4], "names": inputs.names[:4]})
    quality = suite.check_quality(rows, inputs)
    assert quality.passed, quality.detail


# -- precision: what is recorded is what runs ---------------------------------------------


def test_openvino_fp32_is_pinned_and_fp16_needs_device_support(onnx_model: ModelArtifact) -> None:
    """The CPU plugin would pick bf16 by itself on AVX512-BF16/AMX CPUs and run an f16
    request as bf16: fp32 must pin f32, fp16 must fail where the device lacks FP16."""
    pytest.importorskip("openvino")
    from wattbench.adapters.openvino import OpenVinoAdapter

    adapter = OpenVinoAdapter()
    s = adapter.load(onnx_model, AdapterOptions(precision="fp32"))
    assert s.describe().options["INFERENCE_PRECISION_HINT"] == "f32"
    s.close()
    import openvino

    caps = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "FP16" in caps:
        s = adapter.load(onnx_model, AdapterOptions(precision="fp16"))
        assert s.describe().options["INFERENCE_PRECISION_HINT"] == "f16"
        assert s.describe().precision == "fp16"
    else:
        with pytest.raises(ConfigError, match="FP16") as ei:
            adapter.load(onnx_model, AdapterOptions(precision="fp16"))
        assert "\n" not in str(ei.value)


def test_int8_only_for_quantised_models(onnx_model: ModelArtifact) -> None:
    pytest.importorskip("openvino")
    from wattbench.adapters.openvino import OpenVinoAdapter

    with pytest.raises(ConfigError, match="not quantised"):
        OpenVinoAdapter().load(onnx_model, AdapterOptions(precision="int8"))
    if not CORAL_MNV2.is_file():
        pytest.skip(f"pretrained Coral model not present at {CORAL_MNV2}")
    coral = MobileNetV2Suite().user_model(CORAL_MNV2)
    with pytest.raises(ConfigError, match="--precision int8"):
        OpenVinoAdapter().load(coral, AdapterOptions(precision="fp32"))
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from wattbench.adapters.litert import LiteRtAdapter

        with pytest.raises(ConfigError, match="--precision int8"):
            LiteRtAdapter().load(coral, AdapterOptions(precision="fp32"))


def test_openvino_reads_ir_and_needs_its_bin(onnx_model: ModelArtifact, tmp_path: Path) -> None:
    ov = pytest.importorskip("openvino")
    from wattbench.adapters.openvino import OpenVinoAdapter

    xml = tmp_path / "mnv2.xml"
    ov.save_model(ov.Core().read_model(str(onnx_model.path)), str(xml), compress_to_fp16=False)
    art = MobileNetV2Suite().user_model(xml)
    assert art.format == "openvino-ir"
    adapter = OpenVinoAdapter()
    s = adapter.load(art, AdapterOptions(threads=1))
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    ref = adapter.load(onnx_model, AdapterOptions(threads=1))
    np.testing.assert_allclose(
        s.run(s.prepare({"input": x}))[0], ref.run(ref.prepare({"input": x}))[0], atol=1e-4
    )
    xml.with_suffix(".bin").unlink()
    with pytest.raises(ModelError, match=r"\.bin") as ei:
        adapter.load(art, AdapterOptions())
    assert "\n" not in str(ei.value)


def test_openvino_auto_and_missing_devices(onnx_model: ModelArtifact) -> None:
    ov = pytest.importorskip("openvino")
    from wattbench.adapters.openvino import OpenVinoAdapter, ov_device

    assert [ov_device(d) for d in ("cpu", "gpu", "gpu:1", "npu", "auto")] == [
        "CPU", "GPU", "GPU.1", "NPU", "AUTO",
    ]  # fmt: skip
    s = OpenVinoAdapter().load(onnx_model, AdapterOptions(device="auto", threads=1))
    d = s.describe()
    assert d.options["PERFORMANCE_HINT"] == "LATENCY"
    assert d.options["INFERENCE_NUM_THREADS"] == 1  # read from the device AUTO picked
    assert d.options["INFERENCE_PRECISION_HINT"] == "f32"
    assert d.execution_provider in ov.Core().available_devices
    if "GPU" not in " ".join(ov.Core().available_devices):
        avail = OpenVinoAdapter.is_available("gpu")
        assert avail.available is False and "--device cpu" in avail.reason
        with pytest.raises(UnavailableError, match="GPU"):
            OpenVinoAdapter().load(onnx_model, AdapterOptions(device="gpu"))


def test_openvino_throughput_hint_is_recorded(onnx_model: ModelArtifact) -> None:
    pytest.importorskip("openvino")
    from wattbench.adapters.openvino import OpenVinoAdapter

    s = OpenVinoAdapter(performance_hint="THROUGHPUT").load(onnx_model, AdapterOptions())
    assert s.describe().options["PERFORMANCE_HINT"] == "THROUGHPUT"
    assert isinstance(s.describe().options["NUM_STREAMS"], int)


# -- LiteRT input quantisation, on an autospec'd interpreter -------------------------------


def _litert_session(dtype: Any, quantization: tuple[float, int]) -> tuple[Session, Any]:
    li = pytest.importorskip("ai_edge_litert.interpreter")
    from unittest import mock

    from wattbench.adapters.litert import LiteRtSession

    inp = {
        "name": "x",
        "index": 3,
        "shape": np.array([1, 2, 2, 3], np.int32),
        "shape_signature": np.array([-1, 2, 2, 3], np.int32),
        "dtype": dtype,
        "quantization": quantization,
    }
    out = {**inp, "name": "y", "index": 9, "shape": np.array([1, 4], np.int32)}
    it = mock.create_autospec(li.Interpreter, instance=True)
    it.get_input_details.return_value = [inp]
    it.get_output_details.return_value = [out]
    it._get_ops_details.return_value = []
    s = LiteRtSession(
        it,
        adapter="litert",
        runtime="ai_edge_litert",
        runtime_version="x",
        options=AdapterOptions(precision="int8"),
        precision="int8",
        quantization="full-integer",
    )
    return s, it


def test_litert_passes_matching_integer_input_as_is() -> None:
    s, it = _litert_session(np.uint8, (1 / 128, 128))
    assert s.inputs()[0].shape == [None, 2, 2, 3]
    x = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    ((index, arr),) = s.prepare({"x": x})
    assert index == 3 and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, x)
    s.run([(index, arr)])
    it.set_tensor.assert_called_once_with(3, arr)
    it.invoke.assert_called_once_with()
    it.get_tensor.assert_called_once_with(9)


def test_litert_quantises_float_input() -> None:
    s, _ = _litert_session(np.int8, (0.5, -3))
    x = np.array([0.0, 1.0, -1.24, 100.0, -100.0, 2.6] * 2, np.float32).reshape(1, 2, 2, 3)
    ((_, arr),) = s.prepare({"x": x})
    assert arr.dtype == np.int8
    np.testing.assert_array_equal(arr.reshape(-1)[:6], [-3, -1, -5, 127, -128, 2])


def test_litert_shifts_pixels_into_an_int8_model() -> None:
    s, _ = _litert_session(np.int8, (1 / 128, 0))
    x = np.array([0, 127, 128, 255] * 3, np.uint8).reshape(1, 2, 2, 3)
    ((_, arr),) = s.prepare({"x": x})
    np.testing.assert_array_equal(arr.reshape(-1)[:4], [-128, -1, 0, 127])


def test_litert_dequantises_outside_run() -> None:
    from wattbench.adapters.litert import LiteRtSession

    s, _ = _litert_session(np.uint8, (0.25, 4))
    assert isinstance(s, LiteRtSession)
    (real,) = s.dequantize([np.array([[4, 8, 0, 255]], np.uint8)])
    np.testing.assert_allclose(real, [[0.0, 1.0, -1.0, 62.75]])
    assert real.dtype == np.float32


# -- LiteRT: CompiledModel (the default) and the Interpreter ------------------------------


def _coral_int8() -> ModelArtifact:
    pytest.importorskip("ai_edge_litert")
    if not CORAL_MNV2.is_file():
        pytest.skip(f"pretrained Coral model not present at {CORAL_MNV2} (shared/data)")
    return MobileNetV2Suite().user_model(CORAL_MNV2).model_copy(update={"precision": "int8"})


def test_litert_compiled_fixed_batch_is_a_model_error_and_the_session_still_runs() -> None:
    from wattbench.adapters.litert import LiteRtAdapter, LiteRtCompiledSession

    s = LiteRtAdapter().load(_coral_int8(), AdapterOptions(threads=1, precision="int8"))
    assert isinstance(s, LiteRtCompiledSession)
    x = np.zeros((2, 224, 224, 3), np.uint8)
    with pytest.raises(ModelError, match=r"fixed shape \[1, 224, 224, 3\].*--batch 1") as ei:
        s.prepare({"input": x})
    assert "\n" not in str(ei.value)
    (out,) = s.run(s.prepare({"input": x[:1]}))  # resized back: still runs batch 1
    assert out.shape == (1, 1001)
    with pytest.raises(ModelError, match="lacks model input"):
        s.prepare({})
    s.close()


def test_litert_falls_back_to_the_interpreter_where_compiled_model_fails() -> None:
    from types import SimpleNamespace

    from ai_edge_litert import compiled_model, interpreter

    from wattbench.adapters.litert import LiteRtAdapter, LiteRtCompiledSession, LiteRtSession

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CompiledModel error: code=3\nsecond line")

    broken = SimpleNamespace(
        CompiledModel=SimpleNamespace(from_file=refuse),
        CpuOptions=compiled_model.CpuOptions,
        CpuKernelMode=compiled_model.CpuKernelMode,
        Options=compiled_model.Options,
        HardwareAccelerator=compiled_model.HardwareAccelerator,
    )
    art = _coral_int8()
    opts = AdapterOptions(threads=1, precision="int8")
    adapter = LiteRtAdapter(interpreter, "x", compiled_module=broken)  # type: ignore[arg-type]
    s = adapter.load(art, opts)
    assert type(s) is LiteRtSession
    d = s.describe().options
    assert d["api"] == "interpreter"
    assert d["api_fallback"] == "CompiledModel not used: CompiledModel error: code=3"
    with pytest.raises(ModelError, match="use --adapter-opt api=interpreter") as ei:
        adapter.load(art, opts.model_copy(update={"extra": {"api": "compiled"}}))
    assert "\n" not in str(ei.value)
    # an injected interpreter module alone runs the Interpreter; api=compiled is refused
    plain = LiteRtAdapter(interpreter, "x")  # type: ignore[arg-type]
    assert not isinstance(plain.load(art, opts), LiteRtCompiledSession)
    with pytest.raises(ConfigError, match="needs LiteRT's CompiledModel"):
        plain.load(art, opts.model_copy(update={"extra": {"api": "compiled"}}))


# -- OpenVINO with an injected runtime: a device this machine lacks ----------------------


def _fake_openvino(used_precision: str, caps: list[str]) -> Any:
    ov = pytest.importorskip("openvino")
    import types
    from unittest import mock

    core_cls = mock.create_autospec(ov.Core)
    core = core_cls.return_value
    core.available_devices = ["CPU", "GPU.0", "GPU.1"]
    core.get_property.return_value = caps
    core.read_model.return_value.get_ops.return_value = []
    compiled = core.compile_model.return_value
    props = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_NUM_THREADS": 3,
        "INFERENCE_PRECISION_HINT": getattr(ov.Type, used_precision),
        "EXECUTION_DEVICES": ["GPU.1"],
    }
    compiled.get_property.side_effect = props.__getitem__

    def port(name: str, shape: list[int]) -> Any:
        return types.SimpleNamespace(
            get_any_name=lambda: name,
            get_partial_shape=lambda: ov.PartialShape(shape),
            get_element_type=lambda: ov.Type.f32,
        )

    compiled.inputs = [port("input", [-1, 3, 224, 224])]
    compiled.outputs = [port("logits", [-1, 1000])]
    return types.SimpleNamespace(Core=core_cls, get_version=lambda: "9.9.9-fake")


def test_openvino_gpu_fp16_config_with_an_injected_runtime(onnx_model: ModelArtifact) -> None:
    from wattbench.adapters.openvino import OpenVinoAdapter

    rt = _fake_openvino("f16", ["FP32", "FP16", "INT8"])
    adapter = OpenVinoAdapter(runtime=rt)
    assert adapter.availability("gpu:1").available is True
    assert adapter.availability("gpu:2").available is False
    s = adapter.load(onnx_model, AdapterOptions(device="gpu:1", threads=3, precision="fp16"))
    core = rt.Core.return_value
    core.compile_model.assert_called_once_with(
        core.read_model.return_value,
        "GPU.1",
        {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f16",
            "INFERENCE_NUM_THREADS": 3,
        },
    )
    core.read_model.assert_called_once_with(str(onnx_model.path))
    d = s.describe()
    assert (d.runtime_version, d.device, d.execution_provider, d.precision) == (
        "9.9.9-fake", "gpu:1", "GPU.1", "fp16",
    )  # fmt: skip
    assert d.options["INFERENCE_PRECISION_HINT"] == "f16"
    assert d.options["INFERENCE_NUM_THREADS"] == 3
    assert s.inputs()[0].shape == [None, 3, 224, 224]
    s.close()


def test_openvino_silent_precision_change_is_refused(onnx_model: ModelArtifact) -> None:
    from wattbench.adapters.openvino import OpenVinoAdapter

    rt = _fake_openvino("bf16", ["FP32", "FP16"])  # lists FP16 yet compiles to bf16
    with pytest.raises(ConfigError, match="bf16 instead of the requested f16"):
        OpenVinoAdapter(runtime=rt).load(onnx_model, AdapterOptions(device="gpu", precision="fp16"))

"""The ONNX Runtime adapter, against the real runtime and against an injected double."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest

from wattbench.adapters import onnxruntime as ort_adapter
from wattbench.adapters.onnxruntime import OnnxRuntimeAdapter
from wattbench.core.adapter import AdapterOptions, ModelArtifact, Session
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ConfigError, ModelError, UnavailableError
from wattbench.core.suite import SuiteOptions
from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

ort = pytest.importorskip("onnxruntime", reason="onnxruntime (wattbench[onnxruntime]) missing")
pytest.importorskip("onnx", reason="building the suite model needs onnx (wattbench[models])")


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    cache = ModelCache(tmp_path_factory.mktemp("cache"))
    return MobileNetV2Suite(SuiteOptions(seed=0)).build_model("onnx", cache)


def _batch(n: int) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, 3, 224, 224)).astype(np.float32)


class TestOnnxRuntimeAdapterContract:
    """What every adapter must do, checked on the real ONNX Runtime CPU build."""

    adapter_cls = OnnxRuntimeAdapter
    device = "cpu"

    @pytest.fixture
    def adapter(self) -> OnnxRuntimeAdapter:
        return self.adapter_cls()

    @pytest.fixture
    def session(self, adapter: OnnxRuntimeAdapter, mobilenet: ModelArtifact) -> Any:
        s = adapter.load(mobilenet, AdapterOptions(device=self.device, threads=1))
        yield s
        s.close()

    def test_declares_name_and_formats(self) -> None:
        assert self.adapter_cls.name == "onnxruntime"
        assert self.adapter_cls.formats[0] == "onnx"

    def test_is_available_cpu_names_the_version(self) -> None:
        avail = self.adapter_cls.is_available(self.device)
        assert avail.available is True
        assert ort.__version__ in avail.reason
        assert "CPUExecutionProvider" in avail.reason

    def test_runtime_version(self) -> None:
        assert self.adapter_cls.runtime_version() == ort.__version__

    def test_is_available_bogus_device(self) -> None:
        avail = self.adapter_cls.is_available("bogus")
        assert avail.available is False
        assert "bogus" in avail.reason
        assert "cpu" in avail.reason  # names the valid choices

    def test_is_available_without_the_runtime(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(ort_adapter, "_import_ort", lambda: None)
        avail = self.adapter_cls.is_available("cpu")
        assert avail.available is False
        assert "pip install" in avail.reason
        assert self.adapter_cls.runtime_version() is None
        with pytest.raises(UnavailableError, match="pip install"):
            self.adapter_cls().load(
                ModelArtifact(
                    path=Path("m.onnx"), sha256="0" * 64, format="onnx", weights="none", name="m"
                ),
                AdapterOptions(),
            )

    def test_session_is_a_session(self, session: Any) -> None:
        assert isinstance(session, Session)

    def test_describe(self, session: Any) -> None:
        d = session.describe()
        assert d.adapter == "onnxruntime"
        assert d.runtime == "onnxruntime"
        assert d.runtime_version == ort.__version__
        assert d.device == "cpu"
        assert d.execution_provider == "CPUExecutionProvider"
        assert d.precision == "fp32"
        assert d.options["intra_op_num_threads"] == 1
        assert d.options["inter_op_num_threads"] == 1
        assert d.options["providers"][0] == "CPUExecutionProvider"
        assert d.options["graph_optimization_level"] == "ORT_ENABLE_ALL"
        assert d.options["io_binding"].startswith("on (inputs on cpu:0 bound in prepare")

    def test_describe_runtime_default_threads(
        self, adapter: OnnxRuntimeAdapter, mobilenet: ModelArtifact
    ) -> None:
        s = adapter.load(mobilenet, AdapterOptions(device=self.device))
        try:
            assert s.describe().options["intra_op_num_threads"] == "runtime default"
        finally:
            s.close()

    def test_io_specs(self, session: Any) -> None:
        (i,) = session.inputs()
        (o,) = session.outputs()
        assert i.name == "input"
        assert i.shape == ["N", 3, 224, 224]
        assert i.dtype == "float32"
        assert o.name == "logits"
        assert o.shape == ["N", 1000]
        assert o.dtype == "float32"

    @pytest.mark.parametrize("batch", [1, 3])
    def test_prepare_and_run(self, session: Any, batch: int) -> None:
        x = _batch(batch)
        prepared = session.prepare({"input": x[:, :, :, ::-1]})  # non-contiguous view
        assert prepared.host["input"].flags["C_CONTIGUOUS"]  # bound zero-copy on the CPU
        # the output is pre-allocated: "N" of the output is "N" of the input
        assert [o.shape for o in prepared.outputs] == [(batch, 1000)]
        out = session.run(prepared)
        assert len(out) == 1
        assert out[0].shape == (batch, 1000)
        assert np.all(np.isfinite(out[0]))
        # repeatable
        np.testing.assert_array_equal(session.run(prepared)[0], out[0])

    def test_corrupt_model_is_a_one_line_model_error(
        self, adapter: OnnxRuntimeAdapter, tmp_path: Path
    ) -> None:
        bad = tmp_path / "x.onnx"
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
        artifact = MobileNetV2Suite().user_model(bad)
        with pytest.raises(ModelError) as ei:
            adapter.load(artifact, AdapterOptions(device=self.device))
        msg = str(ei.value)
        assert "\n" not in msg
        assert str(bad) in msg
        assert "--model" in msg

    def test_wrong_format_is_a_config_error(
        self, adapter: OnnxRuntimeAdapter, mobilenet: ModelArtifact
    ) -> None:
        art = mobilenet.model_copy(update={"format": "tflite"})
        with pytest.raises(ConfigError, match="tflite"):
            adapter.load(art, AdapterOptions(device=self.device))

    def test_unknown_device_is_a_config_error(
        self, adapter: OnnxRuntimeAdapter, mobilenet: ModelArtifact
    ) -> None:
        with pytest.raises(ConfigError, match="bogus"):
            adapter.load(mobilenet, AdapterOptions(device="bogus"))

    def test_precision_mismatch_is_a_config_error(
        self, adapter: OnnxRuntimeAdapter, mobilenet: ModelArtifact
    ) -> None:
        with pytest.raises(ConfigError, match="precision"):
            adapter.load(mobilenet, AdapterOptions(device=self.device, precision="fp16"))

    def test_cuda_on_a_cpu_build_is_unavailable(
        self, adapter: OnnxRuntimeAdapter, mobilenet: ModelArtifact
    ) -> None:
        if "CUDAExecutionProvider" in ort.get_available_providers():
            pytest.skip("this onnxruntime build has CUDA; the test needs a CPU-only build")
        assert self.adapter_cls.is_available("cuda").available is False
        with pytest.raises(UnavailableError, match="CUDAExecutionProvider"):
            adapter.load(mobilenet, AdapterOptions(device="cuda"))


@pytest.mark.parametrize("batch", [1, 3])
def test_io_binding_gives_the_outputs_of_a_plain_run(mobilenet: ModelArtifact, batch: int) -> None:
    """IO binding (the default) and InferenceSession.run: bit-identical outputs, fresh
    arrays every run, whichever batches alternate."""
    opts = AdapterOptions(threads=2)
    bound = OnnxRuntimeAdapter().load(mobilenet, opts)
    plain = OnnxRuntimeAdapter().load(
        mobilenet, opts.model_copy(update={"extra": {"io_binding": "off"}})
    )
    assert plain.describe().options["io_binding"].startswith("off")
    feeds = [{"input": _batch(batch) * k} for k in (1.0, -0.5)]
    a, b = (bound.prepare(f) for f in feeds)
    ref = [plain.run(plain.prepare(f))[0] for f in feeds]
    out_a = bound.run(a)[0]
    out_b = bound.run(b)[0]
    again = bound.run(a)[0]
    np.testing.assert_array_equal(out_a, ref[0])
    np.testing.assert_array_equal(out_b, ref[1])
    np.testing.assert_array_equal(again, ref[0])
    assert not np.shares_memory(out_a, again)  # a later run leaves earlier results alone
    assert not np.array_equal(out_a, out_b)
    bound.close()
    plain.close()


def test_one_batch_run_by_two_threads_at_once(mobilenet: ModelArtifact) -> None:
    """Offline/server workers may share a prepared batch: the second gets a binding of its own."""
    from concurrent.futures import ThreadPoolExecutor

    s = OnnxRuntimeAdapter().load(mobilenet, AdapterOptions(threads=1))
    prepared = s.prepare({"input": _batch(1)})
    ref = s.run(prepared)[0].copy()
    assert prepared.lock.acquire()  # as if another thread were inside run() with it
    try:
        np.testing.assert_array_equal(s.run(prepared)[0], ref)
    finally:
        prepared.lock.release()
    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda _: s.run(prepared)[0], range(8)))
    for o in outs:
        np.testing.assert_array_equal(o, ref)
    s.close()


def test_outputs_the_inputs_do_not_size_are_allocated_by_ort(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    idx = helper.make_tensor_value_info("idx", TensorProto.INT64, [2, None])
    graph = helper.make_graph([helper.make_node("NonZero", ["x"], ["idx"])], "g", [x], [idx])
    path = tmp_path / "nonzero.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    art = ModelArtifact(path=path, sha256="0" * 64, format="onnx", weights="none", name="nz")
    s = OnnxRuntimeAdapter().load(art, AdapterOptions())
    for row in ([0, 1, 0, 2], [3, 0, 0, 0]):
        p = s.prepare({"x": np.array([row], np.float32)})
        assert p.outputs is None  # the number of non-zeros is known only after the run
        (out,) = s.run(p)
        np.testing.assert_array_equal(out, np.array(np.nonzero([row])))
    s.close()


# -- an injected runtime double ----------------------------------------------------------


def fake_runtime(actual_providers: list[str]) -> types.SimpleNamespace:
    """An onnxruntime look-alike that lists CUDA; its sessions report ``actual_providers``."""
    session_cls = mock.create_autospec(ort.InferenceSession)
    sess = session_cls.return_value
    sess.get_providers.return_value = actual_providers
    sess.get_session_options.return_value = types.SimpleNamespace(
        intra_op_num_threads=0, inter_op_num_threads=0, graph_optimization_level="ALL"
    )
    return types.SimpleNamespace(
        __version__="9.9.9-fake",
        get_available_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
        SessionOptions=ort.SessionOptions,
        GraphOptimizationLevel=ort.GraphOptimizationLevel,
        InferenceSession=session_cls,
    )


def _artifact(tmp_path: Path) -> ModelArtifact:
    p = tmp_path / "m.onnx"
    p.write_bytes(b"never read by the fake")
    return ModelArtifact(path=p, sha256="0" * 64, format="onnx", weights="none", name="m")


def test_silent_cpu_fallback_is_unavailable(tmp_path: Path) -> None:
    rt = fake_runtime(["CPUExecutionProvider"])
    adapter = OnnxRuntimeAdapter(runtime=rt)  # type: ignore[arg-type]
    with pytest.raises(UnavailableError) as ei:
        adapter.load(_artifact(tmp_path), AdapterOptions(device="cuda"))
    msg = str(ei.value)
    assert "fell back" in msg
    assert "CPUExecutionProvider" in msg and "CUDAExecutionProvider" in msg
    rt.InferenceSession.assert_called_once()
    assert rt.InferenceSession.call_args.kwargs["providers"] == ["CUDAExecutionProvider"]


def test_requested_provider_in_use_loads(tmp_path: Path) -> None:
    rt = fake_runtime(["CUDAExecutionProvider", "CPUExecutionProvider"])
    adapter = OnnxRuntimeAdapter(runtime=rt)  # type: ignore[arg-type]
    s = adapter.load(_artifact(tmp_path), AdapterOptions(device="cuda:1", threads=2))
    kwargs = rt.InferenceSession.call_args.kwargs
    assert kwargs["providers"] == [("CUDAExecutionProvider", {"device_id": 1})]
    so = kwargs["sess_options"]
    assert so.intra_op_num_threads == 2
    assert so.inter_op_num_threads == 1
    d = s.describe()
    assert d.execution_provider == "CUDAExecutionProvider"
    assert d.runtime_version == "9.9.9-fake"
    assert d.device == "cuda:1"


def test_runtime_load_error_keeps_only_the_first_line(tmp_path: Path) -> None:
    rt = fake_runtime(["CPUExecutionProvider"])
    rt.InferenceSession.side_effect = RuntimeError("  [ONNXRuntimeError] bad graph\nstack\nmore")
    adapter = OnnxRuntimeAdapter(runtime=rt)  # type: ignore[arg-type]
    with pytest.raises(ModelError) as ei:
        adapter.load(_artifact(tmp_path), AdapterOptions())
    msg = str(ei.value)
    assert "[ONNXRuntimeError] bad graph" in msg
    assert "stack" not in msg
    assert "\n" not in msg

"""The PyTorch (TorchScript) adapter and exporter, on real CPU torch and an injected CUDA double."""

from __future__ import annotations

import io
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest

from wattbench.adapters import torch as torch_adapter
from wattbench.adapters.torch import IO_EXTRA_FILE, NO_CUDA_REASON, TorchAdapter
from wattbench.core.adapter import AdapterOptions, ModelArtifact, Session
from wattbench.core.cache import ModelCache, sha256_file
from wattbench.core.errors import ConfigError, ModelError, UnavailableError
from wattbench.suites.models import torch_export
from wattbench.suites.models.mobilenet_v2 import mobilenet_v2, random_weights
from wattbench.suites.models.torch_export import build_torchscript_artifact, recipe_key

torch = pytest.importorskip(
    "torch", reason="torch not installed: pip install 'wattbench[torch]' to run these tests"
)

SUITE_VERSION = "1.0"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> ModelCache:
    return ModelCache(tmp_path_factory.mktemp("torch-cache"))


@pytest.fixture(scope="module")
def mobilenet(cache: ModelCache) -> ModelArtifact:
    return build_torchscript_artifact(0, cache, SUITE_VERSION)


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """threads= calls torch.set_num_threads, which is process-global."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def session(mobilenet: ModelArtifact) -> Iterator[Any]:
    s = TorchAdapter().load(mobilenet, AdapterOptions(device="cpu", threads=1))
    yield s
    s.close()


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 224, 224)).astype(np.float32)


def _artifact(path: Path, fmt: str = "torchscript") -> ModelArtifact:
    return ModelArtifact(path=path, sha256="0" * 64, format=fmt, weights="none", name="m")


# -- the exporter and the cached artifact --------------------------------------------------


def test_artifact_identity(mobilenet: ModelArtifact, cache: ModelCache) -> None:
    assert mobilenet.format == "torchscript"
    assert mobilenet.precision == "fp32"
    assert mobilenet.weights == "random(seed=0)"
    assert mobilenet.name == "mobilenet_v2_1.0_224"
    assert mobilenet.path.suffix == ".pt"
    assert sha256_file(mobilenet.path) == mobilenet.sha256
    assert cache.recipe(recipe_key(0, SUITE_VERSION)) == mobilenet.sha256
    assert recipe_key(0, SUITE_VERSION) == "mobilenet_v2-1.0-224-torchscript-random-seed0-v1.0"


def test_artifact_is_built_once_per_cache(
    mobilenet: ModelArtifact, cache: ModelCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> bytes:
        raise AssertionError("rebuilt although the recipe is cached")

    monkeypatch.setattr(torch_export, "to_torchscript_bytes", boom)
    again = build_torchscript_artifact(0, cache, SUITE_VERSION)
    assert again == mobilenet


def test_exported_module_matches_onnx_runtime(mobilenet: ModelArtifact, tmp_path: Path) -> None:
    """The TorchScript and ONNX exports of one recipe compute the same function."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (wattbench[onnxruntime]) missing")
    pytest.importorskip("onnx", reason="the ONNX export needs onnx (wattbench[models])")
    from wattbench.core.suite import SuiteOptions
    from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

    random = SuiteOptions(seed=0, weights="random")
    onnx_art = MobileNetV2Suite(random).build_model("onnx", ModelCache(tmp_path))
    sess = ort.InferenceSession(str(onnx_art.path), providers=["CPUExecutionProvider"])
    x = _batch(2, seed=7)
    expected = sess.run(None, {"input": x})[0]

    s = TorchAdapter().load(mobilenet, AdapterOptions(device="cpu", threads=1))
    (got,) = s.run(s.prepare({"input": x}))
    assert got.shape == expected.shape == (2, 1000)
    assert float(np.abs(got - expected).max()) < 1e-4
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    # the eager module (before tracing) agrees too
    arch = mobilenet_v2()
    eager = torch_export.to_torch_module(arch, random_weights(arch, 0))
    with torch.inference_mode():
        e = eager(torch.from_numpy(x)).numpy()
    assert float(np.abs(e - expected).max()) < 1e-4


def test_export_without_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    arch = mobilenet_v2()
    with pytest.raises(UnavailableError, match=r"pip install 'wattbench\[torch\]'"):
        torch_export.to_torchscript_bytes(arch, random_weights(arch, 0), "m")


# -- the adapter on real CPU torch -----------------------------------------------------------


def test_declares_name_and_formats() -> None:
    assert TorchAdapter.name == "torch"
    assert TorchAdapter.formats == ("torchscript",)


def test_runtime_version_and_cpu_availability() -> None:
    assert TorchAdapter.runtime_version() == torch.__version__
    avail = TorchAdapter.is_available("cpu")
    assert avail.available is True
    assert torch.__version__ in avail.reason


@pytest.mark.parametrize("device", ["bogus", "cuda:x", "cpu:0", "npu"])
def test_is_available_unknown_device(device: str) -> None:
    avail = TorchAdapter.is_available(device)
    assert avail.available is False
    assert repr(device) in avail.reason
    assert "cuda:N" in avail.reason


def test_without_torch(monkeypatch: pytest.MonkeyPatch, mobilenet: ModelArtifact) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    avail = TorchAdapter.is_available("cpu")
    assert avail == (False, "torch not installed: pip install 'wattbench[torch]'")
    assert TorchAdapter.runtime_version() is None
    with pytest.raises(UnavailableError, match=r"pip install 'wattbench\[torch\]'"):
        TorchAdapter().load(mobilenet, AdapterOptions())


def test_session_is_a_session(session: Any) -> None:
    assert isinstance(session, Session)


def test_describe(session: Any) -> None:
    d = session.describe()
    assert d.adapter == "torch"
    assert d.runtime == "torch"
    assert d.runtime_version == torch.__version__
    assert d.device == "cpu"
    assert d.execution_provider.startswith("CPU")
    assert d.precision == "fp32"
    assert d.options["intra_op_threads"] == 1 == torch.get_num_threads()
    assert d.options["requested_threads"] == 1
    assert "process-global" in d.options["threads_scope"]
    assert "cuda_synchronize_in_run" not in d.options


def test_describe_runtime_default_threads(mobilenet: ModelArtifact) -> None:
    torch.set_num_threads(2)
    d = TorchAdapter().load(mobilenet, AdapterOptions(device="cpu")).describe()
    assert d.options["requested_threads"] == "runtime default"
    assert d.options["intra_op_threads"] == 2


def test_io_specs(session: Any) -> None:
    (i,) = session.inputs()
    (o,) = session.outputs()
    assert (i.name, i.shape, i.dtype) == ("input", ["N", 3, 224, 224], "float32")
    assert (o.name, o.shape, o.dtype) == ("logits", ["N", 1000], "float32")


@pytest.mark.parametrize("batch", [1, 3])
def test_prepare_and_run(session: Any, batch: int) -> None:
    x = _batch(batch)
    prepared = session.prepare({"input": x[:, :, :, ::-1]})  # non-contiguous view
    (t,) = prepared
    assert isinstance(t, torch.Tensor)
    assert t.is_contiguous() and t.dtype == torch.float32 and t.device.type == "cpu"
    out = session.run(prepared)
    assert len(out) == 1
    assert isinstance(out[0], np.ndarray)
    assert out[0].shape == (batch, 1000) and out[0].dtype == np.float32
    assert np.all(np.isfinite(out[0]))
    np.testing.assert_array_equal(session.run(prepared)[0], out[0])  # repeatable
    if batch > 1:
        assert not np.array_equal(out[0][0], out[0][1])  # depends on the input


def test_prepare_missing_input_is_a_model_error(session: Any) -> None:
    with pytest.raises(ModelError, match="'input'"):
        session.prepare({"pixels": _batch(1)})


def test_fp16_on_cpu_is_a_config_error(mobilenet: ModelArtifact) -> None:
    with pytest.raises(ConfigError, match="--device cuda") as ei:
        TorchAdapter().load(mobilenet, AdapterOptions(device="cpu", precision="fp16"))
    assert "\n" not in str(ei.value)


def test_int8_of_a_float_model_is_a_config_error(mobilenet: ModelArtifact) -> None:
    with pytest.raises(ConfigError, match="not a quantised TorchScript model") as ei:
        TorchAdapter().load(mobilenet, AdapterOptions(device="cpu", precision="int8"))
    assert "\n" not in str(ei.value)
    assert TorchAdapter().model_precision(mobilenet) == "fp32"


# -- int8: PyTorch's own FX post-training static quantisation ---------------------------------


@pytest.fixture(scope="module")
def calibration() -> list[np.ndarray]:
    from wattbench.suites.mobilenet_v2 import REFERENCE_SPEC, MobileNetV2Suite

    suite = MobileNetV2Suite()
    inputs = suite.load_inputs()
    return [suite.preprocess(s, REFERENCE_SPEC) for s in inputs.samples]


@pytest.fixture(scope="module")
def int8_model(cache: ModelCache, calibration: list[np.ndarray]) -> ModelArtifact:
    return torch_export.build_torchscript_int8_artifact(
        0, cache, SUITE_VERSION, calibration, "c" * 64
    )


def test_int8_artifact_is_quantised_and_cached(
    int8_model: ModelArtifact, mobilenet: ModelArtifact, cache: ModelCache
) -> None:
    assert (int8_model.format, int8_model.precision) == ("torchscript", "int8")
    assert int8_model.sha256 != mobilenet.sha256
    engine = torch_export.quantized_engine()
    key = torch_export.int8_recipe_key(0, SUITE_VERSION, engine, "c" * 64)
    assert cache.recipe(key) == int8_model.sha256
    # int8 weights: well under half the float file
    assert int8_model.path.stat().st_size < 0.5 * mobilenet.path.stat().st_size
    meta = torch_adapter.read_io_meta(int8_model.path)
    assert (meta["precision"], meta["quantized_engine"]) == ("int8", engine)
    assert TorchAdapter().model_precision(int8_model) == "int8"
    assert torch_adapter.read_io_meta(int8_model.path.with_suffix(".missing")) == {}


def test_int8_session_runs_quantised_kernels_and_agrees_with_fp32(
    int8_model: ModelArtifact, mobilenet: ModelArtifact, calibration: list[np.ndarray]
) -> None:
    from wattbench.suites.quality import centred_cosines

    s = TorchAdapter().load(int8_model, AdapterOptions(device="cpu", precision="int8", threads=1))
    d = s.describe()
    assert d.precision == "int8"
    assert d.options["quantized_engine"] == torch.backends.quantized.engine
    assert "FX graph mode" in d.options["quantization"]
    assert [t.dtype for t in s.inputs()] == ["float32"]
    graph = str(s._module.inlined_graph)
    assert "quantized::conv2d" in graph and "quantize_per_tensor" in graph
    ref = TorchAdapter().load(mobilenet, AdapterOptions(device="cpu", threads=1))
    x = np.stack(calibration)
    (q,) = s.run(s.prepare({"input": x}))
    (f,) = ref.run(ref.prepare({"input": x}))
    assert q.dtype == np.float32 and q.shape == f.shape
    cos = centred_cosines(list(q), list(f))
    # docs/precision.md: int8 target 0.98 mean centred cosine; a broken model scores ~0.95
    assert min(cos) > 0.98, cos
    assert not np.array_equal(q, f)


def test_int8_model_needs_int8_precision_and_the_cpu(int8_model: ModelArtifact) -> None:
    with pytest.raises(ConfigError, match="pass --precision int8"):
        TorchAdapter().load(int8_model, AdapterOptions(device="cpu", precision="fp32"))
    fake = fake_cuda_torch()
    with pytest.raises(ConfigError, match="CPU only") as ei:
        TorchAdapter(fake).load(int8_model, AdapterOptions(device="cuda", precision="int8"))
    assert "\n" not in str(ei.value)


def test_int8_model_for_a_missing_engine_is_unavailable(int8_model: ModelArtifact) -> None:
    fake = types.SimpleNamespace(**vars(torch))
    fake.backends = types.SimpleNamespace(
        quantized=types.SimpleNamespace(supported_engines=["none"], engine="none"),
        cpu=torch.backends.cpu,
    )
    with pytest.raises(UnavailableError, match="lacks") as ei:
        TorchAdapter(fake).load(int8_model, AdapterOptions(device="cpu", precision="int8"))
    assert "it has none" in str(ei.value)


def test_cuda_here_is_unavailable_with_the_reason(mobilenet: ModelArtifact) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the test needs one without")
    avail = TorchAdapter.is_available("cuda")
    assert avail.available is False
    assert avail.reason.startswith(NO_CUDA_REASON)
    assert "--device cpu" in avail.reason
    with pytest.raises(UnavailableError, match=r"torch\.cuda\.is_available\(\) is False"):
        TorchAdapter().load(mobilenet, AdapterOptions(device="cuda:0"))


def test_corrupt_model_is_a_one_line_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.pt"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError) as ei:
        TorchAdapter().load(_artifact(bad), AdapterOptions())
    msg = str(ei.value)
    assert "\n" not in msg
    assert str(bad) in msg
    assert "--model" in msg


def _save_tiny(path: Path, extra: dict[str, str] | None) -> Path:
    module = torch.jit.script(torch.nn.ReLU6())
    buf = io.BytesIO()
    torch.jit.save(module, buf, _extra_files=extra or {})
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    ("extra", "needle"),
    [(None, "no wattbench I/O signature"), ({IO_EXTRA_FILE: "{not json"}, "malformed")],
)
def test_missing_or_bad_io_signature_is_a_model_error(
    tmp_path: Path, extra: dict[str, str] | None, needle: str
) -> None:
    path = _save_tiny(tmp_path / "tiny.pt", extra)
    with pytest.raises(ModelError, match=needle) as ei:
        TorchAdapter().load(_artifact(path), AdapterOptions())
    assert IO_EXTRA_FILE in str(ei.value)
    assert "\n" not in str(ei.value)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tuple_outputs_and_foreign_signature(tmp_path: Path) -> None:
    module_base: Any = torch.nn.Module

    class Two(module_base):
        def forward(self, a: Any, ids: Any) -> Any:
            return a * 2, ids + 1

    sig = {
        "inputs": [
            {"name": "a", "shape": ["N", 2], "dtype": "float32"},
            {"name": "ids", "shape": ["N"], "dtype": "int64"},
        ],
        "outputs": [
            {"name": "y", "shape": ["N", 2], "dtype": "float32"},
            {"name": "z", "shape": ["N"], "dtype": "int64"},
        ],
    }
    traced = torch.jit.trace(Two(), (torch.zeros(1, 2), torch.zeros(1, dtype=torch.int64)))
    buf = io.BytesIO()
    torch.jit.save(traced, buf, _extra_files={IO_EXTRA_FILE: json.dumps(sig)})
    path = tmp_path / "two.pt"
    path.write_bytes(buf.getvalue())
    s = TorchAdapter().load(_artifact(path), AdapterOptions())
    assert [x.name for x in s.inputs()] == ["a", "ids"]
    prepared = s.prepare({"ids": np.array([1, 2]), "a": np.ones((2, 2), np.float32)})
    assert prepared[1].dtype == torch.int64  # integer inputs are not cast to the float dtype
    y, z = s.run(prepared)
    np.testing.assert_array_equal(y, np.full((2, 2), 2.0, np.float32))
    np.testing.assert_array_equal(z, np.array([2, 3]))


def test_wrong_format_is_a_config_error(mobilenet: ModelArtifact) -> None:
    with pytest.raises(ConfigError, match="onnx"):
        TorchAdapter().load(mobilenet.model_copy(update={"format": "onnx"}), AdapterOptions())


def test_unknown_device_is_a_config_error(mobilenet: ModelArtifact) -> None:
    with pytest.raises(ConfigError, match="bogus"):
        TorchAdapter().load(mobilenet, AdapterOptions(device="bogus"))


# -- the CUDA path, through an injected torch double ------------------------------------------


def fake_cuda_torch(device_count: int = 2) -> types.SimpleNamespace:
    """The real torch, except that ``torch.cuda`` is an autospec'd double reporting GPUs.

    ``jit.load`` and ``as_tensor`` keep everything on the CPU, so the real model runs;
    only the CUDA calls are recorded.
    """
    real = torch
    cuda = types.SimpleNamespace(
        is_available=mock.create_autospec(real.cuda.is_available, return_value=True),
        device_count=mock.create_autospec(real.cuda.device_count, return_value=device_count),
        synchronize=mock.create_autospec(real.cuda.synchronize),
        get_device_name=mock.create_autospec(real.cuda.get_device_name, return_value="Fake GPU"),
    )

    def load_on_cpu(f: Any, map_location: Any = None, _extra_files: Any = None, **kw: Any) -> Any:
        return real.jit.load(f, map_location="cpu", _extra_files=_extra_files)

    def as_tensor_on_cpu(data: Any, dtype: Any = None, device: Any = None) -> Any:
        return real.as_tensor(data, dtype=dtype)

    fake = types.SimpleNamespace(**vars(real))
    fake.cuda = cuda
    fake.jit = types.SimpleNamespace(
        load=mock.create_autospec(real.jit.load, side_effect=load_on_cpu)
    )
    fake.as_tensor = as_tensor_on_cpu
    fake.version = types.SimpleNamespace(cuda="12.8")
    return fake


def test_cuda_run_synchronises(mobilenet: ModelArtifact) -> None:
    fake = fake_cuda_torch()
    s = TorchAdapter(torch_module=fake).load(  # type: ignore[arg-type]
        mobilenet, AdapterOptions(device="cuda:1", threads=1)
    )
    assert fake.jit.load.call_args.kwargs["map_location"] == "cuda:1"
    prepared = s.prepare({"input": _batch(1)})
    fake.cuda.synchronize.assert_called_once_with("cuda:1")  # copy done before timing
    fake.cuda.synchronize.reset_mock()
    (out,) = s.run(prepared)
    fake.cuda.synchronize.assert_called_once_with("cuda:1")
    assert out.shape == (1, 1000)
    d = s.describe()
    assert d.device == "cuda:1"
    assert d.execution_provider == "CUDA 12.8 (Fake GPU)"
    assert d.options["cuda_synchronize_in_run"] is True


def test_cpu_run_does_not_touch_cuda(mobilenet: ModelArtifact) -> None:
    fake = fake_cuda_torch()
    s = TorchAdapter(torch_module=fake).load(mobilenet, AdapterOptions(device="cpu"))  # type: ignore[arg-type]
    s.run(s.prepare({"input": _batch(1)}))
    fake.cuda.synchronize.assert_not_called()
    assert fake.jit.load.call_args.kwargs["map_location"] == "cpu"


def test_cuda_fp16_casts_specs_and_inputs(mobilenet: ModelArtifact) -> None:
    fake = fake_cuda_torch()
    s = TorchAdapter(torch_module=fake).load(  # type: ignore[arg-type]
        mobilenet, AdapterOptions(device="cuda", precision="fp16")
    )
    assert fake.jit.load.call_args.kwargs["map_location"] == "cuda:0"
    assert s.inputs()[0].dtype == "float16" and s.outputs()[0].dtype == "float16"
    (t,) = s.prepare({"input": _batch(1)})
    assert t.dtype == torch.float16
    assert s.describe().precision == "fp16"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_cuda_fp16_casts_the_model(tmp_path: Path) -> None:
    # A half input into a float32 Linear raises, so a finite half output proves model.half().
    # (A tiny model: MobileNetV2 in half precision on CPU takes seconds.)
    sig = {
        "inputs": [{"name": "x", "shape": ["N", 4], "dtype": "float32"}],
        "outputs": [{"name": "y", "shape": ["N", 3], "dtype": "float32"}],
    }
    traced = torch.jit.trace(torch.nn.Linear(4, 3).eval(), torch.zeros(1, 4))
    buf = io.BytesIO()
    torch.jit.save(traced, buf, _extra_files={IO_EXTRA_FILE: json.dumps(sig)})
    path = tmp_path / "linear.pt"
    path.write_bytes(buf.getvalue())
    fake = fake_cuda_torch()
    s = TorchAdapter(torch_module=fake).load(  # type: ignore[arg-type]
        _artifact(path), AdapterOptions(device="cuda", precision="fp16")
    )
    (y,) = s.run(s.prepare({"x": np.ones((2, 4), np.float32)}))
    assert y.dtype == np.float16 and y.shape == (2, 3)
    assert np.all(np.isfinite(y))


def test_cuda_index_out_of_range(mobilenet: ModelArtifact, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_cuda_torch(device_count=2)
    with pytest.raises(UnavailableError, match=r"cuda:5 .*2 CUDA device"):
        TorchAdapter(torch_module=fake).load(mobilenet, AdapterOptions(device="cuda:5"))  # type: ignore[arg-type]
    monkeypatch.setattr(torch_adapter, "_import_torch", lambda: fake)
    assert TorchAdapter.is_available("cuda:1") == (
        True,
        f"torch {torch.__version__}, CUDA 12.8, Fake GPU",
    )
    assert TorchAdapter.is_available("cuda:2").available is False

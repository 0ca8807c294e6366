"""The native TensorRT adapter, on a faithful fake of tensorrt + cuda-python (no GPU here)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import fake_tensorrt as fake  # tests/adapters is on sys.path (pytest rootdir-less layout)
import numpy as np
import pytest

from wattbench.adapters import tensorrt as trt_adapter
from wattbench.adapters.tensorrt import TensorRtAdapter
from wattbench.core.adapter import AdapterOptions, ModelArtifact
from wattbench.core.errors import ConfigError, ModelError, UnavailableError

MODEL = {
    "inputs": [{"name": "x", "shape": [-1, 4], "dtype": "float32"}],
    "outputs": [{"name": "y", "shape": [-1, 4], "dtype": "float32"}],
}


@pytest.fixture
def trt() -> ModuleType:
    return fake.make_tensorrt()


@pytest.fixture
def cudart() -> ModuleType:
    return fake.make_cudart()


@pytest.fixture
def artifact(tmp_path: Path) -> ModelArtifact:
    path = tmp_path / "m.onnx"
    path.write_text(json.dumps(MODEL))
    return ModelArtifact(path=path, sha256="a" * 64, format="onnx", weights="none", name="m")


def _adapter(trt: ModuleType, cudart: ModuleType, root: Path, **kw: Any) -> TensorRtAdapter:
    return TensorRtAdapter(trt, cudart, cache_root=root, max_batch=2, **kw)


def _config(trt: ModuleType) -> fake.IBuilderConfig:
    builds = [b for b in trt.Builder.instances if b.configs]
    assert builds, "no engine was built"
    return builds[-1].configs[-1]


@pytest.mark.parametrize(
    ("precision", "flags"),
    [("fp32", set()), ("fp16", {"FP16"}), ("int8", {"FP16", "INT8"})],
)
def test_build_flags_per_precision(
    trt: ModuleType,
    cudart: ModuleType,
    artifact: ModelArtifact,
    tmp_path: Path,
    precision: Any,
    flags: set[str],
) -> None:
    calib = tmp_path / "calib.cache"
    calib.write_bytes(b"TRT-1003-EntropyCalibration2\n")
    adapter = _adapter(trt, cudart, tmp_path / "c", calibration_cache=calib)
    s = adapter.load(artifact, AdapterOptions(device="cuda", precision=precision))
    cfg = _config(trt)
    assert {f.name for f in cfg.flags} == flags
    assert cfg.pool_limits[fake.MemoryPoolType.WORKSPACE] == trt_adapter.DEFAULT_WORKSPACE
    assert cfg.default_device_type == fake.DeviceType.GPU
    if precision == "int8":
        assert isinstance(cfg.int8_calibrator, fake.IInt8EntropyCalibrator2)
        calibrator: Any = cfg.int8_calibrator
        assert calibrator.read_calibration_cache() == calib.read_bytes()
        assert calibrator.get_batch(["x"]) is None
    # dynamic batch dim -> one profile min=1, opt=max=max_batch
    assert cfg.profiles[0].shapes == {"x": ((1, 4), (2, 4), (2, 4))}
    assert s.describe().precision == precision


def test_int8_without_calibration_cache_is_a_one_line_config_error(
    trt: ModuleType, cudart: ModuleType, artifact: ModelArtifact, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"calibration cache.*trtexec") as err:
        _adapter(trt, cudart, tmp_path).load(
            artifact, AdapterOptions(device="cuda", precision="int8")
        )
    assert "\n" not in str(err.value)
    assert not trt.Builder.instances  # failed before building anything


def test_timing_cache_persisted_and_reused(
    trt: ModuleType, cudart: ModuleType, artifact: ModelArtifact, tmp_path: Path
) -> None:
    root = tmp_path / "c"
    s1 = _adapter(trt, cudart, root).load(artifact, AdapterOptions(device="cuda"))
    assert s1.describe().options["timing_cache_hit"] is False
    assert _config(trt).ignore_mismatch is False
    (timing,) = (root / "tensorrt" / "timing").iterdir()
    assert json.loads(timing.read_bytes()) == ["tactic-0"]
    # a different precision is a different engine, built with the saved timing cache
    s2 = _adapter(trt, cudart, root).load(artifact, AdapterOptions(device="cuda", precision="fp16"))
    assert s2.describe().options["timing_cache_hit"] is True
    assert _config(trt).timing_cache.loaded_from == b'["tactic-0"]'  # type: ignore[union-attr]
    assert json.loads(timing.read_bytes()) == ["tactic-0", "tactic-1"]


def test_engine_cache_hit_skips_build(
    trt: ModuleType, cudart: ModuleType, artifact: ModelArtifact, tmp_path: Path
) -> None:
    root = tmp_path / "c"
    first = _adapter(trt, cudart, root).load(artifact, AdapterOptions(device="cuda"))
    assert first.describe().options["engine_cache_hit"] is False
    engines = sorted((root / "tensorrt" / "engines").glob("*.engine"))
    assert len(engines) == 1
    key = json.loads(engines[0].with_suffix(".json").read_text())
    assert key["model_sha256"] == artifact.sha256
    assert key["gpu"] == "NVIDIA Fake GPU" and key["compute_capability"] == "8.7"
    assert key["tensorrt"] == fake.__version__ and key["dla_core"] is None

    with mock.patch.object(fake.Builder, "build_serialized_network") as build:
        second = _adapter(trt, cudart, root).load(artifact, AdapterOptions(device="cuda"))
    build.assert_not_called()
    opts = second.describe().options
    assert opts["engine_cache_hit"] is True
    assert opts["timing_cache_hit"] == "not used (engine from cache)"
    out = second.run(second.prepare({"x": np.ones((1, 4), np.float32)}))
    np.testing.assert_array_equal(out[0], np.full((1, 4), 2, np.float32))


def test_engine_key_separates_gpus(
    trt: ModuleType, artifact: ModelArtifact, tmp_path: Path
) -> None:
    root = tmp_path / "c"
    _adapter(trt, fake.make_cudart(cc=(8, 7)), root).load(artifact, AdapterOptions(device="cuda"))
    _adapter(trt, fake.make_cudart(cc=(9, 0)), root).load(artifact, AdapterOptions(device="cuda"))
    assert len(list((root / "tensorrt" / "engines").glob("*.engine"))) == 2


def test_corrupt_cached_engine_is_rebuilt(
    trt: ModuleType, cudart: ModuleType, artifact: ModelArtifact, tmp_path: Path
) -> None:
    root = tmp_path / "c"
    _adapter(trt, cudart, root).load(artifact, AdapterOptions(device="cuda"))
    (engine,) = (root / "tensorrt" / "engines").glob("*.engine")
    engine.write_bytes(b"garbage")
    s = _adapter(trt, cudart, root).load(artifact, AdapterOptions(device="cuda"))
    assert s.describe().options["engine_cache_hit"] is False
    assert engine.read_bytes().startswith(b"{")


@pytest.mark.parametrize("core", [0, 1])
def test_dla_device_sets_dla_config(
    trt: ModuleType, cudart: ModuleType, artifact: ModelArtifact, tmp_path: Path, core: int
) -> None:
    s = _adapter(trt, cudart, tmp_path).load(artifact, AdapterOptions(device=f"dla:{core}"))
    cfg = _config(trt)
    assert cfg.default_device_type == fake.DeviceType.DLA
    assert cfg.DLA_core == core
    assert fake.BuilderFlag.GPU_FALLBACK in cfg.flags
    d = s.describe()
    assert d.execution_provider == f"TensorRT DLA core {core}"
    assert d.device == f"dla:{core}" and d.options["gpu_fallback"] is True
    assert "cudaSetDevice(0)" in cudart.calls


def test_parser_errors_are_one_line_model_error(
    trt: ModuleType, cudart: ModuleType, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not json")
    art = ModelArtifact(path=bad, sha256="b" * 64, format="onnx", weights="none", name="b")
    with pytest.raises(ModelError, match=r"ONNX parser rejected .*\(\+1 more\)") as err:
        _adapter(trt, cudart, tmp_path).load(art, AdapterOptions(device="cuda"))
    assert "\n" not in str(err.value)


def test_prepare_run_data_flow_and_synchronise(
    trt: ModuleType, cudart: ModuleType, artifact: ModelArtifact, tmp_path: Path
) -> None:
    s = _adapter(trt, cudart, tmp_path).load(artifact, AdapterOptions(device="cuda"))
    assert [i.name for i in s.inputs()] == ["x"] and s.inputs()[0].shape == [None, 4]
    assert s.outputs()[0].dtype == "float32"
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.ones((1, 4), np.float32)
    pa, pb = s.prepare({"x": a}), s.prepare({"x": b})  # both batches live at once
    assert s.describe().options["h2d_copy_ms"] is not None
    cudart.calls.clear()
    out_a = s.run(pa)
    assert cudart.calls[-1] == "cudaStreamSynchronize"
    assert "cudaMemcpyAsync(cudaMemcpyDeviceToHost)" in cudart.calls
    assert "cudaMemcpyAsync(cudaMemcpyHostToDevice)" not in cudart.calls  # h2d is untimed
    np.testing.assert_array_equal(out_a[0], 2 * a)
    np.testing.assert_array_equal(s.run(pb)[0], 2 * b)
    np.testing.assert_array_equal(s.run(pa)[0], 2 * a)
    with pytest.raises(ModelError, match="no input 'x'"):
        s.prepare({"z": b})
    s.close()
    assert cudart.calls.count("cudaFree") == 3  # two input buffers, one output buffer
    assert cudart.calls[-1] == "cudaStreamDestroy"


def test_run_without_synchronise_would_read_garbage(
    trt: ModuleType, cudart: ModuleType, artifact: ModelArtifact, tmp_path: Path
) -> None:
    """The fake only executes queued stream work on synchronise, like CUDA."""
    s = _adapter(trt, cudart, tmp_path).load(artifact, AdapterOptions(device="cuda"))
    p = s.prepare({"x": np.ones((1, 4), np.float32)})
    with mock.patch.object(cudart, "cudaStreamSynchronize", return_value=(fake.cudaError_t(0),)):
        out = s.run(p)
    assert not np.array_equal(out[0], np.full((1, 4), 2, np.float32))


def test_describe(
    trt: ModuleType, cudart: ModuleType, artifact: ModelArtifact, tmp_path: Path
) -> None:
    d = _adapter(trt, cudart, tmp_path).load(artifact, AdapterOptions(device="cuda:0")).describe()
    assert (d.adapter, d.runtime, d.runtime_version) == ("tensorrt", "tensorrt", "10.3.0")
    assert d.execution_provider == "TensorRT" and d.device == "cuda:0"
    for k in ("workspace_bytes", "timing_cache_hit", "engine_cache_hit", "h2d_copy_ms"):
        assert k in d.options


@pytest.mark.parametrize("device", ["cpu", "gpu", "dla", "dla:x", "cuda:"])
def test_unknown_device_is_config_error(
    trt: ModuleType, cudart: ModuleType, artifact: ModelArtifact, tmp_path: Path, device: str
) -> None:
    with pytest.raises(ConfigError, match="unknown device"):
        _adapter(trt, cudart, tmp_path).load(artifact, AdapterOptions(device=device))


def test_no_cuda_device_is_unavailable(
    trt: ModuleType, artifact: ModelArtifact, tmp_path: Path
) -> None:
    with pytest.raises(UnavailableError, match="no CUDA device"):
        _adapter(trt, fake.make_cudart(device_count=0), tmp_path).load(
            artifact, AdapterOptions(device="cuda")
        )
    with pytest.raises(UnavailableError, match="cuda:3 does not exist"):
        _adapter(trt, fake.make_cudart(), tmp_path).load(artifact, AdapterOptions(device="cuda:3"))


def test_wrong_format_is_config_error(
    trt: ModuleType, cudart: ModuleType, artifact: ModelArtifact, tmp_path: Path
) -> None:
    art = artifact.model_copy(update={"format": "tflite"})
    with pytest.raises(ConfigError, match="ONNX"):
        _adapter(trt, cudart, tmp_path).load(art, AdapterOptions(device="cuda"))


def test_unavailable_without_the_module(
    monkeypatch: pytest.MonkeyPatch, artifact: ModelArtifact
) -> None:
    monkeypatch.setattr(trt_adapter, "_import_trt", lambda: None)
    ok, reason = TensorRtAdapter.is_available("cuda")
    assert not ok
    assert reason == (
        "tensorrt not installed: pip install 'wattbench[tensorrt]' "
        "(NVIDIA's wheels; on Jetson it comes with JetPack)"
    )
    assert TensorRtAdapter.runtime_version() is None
    with pytest.raises(UnavailableError, match="tensorrt not installed"):
        TensorRtAdapter().load(artifact, AdapterOptions(device="cuda"))


def test_is_available_with_fakes(monkeypatch: pytest.MonkeyPatch, trt: ModuleType) -> None:
    monkeypatch.setattr(trt_adapter, "_import_trt", lambda: trt)
    monkeypatch.setattr(trt_adapter, "_import_cudart", lambda: fake.make_cudart())
    assert TensorRtAdapter.is_available("cuda") == (
        True,
        "tensorrt 10.3.0, NVIDIA Fake GPU (sm 8.7), cuda",
    )
    assert TensorRtAdapter.is_available("dla:1").available
    assert "does not exist" in TensorRtAdapter.is_available("dla:2").reason
    assert "unknown device" in TensorRtAdapter.is_available("cpu").reason
    monkeypatch.setattr(trt_adapter, "_import_cudart", lambda: fake.make_cudart(device_count=0))
    ok, reason = TensorRtAdapter.is_available("cuda")
    assert not ok and reason.startswith("no CUDA device")
    assert TensorRtAdapter.default_device == "cuda" and TensorRtAdapter.formats == ("onnx",)


def test_adapter_options_override_workspace_batch_and_calibration(
    trt: ModuleType, cudart: ModuleType, artifact: ModelArtifact, tmp_path: Path
) -> None:
    calib = tmp_path / "calib.cache"
    calib.write_bytes(b"TRT-1003-EntropyCalibration2\n")
    extra = {"workspace_mib": "64", "max_batch": "4", "calibration_cache": str(calib)}
    s = _adapter(trt, cudart, tmp_path / "c").load(
        artifact, AdapterOptions(device="cuda", precision="int8", extra=extra)
    )
    cfg = _config(trt)
    assert cfg.pool_limits[fake.MemoryPoolType.WORKSPACE] == 64 << 20
    assert cfg.profiles[0].shapes == {"x": ((1, 4), (4, 4), (4, 4))}
    calibrator: Any = cfg.int8_calibrator
    assert calibrator.read_calibration_cache() == calib.read_bytes()
    opts = s.describe().options
    assert opts["workspace_bytes"] == 64 << 20
    assert opts["adapter_options"] == extra


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"workspace": "64"}, "unknown --adapter-opt workspace for tensorrt (known: calibration"),
        ({"max_batch": "0"}, "integer >= 1"),
    ],
)
def test_bad_adapter_options_fail_before_building(
    trt: ModuleType,
    cudart: ModuleType,
    artifact: ModelArtifact,
    tmp_path: Path,
    extra: dict[str, str],
    fragment: str,
) -> None:
    with pytest.raises(ConfigError) as err:
        _adapter(trt, cudart, tmp_path).load(artifact, AdapterOptions(device="cuda", extra=extra))
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert not trt.Builder.instances

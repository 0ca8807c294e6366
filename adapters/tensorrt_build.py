"""TensorRT engine building for the native TensorRT adapter: ONNX → serialized engine, cached.

Written against the TensorRT 10 Python API (``tensorrt``); the module is passed in
(:mod:`wattbench.adapters.tensorrt` imports it, or tests hand in a double).

Engine build (once per machine, then cached):

* ``trt.Builder(logger).create_network(0)`` (explicit batch is the only mode in
  TensorRT 10), ``trt.OnnxParser(network, logger).parse(bytes)``.
* precision: fp32 sets no flag; fp16 sets ``BuilderFlag.FP16``; int8 sets
  ``BuilderFlag.INT8`` (and FP16, so layers without int8 kernels need not fall
  back to fp32) with a calibrator that only *reads* a calibration cache file
  (``calibration_cache=``); wattbench does not calibrate.
* a persistent timing cache per (TensorRT version, GPU) under
  ``<cache>/tensorrt/timing/``, loaded with ``config.create_timing_cache`` /
  ``set_timing_cache`` and written back after every build.
* dynamic input dimensions get one optimisation profile: a dynamic dim 0 is
  the batch, ``min=1, opt=max=max_batch``; other dynamic dims must be fixed with
  ``input_shapes=``.
* the serialized engine is stored under ``<cache>/tensorrt/engines/<key>.engine``
  where ``<key>`` hashes (model sha256, TensorRT version, GPU name and compute
  capability, precision, input shapes/max batch, DLA core, calibration-cache
  sha256), so a second load deserializes instead of building.
* DLA (``dla:0`` / ``dla:1``, Jetson) sets ``config.default_device_type =
  DeviceType.DLA``, ``config.DLA_core`` and ``BuilderFlag.GPU_FALLBACK`` (layers
  the DLA cannot run go to the GPU), and ``runtime.DLA_core`` before deserializing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from wattbench.core.adapter import ModelArtifact
from wattbench.core.errors import ConfigError, ModelError

#: default builder workspace pool limit (bytes)
DEFAULT_WORKSPACE = 1 << 30


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)  # readers never see a half-written engine
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in text)


def _make_calibrator(trt: ModuleType, cache_bytes: bytes) -> Any:
    """An IInt8EntropyCalibrator2 that serves a calibration cache and has no batches."""

    class _CacheCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)  # pybind11 needs the explicit base init
            self._cache = cache_bytes

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: Sequence[str]) -> None:
            return None  # no data: TensorRT uses the cache

        def read_calibration_cache(self) -> bytes:
            return self._cache

        def write_calibration_cache(self, cache: Any) -> None:
            return None

    return _CacheCalibrator()


@dataclass
class BuildInfo:
    """How the engine was obtained, reported by the session's describe()."""

    engine_cache_hit: bool
    timing_cache_hit: bool | None  # None: no build, timing cache not consulted
    engine_path: Path
    gpu: str
    compute_capability: str
    extra: dict[str, Any] = field(default_factory=dict)


def read_calibration_cache(precision: str, calibration_cache: Path | None) -> bytes | None:
    """The int8 calibration cache's bytes (None unless ``precision`` is int8)."""
    if precision != "int8":
        return None
    if calibration_cache is None:
        raise ConfigError(
            "int8 needs a TensorRT calibration cache: produce one with "
            "`trtexec --onnx=MODEL --int8 --calib=FILE` (or polygraphy convert "
            "--int8 --calibration-cache FILE) and pass "
            "--adapter-opt calibration_cache=FILE"
        )
    try:
        return Path(calibration_cache).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read calibration cache {calibration_cache}: "
            f"{exc.strerror or exc}; pass an existing file"
        ) from exc


def load_or_build_engine(
    trt: ModuleType,
    artifact: ModelArtifact,
    *,
    root: Path,
    precision: str,
    dla_core: int | None,
    calib: bytes | None,
    gpu: str,
    cc: str,
    workspace: int,
    max_batch: int,
    input_shapes: Mapping[str, tuple[int, ...]],
) -> tuple[Any, BuildInfo]:
    """Deserialize the cached engine under ``root`` or build (and cache) a new one."""
    key = {
        "model_sha256": artifact.sha256,
        "tensorrt": str(trt.__version__),
        "gpu": gpu,
        "compute_capability": cc,
        "precision": precision,
        "input_shapes": {k: list(v) for k, v in sorted(input_shapes.items())},
        "max_batch": max_batch,
        "dla_core": dla_core,
        "calibration_sha256": None if calib is None else hashlib.sha256(calib).hexdigest(),
        "workspace": workspace,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    engine_path = root / "engines" / f"{digest}.engine"
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    if dla_core is not None:
        runtime.DLA_core = dla_core

    engine = None
    info = BuildInfo(False, None, engine_path, gpu, cc)
    if engine_path.is_file():
        engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        info.engine_cache_hit = engine is not None
    if engine is None:  # no cached engine, or a stale/corrupt one: build
        blob, info.timing_cache_hit = build_engine(
            trt,
            logger,
            artifact,
            root=root,
            precision=precision,
            dla_core=dla_core,
            calib=calib,
            gpu=gpu,
            cc=cc,
            workspace=workspace,
            max_batch=max_batch,
            input_shapes=input_shapes,
        )
        _atomic_write(engine_path, blob)
        _atomic_write(engine_path.with_suffix(".json"), json.dumps(key, indent=1).encode())
        engine = runtime.deserialize_cuda_engine(blob)
        if engine is None:
            raise ModelError(
                f"TensorRT built but could not deserialize the engine for {artifact.path}: "
                f"see the TensorRT log; delete {engine_path.parent} and retry"
            )
    return engine, info


def build_engine(
    trt: ModuleType,
    logger: Any,
    artifact: ModelArtifact,
    *,
    root: Path,
    precision: str,
    dla_core: int | None,
    calib: bytes | None,
    gpu: str,
    cc: str,
    workspace: int,
    max_batch: int,
    input_shapes: Mapping[str, tuple[int, ...]],
) -> tuple[bytes, bool]:
    """Serialized engine bytes and whether a timing cache was found on disk."""
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the default
    parser = trt.OnnxParser(network, logger)
    try:
        data = artifact.path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {artifact.path}: {exc.strerror or exc}") from exc
    if not parser.parse(data):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        first = errors[0].strip().splitlines()[0] if errors and errors[0].strip() else "?"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ModelError(
            f"TensorRT's ONNX parser rejected {artifact.path}: {first}{more} "
            f"(unsupported op or opset? re-export the model or use the onnxruntime adapter)"
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _make_calibrator(trt, calib or b"")
    if dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    add_profile(trt, builder, network, config, artifact, max_batch, input_shapes)

    timing_path = root / "timing" / _slug(f"{trt.__version__}-{gpu}-sm{cc}.cache")
    timing_hit = timing_path.is_file()
    cache = config.create_timing_cache(timing_path.read_bytes() if timing_hit else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    try:
        blob = builder.build_serialized_network(network, config)
    except Exception as exc:  # pybind11 surfaces builder failures as RuntimeError/TypeError
        raise ModelError(
            f"TensorRT could not build an engine for {artifact.path}: {_first_line(exc)}"
        ) from exc
    if blob is None:
        raise ModelError(
            f"TensorRT could not build an engine for {artifact.path} at {precision}: "
            f"see the TensorRT log above (try fp32, a larger workspace=, or device cuda)"
        )
    _atomic_write(timing_path, bytes(cache.serialize()))
    return bytes(blob), timing_hit


def add_profile(
    trt: ModuleType,
    builder: Any,
    network: Any,
    config: Any,
    artifact: ModelArtifact,
    max_batch: int,
    input_shapes: Mapping[str, tuple[int, ...]],
) -> None:
    """One optimisation profile when any input has a dynamic (-1) dimension."""
    profile = None
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = tuple(int(d) for d in tensor.shape)
        fixed = input_shapes.get(tensor.name)
        if fixed is not None:
            lo = opt = hi = fixed
        elif all(d >= 0 for d in dims):
            continue
        elif any(d < 0 for d in dims[1:]):
            raise ConfigError(
                f"{artifact.path} input {tensor.name!r} has dynamic dims {list(dims)} beyond "
                f"the batch: pass TensorRtAdapter(input_shapes={{{tensor.name!r}: [...]}})"
            )
        else:
            lo = (1, *dims[1:])
            opt = hi = (max_batch, *dims[1:])
        if profile is None:
            profile = builder.create_optimization_profile()
        profile.set_shape(tensor.name, lo, opt, hi)
    if profile is not None:
        config.add_optimization_profile(profile)

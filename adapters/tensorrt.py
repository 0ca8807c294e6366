"""Native TensorRT adapter: ONNX → serialized engine (cached on disk) → CUDA stream.

Written against the TensorRT 10 Python API (``tensorrt``) and NVIDIA's
``cuda-python`` runtime bindings (``cuda.bindings.runtime``, or the older
``cuda.cudart``), whose calls return ``(cudaError_t, *results)`` tuples.

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

Devices: ``cuda`` / ``cuda:N`` run on GPU N; ``dla:0`` / ``dla:1`` (Jetson) set
``config.default_device_type = DeviceType.DLA``, ``config.DLA_core`` and
``BuilderFlag.GPU_FALLBACK`` (layers the DLA cannot run go to the GPU), and
``runtime.DLA_core`` before deserializing.

Timing semantics (what the harness's timed region contains):

* :meth:`TensorRtSession.prepare` (not timed) allocates device buffers for one
  batch, copies host→device on the session's stream and synchronises. The copy
  time is measured and reported in ``describe().options["h2d_copy_ms"]``, so it
  is reported apart from compute. Every prepared batch owns its own input
  buffers (the harness prepares all batches before timing); they are freed by
  :meth:`TensorRtSession.close`.
* :meth:`TensorRtSession.run` (timed) binds the buffers, calls
  ``execute_async_v3`` on the stream, enqueues the device→host copy of the
  outputs and synchronises the stream. The copy back is inside the timed region
  because a result only exists once materialised on the host (and without the
  synchronise the clock would stop when work is *queued*, not done); for a
  classifier it is a few KB. The outputs are not pinned host memory.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from wattbench.adapters.options import check_keys, positive_int
from wattbench.core.adapter import (
    Adapter,
    AdapterDescription,
    AdapterOptions,
    ModelArtifact,
    Session,
    TensorSpec,
)
from wattbench.core.availability import Availability
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ConfigError, ModelError, UnavailableError

INSTALL_HINT = (
    "pip install 'wattbench[tensorrt]' (NVIDIA's wheels; on Jetson it comes with JetPack)"
)
CUDA_HINT = "pip install 'wattbench[tensorrt]' (pulls cuda-python)"
_DEVICES_HINT = "use cuda, cuda:N, dla:0 or dla:1"
#: default builder workspace pool limit (bytes)
DEFAULT_WORKSPACE = 1 << 30

#: --adapter-opt keys this adapter understands, with their values
KNOWN_OPTIONS = {
    "calibration_cache": "PATH of an int8 calibration cache (trtexec/polygraphy)",
    "workspace_mib": "N >= 1, builder workspace limit, default 1024",
    "max_batch": "N >= 1, the optimisation profile's largest batch, default 1",
}


def _import_trt() -> ModuleType | None:
    # importlib keeps mypy from analysing (or requiring) tensorrt: it is an optional extra.
    try:
        return importlib.import_module("tensorrt")
    except ImportError:
        return None


def _import_cudart() -> ModuleType | None:
    """cuda-python's runtime bindings: ``cuda.bindings.runtime`` (12.6+) or ``cuda.cudart``."""
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _parse_device(device: str) -> tuple[str, int] | None:
    """``cuda`` → ("cuda", 0), ``cuda:1`` → ("cuda", 1), ``dla:0`` → ("dla", 0)."""
    base, sep, index = device.partition(":")
    if base == "cuda" and not sep:
        return "cuda", 0
    if base in ("cuda", "dla") and sep and index.isdigit():
        return base, int(index)
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _CudaError(Exception):
    pass


def _check(cudart: ModuleType, result: Any, what: str) -> Any:
    """Unpack cuda-python's ``(err, *values)``; raise _CudaError unless err is cudaSuccess."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise _CudaError(f"{what} failed with {getattr(err, 'name', err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _gpu(cudart: ModuleType, index: int) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of CUDA device ``index``."""
    prop = _check(cudart, cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = prop.name
    if isinstance(name, bytes):
        name = name.split(b"\0", 1)[0].decode(errors="replace")
    return str(name).strip(), f"{prop.major}.{prop.minor}"


def _device_problem(cudart: ModuleType | None, index: int) -> str | None:
    if cudart is None:
        return f"cuda-python not installed (TensorRT needs it here for CUDA memory): {CUDA_HINT}"
    try:
        count = _check(cudart, cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
    except _CudaError as exc:
        return f"no CUDA device ({exc}): check the NVIDIA driver"
    if not count:
        return "no CUDA device: TensorRT needs an NVIDIA GPU (check the driver)"
    if index >= count:
        return f"cuda:{index} does not exist: {count} CUDA device(s) visible (use cuda:0)"
    return None


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
class _Prepared:
    """One batch on the device: input pointers and shapes, owned by the session."""

    inputs: dict[str, tuple[int, tuple[int, ...]]]  # name -> (device ptr, shape)
    h2d_ms: float


@dataclass
class _BuildInfo:
    engine_cache_hit: bool
    timing_cache_hit: bool | None  # None: no build, timing cache not consulted
    engine_path: Path
    gpu: str
    compute_capability: str
    extra: dict[str, Any] = field(default_factory=dict)


class TensorRtSession(Session):
    """A deserialized engine with one execution context on one CUDA stream."""

    def __init__(
        self,
        trt: ModuleType,
        cudart: ModuleType,
        engine: Any,
        options: AdapterOptions,
        dla_core: int | None,
        workspace: int,
        info: _BuildInfo,
    ) -> None:
        self._trt = trt
        self._cudart = cudart
        self._engine = engine
        self._options = options
        self._dla_core = dla_core
        self._workspace = workspace
        self._info = info
        self._context = engine.create_execution_context()
        if self._context is None:
            raise UnavailableError(
                "TensorRT could not create an execution context (out of GPU memory?): "
                "close other GPU processes or use a smaller batch"
            )
        self._stream = self._cuda(cudart.cudaStreamCreate(), "cudaStreamCreate")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        mode_in = trt.TensorIOMode.INPUT
        self._in_names = [n for n in names if engine.get_tensor_mode(n) == mode_in]
        self._out_names = [n for n in names if engine.get_tensor_mode(n) != mode_in]
        self._np_dtype = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        self._allocations: list[int] = []
        self._out_buffers: dict[str, tuple[int, int]] = {}  # name -> (ptr, nbytes)
        self._last_h2d_ms: float | None = None

    def _cuda(self, result: Any, what: str) -> Any:
        try:
            return _check(self._cudart, result, what)
        except _CudaError as exc:
            raise UnavailableError(f"CUDA error: {exc}: check the GPU and driver") from exc

    def _spec(self, name: str) -> TensorSpec:
        dims = [int(d) for d in self._engine.get_tensor_shape(name)]
        shape: list[int | str | None] = [d if d >= 0 else None for d in dims]
        return TensorSpec(name=name, shape=shape, dtype=self._np_dtype[name].name)

    def inputs(self) -> list[TensorSpec]:
        return [self._spec(n) for n in self._in_names]

    def outputs(self) -> list[TensorSpec]:
        return [self._spec(n) for n in self._out_names]

    def _malloc(self, nbytes: int) -> int:
        ptr = int(self._cuda(self._cudart.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))
        self._allocations.append(ptr)
        return ptr

    def prepare(self, feed: Mapping[str, np.ndarray]) -> _Prepared:
        """Copy one batch host→device (not timed); the copy time goes to describe()."""
        cudart = self._cudart
        hosts: dict[str, np.ndarray] = {}
        for name in self._in_names:
            if name not in feed:
                raise ModelError(
                    f"no input {name!r} in the feed (got {', '.join(feed) or 'none'}): "
                    f"the engine takes {', '.join(self._in_names)}"
                )
            hosts[name] = np.ascontiguousarray(feed[name], dtype=self._np_dtype[name])
        ptrs = {name: self._malloc(arr.nbytes) for name, arr in hosts.items()}
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        start = time.perf_counter()
        for name, arr in hosts.items():
            self._cuda(
                cudart.cudaMemcpyAsync(ptrs[name], arr.ctypes.data, arr.nbytes, h2d, self._stream),
                "cudaMemcpyAsync(host→device)",
            )
        self._cuda(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        h2d_ms = (time.perf_counter() - start) * 1e3
        self._last_h2d_ms = h2d_ms
        return _Prepared({n: (ptrs[n], tuple(hosts[n].shape)) for n in hosts}, h2d_ms)

    def _out_ptr(self, name: str, nbytes: int) -> int:
        have = self._out_buffers.get(name)
        if have is not None and have[1] >= nbytes:
            return have[0]
        ptr = self._malloc(nbytes)
        self._out_buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, prepared: Any) -> Sequence[np.ndarray]:
        """execute_async_v3 + device→host copy of the outputs + stream synchronise."""
        cudart, ctx = self._cudart, self._context
        for name, (ptr, shape) in prepared.inputs.items():
            if not ctx.set_input_shape(name, shape):
                raise ModelError(
                    f"TensorRT rejected input shape {list(shape)} for {name!r}: the engine "
                    f"was built for {list(self._engine.get_tensor_shape(name))} "
                    f"(raise max_batch= or set input_shapes= on the adapter)"
                )
            ctx.set_tensor_address(name, ptr)
        outs: list[tuple[np.ndarray, int]] = []
        for name in self._out_names:
            host = np.empty(tuple(ctx.get_tensor_shape(name)), dtype=self._np_dtype[name])
            ptr = self._out_ptr(name, host.nbytes)
            ctx.set_tensor_address(name, ptr)
            outs.append((host, ptr))
        if not ctx.execute_async_v3(int(self._stream)):
            raise ModelError("TensorRT execute_async_v3 failed: see the TensorRT log above")
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for host, ptr in outs:
            self._cuda(
                cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, d2h, self._stream),
                "cudaMemcpyAsync(device→host)",
            )
        self._cuda(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return [host for host, _ in outs]

    def describe(self) -> AdapterDescription:
        info = self._info
        provider = "TensorRT" if self._dla_core is None else f"TensorRT DLA core {self._dla_core}"
        opts: dict[str, Any] = {
            "workspace_bytes": self._workspace,
            "engine_cache_hit": info.engine_cache_hit,
            "timing_cache_hit": (
                "not used (engine from cache)"
                if info.timing_cache_hit is None
                else info.timing_cache_hit
            ),
            "engine_path": str(info.engine_path),
            "gpu": info.gpu,
            "compute_capability": info.compute_capability,
            "h2d_copy_ms": self._last_h2d_ms,
            "h2d_copy_timed": False,
            "d2h_copy_in_run": True,
            "stream_synchronize_in_run": True,
            **info.extra,
            "adapter_options": dict(self._options.extra),
        }
        if self._dla_core is not None:
            opts["gpu_fallback"] = True
        return AdapterDescription(
            adapter=TensorRtAdapter.name,
            runtime="tensorrt",
            runtime_version=str(self._trt.__version__),
            device=self._options.device,
            execution_provider=provider,
            precision=self._options.precision,
            options=opts,
        )

    def close(self) -> None:
        cudart = self._cudart
        for ptr in self._allocations:
            cudart.cudaFree(ptr)
        self._allocations.clear()
        self._out_buffers.clear()
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self._context = None
        self._engine = None


class TensorRtAdapter(Adapter):
    """Builds (or loads cached) TensorRT engines from ONNX and runs them on a CUDA stream."""

    name: ClassVar[str] = "tensorrt"
    formats: ClassVar[tuple[str, ...]] = ("onnx",)
    option_keys: ClassVar[Mapping[str, str]] = KNOWN_OPTIONS
    default_device: ClassVar[str] = "cuda"

    def __init__(
        self,
        runtime: ModuleType | None = None,
        cudart: ModuleType | None = None,
        *,
        cache_root: Path | None = None,
        calibration_cache: Path | None = None,
        workspace: int = DEFAULT_WORKSPACE,
        max_batch: int = 1,
        input_shapes: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        # The tensorrt and cuda runtime modules are injectable so tests can hand in doubles.
        self._trt = runtime
        self._cudart = cudart
        self._cache_root = cache_root
        self._calibration_cache = calibration_cache
        self._workspace = workspace
        self._max_batch = max_batch
        self._input_shapes = {k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}

    @classmethod
    def runtime_version(cls) -> str | None:
        trt = _import_trt()
        return None if trt is None else str(trt.__version__)

    @classmethod
    def is_available(cls, device: str = "cuda") -> Availability:
        trt = _import_trt()
        if trt is None:
            return Availability.no(f"tensorrt not installed: {INSTALL_HINT}")
        parsed = _parse_device(device)
        if parsed is None:
            return Availability.no(f"unknown device {device!r} for tensorrt ({_DEVICES_HINT})")
        cudart = _import_cudart()
        kind, index = parsed
        problem = _device_problem(cudart, 0 if kind == "dla" else index)
        if problem is not None:
            return Availability.no(problem)
        assert cudart is not None
        if kind == "dla":
            cores = int(trt.Builder(trt.Logger(trt.Logger.WARNING)).num_DLA_cores)
            if index >= cores:
                return Availability.no(
                    f"dla:{index} does not exist: this device has {cores} DLA core(s) "
                    f"(DLA is on Jetson Xavier/Orin; use cuda)"
                )
        try:
            gpu, cc = _gpu(cudart, 0 if kind == "dla" else index)
        except _CudaError as exc:
            return Availability.no(f"cannot query the CUDA device ({exc}): check the driver")
        return Availability.yes(f"tensorrt {trt.__version__}, {gpu} (sm {cc}), {device}")

    # -- loading ---------------------------------------------------------------------------

    def _runtimes(self) -> tuple[ModuleType, ModuleType]:
        trt = self._trt or _import_trt()
        if trt is None:
            raise UnavailableError(f"tensorrt not installed: {INSTALL_HINT}")
        cudart = self._cudart or _import_cudart()
        if cudart is None:
            raise UnavailableError(f"cuda-python not installed: {CUDA_HINT}")
        self._trt, self._cudart = trt, cudart
        return trt, cudart

    def _root(self) -> Path:
        return (self._cache_root or ModelCache().root) / "tensorrt"

    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> Session:
        """Build or reuse the engine; ``--adapter-opt`` (:data:`KNOWN_OPTIONS`) overrides the
        constructor's calibration cache, workspace and maximum batch."""
        extra = options.extra
        check_keys(self.name, extra, KNOWN_OPTIONS)
        if not extra:
            return self._load(artifact, options)
        workspace = self._workspace
        if "workspace_mib" in extra:
            workspace = positive_int(self.name, "workspace_mib", extra["workspace_mib"]) << 20
        calibration = self._calibration_cache
        if "calibration_cache" in extra:
            calibration = Path(extra["calibration_cache"]).expanduser()
        max_batch = self._max_batch
        if "max_batch" in extra:
            max_batch = positive_int(self.name, "max_batch", extra["max_batch"])
        configured = TensorRtAdapter(
            self._trt,
            self._cudart,
            cache_root=self._cache_root,
            calibration_cache=calibration,
            workspace=workspace,
            max_batch=max_batch,
            input_shapes=self._input_shapes,
        )
        return configured._load(artifact, options)

    def _load(self, artifact: ModelArtifact, options: AdapterOptions) -> Session:
        trt, cudart = self._runtimes()
        if artifact.format not in self.formats:
            raise ConfigError(
                f"tensorrt builds engines from ONNX models, not {artifact.format}: "
                f"pass an .onnx file"
            )
        parsed = _parse_device(options.device)
        if parsed is None:
            raise ConfigError(f"unknown device {options.device!r} for tensorrt ({_DEVICES_HINT})")
        kind, index = parsed
        dla_core = index if kind == "dla" else None
        gpu_index = 0 if kind == "dla" else index
        problem = _device_problem(cudart, gpu_index)
        if problem is not None:
            raise UnavailableError(problem)
        calib: bytes | None = None
        if options.precision == "int8":
            if self._calibration_cache is None:
                raise ConfigError(
                    "int8 needs a TensorRT calibration cache: produce one with "
                    "`trtexec --onnx=MODEL --int8 --calib=FILE` (or polygraphy convert "
                    "--int8 --calibration-cache FILE) and pass "
                    "--adapter-opt calibration_cache=FILE"
                )
            try:
                calib = Path(self._calibration_cache).read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read calibration cache {self._calibration_cache}: "
                    f"{exc.strerror or exc}; pass an existing file"
                ) from exc
        self._cuda(cudart, cudart.cudaSetDevice(gpu_index), "cudaSetDevice")
        try:
            gpu, cc = _gpu(cudart, gpu_index)
        except _CudaError as exc:
            raise UnavailableError(f"cannot query the CUDA device: {exc}") from exc

        key = {
            "model_sha256": artifact.sha256,
            "tensorrt": str(trt.__version__),
            "gpu": gpu,
            "compute_capability": cc,
            "precision": options.precision,
            "input_shapes": {k: list(v) for k, v in sorted(self._input_shapes.items())},
            "max_batch": self._max_batch,
            "dla_core": dla_core,
            "calibration_sha256": None if calib is None else hashlib.sha256(calib).hexdigest(),
            "workspace": self._workspace,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        engine_path = self._root() / "engines" / f"{digest}.engine"
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        if dla_core is not None:
            runtime.DLA_core = dla_core

        engine = None
        info = _BuildInfo(False, None, engine_path, gpu, cc)
        if engine_path.is_file():
            engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
            info.engine_cache_hit = engine is not None
        if engine is None:  # no cached engine, or a stale/corrupt one: build
            blob, info.timing_cache_hit = self._build(
                trt, logger, artifact, options.precision, dla_core, calib, gpu, cc
            )
            _atomic_write(engine_path, blob)
            _atomic_write(engine_path.with_suffix(".json"), json.dumps(key, indent=1).encode())
            engine = runtime.deserialize_cuda_engine(blob)
            if engine is None:
                raise ModelError(
                    f"TensorRT built but could not deserialize the engine for {artifact.path}: "
                    f"see the TensorRT log; delete {engine_path.parent} and retry"
                )
        return TensorRtSession(trt, cudart, engine, options, dla_core, self._workspace, info)

    @staticmethod
    def _cuda(cudart: ModuleType, result: Any, what: str) -> Any:
        try:
            return _check(cudart, result, what)
        except _CudaError as exc:
            raise UnavailableError(f"CUDA error: {exc}: check the GPU and driver") from exc

    def _build(
        self,
        trt: ModuleType,
        logger: Any,
        artifact: ModelArtifact,
        precision: str,
        dla_core: int | None,
        calib: bytes | None,
        gpu: str,
        cc: str,
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
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self._workspace)
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = _make_calibrator(trt, calib or b"")
        if dla_core is not None:
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = dla_core
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        self._add_profile(trt, builder, network, config, artifact)

        timing_path = self._root() / "timing" / _slug(f"{trt.__version__}-{gpu}-sm{cc}.cache")
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

    def _add_profile(
        self, trt: ModuleType, builder: Any, network: Any, config: Any, artifact: ModelArtifact
    ) -> None:
        """One optimisation profile when any input has a dynamic (-1) dimension."""
        profile = None
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            dims = tuple(int(d) for d in tensor.shape)
            fixed = self._input_shapes.get(tensor.name)
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
                opt = hi = (self._max_batch, *dims[1:])
            if profile is None:
                profile = builder.create_optimization_profile()
            profile.set_shape(tensor.name, lo, opt, hi)
        if profile is not None:
            config.add_optimization_profile(profile)

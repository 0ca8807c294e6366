"""Native TensorRT adapter: ONNX → serialized engine (cached on disk) → CUDA stream.

Written against the TensorRT 10 Python API (``tensorrt``) and NVIDIA's
``cuda-python`` runtime bindings (``cuda.bindings.runtime``, or the older
``cuda.cudart``), whose calls return ``(cudaError_t, *results)`` tuples.

The engine build (ONNX parse, builder config, int8 calibration cache, timing and
engine caches) lives in :mod:`wattbench.adapters.tensorrt_build`; this module
holds the adapter and the runtime session.

Devices: ``cuda`` / ``cuda:N`` run on GPU N; ``dla:0`` / ``dla:1`` (Jetson) build
for that DLA core with GPU fallback and set ``runtime.DLA_core`` before
deserializing.

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

import importlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from wattbench.adapters.options import check_keys, positive_int
from wattbench.adapters.tensorrt_build import (
    DEFAULT_WORKSPACE,
    BuildInfo,
    load_or_build_engine,
    read_calibration_cache,
)
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


@dataclass
class _Prepared:
    """One batch on the device: input pointers and shapes, owned by the session."""

    inputs: dict[str, tuple[int, tuple[int, ...]]]  # name -> (device ptr, shape)
    h2d_ms: float


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
        info: BuildInfo,
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
        calib = read_calibration_cache(options.precision, self._calibration_cache)
        self._cuda(cudart, cudart.cudaSetDevice(gpu_index), "cudaSetDevice")
        try:
            gpu, cc = _gpu(cudart, gpu_index)
        except _CudaError as exc:
            raise UnavailableError(f"cannot query the CUDA device: {exc}") from exc

        engine, info = load_or_build_engine(
            trt,
            artifact,
            root=self._root(),
            precision=options.precision,
            dla_core=dla_core,
            calib=calib,
            gpu=gpu,
            cc=cc,
            workspace=self._workspace,
            max_batch=self._max_batch,
            input_shapes=self._input_shapes,
        )
        return TensorRtSession(trt, cudart, engine, options, dla_core, self._workspace, info)

    @staticmethod
    def _cuda(cudart: ModuleType, result: Any, what: str) -> Any:
        try:
            return _check(cudart, result, what)
        except _CudaError as exc:
            raise UnavailableError(f"CUDA error: {exc}: check the GPU and driver") from exc

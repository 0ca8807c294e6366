"""A faithful fake of TensorRT 10's Python API and cuda-python's runtime bindings.

TensorRT needs an NVIDIA GPU and NVIDIA's package index, so the real modules
cannot be installed (or ``create_autospec``'d) here. These classes mirror the
names and semantics the adapter uses, as documented for TensorRT 10
(docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api: IBuilder,
IBuilderConfig, INetworkDefinition, OnnxParser, ITimingCache, IRuntime,
ICudaEngine, IExecutionContext) and cuda-python (``cuda.bindings.runtime``:
every call returns ``(cudaError_t, *values)``):

* ``Builder.create_network(0)``; ``OnnxParser.parse(bytes) -> bool`` with
  ``num_errors`` / ``get_error(i)``; ``build_serialized_network`` returns
  serialized bytes (``IHostMemory``) or ``None`` on failure.
* ``IBuilderConfig``: ``set_flag``/``get_flag``, ``set_memory_pool_limit``,
  ``int8_calibrator``, ``default_device_type``, ``DLA_core``,
  ``create_timing_cache(blob)`` / ``set_timing_cache(cache, ignore_mismatch)``,
  ``add_optimization_profile``.
* ``Runtime.deserialize_cuda_engine(bytes)`` returns ``None`` for bad bytes.
* ``IExecutionContext.execute_async_v3(stream_handle: int) -> bool`` only
  *enqueues* work; like real CUDA, nothing happens until the stream is
  synchronised, so an adapter that forgets ``cudaStreamSynchronize`` reads
  garbage.

The "ONNX model" the fake parser reads is JSON, not protobuf::

    {"inputs": [{"name": "x", "shape": [-1, 4], "dtype": "float32"}],
     "outputs": [{"name": "y", "shape": [-1, 4], "dtype": "float32"}]}

and "the engine" computes every output as ``2 * input`` (first input) with
numpy, so tests can check the data flow end to end. Device memory is real host
memory (numpy buffers) addressed by raw pointers; copies are ``ctypes.memmove``.
"""

from __future__ import annotations

import ctypes
import enum
import json
import types
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

__version__ = "10.3.0"

# -- tensorrt ---------------------------------------------------------------------------


class BuilderFlag(enum.Enum):
    FP16 = 0
    INT8 = 1
    GPU_FALLBACK = 2
    TF32 = 3


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1


class DeviceType(enum.Enum):
    GPU = 0
    DLA = 1


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3


_NP = {
    DataType.FLOAT: np.float32,
    DataType.HALF: np.float16,
    DataType.INT8: np.int8,
    DataType.INT32: np.int32,
}
_FROM_NP = {
    "float32": DataType.FLOAT,
    "float16": DataType.HALF,
    "int8": DataType.INT8,
    "int32": DataType.INT32,
}


def nptype(dtype: DataType) -> type:
    return _NP[dtype]


class Logger:
    WARNING = 2
    INFO = 3

    def __init__(self, min_severity: int = WARNING) -> None:
        self.min_severity = min_severity


class IInt8EntropyCalibrator2:
    def __init__(self) -> None:
        pass


class ITensor:
    def __init__(self, name: str, shape: Sequence[int], dtype: DataType) -> None:
        self.name = name
        self.shape = tuple(shape)
        self.dtype = dtype


class INetworkDefinition:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.inputs: list[ITensor] = []
        self.outputs: list[ITensor] = []

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, i: int) -> ITensor:
        return self.inputs[i]


class ParserError:
    def __init__(self, desc: str) -> None:
        self._desc = desc

    def desc(self) -> str:
        return self._desc

    def __str__(self) -> str:
        return f"In node -1 (parse): INVALID_GRAPH: {self._desc}"


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
        self._network = network
        self._errors: list[ParserError] = []

    def parse(self, model: bytes) -> bool:
        try:
            meta = json.loads(model)
            for s in meta["inputs"]:
                self._network.inputs.append(ITensor(s["name"], s["shape"], _FROM_NP[s["dtype"]]))
            for s in meta["outputs"]:
                self._network.outputs.append(ITensor(s["name"], s["shape"], _FROM_NP[s["dtype"]]))
        except (ValueError, KeyError, TypeError) as exc:
            self._errors = [
                ParserError(f"Failed to parse ONNX model: {exc}"),
                ParserError("second error"),
            ]
            return False
        return True

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]


class ITimingCache:
    def __init__(self, blob: bytes) -> None:
        self.entries: list[str] = json.loads(blob) if blob else []
        self.loaded_from = bytes(blob)

    def serialize(self) -> bytes:
        return json.dumps(self.entries).encode()


class IOptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(
        self, name: str, min: Sequence[int], opt: Sequence[int], max: Sequence[int]
    ) -> None:
        self.shapes[name] = (tuple(min), tuple(opt), tuple(max))


class IBuilderConfig:
    def __init__(self) -> None:
        self.flags: set[BuilderFlag] = set()
        self.pool_limits: dict[MemoryPoolType, int] = {}
        self.int8_calibrator: Any = None
        self.default_device_type = DeviceType.GPU
        self.DLA_core = -1
        self.timing_cache: ITimingCache | None = None
        self.ignore_mismatch: bool | None = None
        self.profiles: list[IOptimizationProfile] = []

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(flag)

    def get_flag(self, flag: BuilderFlag) -> bool:
        return flag in self.flags

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        self.pool_limits[pool] = size

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
        return ITimingCache(serialized_timing_cache)

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        self.timing_cache = cache
        self.ignore_mismatch = ignore_mismatch
        return True

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1


class Builder:
    #: every Builder, so tests can inspect what was built and with which config
    instances: ClassVar[list[Builder]] = []
    num_DLA_cores = 2

    def __init__(self, logger: Logger) -> None:
        self.logger = logger
        self.configs: list[IBuilderConfig] = []
        self.builds = 0
        Builder.instances.append(self)

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        cfg = IBuilderConfig()
        self.configs.append(cfg)
        return cfg

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(
        self, network: INetworkDefinition, config: IBuilderConfig
    ) -> bytes | None:
        self.builds += 1
        if config.timing_cache is not None:
            config.timing_cache.entries.append(f"tactic-{len(config.timing_cache.entries)}")
        if BuilderFlag.INT8 in config.flags and config.int8_calibrator is None:
            return None
        spec = {
            "magic": "fake-trt-engine",
            "inputs": [[t.name, list(t.shape), t.dtype.name] for t in network.inputs],
            "outputs": [[t.name, list(t.shape), t.dtype.name] for t in network.outputs],
        }
        return json.dumps(spec).encode()


class ICudaEngine:
    def __init__(self, spec: dict[str, Any]) -> None:
        self._io: list[tuple[str, tuple[int, ...], DataType, TensorIOMode]] = [
            (n, tuple(s), DataType[d], TensorIOMode.INPUT) for n, s, d in spec["inputs"]
        ] + [(n, tuple(s), DataType[d], TensorIOMode.OUTPUT) for n, s, d in spec["outputs"]]

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    def _find(self, name: str) -> tuple[str, tuple[int, ...], DataType, TensorIOMode]:
        return next(t for t in self._io if t[0] == name)

    def get_tensor_name(self, index: int) -> str:
        return self._io[index][0]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._find(name)[3]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._find(name)[1]

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._find(name)[2]

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
        want = self.engine.get_tensor_shape(name)
        if len(want) != len(shape) or any(
            w >= 0 and w != s for w, s in zip(want, shape, strict=True)
        ):
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if self.engine.get_tensor_mode(name) == TensorIOMode.INPUT:
            return self.shapes[name]
        first_in = self.engine.get_tensor_name(0)
        return self.shapes[first_in]  # the fake engine's outputs mirror its first input

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self.addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        stream = _streams[int(stream_handle)]
        in_name = self.engine.get_tensor_name(0)
        in_dtype = _NP[self.engine.get_tensor_dtype(in_name)]
        shape = self.shapes[in_name]
        src, outs = (
            self.addresses[in_name],
            [
                (self.addresses[n], _NP[self.engine.get_tensor_dtype(n)])
                for n, *_rest, mode in self.engine._io
                if mode == TensorIOMode.OUTPUT
            ],
        )

        def compute() -> None:
            x = _view(src, shape, in_dtype)
            for dst, dtype in outs:
                _view(dst, shape, dtype)[...] = (2 * x).astype(dtype)

        stream.queue.append(compute)
        return True


class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger
        self.DLA_core = -1
        self.deserialized = 0

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
        self.deserialized += 1
        try:
            spec = json.loads(serialized_engine)
        except ValueError:
            return None
        if not isinstance(spec, dict) or spec.get("magic") != "fake-trt-engine":
            return None
        return ICudaEngine(spec)


# -- cuda-python runtime (cuda.bindings.runtime) ----------------------------------------


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorNoDevice = 100


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2


class cudaStream_t:
    def __init__(self, handle: int) -> None:
        self._handle = handle
        self.queue: list[Callable[[], None]] = []
        self.synchronized = 0

    def __int__(self) -> int:
        return self._handle


_streams: dict[int, cudaStream_t] = {}
_memory: dict[int, np.ndarray] = {}


def _view(ptr: int, shape: Sequence[int], dtype: Any) -> np.ndarray:
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = (ctypes.c_char * n).from_address(ptr)
    return np.frombuffer(buf, dtype=dtype).reshape(tuple(shape))


class _DeviceProp:
    def __init__(self, name: bytes, major: int, minor: int) -> None:
        self.name = name
        self.major = major
        self.minor = minor


def make_cudart(
    device_count: int = 1, name: bytes = b"NVIDIA Fake GPU", cc: tuple[int, int] = (8, 7)
) -> types.ModuleType:
    """A ``cuda.bindings.runtime`` double with ``device_count`` GPUs; records its calls."""
    mod = types.ModuleType("fake_cudart")
    mod.cudaError_t = cudaError_t  # type: ignore[attr-defined]
    mod.cudaMemcpyKind = cudaMemcpyKind  # type: ignore[attr-defined]
    calls: list[str] = []
    mod.calls = calls  # type: ignore[attr-defined]
    ok = cudaError_t.cudaSuccess

    def cudaGetDeviceCount() -> tuple[cudaError_t, int]:
        if device_count == 0:
            return cudaError_t.cudaErrorNoDevice, 0
        return ok, device_count

    def cudaSetDevice(device: int) -> tuple[cudaError_t]:
        calls.append(f"cudaSetDevice({device})")
        return (ok,)

    def cudaGetDeviceProperties(device: int) -> tuple[cudaError_t, _DeviceProp]:
        return ok, _DeviceProp(name + b"\0\0", *cc)

    def cudaMalloc(size: int) -> tuple[cudaError_t, int]:
        arr = np.zeros(size, dtype=np.uint8)
        _memory[arr.ctypes.data] = arr
        calls.append("cudaMalloc")
        return ok, arr.ctypes.data

    def cudaFree(ptr: int) -> tuple[cudaError_t]:
        _memory.pop(int(ptr))
        calls.append("cudaFree")
        return (ok,)

    def cudaStreamCreate() -> tuple[cudaError_t, cudaStream_t]:
        stream = cudaStream_t(1000 + len(_streams))
        _streams[int(stream)] = stream
        calls.append("cudaStreamCreate")
        return ok, stream

    def cudaStreamDestroy(stream: cudaStream_t) -> tuple[cudaError_t]:
        calls.append("cudaStreamDestroy")
        return (ok,)

    def cudaMemcpyAsync(
        dst: int, src: int, count: int, kind: cudaMemcpyKind, stream: cudaStream_t
    ) -> tuple[cudaError_t]:
        calls.append(f"cudaMemcpyAsync({kind.name})")

        def copy() -> None:
            ctypes.memmove(int(dst), int(src), count)

        stream.queue.append(copy)
        return (ok,)

    def cudaStreamSynchronize(stream: cudaStream_t) -> tuple[cudaError_t]:
        calls.append("cudaStreamSynchronize")
        while stream.queue:
            stream.queue.pop(0)()
        stream.synchronized += 1
        return (ok,)

    for fn in (
        cudaGetDeviceCount,
        cudaSetDevice,
        cudaGetDeviceProperties,
        cudaMalloc,
        cudaFree,
        cudaStreamCreate,
        cudaStreamDestroy,
        cudaMemcpyAsync,
        cudaStreamSynchronize,
    ):
        setattr(mod, fn.__name__, fn)
    return mod


def make_tensorrt() -> types.ModuleType:
    """A fresh ``tensorrt`` double (Builder.instances reset)."""
    Builder.instances = []
    mod = types.ModuleType("tensorrt")
    for name in (
        "__version__",
        "BuilderFlag",
        "MemoryPoolType",
        "DeviceType",
        "TensorIOMode",
        "DataType",
        "nptype",
        "Logger",
        "IInt8EntropyCalibrator2",
        "OnnxParser",
        "Builder",
        "Runtime",
    ):
        setattr(mod, name, globals()[name])
    return mod

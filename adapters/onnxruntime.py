"""ONNX Runtime adapter (CPU and the CUDA/TensorRT/OpenVINO execution providers).

Settings beyond device/threads/precision come as ``--adapter-opt KEY=VALUE``
(:data:`KNOWN_OPTIONS`); unknown keys are refused.

IO binding (``io_binding``, on by default on every provider) binds each prepared
batch once, in ``prepare`` (not timed): its inputs become OrtValues on the
provider's device (on the CPU they share the prepared arrays' memory; on CUDA and
TensorRT they are uploaded once) and its outputs are bound to host memory, on the
CPU pre-allocated wherever their shape follows from the inputs' (the same symbolic
dimension, or a fixed one). ``run`` is then ``run_with_iobinding`` on that binding
and one copy of each output into a fresh array: no feed dict is validated or
converted and no binding is built in the timed call. The device→host copy of the
outputs *is* timed (a result is only usable once on the host), the input upload is
not. A batch run by two threads at once gets a fresh binding for the second
(offline/server workers may share a batch). ``io_binding=off`` runs
``InferenceSession.run(None, feed)``, which validates and wraps the feed, and on a
GPU provider copies the inputs to the device, inside the timed call.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from wattbench.adapters.options import boolean, check_keys, choice, positive_int
from wattbench.core.adapter import (
    Adapter,
    AdapterDescription,
    AdapterOptions,
    ModelArtifact,
    Session,
    TensorSpec,
)
from wattbench.core.availability import Availability
from wattbench.core.errors import ConfigError, ModelError, UnavailableError

INSTALL_HINT = "pip install 'wattbench[onnxruntime]'"

#: wattbench device name -> ONNX Runtime execution provider
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}

#: --adapter-opt value -> GraphOptimizationLevel member
GRAPH_OPTIMIZATION_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "layout": "ORT_ENABLE_LAYOUT",
    "all": "ORT_ENABLE_ALL",
}

#: --adapter-opt keys this adapter understands, with their values
KNOWN_OPTIONS = {
    "graph_optimization_level": "|".join(GRAPH_OPTIMIZATION_LEVELS) + ", default all",
    "execution_mode": "sequential|parallel, default sequential",
    "inter_op_threads": "N >= 1, used by execution_mode=parallel",
    "io_binding": "on|off, default on (off: InferenceSession.run with a feed dict)",
}

#: providers whose tensors live in CUDA memory (IO binding uploads to device "cuda")
_CUDA_BASES = ("cuda", "tensorrt")

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _import_ort() -> ModuleType | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _specs(args: Sequence[Any]) -> list[TensorSpec]:
    return [
        TensorSpec(name=a.name, shape=list(a.shape), dtype=_ORT_DTYPES.get(a.type, a.type))
        for a in args
    ]


class _Bound:
    """A prepared batch bound once to an IOBinding (inputs and, where possible, outputs)."""

    __slots__ = ("binding", "host", "lock", "outputs", "values")

    def __init__(
        self,
        binding: Any,
        values: dict[str, Any],
        host: dict[str, np.ndarray],
        outputs: list[np.ndarray] | None,
    ) -> None:
        self.binding = binding
        self.values = values  # input name -> OrtValue
        self.host = host  # input name -> the prepared array (CPU OrtValues share its memory)
        self.outputs = outputs  # pre-allocated host outputs bound to the binding, else None
        self.lock = threading.Lock()  # held while a run uses this binding


def _dim_sizes(specs: Sequence[Any], arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Symbolic dimension -> size, read off the fed arrays (``"N" -> 4``)."""
    sizes: dict[str, int] = {}
    for spec in specs:
        arr = arrays.get(spec.name)
        if arr is None or len(spec.shape) != arr.ndim:
            continue
        for dim, n in zip(spec.shape, arr.shape, strict=True):
            if isinstance(dim, str):
                sizes[dim] = int(n)
    return sizes


def _output_shape(spec: Any, sizes: Mapping[str, int]) -> tuple[int, ...] | None:
    """The output's shape when the inputs determine it, else None (ORT allocates it)."""
    shape = []
    for dim in spec.shape:
        if isinstance(dim, int) and dim >= 0:
            shape.append(dim)
        elif isinstance(dim, str) and dim in sizes:
            shape.append(sizes[dim])
        else:
            return None
    return tuple(shape)


class OnnxRuntimeSession(Session):
    def __init__(
        self,
        sess: Any,
        ort: ModuleType,
        options: AdapterOptions,
        provider: str,
        io_binding: bool = False,
        binding_device: tuple[str, int] = ("cpu", 0),
    ):
        self._sess = sess
        self._ort = ort
        self._options = options
        self._provider = provider
        self._io_binding = io_binding
        self._binding_device = binding_device
        self._input_specs = list(sess.get_inputs()) if io_binding else []
        self._output_specs = list(sess.get_outputs()) if io_binding else []
        self._output_names = [o.name for o in self._output_specs]
        # pre-allocated host outputs only for CPU bindings: on a GPU provider ORT copies
        # the outputs to host memory it allocates, as before
        self._preallocate = binding_device[0] == "cpu"
        self._bound_run = sess.run_with_iobinding  # bound once

    def inputs(self) -> list[TensorSpec]:
        return _specs(self._sess.get_inputs())

    def outputs(self) -> list[TensorSpec]:
        return _specs(self._sess.get_outputs())

    def prepare(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | _Bound:
        # contiguous arrays avoid a copy inside run()
        arrays = {k: np.ascontiguousarray(v) for k, v in feed.items()}
        if not self._io_binding:
            return arrays
        kind, index = self._binding_device
        values = {
            k: self._ort.OrtValue.ortvalue_from_numpy(a, kind, index) for k, a in arrays.items()
        }
        binding = self._sess.io_binding()
        for name, value in values.items():
            binding.bind_ortvalue_input(name, value)
        outputs = self._bind_outputs(binding, arrays)
        return _Bound(binding, values, arrays, outputs)

    def _bind_outputs(
        self, binding: Any, arrays: Mapping[str, np.ndarray]
    ) -> list[np.ndarray] | None:
        """Bind host outputs: pre-allocated where the inputs fix their shapes (all or none)."""
        allocated: list[np.ndarray] = []
        if self._preallocate:
            sizes = _dim_sizes(self._input_specs, arrays)
            for spec in self._output_specs:
                shape = _output_shape(spec, sizes)
                dtype = _ORT_DTYPES.get(spec.type)
                if shape is None or dtype is None:
                    break
                allocated.append(np.empty(shape, dtype))
        if self._preallocate and len(allocated) == len(self._output_specs):
            for name, out in zip(self._output_names, allocated, strict=True):
                binding.bind_ortvalue_output(name, self._ort.OrtValue.ortvalue_from_numpy(out))
            return allocated
        for name in self._output_names:
            binding.bind_output(name, "cpu")
        return None

    def _run_fresh(self, prepared: _Bound) -> list[np.ndarray]:
        """A binding of its own, for a batch another thread is running right now."""
        binding = self._sess.io_binding()
        for name, value in prepared.values.items():
            binding.bind_ortvalue_input(name, value)
        for name in self._output_names:
            binding.bind_output(name, "cpu")
        self._bound_run(binding)
        return list(binding.copy_outputs_to_cpu())

    def run(self, prepared: Any) -> Sequence[np.ndarray]:
        if not isinstance(prepared, _Bound):
            return self._sess.run(None, prepared)
        if not prepared.lock.acquire(blocking=False):
            return self._run_fresh(prepared)
        try:
            self._bound_run(prepared.binding)
            if prepared.outputs is not None:
                # copied out: the next run of this batch writes the same memory
                return [o.copy() for o in prepared.outputs]
            return list(prepared.binding.copy_outputs_to_cpu())
        finally:
            prepared.lock.release()

    def describe(self) -> AdapterDescription:
        so = self._sess.get_session_options()
        return AdapterDescription(
            adapter=OnnxRuntimeAdapter.name,
            runtime="onnxruntime",
            runtime_version=self._ort.__version__,
            device=self._options.device,
            execution_provider=self._provider,
            precision=self._options.precision,
            options={
                "intra_op_num_threads": so.intra_op_num_threads or "runtime default",
                "inter_op_num_threads": so.inter_op_num_threads or "runtime default",
                "graph_optimization_level": str(so.graph_optimization_level).split(".")[-1],
                "execution_mode": str(getattr(so, "execution_mode", "ORT_SEQUENTIAL")).split(".")[
                    -1
                ],
                "io_binding": (
                    f"on (inputs on {self._binding_device[0]}:{self._binding_device[1]} bound "
                    f"in prepare; outputs to host inside run, "
                    f"{'pre-allocated' if self._preallocate else 'allocated by ORT'} "
                    f"where the inputs fix their shapes)"
                    if self._io_binding
                    else "off (InferenceSession.run with a feed dict)"
                ),
                "providers": self._sess.get_providers(),
                "adapter_options": dict(self._options.extra),
            },
        )


class OnnxRuntimeAdapter(Adapter):
    """Runs ONNX models with ONNX Runtime; fails when the asked-for provider did not load."""

    name: ClassVar[str] = "onnxruntime"
    formats: ClassVar[tuple[str, ...]] = ("onnx",)
    option_keys: ClassVar[Mapping[str, str]] = KNOWN_OPTIONS

    def __init__(self, runtime: ModuleType | None = None) -> None:
        # The runtime module is injectable so tests can hand in a double.
        self._ort = runtime

    @classmethod
    def runtime_version(cls) -> str | None:
        ort = _import_ort()
        return None if ort is None else str(ort.__version__)

    @classmethod
    def is_available(cls, device: str = "cpu") -> Availability:
        ort = _import_ort()
        if ort is None:
            return Availability.no(f"onnxruntime not installed: {INSTALL_HINT}")
        base = device.split(":")[0]
        provider = PROVIDERS.get(base)
        if provider is None:
            return Availability.no(
                f"unknown device {device!r} for onnxruntime (use one of {', '.join(PROVIDERS)})"
            )
        if provider not in ort.get_available_providers():
            return Availability.no(
                f"{provider} not in this onnxruntime build "
                f"(has {', '.join(ort.get_available_providers())})"
            )
        return Availability.yes(f"onnxruntime {ort.__version__}, {provider}")

    def _runtime(self) -> ModuleType:
        ort = self._ort or _import_ort()
        if ort is None:
            raise UnavailableError(f"onnxruntime not installed: {INSTALL_HINT}")
        self._ort = ort
        return ort

    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> Session:
        ort = self._runtime()
        if artifact.format not in self.formats:
            raise ConfigError(
                f"onnxruntime loads ONNX models, not {artifact.format}: pass an .onnx file"
            )
        base, _, index = options.device.partition(":")
        provider = PROVIDERS.get(base)
        if provider is None:
            raise ConfigError(
                f"unknown device {options.device!r} for onnxruntime "
                f"(use one of {', '.join(PROVIDERS)})"
            )
        if provider not in ort.get_available_providers():
            raise UnavailableError(
                f"{provider} is not in this onnxruntime build: install the matching package "
                f"(e.g. onnxruntime-gpu) or use --device cpu"
            )
        extra = options.extra
        check_keys(self.name, extra, KNOWN_OPTIONS)
        so = ort.SessionOptions()
        level = choice(
            self.name,
            "graph_optimization_level",
            extra.get("graph_optimization_level", "all"),
            list(GRAPH_OPTIMIZATION_LEVELS),
        )
        so.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION_LEVELS[level]
        )
        mode = "sequential"  # ONNX Runtime's default
        if "execution_mode" in extra:
            mode = choice(
                self.name, "execution_mode", extra["execution_mode"], ["sequential", "parallel"]
            )
            so.execution_mode = getattr(ort.ExecutionMode, f"ORT_{mode.upper()}")
        if options.threads is not None:
            so.intra_op_num_threads = options.threads
            so.inter_op_num_threads = 1
        if "inter_op_threads" in extra:
            if mode != "parallel":
                raise ConfigError(
                    "--adapter-opt inter_op_threads needs execution_mode=parallel (ONNX Runtime "
                    "uses the inter-op pool only then): add --adapter-opt execution_mode=parallel"
                )
            so.inter_op_num_threads = positive_int(
                self.name, "inter_op_threads", extra["inter_op_threads"]
            )
        io_binding = boolean(self.name, "io_binding", extra.get("io_binding", "on"))
        binding_device = ("cuda", int(index or 0)) if base in _CUDA_BASES else ("cpu", 0)
        provider_opts: dict[str, Any] = {"device_id": int(index)} if index else {}
        providers: list[Any] = [(provider, provider_opts)] if provider_opts else [provider]
        try:
            sess = ort.InferenceSession(str(artifact.path), sess_options=so, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"onnxruntime cannot load {artifact.path}: {first} "
                f"(is it a valid ONNX model? re-export it or pass another --model)"
            ) from exc
        # ORT silently falls back to CPU when a provider fails to initialise.
        if sess.get_providers()[0] != provider:
            raise UnavailableError(
                f"onnxruntime fell back to {sess.get_providers()[0]} instead of {provider}: "
                f"check the {base} driver/toolkit install or use --device cpu"
            )
        if options.precision != artifact.precision:
            raise ConfigError(
                f"--precision {options.precision} but the model is {artifact.precision}: "
                f"pass a {options.precision} model with --model"
            )
        return OnnxRuntimeSession(sess, ort, options, provider, io_binding, binding_device)

"""OpenVINO adapter: the native ``openvino`` API on CPU, GPU, NPU or AUTO.

Reads OpenVINO IR (``.xml`` + ``.bin``), ONNX and TFLite with
``Core.read_model`` and compiles with a performance hint (LATENCY unless the
adapter is built with another). What actually ran is read back from the
compiled model: the hint, ``NUM_STREAMS``, ``INFERENCE_NUM_THREADS`` and the
``INFERENCE_PRECISION_HINT`` in effect.

Precision is explicit. OpenVINO's CPU plugin picks bf16 by itself on CPUs
with AVX512-BF16/AMX, so ``fp32`` sets ``INFERENCE_PRECISION_HINT=f32``;
``fp16`` sets ``f16`` only where the device lists FP16 and fails otherwise
(the CPU plugin would silently run bf16 instead); ``int8`` means a quantised
model (FakeQuantize nodes, e.g. a full-integer TFLite or an NNCF model) whose
float remainder runs in f32.

Settings (``--adapter-opt KEY=VALUE``, :data:`KNOWN_OPTIONS`): ``performance_hint``
(LATENCY, THROUGHPUT or CUMULATIVE_THROUGHPUT), ``num_streams`` (N or AUTO) and
``infer_requests`` (N). Unknown keys are refused.

Concurrency. The session holds a pool of InferRequests (``infer_requests`` of them,
default 1 under LATENCY and the compiled model's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``
otherwise). Each ``run`` takes an idle request, runs it synchronously and puts it
back; OpenVINO releases the GIL inside ``infer``, so the offline and server
scenarios' ``--concurrency`` worker threads keep that many requests in flight at
once, each on one of the compiled model's streams: worker thread ↔ InferRequest ↔
stream, the same overlap as an ``AsyncInferQueue`` with ``--concurrency`` jobs. When
more threads than requests run at once, the pool creates another request rather
than make a thread wait (a wait would count as latency); describe() reports how many
exist. For throughput, pass ``--scenario offline --concurrency N --adapter-opt
performance_hint=THROUGHPUT`` with N = the reported ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``.
"""

from __future__ import annotations

import importlib
import queue
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Literal

import numpy as np

from wattbench.adapters.options import check_keys, choice, positive_int
from wattbench.core.adapter import (
    Adapter,
    AdapterDescription,
    AdapterOptions,
    ModelArtifact,
    Precision,
    Session,
    TensorSpec,
)
from wattbench.core.availability import Availability
from wattbench.core.errors import ConfigError, ModelError, UnavailableError

INSTALL_HINT = "pip install 'wattbench[openvino]'"

#: wattbench device name -> OpenVINO device name
DEVICES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU", "auto": "AUTO"}

#: wattbench precision -> INFERENCE_PRECISION_HINT value asked of the device
PRECISION_HINTS: dict[Precision, str] = {"fp32": "f32", "fp16": "f16", "int8": "f32"}

#: device OPTIMIZATION_CAPABILITIES entry a precision hint needs
_CAPABILITY = {"f32": "FP32", "f16": "FP16"}

PerformanceHint = Literal["LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"]
PERFORMANCE_HINTS: tuple[PerformanceHint, ...] = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")

#: --adapter-opt keys this adapter understands, with their values
KNOWN_OPTIONS = {
    "performance_hint": "|".join(PERFORMANCE_HINTS) + ", default LATENCY",
    "num_streams": "N >= 1 or AUTO, default: the hint's",
    "infer_requests": "N >= 1, default 1 under LATENCY, else OPTIMAL_NUMBER_OF_INFER_REQUESTS",
}

#: compiled-model properties recorded by describe()
RECORDED_PROPERTIES = (
    "PERFORMANCE_HINT",
    "NUM_STREAMS",
    "INFERENCE_NUM_THREADS",
    "INFERENCE_PRECISION_HINT",
    "OPTIMAL_NUMBER_OF_INFER_REQUESTS",
)


def _import_ov() -> ModuleType | None:
    try:
        return importlib.import_module("openvino")
    except ImportError:
        return None


def ov_device(device: str) -> str:
    """``cpu`` → ``CPU``, ``gpu:1`` → ``GPU.1``; ConfigError for anything else."""
    base, _, index = device.lower().partition(":")
    name = DEVICES.get(base)
    if name is None:
        raise ConfigError(
            f"unknown device {device!r} for openvino (use one of {', '.join(DEVICES)})"
        )
    if index:
        if name not in ("GPU", "NPU") or not index.isdigit():
            raise ConfigError(
                f"device {device!r}: openvino takes an index only on gpu/npu (e.g. gpu:1); "
                f"use --device {base}"
            )
        return f"{name}.{index}"
    return name


def _present(ov_name: str, available: Sequence[str]) -> bool:
    if ov_name == "AUTO":
        return bool(available)
    if "." in ov_name:
        return ov_name in available or (ov_name.endswith(".0") and ov_name[:-2] in available)
    return any(d == ov_name or d.startswith(ov_name + ".") for d in available)


def first_message(exc: BaseException) -> str:
    """The first informative line of an OpenVINO error (its own lines name C++ sources)."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not line.startswith("Exception from "):
            return line
    return type(exc).__name__


def _type_name(value: Any) -> str:
    """``<Type: 'float32'>`` → ``f32``; other values as text."""
    get = getattr(value, "get_type_name", None)
    return str(get()) if callable(get) else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    name = getattr(value, "name", None)  # enums such as PerformanceMode.LATENCY
    return name if isinstance(name, str) else _type_name(value)


def _spec(port: Any) -> TensorSpec:
    shape: list[int | str | None] = [
        d.get_length() if d.is_static else None for d in port.get_partial_shape()
    ]
    try:
        dtype = np.dtype(port.get_element_type().to_dtype()).name
    except Exception:  # element types without a numpy twin (e.g. nf4)
        dtype = _type_name(port.get_element_type())
    return TensorSpec(name=port.get_any_name(), shape=shape, dtype=dtype)


def is_quantized(model: Any) -> bool:
    """Whether the model carries low-precision quantisation (FakeQuantize nodes)."""
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


class _Prepared:
    """A prepared batch: arrays of the inputs' dtypes and ``ov.Tensor``s sharing their memory."""

    __slots__ = ("arrays", "tensors")

    def __init__(self, arrays: dict[int, np.ndarray], tensors: list[tuple[int, Any]]) -> None:
        self.arrays = arrays  # input index -> array (the memory the tensors share)
        self.tensors = tensors  # [(input index, ov.Tensor)]


class _Slot:
    """One InferRequest of the pool and the prepared batch whose tensors it holds."""

    __slots__ = ("bound", "infer", "request", "set_input")

    def __init__(self, request: Any) -> None:
        self.request = request
        self.bound: _Prepared | None = None
        # bound once: attribute look-ups are not part of the inference
        self.infer = request.infer
        self.set_input = request.set_input_tensor


class OpenVinoSession(Session):
    """A compiled model with a pool of reusable InferRequests (one per concurrent caller).

    ``prepare`` wraps each batch in ``ov.Tensor``s that share the arrays' memory
    (``shared_memory=True``: no copy). ``run`` sets them on its request only when the
    request last ran another batch (``set_input_tensor``, a pointer swap), calls
    ``infer()`` without inputs, so no input dict is built or dispatched in the timed
    call; OpenVINO copies each output into a fresh array (``share_outputs=False``, in
    C++: cheaper than views copied in Python).
    """

    def __init__(
        self,
        compiled: Any,
        ov: ModuleType,
        options: AdapterOptions,
        device: str,
        precision: Precision,
        infer_requests: int = 1,
        requests_source: str = "default",
    ) -> None:
        self._compiled = compiled
        self._ov = ov
        self._options = options
        self._device = device
        self._precision = precision
        self._pool: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        for _ in range(infer_requests):
            self._pool.put(_Slot(compiled.create_infer_request()))
        self._created = infer_requests
        self._grow_lock = threading.Lock()
        self._requested = infer_requests
        self._requests_source = requests_source
        self._inputs = [_spec(p) for p in compiled.inputs]
        self._outputs = [_spec(p) for p in compiled.outputs]
        self._index = {s.name: i for i, s in enumerate(self._inputs)}
        self._dtypes = [np.dtype(s.dtype) for s in self._inputs]

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def prepare(self, feed: Mapping[str, np.ndarray]) -> _Prepared:
        """Named arrays → C-contiguous arrays of the inputs' dtypes, each wrapped in an
        ``ov.Tensor`` that shares its memory: nothing is converted or copied in ``run``."""
        arrays: dict[int, np.ndarray] = {}
        for name, value in feed.items():
            idx = self._index.get(name)
            if idx is None:
                raise ModelError(
                    f"model has no input {name!r} (inputs: {', '.join(self._index)}): "
                    f"the suite does not fit this model"
                )
            spec = self._inputs[idx]
            arr = np.require(value, dtype=self._dtypes[idx], requirements=["C", "W"])
            fixed = [d for d in spec.shape if isinstance(d, int)]
            if len(fixed) == len(spec.shape) and list(arr.shape) != spec.shape:
                raise ModelError(
                    f"model input {name!r} has the fixed shape {spec.shape}, got {list(arr.shape)}"
                    f": use --batch {spec.shape[0]} or a model with a dynamic batch"
                )
            arrays[idx] = arr
        tensors = [(i, self._ov.Tensor(a, shared_memory=True)) for i, a in arrays.items()]
        return _Prepared(arrays, tensors)

    def _new_slot(self) -> _Slot:
        """More concurrent callers than requests: add one rather than wait."""
        slot = _Slot(self._compiled.create_infer_request())
        with self._grow_lock:
            self._created += 1
        return slot

    def run(self, prepared: Any) -> Sequence[np.ndarray]:
        try:
            slot = self._pool.get_nowait()
        except queue.Empty:
            slot = self._new_slot()
        try:
            if slot.bound is not prepared:  # once per prepared batch and request
                for i, tensor in prepared.tensors:
                    slot.set_input(i, tensor)
                slot.bound = prepared
            # no inputs to dispatch; outputs copied (in C++) before the request is reused
            return list(slot.infer(None, False, False).values())
        finally:
            self._pool.put(slot)

    def _properties(self) -> dict[str, Any]:
        c = self._compiled
        props: dict[str, Any] = {}
        try:
            props["EXECUTION_DEVICES"] = _plain(c.get_property("EXECUTION_DEVICES"))
        except Exception:
            props["EXECUTION_DEVICES"] = [self._device]
        # AUTO/MULTI do not expose device properties directly, only per device.
        per_device: Mapping[str, Any] = {}
        if self._device.startswith(("AUTO", "MULTI", "HETERO")):
            try:
                dp = c.get_property("DEVICE_PROPERTIES")
                devs = props["EXECUTION_DEVICES"]
                if isinstance(dp, Mapping) and devs and devs[0] in dp:
                    per_device = dp[devs[0]]
            except Exception:
                per_device = {}
        for key in RECORDED_PROPERTIES:
            try:
                props[key] = _plain(c.get_property(key))
            except Exception:
                props[key] = _plain(per_device[key]) if key in per_device else "not reported"
        return props

    def describe(self) -> AdapterDescription:
        props = self._properties()
        devices = props["EXECUTION_DEVICES"]
        return AdapterDescription(
            adapter=OpenVinoAdapter.name,
            runtime="openvino",
            runtime_version=str(self._ov.get_version()),
            device=self._options.device,
            execution_provider=",".join(devices) if isinstance(devices, list) else str(devices),
            precision=self._precision,
            options={
                "device": self._device,
                **props,
                "infer_requests": self._requested,
                "infer_requests_source": self._requests_source,
                "infer_requests_created": self._created,
                "concurrency_model": "one InferRequest per concurrent run() caller (thread)",
                "inputs": "ov.Tensor sharing the prepared array, set once per batch and request",
                "outputs": "copied from the request's output tensors inside run()",
                "adapter_options": dict(self._options.extra),
            },
        )

    def close(self) -> None:
        self._pool = queue.SimpleQueue()
        self._compiled = None


class OpenVinoAdapter(Adapter):
    """Runs OpenVINO IR, ONNX and TFLite models with OpenVINO's own runtime."""

    name: ClassVar[str] = "openvino"
    formats: ClassVar[tuple[str, ...]] = ("openvino-ir", "onnx", "tflite")
    option_keys: ClassVar[Mapping[str, str]] = KNOWN_OPTIONS

    def __init__(
        self, runtime: ModuleType | None = None, performance_hint: PerformanceHint = "LATENCY"
    ) -> None:
        # The runtime module is injectable so tests can hand in a double.
        self._ov = runtime
        self.performance_hint = performance_hint

    @classmethod
    def runtime_version(cls) -> str | None:
        ov = _import_ov()
        return None if ov is None else str(ov.get_version())

    @classmethod
    def is_available(cls, device: str = "cpu") -> Availability:
        ov = _import_ov()
        if ov is None:
            return Availability.no(f"openvino not installed: {INSTALL_HINT}")
        return cls(runtime=ov).availability(device)

    def availability(self, device: str) -> Availability:
        """is_available() against this adapter's (possibly injected) runtime."""
        try:
            ov = self._runtime()
            name = ov_device(device)
        except (ConfigError, UnavailableError) as exc:
            return Availability.no(str(exc))
        available = list(ov.Core().available_devices)
        if not _present(name, available):
            return Availability.no(
                f"OpenVINO device {name} not found (found: {', '.join(available) or 'none'}): "
                f"install the {name.split('.')[0]} driver/plugin or use --device cpu"
            )
        return Availability.yes(f"openvino {ov.get_version()}, {name}")

    def _runtime(self) -> ModuleType:
        ov = self._ov or _import_ov()
        if ov is None:
            raise UnavailableError(f"openvino not installed: {INSTALL_HINT}")
        self._ov = ov
        return ov

    def model_precision(self, artifact: ModelArtifact) -> Precision:
        model = self._read(self._runtime().Core(), artifact)
        return "int8" if is_quantized(model) else "fp32"

    def _read(self, core: Any, artifact: ModelArtifact) -> Any:
        path = Path(artifact.path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path} (check the --model path)")
        if artifact.format == "openvino-ir" and not path.with_suffix(".bin").is_file():
            raise ModelError(
                f"{path.with_suffix('.bin')} missing: an OpenVINO IR needs its .bin weights "
                f"next to the .xml; copy both"
            )
        try:
            return core.read_model(str(path))
        except Exception as exc:
            raise ModelError(
                f"openvino cannot read {path}: {first_message(exc)} "
                f"(is it a valid {artifact.format} model? re-export it or pass another --model)"
            ) from exc

    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> Session:
        ov = self._runtime()
        if artifact.format not in self.formats:
            raise ConfigError(
                f"openvino loads {', '.join(self.formats)} models, not {artifact.format}: "
                f"pass an .xml, .onnx or .tflite file"
            )
        device = ov_device(options.device)
        core = ov.Core()
        available = list(core.available_devices)
        if not _present(device, available):
            raise UnavailableError(
                f"OpenVINO device {device} not found (found: {', '.join(available) or 'none'}): "
                f"install the {device.split('.')[0]} driver/plugin or use --device cpu"
            )
        model = self._read(core, artifact)
        quantized = is_quantized(model)
        if options.precision == "int8" and not quantized:
            raise ConfigError(
                f"--precision int8 but {artifact.path.name} is not quantised: quantise it "
                f"(e.g. NNCF or a full-integer TFLite) or use --precision fp32"
            )
        if options.precision != "int8" and quantized:
            raise ConfigError(
                f"{artifact.path.name} is a quantised (int8) model: pass --precision int8"
            )
        hint = PRECISION_HINTS[options.precision]
        if hint == "f16":
            caps = self._capabilities(core, device)
            if caps is not None and _CAPABILITY[hint] not in caps:
                raise ConfigError(
                    f"OpenVINO {device} has no FP16 support (capabilities: {', '.join(caps)}): "
                    f"use --precision fp32 or a device with FP16 (e.g. --device gpu)"
                )
        extra = options.extra
        check_keys(self.name, extra, KNOWN_OPTIONS)
        perf = choice(
            self.name,
            "performance_hint",
            extra.get("performance_hint", self.performance_hint),
            PERFORMANCE_HINTS,
        )
        config: dict[str, Any] = {"PERFORMANCE_HINT": perf, "INFERENCE_PRECISION_HINT": hint}
        if options.threads is not None:
            config["INFERENCE_NUM_THREADS"] = options.threads
        if "num_streams" in extra:
            v = extra["num_streams"]
            config["NUM_STREAMS"] = (
                "AUTO" if v.upper() == "AUTO" else positive_int(self.name, "num_streams", v)
            )
        requests = (
            positive_int(self.name, "infer_requests", extra["infer_requests"])
            if "infer_requests" in extra
            else None
        )
        try:
            compiled = core.compile_model(model, device, config)
        except Exception as exc:
            raise UnavailableError(
                f"OpenVINO cannot compile {artifact.path.name} for {device}: "
                f"{first_message(exc)} (check the {device.split('.')[0]} driver or use "
                f"--device cpu)"
            ) from exc
        if requests is not None:
            n, source = requests, "user"
        elif perf == "LATENCY":
            n, source = 1, "default (LATENCY: one query in flight)"
        else:
            n, source = self._optimal_requests(compiled), "OPTIMAL_NUMBER_OF_INFER_REQUESTS"
        session = OpenVinoSession(compiled, ov, options, device, options.precision, n, source)
        used = session.describe().options.get("INFERENCE_PRECISION_HINT")
        if used not in (hint, "not reported"):
            session.close()
            raise ConfigError(
                f"OpenVINO {device} runs {used} instead of the requested {hint}: "
                f"use --precision fp32 or a device that supports {options.precision}"
            )
        return session

    @staticmethod
    def _optimal_requests(compiled: Any) -> int:
        try:
            return max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        except Exception:  # plugins that do not report it
            return 1

    @staticmethod
    def _capabilities(core: Any, device: str) -> list[str] | None:
        try:
            return [str(c) for c in core.get_property(device, "OPTIMIZATION_CAPABILITIES")]
        except Exception:
            return None

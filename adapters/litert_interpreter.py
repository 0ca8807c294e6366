"""LiteRT's Interpreter API: finding the runtime, opening a model, reading its metadata,
and :class:`LiteRtSession`, the session that runs a model through ``invoke()``.

Also home to the helpers both LiteRT sessions share (:func:`one_line`, the
quantisation parameters, the dtype conversion in :class:`LiteRtSession`), since
:class:`~wattbench.adapters.litert_compiled.LiteRtCompiledSession` builds on it. The
Coral adapter runs its Edge TPU delegate through this path. The adapter itself is in
:mod:`wattbench.adapters.litert`, which re-exports these names.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from wattbench.core.adapter import (
    AdapterDescription,
    AdapterOptions,
    Precision,
    Session,
    TensorSpec,
)
from wattbench.core.errors import ConfigError, ModelError

#: interpreter modules tried in order: (module, distribution that provides it)
INTERPRETER_MODULES = (
    ("ai_edge_litert.interpreter", "ai_edge_litert"),
    ("tflite_runtime.interpreter", "tflite_runtime"),
)

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"

_INT_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8))


def import_interpreter() -> tuple[ModuleType, str, str] | None:
    """``(interpreter module, runtime name, version)`` of the first LiteRT found, else None."""
    for module, package in INTERPRETER_MODULES:
        try:
            mod = importlib.import_module(module)
            pkg = importlib.import_module(package)
        except ImportError:
            continue
        return mod, package, str(getattr(pkg, "__version__", "unknown"))
    return None


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def has_edgetpu_op(path: Path) -> bool:
    """Whether a .tflite file contains the Edge TPU custom op (compiled by edgetpu_compiler)."""
    try:
        return EDGETPU_CUSTOM_OP.encode() in path.read_bytes()
    except OSError:
        return False


def edgetpu_model_error(path: Path) -> ConfigError:
    """The one-line error for an Edge TPU model run without the Edge TPU delegate."""
    return ConfigError(
        f"{path.name} is an Edge TPU model (it contains {EDGETPU_CUSTOM_OP}) and runs only with "
        f"the Edge TPU delegate: use --adapter coral with an Edge TPU attached, or the CPU model "
        f"it was compiled from (the .tflite without _edgetpu)"
    )


def model_precision(interpreter: Any) -> tuple[Precision, str]:
    """(precision, quantisation kind) from the model's tensor dtypes and input dtypes."""
    dtypes = {np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    inputs = {np.dtype(t["dtype"]) for t in interpreter.get_input_details()}
    if inputs & set(_INT_DTYPES):
        return "int8", "full-integer"
    if dtypes & set(_INT_DTYPES):
        return "int8", "dynamic-range (int8 weights, float activations)"
    if np.dtype(np.float16) in dtypes:
        return "fp16", "float16 weights"
    return "fp32", "none"


def _op_names(interpreter: Any) -> list[str] | None:
    details = getattr(interpreter, "_get_ops_details", None)
    if details is None:
        return None
    try:
        return [str(op.get("op_name")) for op in details()]
    except Exception:
        return None


def _delegate_nodes(interpreter: Any) -> int | None:
    names = _op_names(interpreter)
    return None if names is None else names.count("DELEGATE")


def _quant(detail: Mapping[str, Any]) -> tuple[float, int] | None:
    scale, zero = detail.get("quantization", (0.0, 0))
    return (float(scale), int(zero)) if scale else None


class LiteRtSession(Session):
    """A LiteRT model ready to run; this class runs it through the Interpreter API.

    ``prepare`` converts each feed to the model's input dtype and shape once;
    ``run`` copies the prepared batch into the input tensor (``set_tensor``),
    calls ``invoke()`` and copies the outputs out (``get_tensor``).
    :class:`LiteRtCompiledSession` runs a model through ``CompiledModel`` instead.
    """

    #: the LiteRT API the session runs (describe() records it)
    api: ClassVar[str] = "interpreter"

    def __init__(
        self,
        interpreter: Any,
        *,
        adapter: str,
        runtime: str,
        runtime_version: str,
        options: AdapterOptions,
        precision: Precision,
        quantization: str,
        execution_provider: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self._init_common(
            adapter=adapter,
            runtime=runtime,
            runtime_version=runtime_version,
            options=options,
            precision=precision,
            quantization=quantization,
            extra=extra,
        )
        self._it = interpreter
        self._delegated = _delegate_nodes(interpreter)
        self._default_delegate = execution_provider is None
        if execution_provider is None:
            execution_provider = {
                None: "XNNPACK (LiteRT default delegate; not verifiable here)",
                0: "builtin kernels",
            }.get(self._delegated, "XNNPACK")
        self._provider = execution_provider
        self._in = interpreter.get_input_details()
        self._out = interpreter.get_output_details()
        self._index = {d["name"]: i for i, d in enumerate(self._in)}
        self._out_idx = [d["index"] for d in self._out]
        # bound once: attribute look-ups are not part of the inference
        self._set = interpreter.set_tensor
        self._invoke = interpreter.invoke
        self._get = interpreter.get_tensor

    def _init_common(
        self,
        *,
        adapter: str,
        runtime: str,
        runtime_version: str,
        options: AdapterOptions,
        precision: Precision,
        quantization: str,
        extra: Mapping[str, Any] | None,
    ) -> None:
        self._adapter = adapter
        self._runtime = runtime
        self._version = runtime_version
        self._options = options
        self._precision = precision
        self._quantization = quantization
        self._extra = dict(extra or {})

    @staticmethod
    def _spec(d: Mapping[str, Any]) -> TensorSpec:
        sig = d.get("shape_signature")
        dims = sig if sig is not None and len(sig) else d["shape"]
        shape: list[int | str | None] = [int(v) if int(v) >= 0 else None for v in dims]
        return TensorSpec(name=d["name"], shape=shape, dtype=np.dtype(d["dtype"]).name)

    def inputs(self) -> list[TensorSpec]:
        return [self._spec(d) for d in self._in]

    def outputs(self) -> list[TensorSpec]:
        return [self._spec(d) for d in self._out]

    def _convert(self, d: Mapping[str, Any], value: np.ndarray) -> np.ndarray:
        want = np.dtype(d["dtype"])
        arr = np.asarray(value)
        if arr.dtype == want:
            return np.ascontiguousarray(arr)
        q = _quant(d)
        if want == np.int8 and arr.dtype == np.uint8:
            # raw pixels into an int8 model: its uint8 twin has zero point z + 128
            return np.ascontiguousarray((arr.astype(np.int16) - 128).astype(np.int8))
        if want in _INT_DTYPES and np.issubdtype(arr.dtype, np.floating):
            if q is None:
                raise ModelError(
                    f"model input {d['name']!r} is {want.name} without quantisation parameters: "
                    f"feed {want.name} data or re-convert the model"
                )
            scale, zero = q
            info = np.iinfo(want)
            x = np.round(arr.astype(np.float32) / scale + zero)
            return np.ascontiguousarray(np.clip(x, info.min, info.max).astype(want))
        if np.issubdtype(want, np.floating):
            return np.ascontiguousarray(arr, dtype=want)
        raise ModelError(
            f"model input {d['name']!r} is {want.name}, got {arr.dtype.name}: the suite does not "
            f"fit this model"
        )

    def _converted(self, feed: Mapping[str, np.ndarray]) -> list[tuple[int, np.ndarray]]:
        """``[(input position, array in the model's dtype)]`` for each fed input."""
        converted = []
        for name, value in feed.items():
            i = self._index.get(name)
            if i is None:
                raise ModelError(
                    f"model has no input {name!r} (inputs: {', '.join(self._index)}): "
                    f"the suite does not fit this model"
                )
            converted.append((i, self._convert(self._in[i], value)))
        return converted

    def _fit_shape(self, i: int, shape: tuple[int, ...]) -> None:
        d = self._in[i]
        if tuple(int(v) for v in d["shape"]) == shape:
            return
        old = [int(v) for v in d["shape"]]
        try:
            self._it.resize_tensor_input(d["index"], list(shape))
            self._it.allocate_tensors()
        except Exception as exc:
            self._it.resize_tensor_input(d["index"], old)
            self._it.allocate_tensors()
            raise ModelError(
                f"model input {d['name']!r} has the fixed shape {old}, got {list(shape)} "
                f"({one_line(exc)}): use --batch {old[0]}"
            ) from exc
        self._in = self._it.get_input_details()
        self._out = self._it.get_output_details()

    def prepare(self, feed: Mapping[str, np.ndarray]) -> Any:
        """``[(tensor index, array)]`` in the model's dtype; resizes the batch if it must."""
        prepared = []
        for i, arr in self._converted(feed):
            self._fit_shape(i, arr.shape)
            prepared.append((int(self._in[i]["index"]), arr))
        return prepared

    def run(self, prepared: Any) -> Sequence[np.ndarray]:
        for index, arr in prepared:
            self._set(index, arr)
        self._invoke()
        return [self._get(i) for i in self._out_idx]

    def dequantize(self, outputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Raw outputs of :meth:`run` → float32 real values (``(q - zero_point) * scale``)."""
        result = []
        for d, o in zip(self._out, outputs, strict=True):
            q = _quant(d)
            a = np.asarray(o)
            if q is None or not np.issubdtype(a.dtype, np.integer):
                result.append(a.astype(np.float32, copy=False))
            else:
                result.append(((a.astype(np.float32) - q[1]) * q[0]).astype(np.float32))
        return result

    def _api_options(self) -> dict[str, Any]:
        """describe() entries particular to the API."""
        recorded: dict[str, Any] = {"api": self.api, "api_call": "Interpreter.invoke"}
        if self._default_delegate:
            recorded["xnnpack"] = (
                "not reported" if self._delegated is None else self._provider == "XNNPACK"
            )
        recorded["delegate_nodes"] = (
            self._delegated if self._delegated is not None else "not reported"
        )
        return recorded

    def describe(self) -> AdapterDescription:
        return AdapterDescription(
            adapter=self._adapter,
            runtime=self._runtime,
            runtime_version=self._version,
            device=self._options.device,
            execution_provider=self._provider,
            precision=self._precision,
            options={
                "num_threads": self._options.threads or "runtime default",
                "adapter_options": dict(self._options.extra),
                **self._api_options(),
                "quantization": self._quantization,
                "input_quantization": {d["name"]: _quant(d) for d in self._in},
                "output_quantization": {d["name"]: _quant(d) for d in self._out},
                "outputs": "raw tensors (integer for quantised models); dequantize() for floats",
                **self._extra,
            },
        )

    def close(self) -> None:
        self._set = self._invoke = self._get = None
        self._it = None


def _load_error(
    exc: BaseException, path: Path, runtime: str, *, edgetpu_hint: bool = True
) -> ConfigError | ModelError:
    """The one-line error for a model LiteRT cannot load."""
    msg = str(exc)
    if edgetpu_hint and (EDGETPU_CUSTOM_OP in msg or has_edgetpu_op(path)):
        return edgetpu_model_error(path)
    if "custom op" in msg:
        return ModelError(
            f"{runtime} cannot run {path}: {one_line(exc)} (the model needs a custom op "
            f"LiteRT lacks: re-convert it with builtin ops only)"
        )
    return ModelError(
        f"{runtime} cannot load {path}: {one_line(exc)} "
        f"(is it a valid .tflite model? re-convert it or pass another --model)"
    )


def open_interpreter(
    make: Any, path: Path, runtime: str, *, edgetpu_hint: bool = True, **kwargs: Any
) -> Any:
    """``make(model_path=..., **kwargs)`` then allocate_tensors(); one-line errors."""
    try:
        interpreter = make(model_path=str(path), **kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise _load_error(exc, path, runtime, edgetpu_hint=edgetpu_hint) from exc
    return interpreter


def open_metadata(mod: ModuleType, path: Path, runtime: str) -> Any:
    """An Interpreter that only reads the model's tensor metadata: no delegate, nothing
    allocated. ConfigError for an Edge TPU model, one-line ModelError for a broken file."""
    kwargs: dict[str, Any] = {}
    resolver = getattr(mod, "OpResolverType", None)
    if resolver is not None:
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = mod.Interpreter(model_path=str(path), **kwargs)
    except (ValueError, RuntimeError) as exc:
        raise _load_error(exc, path, runtime) from exc
    ops = _op_names(interpreter)
    if EDGETPU_CUSTOM_OP in ops if ops is not None else has_edgetpu_op(path):
        raise edgetpu_model_error(path)
    return interpreter

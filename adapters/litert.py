"""LiteRT adapter (formerly TensorFlow Lite) for ``.tflite`` models on the CPU.

Two APIs (``--adapter-opt api=compiled|interpreter``; describe() records which ran):

* ``compiled`` (the default with ``ai_edge_litert``): LiteRT's ``CompiledModel``, the API
  ``litert-benchmark`` times. ``prepare`` writes each batch once into its own input
  ``TensorBuffer``; ``run`` is ``run_by_index`` on those buffers and output buffers
  created at load, then one read of each output into a fresh array. The CPU
  accelerator is XNNPACK-based (``delegate=none`` selects the builtin kernels).
* ``interpreter``: ``ai_edge_litert.interpreter`` (or ``tflite_runtime.interpreter``):
  ``run`` is ``set_tensor`` + ``invoke()`` + ``get_tensor``. LiteRT applies XNNPACK as
  its default CPU delegate; describe() records whether it took the graph. This is
  the path of the Coral adapter's Edge TPU delegate, which ``CompiledModel`` cannot
  take, and the fallback where ``CompiledModel`` cannot run a model (tensor types
  its buffers lack, no ``CompiledModel`` in ``tflite_runtime``); describe() says why.

Both give the same outputs for the same model and settings: bit-identical on the Coral
MobileNets (tests/adapters/test_real_labels.py) and on the suite's fp32 and fp16 builds.

Quantised models
    Inputs: a feed whose dtype equals the model input's dtype is passed as is
    (the suite's uint8 pixels into a uint8 model: such models carry the
    normalisation in their input quantisation, e.g. scale 1/128 and zero point
    128). uint8 pixels into an int8 model are shifted by -128, which is exactly
    the uint8 model with zero point ``z + 128`` that the int8 one was converted
    from. A float feed into an integer input is quantised with
    ``round(x / scale + zero_point)``.

    Outputs: :meth:`LiteRtSession.run` returns the raw tensors (uint8/int8
    logits of a full-integer model), because dequantising is not part of the
    inference being timed. Argmax-based checks work on them as they are; call
    :meth:`LiteRtSession.dequantize` (outside the timed region) for real values.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from wattbench.adapters.options import check_keys, choice
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

INSTALL_HINT = "pip install 'wattbench[litert]'"

#: interpreter modules tried in order: (module, distribution that provides it)
INTERPRETER_MODULES = (
    ("ai_edge_litert.interpreter", "ai_edge_litert"),
    ("tflite_runtime.interpreter", "tflite_runtime"),
)

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"

_INT_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8))

#: --adapter-opt keys this adapter understands, with their values
KNOWN_OPTIONS = {
    "delegate": "xnnpack|none, default xnnpack (none: LiteRT's builtin kernels)",
    "api": "compiled|interpreter, default compiled (CompiledModel, as litert-benchmark; "
    "interpreter where it cannot run the model)",
}

#: LiteRT APIs, in order of preference
APIS = ("compiled", "interpreter")

#: module with LiteRT's CompiledModel API (ai_edge_litert only)
COMPILED_MODULE = "ai_edge_litert.compiled_model"


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


def check_precision(options: AdapterOptions, precision: Precision, kind: str, path: Path) -> None:
    """ConfigError when the asked-for precision is not the model's own."""
    if options.precision != precision:
        raise ConfigError(
            f"--precision {options.precision} but {path.name} is {precision} ({kind}): a .tflite "
            f"runs at the precision it was converted to; pass --precision {precision}"
        )


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


class _Batch:
    """A batch prepared for ``CompiledModel``: one input TensorBuffer per signature input,
    written once by ``prepare`` and only read by ``run``."""

    __slots__ = ("buffers",)

    def __init__(self, buffers: list[Any]) -> None:
        self.buffers = buffers


class LiteRtCompiledSession(LiteRtSession):
    """A LiteRT ``CompiledModel`` (signature 0) with output buffers created at load.

    ``prepare`` converts each feed like the Interpreter path and writes it into input
    TensorBuffers of its own (one set per prepared batch); ``run`` is one
    ``run_by_index`` on those and the output buffers, then one read of each output into
    a fresh array: nothing is converted or allocated in LiteRT's memory in the timed
    call. ``inputs``, ``outputs``, ``dequantize`` and the quantisation recorded by
    describe() come from the same tensor metadata as the Interpreter path.
    """

    api: ClassVar[str] = "compiled"

    def __init__(
        self,
        model: Any,
        inputs: Sequence[Mapping[str, Any]],
        outputs: Sequence[Mapping[str, Any]],
        *,
        adapter: str,
        runtime: str,
        runtime_version: str,
        options: AdapterOptions,
        precision: Precision,
        quantization: str,
        execution_provider: str,
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
        self._model = model
        self._provider = execution_provider
        self._in = [dict(d) for d in inputs]
        self._out = [dict(d) for d in outputs]
        self._index = {d["name"]: i for i, d in enumerate(self._in)}
        self._fully_accelerated = model.is_fully_accelerated()
        self._run_by_index = model.run_by_index
        self._out_buffers: list[Any] = []
        self._reads: list[tuple[Any, int, np.dtype[Any], tuple[int, ...]]] = []
        self._check_run()

    def _check_run(self) -> None:
        """New output buffers for the current shapes, then one run on zeroed inputs.

        LiteRT allocates on the first run and reports some failures only then: this
        brings them (and the allocation) out of the timed region.
        """
        inputs = self._model.create_input_buffers(0)
        for b, d in zip(inputs, self._in, strict=True):
            b.write(np.zeros([int(v) for v in d["shape"]], np.dtype(d["dtype"])))
        buffers = self._model.create_output_buffers(0)
        self._model.run_by_index(0, inputs, buffers)
        reads = []
        for b, d in zip(buffers, self._out, strict=True):
            shape = tuple(int(v) for v in b.get_tensor_details()["shape"])
            d["shape"] = np.array(shape, np.int32)
            reads.append((b.read, int(np.prod(shape)), np.dtype(d["dtype"]), shape))
        self._out_buffers, self._reads = buffers, reads

    def _fit_shapes(self, shapes: Mapping[int, tuple[int, ...]]) -> None:
        changed = {
            i: s for i, s in shapes.items() if tuple(int(v) for v in self._in[i]["shape"]) != s
        }
        if not changed:
            return
        old = {i: [int(v) for v in self._in[i]["shape"]] for i in changed}
        try:
            for i, shape in changed.items():
                self._model.resize_input_tensor(i, list(shape), strict=False)
                self._in[i]["shape"] = np.array(shape, np.int32)
            self._check_run()
        except Exception as exc:
            for i, dims in old.items():
                self._model.resize_input_tensor(i, dims, strict=False)
                self._in[i]["shape"] = np.array(dims, np.int32)
            self._check_run()
            first, asked = next(iter(changed.items()))
            raise ModelError(
                f"model input {self._in[first]['name']!r} has the fixed shape {old[first]}, got "
                f"{list(asked)} ({one_line(exc)}): use --batch {old[first][0]}"
            ) from exc

    def prepare(self, feed: Mapping[str, np.ndarray]) -> _Batch:
        """The feed in the model's dtypes, written into input buffers of its own."""
        converted = dict(self._converted(feed))
        missing = [d["name"] for i, d in enumerate(self._in) if i not in converted]
        if missing:
            raise ModelError(
                f"the feed lacks model input(s) {', '.join(missing)}: the suite does not fit "
                f"this model"
            )
        self._fit_shapes({i: a.shape for i, a in converted.items()})
        arrays = [converted[i] for i in range(len(self._in))]
        buffers = self._model.create_input_buffers(0)
        for b, a in zip(buffers, arrays, strict=True):
            b.write(a)
        return _Batch(buffers)

    def run(self, prepared: Any) -> Sequence[np.ndarray]:
        self._run_by_index(0, prepared.buffers, self._out_buffers)
        return [read(n, dtype).reshape(shape) for read, n, dtype, shape in self._reads]

    def _api_options(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "api_call": "CompiledModel.run_by_index (signature 0)",
            "delegate_nodes": "not reported (CompiledModel)",
            "fully_accelerated": self._fully_accelerated,
        }

    def close(self) -> None:
        self._out_buffers, self._reads = [], []
        self._run_by_index = None
        if self._model is not None:
            self._model.close()
        self._model = None


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


#: tensor types LiteRT's TensorBuffer reads and writes (ai-edge-litert 2.3)
BUFFER_DTYPES = frozenset({"float32", "float16", "int32", "int8", "uint8", "bool"})


def signature_details(
    model: Any, meta: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | str:
    """Interpreter-style details of signature 0's inputs and outputs, in its order.

    Matched to the metadata interpreter's tensors by index and name, so quantisation
    parameters come along; a reason string where they do not match (a signature on
    another subgraph) or a tensor type has no TensorBuffer support.
    """
    key = next(iter(model.get_signature_list()), None)
    if key is None:
        return "the model has no signature"
    names = model.get_signature_list()[key]
    found: list[list[dict[str, Any]]] = []
    for kind, details, meta_details in (
        ("input", model.get_input_tensor_details(key), meta.get_input_details()),
        ("output", model.get_output_tensor_details(key), meta.get_output_details()),
    ):
        by_index = {int(d["index"]): d for d in meta_details}
        rows = []
        for name in names[f"{kind}s"]:
            d = details[name]
            m = by_index.get(int(d["index"]))
            if m is None or m["name"] != d["name"]:
                return f"signature {key!r} {kind} {name!r} is not a tensor of the main subgraph"
            if str(d["dtype"]) not in BUFFER_DTYPES:
                return f"{kind} {d['name']!r} is {d['dtype']}, which TensorBuffer cannot hold"
            rows.append(dict(m))
        found.append(rows)
    return found[0], found[1]


def import_compiled() -> tuple[ModuleType | None, str]:
    """(``ai_edge_litert.compiled_model``, "") or (None, why not)."""
    try:
        return importlib.import_module(COMPILED_MODULE), ""
    except ImportError as exc:
        return None, f"{COMPILED_MODULE} does not import ({one_line(exc)})"


class LiteRtAdapter(Adapter):
    """Runs .tflite models on the CPU with LiteRT (XNNPACK by default)."""

    name: ClassVar[str] = "litert"
    formats: ClassVar[tuple[str, ...]] = ("tflite",)
    option_keys: ClassVar[Mapping[str, str]] = KNOWN_OPTIONS
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    def __init__(
        self,
        interpreter_module: ModuleType | None = None,
        version: str = "",
        compiled_module: ModuleType | None = None,
    ) -> None:
        # The runtime modules are injectable so tests can hand in doubles; an injected
        # interpreter module without a compiled one runs the Interpreter API.
        self._mod = interpreter_module
        self._compiled = compiled_module
        self._discover_compiled = interpreter_module is None and compiled_module is None
        self._runtime_name = "ai_edge_litert"
        self._version = version or "injected"

    @classmethod
    def runtime_version(cls) -> str | None:
        found = import_interpreter()
        return None if found is None else found[2]

    @classmethod
    def is_available(cls, device: str = "cpu") -> Availability:
        found = import_interpreter()
        if found is None:
            return Availability.no(f"LiteRT not installed: {INSTALL_HINT}")
        if device not in cls.devices:
            return Availability.no(
                f"unknown device {device!r} for litert (use cpu; for an Edge TPU use "
                f"--adapter coral)"
            )
        return Availability.yes(f"{found[1]} {found[2]}, cpu (XNNPACK)")

    def _interpreter_module(self) -> ModuleType:
        if self._mod is not None:
            return self._mod
        found = import_interpreter()
        if found is None:
            raise UnavailableError(f"LiteRT not installed: {INSTALL_HINT}")
        self._mod, self._runtime_name, self._version = found
        return self._mod

    def _compiled_module(self) -> tuple[ModuleType | None, str]:
        if self._compiled is not None:
            return self._compiled, ""
        if not self._discover_compiled:
            return None, "an injected interpreter module without CompiledModel"
        if self._runtime_name != "ai_edge_litert":
            return None, f"{self._runtime_name} has no CompiledModel"
        self._compiled, why = import_compiled()
        return self._compiled, why

    def model_precision(self, artifact: ModelArtifact) -> Precision:
        meta = open_metadata(self._interpreter_module(), Path(artifact.path), self._runtime_name)
        return model_precision(meta)[0]

    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> Session:
        mod = self._interpreter_module()
        if artifact.format not in self.formats:
            raise ConfigError(
                f"litert loads TFLite models, not {artifact.format}: pass a .tflite file"
            )
        if options.device not in self.devices:
            raise ConfigError(
                f"unknown device {options.device!r} for litert (use cpu; for an Edge TPU use "
                f"--adapter coral)"
            )
        check_keys(self.name, options.extra, KNOWN_OPTIONS)
        delegate = choice(
            self.name, "delegate", options.extra.get("delegate", "xnnpack"), ["xnnpack", "none"]
        )
        api = options.extra.get("api")
        if api is not None:
            api = choice(self.name, "api", api, APIS)
        path = Path(artifact.path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path} (check the --model path)")
        fallback = ""
        if api != "interpreter":
            compiled, fallback = self._compiled_module()
            if compiled is None and api == "compiled":
                raise ConfigError(
                    f"--adapter-opt api=compiled needs LiteRT's CompiledModel ({fallback}): "
                    f"pip install ai-edge-litert, or drop the option"
                )
            if compiled is not None:
                session = self._load_compiled(compiled, mod, path, options, delegate, api)
                if isinstance(session, Session):
                    return session
                fallback = session
        kwargs: dict[str, Any] = {"num_threads": options.threads}
        if delegate == "none":
            resolver = getattr(mod, "OpResolverType", None)
            if resolver is None:
                raise ConfigError(
                    f"{self._runtime_name} {self._version} cannot turn off its default delegate "
                    f"(no OpResolverType): drop --adapter-opt delegate=none"
                )
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interpreter = open_interpreter(mod.Interpreter, path, self._runtime_name, **kwargs)
        precision, kind = model_precision(interpreter)
        check_precision(options, precision, kind, path)
        return LiteRtSession(
            interpreter,
            adapter=self.name,
            runtime=self._runtime_name,
            runtime_version=self._version,
            options=options,
            precision=precision,
            quantization=kind,
            extra={"api_fallback": f"CompiledModel not used: {fallback}"} if fallback else None,
        )

    def _load_compiled(
        self,
        compiled: ModuleType,
        mod: ModuleType,
        path: Path,
        options: AdapterOptions,
        delegate: str,
        api: str | None,
    ) -> Session | str:
        """A CompiledModel session, or (unless api=compiled was asked for) why not."""
        meta = open_metadata(mod, path, self._runtime_name)
        precision, kind = model_precision(meta)
        check_precision(options, precision, kind, path)
        cpu = compiled.CpuOptions(
            num_threads=options.threads or 0,  # 0: LiteRT's default
            kernel_mode=None if delegate == "xnnpack" else compiled.CpuKernelMode.BUILTIN,
        )
        model_options = compiled.Options(
            hardware_accelerators=compiled.HardwareAccelerator.CPU, cpu_options=cpu
        )
        why: str
        try:
            model = compiled.CompiledModel.from_file(str(path), options=model_options)
            details = signature_details(model, meta)
            if isinstance(details, str):
                model.close()
                why = details
            else:
                return LiteRtCompiledSession(
                    model,
                    *details,
                    adapter=self.name,
                    runtime=self._runtime_name,
                    runtime_version=self._version,
                    options=options,
                    precision=precision,
                    quantization=kind,
                    execution_provider="XNNPACK" if delegate == "xnnpack" else "builtin kernels",
                )
        except (RuntimeError, ValueError) as exc:
            why = one_line(exc)
        if api == "compiled":
            raise ModelError(
                f"LiteRT's CompiledModel cannot run {path.name} ({why}): "
                f"use --adapter-opt api=interpreter"
            )
        return why

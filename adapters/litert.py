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

Layout: the Interpreter path and the helpers both sessions share are in
:mod:`wattbench.adapters.litert_interpreter`, the CompiledModel path in
:mod:`wattbench.adapters.litert_compiled`; this module holds the adapter and
re-exports their public names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from wattbench.adapters.litert_compiled import (
    BUFFER_DTYPES,
    COMPILED_MODULE,
    LiteRtCompiledSession,
    import_compiled,
    signature_details,
)
from wattbench.adapters.litert_interpreter import (
    EDGETPU_CUSTOM_OP,
    INTERPRETER_MODULES,
    LiteRtSession,
    edgetpu_model_error,
    has_edgetpu_op,
    import_interpreter,
    model_precision,
    one_line,
    open_interpreter,
    open_metadata,
)
from wattbench.adapters.options import check_keys, choice
from wattbench.core.adapter import (
    Adapter,
    AdapterOptions,
    ModelArtifact,
    Precision,
    Session,
)
from wattbench.core.availability import Availability
from wattbench.core.errors import ConfigError, ModelError, UnavailableError

__all__ = [
    "APIS",
    "BUFFER_DTYPES",
    "COMPILED_MODULE",
    "EDGETPU_CUSTOM_OP",
    "INSTALL_HINT",
    "INTERPRETER_MODULES",
    "KNOWN_OPTIONS",
    "LiteRtAdapter",
    "LiteRtCompiledSession",
    "LiteRtSession",
    "check_precision",
    "edgetpu_model_error",
    "has_edgetpu_op",
    "import_compiled",
    "import_interpreter",
    "model_precision",
    "one_line",
    "open_interpreter",
    "open_metadata",
    "signature_details",
]

INSTALL_HINT = "pip install 'wattbench[litert]'"

#: --adapter-opt keys this adapter understands, with their values
KNOWN_OPTIONS = {
    "delegate": "xnnpack|none, default xnnpack (none: LiteRT's builtin kernels)",
    "api": "compiled|interpreter, default compiled (CompiledModel, as litert-benchmark; "
    "interpreter where it cannot run the model)",
}

#: LiteRT APIs, in order of preference
APIS = ("compiled", "interpreter")


def check_precision(options: AdapterOptions, precision: Precision, kind: str, path: Path) -> None:
    """ConfigError when the asked-for precision is not the model's own."""
    if options.precision != precision:
        raise ConfigError(
            f"--precision {options.precision} but {path.name} is {precision} ({kind}): a .tflite "
            f"runs at the precision it was converted to; pass --precision {precision}"
        )


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

"""Coral Edge TPU adapter: ``_edgetpu.tflite`` models through the Edge TPU delegate.

Two ways in, tried in order:

1. Google's ``pycoral`` (``pycoral.utils.edgetpu.make_interpreter(model, device=...)``)
   when it imports. It comes from Coral's own package repository, not PyPI
   (the PyPI project called ``pycoral`` is unrelated); see docs/coral.md.
2. Otherwise the LiteRT (``ai_edge_litert``) or ``tflite_runtime`` interpreter with
   ``load_delegate(<Edge TPU library>, {"device": ...})``; the library is
   ``libedgetpu.so.1`` (Linux), ``libedgetpu.1.dylib`` (macOS) or ``edgetpu.dll``
   (Windows), installed with the Edge TPU runtime (``libedgetpu1-std``).

wattbench devices: ``edgetpu`` (the first Edge TPU found), ``edgetpu:usb``,
``edgetpu:usb:N``, ``edgetpu:pci``, ``edgetpu:pci:N`` and ``edgetpu:N`` (the N-th
of any kind), passed to the delegate as ``{"device": "usb:0"}`` etc.
"""

from __future__ import annotations

import ctypes
import importlib
import platform
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from wattbench.adapters.litert import (
    EDGETPU_CUSTOM_OP,
    LiteRtSession,
    check_precision,
    has_edgetpu_op,
    import_interpreter,
    model_precision,
    one_line,
    open_interpreter,
)
from wattbench.adapters.options import check_keys
from wattbench.core.adapter import Adapter, AdapterOptions, ModelArtifact, Session
from wattbench.core.availability import Availability
from wattbench.core.errors import ConfigError, ModelError, UnavailableError

#: Edge TPU runtime library by ``platform.system()``
EDGETPU_LIBRARIES = {
    "Linux": "libedgetpu.so.1",
    "Darwin": "libedgetpu.1.dylib",
    "Windows": "edgetpu.dll",
}

RUNTIME_HINT = (
    "install the Edge TPU runtime (apt-get install libedgetpu1-std from Coral's package "
    "repository, see docs/coral.md)"
)
INSTALL_HINT = "pip install 'wattbench[coral]'"

_DEVICE = re.compile(r"^edgetpu(?::(?:(usb|pci)(?::(\d+))?|(\d+)))?$")


def delegate_device(device: str) -> str | None:
    """wattbench device → the Edge TPU delegate's ``device`` option (None: first found).

    ``edgetpu`` → None, ``edgetpu:usb`` → ``usb``, ``edgetpu:pci:0`` → ``pci:0``,
    ``edgetpu:1`` → ``:1``. ConfigError for anything else.
    """
    m = _DEVICE.match(device.strip().lower())
    if m is None:
        raise ConfigError(
            f"unknown device {device!r} for coral (use edgetpu, edgetpu:usb, edgetpu:usb:0, "
            f"edgetpu:pci, edgetpu:pci:0 or edgetpu:N)"
        )
    kind, kind_index, any_index = m.groups()
    if any_index is not None:
        return f":{any_index}"
    if kind is None:
        return None
    return kind if kind_index is None else f"{kind}:{kind_index}"


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class CoralAdapter(Adapter):
    """Runs Edge TPU-compiled .tflite models on a Coral Edge TPU (USB, PCIe/M.2, Dev Board)."""

    name: ClassVar[str] = "coral"
    default_device: ClassVar[str] = "edgetpu"
    formats: ClassVar[tuple[str, ...]] = ("tflite",)
    # suites build CPU TFLite models; the Edge TPU needs edgetpu_compiler's output
    runs_suite_builds: ClassVar[bool] = False

    def __init__(
        self,
        *,
        pycoral: ModuleType | None = None,
        interpreter_module: ModuleType | None = None,
        load_delegate: Callable[..., Any] | None = None,
        load_library: Callable[[str], Any] | None = None,
        system: str | None = None,
        discover: bool = True,
    ) -> None:
        """All runtime pieces are injectable for tests.

        ``pycoral`` is the ``pycoral.utils.edgetpu`` module; ``interpreter_module`` a
        LiteRT/tflite_runtime ``interpreter`` module and ``load_delegate`` its loader
        (default: the module's own). ``load_library`` probes the Edge TPU library
        before the delegate is built (default ``ctypes.CDLL`` unless runtime pieces
        were injected): LiteRT's Delegate leaves a half-built object behind when
        the library is missing. ``system`` overrides ``platform.system()``. With
        ``discover=False`` nothing that was not injected is imported.
        """
        self._pycoral = pycoral
        self._mod = interpreter_module
        self._load_delegate = load_delegate
        self._system = system or platform.system()
        injected = any(x is not None for x in (pycoral, interpreter_module, load_delegate))
        self._discover = discover and not injected
        self._load_library = load_library or (ctypes.CDLL if self._discover else None)
        self._runtime_name = "ai_edge_litert"
        self._version = "injected"

    # -- runtime discovery ---------------------------------------------------------------
    @property
    def library(self) -> str:
        """File name of the Edge TPU runtime library on this platform."""
        return EDGETPU_LIBRARIES.get(self._system, EDGETPU_LIBRARIES["Linux"])

    def _probe_library(self) -> None:
        """OSError when the Edge TPU library cannot be loaded."""
        if self._load_library is not None:
            self._load_library(self.library)

    def _pycoral_module(self) -> ModuleType | None:
        if self._pycoral is None and self._discover:
            # Only Google's pycoral has this module; PyPI's unrelated "pycoral" does not.
            self._pycoral = _import("pycoral.utils.edgetpu")
        return self._pycoral

    def _litert(self) -> tuple[ModuleType | None, Callable[..., Any]]:
        if self._mod is None and self._discover:
            found = import_interpreter()
            if found is not None:
                self._mod, self._runtime_name, self._version = found
        loader = self._load_delegate
        if loader is None:
            if self._mod is None:
                raise UnavailableError(
                    f"neither pycoral nor LiteRT is installed: {INSTALL_HINT} and {RUNTIME_HINT}"
                )
            loader = self._mod.load_delegate
        return self._mod, loader

    # -- availability --------------------------------------------------------------------
    @classmethod
    def runtime_version(cls) -> str | None:
        """pycoral's Edge TPU runtime version, else the LiteRT version (the delegate's host)."""
        pycoral = _import("pycoral.utils.edgetpu")
        if pycoral is not None:
            try:
                return str(pycoral.get_runtime_version())
            except Exception:
                return "pycoral (runtime version unknown)"
        found = import_interpreter()
        return None if found is None else found[2]

    @classmethod
    def is_available(cls, device: str = "edgetpu") -> Availability:
        return cls().availability(device)

    def availability(self, device: str) -> Availability:
        """Whether the Edge TPU runtime loads and finds ``device``; the reason names the fix.

        Without pycoral this loads (and drops) the Edge TPU delegate, which opens
        the device for a moment.
        """
        try:
            dev = delegate_device(device)
        except ConfigError as exc:
            return Availability.no(str(exc))
        pycoral = self._pycoral_module()
        if pycoral is not None:
            return self._pycoral_availability(pycoral, dev)
        try:
            _, loader = self._litert()
            self._probe_library()
            loader(self.library, {"device": dev} if dev else {})
        except UnavailableError as exc:
            return Availability.no(str(exc))
        except OSError:
            return Availability.no(f"{self.library} not found: {RUNTIME_HINT}")
        except ValueError as exc:
            return Availability.no(self._no_device(dev, exc))
        return Availability.yes(f"Edge TPU at {dev or 'first found'} via {self.library}")

    def _pycoral_availability(self, pycoral: ModuleType, dev: str | None) -> Availability:
        try:
            tpus = list(pycoral.list_edge_tpus())
        except Exception as exc:
            return Availability.no(
                f"pycoral cannot list Edge TPUs ({one_line(exc)}): {RUNTIME_HINT}"
            )
        if not tpus:
            return Availability.no(self._no_device(dev, None))
        if dev is not None:
            kind, _, index = dev.partition(":")
            matching = [t for t in tpus if not kind or t.get("type") == kind]
            if len(matching) <= int(index or 0):
                return Availability.no(self._no_device(dev, None))
        found = ", ".join(f"{t.get('type')}:{t.get('path')}" for t in tpus)
        return Availability.yes(f"pycoral: {found}")

    def _no_device(self, dev: str | None, exc: BaseException | None) -> str:
        why = f" ({one_line(exc)})" if exc is not None and str(exc).strip() else ""
        return (
            f"no Edge TPU found at {dev or 'any port'}{why}: plug in the USB Accelerator "
            f"(check lsusb) or install the PCIe driver (gasket-dkms, /dev/apex_0), "
            f"or pick another --device"
        )

    # -- loading -------------------------------------------------------------------------
    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> Session:
        check_keys(self.name, options.extra, {})
        if artifact.format not in self.formats:
            raise ConfigError(
                f"coral loads Edge TPU-compiled TFLite models, not {artifact.format}: "
                f"pass a _edgetpu.tflite file (see docs/coral.md)"
            )
        dev = delegate_device(options.device)
        path = Path(artifact.path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path} (check the --model path)")
        if not has_edgetpu_op(path):
            raise ConfigError(
                f"{path.name} has no {EDGETPU_CUSTOM_OP}: it would run entirely on the CPU; "
                f"compile it with edgetpu_compiler (docs/coral.md) or use --adapter litert"
            )
        pycoral = self._pycoral_module()
        if pycoral is not None:
            interpreter, extra = self._open_pycoral(pycoral, path, dev, options)
            runtime, version = "pycoral", self._pycoral_version(pycoral)
        else:
            interpreter, extra = self._open_delegate(path, dev, options)
            runtime, version = self._runtime_name, self._version
        precision, kind = model_precision(interpreter)
        check_precision(options, precision, kind, path)
        return LiteRtSession(
            interpreter,
            adapter=self.name,
            runtime=runtime,
            runtime_version=version,
            options=options,
            precision=precision,
            quantization=kind,
            execution_provider="EdgeTPU",
            extra={"edgetpu_device": dev or "first found", **extra},
        )

    @staticmethod
    def _pycoral_version(pycoral: ModuleType) -> str:
        try:
            return str(pycoral.get_runtime_version())
        except Exception:
            return "unknown"

    def _open_pycoral(
        self, pycoral: ModuleType, path: Path, dev: str | None, options: AdapterOptions
    ) -> tuple[Any, dict[str, Any]]:
        if options.threads is not None:
            raise ConfigError(
                "pycoral's make_interpreter takes no thread count: leave out --threads "
                "(CPU-side ops use the runtime default) or uninstall pycoral to load the "
                "Edge TPU delegate through LiteRT, which takes --threads"
            )

        def make(model_path: str) -> Any:
            try:
                return pycoral.make_interpreter(model_path, device=dev)
            except OSError as exc:
                raise UnavailableError(f"{self.library} not found: {RUNTIME_HINT}") from exc
            except ValueError as exc:
                if "delegate" in str(exc).lower():
                    raise UnavailableError(self._no_device(dev, exc)) from exc
                raise

        interpreter = open_interpreter(make, path, "pycoral", edgetpu_hint=False)
        return interpreter, {"loader": "pycoral.utils.edgetpu.make_interpreter"}

    def _open_delegate(
        self, path: Path, dev: str | None, options: AdapterOptions
    ) -> tuple[Any, dict[str, Any]]:
        mod, loader = self._litert()
        if mod is None:
            raise UnavailableError(f"LiteRT not installed: {INSTALL_HINT}")
        delegate_options: Mapping[str, str] = {"device": dev} if dev else {}
        try:
            self._probe_library()
            delegate = loader(self.library, dict(delegate_options))
        except OSError as exc:
            raise UnavailableError(f"{self.library} not found: {RUNTIME_HINT}") from exc
        except ValueError as exc:
            raise UnavailableError(self._no_device(dev, exc)) from exc
        interpreter = open_interpreter(
            mod.Interpreter,
            path,
            self._runtime_name,
            edgetpu_hint=False,
            experimental_delegates=[delegate],
            num_threads=options.threads,
        )
        return interpreter, {
            "loader": f"{self._runtime_name}.load_delegate",
            "delegate_library": self.library,
            "delegate_options": dict(delegate_options),
        }

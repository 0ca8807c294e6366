"""PyTorch adapter: TorchScript models on CPU or CUDA.

Timing semantics (what the harness's timed region contains):

* :meth:`TorchSession.prepare` (not timed) turns each numpy input into a tensor
  of the session's dtype *on the target device*. On CPU a float32 input is
  shared with numpy, no copy. On CUDA the host→device copy happens here and is
  followed by ``torch.cuda.synchronize`` so it is finished before timing starts;
  inputs are not pinned, since the copy is done once, untimed, and the tensors
  then stay resident on the GPU.
* :meth:`TorchSession.run` (timed) is the forward call under
  ``torch.inference_mode()``. CUDA kernels are asynchronous, so on CUDA ``run``
  calls ``torch.cuda.synchronize(device)`` after the forward call: without it
  the clock would stop when the kernels are *queued*, not done. The outputs are
  then copied back to host numpy arrays inside ``run``, because a result is
  only usable once materialised (for MobileNetV2 that is 1000 logits, a few
  microseconds). On CPU ``Tensor.numpy()`` shares memory and costs nothing.

``threads`` calls ``torch.set_num_threads``, which is process-global: every
torch session in the process shares it, and ``describe()`` reports the value
in effect when it is called.

On CUDA, "fp32" is PyTorch's default fp32: cuDNN may run convolutions in TF32
(``torch.backends.cudnn.allow_tf32``, True by default); ``describe()`` records
it and the float32 matmul precision, and the adapter leaves both as they are.

fp16 runs on CUDA only: PyTorch's CPU half-precision kernels work but are
roughly 16× slower than fp32 (MobileNetV2, torch 2.13, one thread: 245 ms vs
15 ms), which would measure a fallback path rather than the hardware. A float
model is cast at load (``module.half()``).

int8 means a model quantised by PyTorch itself (``torch.ao.quantization``, e.g.
the suite's FX post-training static model): its I/O signature says
``"precision": "int8"`` and the ``quantized_engine`` it was built for. Quantised
kernels run on the CPU only. Packed weights are re-packed for the engine in
effect when the file is loaded, so ``load`` sets ``torch.backends.quantized.engine``
(process-global, like the thread count) to the model's engine first and
``describe()`` reports it. Inputs and outputs stay float32.

No ``--adapter-opt`` keys: any is refused.

TorchScript files carry no tensor shapes, so the model's I/O signature is
stored in the archive member :data:`IO_EXTRA_FILE` as JSON::

    {"inputs": [{"name": "input", "shape": ["N", 3, 224, 224], "dtype": "float32"}],
     "outputs": [{"name": "logits", "shape": ["N", 1000], "dtype": "float32"}]}

Write it with ``torch.jit.save(module, f, _extra_files={IO_EXTRA_FILE: json_text})``;
:mod:`wattbench.suites.models.torch_export` does so.
"""

from __future__ import annotations

import importlib
import json
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from pydantic import ValidationError

from wattbench.adapters.options import check_keys
from wattbench.core.adapter import (
    TORCHSCRIPT_IO_FILE,
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

INSTALL_HINT = "pip install 'wattbench[torch]'"

#: Archive member (``torch.jit.save`` extra file) holding the model's I/O signature.
IO_EXTRA_FILE = TORCHSCRIPT_IO_FILE

NO_CUDA_REASON = "no CUDA device (torch.cuda.is_available() is False)"

_DEVICES_HINT = "use cpu, cuda or cuda:N"


def _import_torch() -> ModuleType | None:
    # importlib keeps mypy from analysing (or requiring) torch: it is an optional extra.
    try:
        return importlib.import_module("torch")
    except ImportError:
        return None


def _parse_device(device: str) -> tuple[str, int | None] | None:
    """``"cpu"`` → ("cpu", None), ``"cuda"`` → ("cuda", None), ``"cuda:1"`` → ("cuda", 1)."""
    base, sep, index = device.partition(":")
    if base == "cpu" and not sep:
        return "cpu", None
    if base == "cuda":
        if not sep:
            return "cuda", None
        if index.isdigit():
            return "cuda", int(index)
    return None


def _no_cuda_reason(torch: ModuleType) -> str:
    if getattr(torch.version, "cuda", None) is None:
        return (
            f"{NO_CUDA_REASON}: torch {torch.__version__} is a CPU-only build; "
            f"install a CUDA build of torch or use --device cpu"
        )
    return f"{NO_CUDA_REASON}: check the NVIDIA driver or use --device cpu"


def _cuda_problem(torch: ModuleType, index: int | None) -> str | None:
    """Why CUDA device ``index`` cannot be used, or None when it can."""
    if not torch.cuda.is_available():
        return _no_cuda_reason(torch)
    count = int(torch.cuda.device_count())
    if index is not None and index >= count:
        return f"cuda:{index} does not exist: torch sees {count} CUDA device(s) (use cuda:0)"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _io_specs(raw: str | bytes, path: object) -> tuple[list[TensorSpec], list[TensorSpec]]:
    fix = (
        f"store the I/O signature as {IO_EXTRA_FILE} with torch.jit.save(..., _extra_files=...) "
        f"(see wattbench.adapters.torch) or rebuild the model"
    )
    if not raw:
        raise ModelError(
            f"{path} has no wattbench I/O signature and TorchScript stores no input shapes: {fix}"
        )
    try:
        meta = json.loads(raw)
        inputs = [TensorSpec(**s) for s in meta["inputs"]]
        outputs = [TensorSpec(**s) for s in meta["outputs"]]
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise ModelError(
            f"{path} has a malformed {IO_EXTRA_FILE} ({type(exc).__name__}): {fix}"
        ) from exc
    return inputs, outputs


def read_io_meta(path: object) -> dict[str, Any]:
    """The archive's :data:`IO_EXTRA_FILE` as a dict, read with zipfile (no torch import).

    Empty when the file is not a zip archive or has no such member.
    """
    try:
        with zipfile.ZipFile(str(path)) as z:
            name = next((n for n in z.namelist() if n.endswith("/extra/" + IO_EXTRA_FILE)), None)
            if name is None:
                return {}
            meta = json.loads(z.read(name))
    except (OSError, zipfile.BadZipFile, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


class TorchSession(Session):
    """A TorchScript module on one device, in fp32, fp16 or (CPU) int8."""

    def __init__(
        self,
        module: Any,
        torch: ModuleType,
        options: AdapterOptions,
        device: str,
        specs: tuple[list[TensorSpec], list[TensorSpec]],
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self._meta = dict(meta or {})
        self._module = module
        self._torch = torch
        self._options = options
        self._device = device
        self._cuda = device.startswith("cuda")
        self._dtype = torch.float16 if options.precision == "fp16" else torch.float32
        np_float = "float16" if options.precision == "fp16" else "float32"

        def cast(s: TensorSpec) -> TensorSpec:
            is_float = s.dtype.startswith("float")
            return s.model_copy(update={"dtype": np_float}) if is_float else s

        self._inputs = [cast(s) for s in specs[0]]
        self._outputs = [cast(s) for s in specs[1]]

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def prepare(self, feed: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
        """Tensors in input order, in the session's dtype, already on the device."""
        torch = self._torch
        tensors = []
        for spec in self._inputs:
            if spec.name not in feed:
                raise ModelError(
                    f"no input {spec.name!r} in the feed (got {', '.join(feed) or 'none'}): "
                    f"the model takes {', '.join(s.name for s in self._inputs)}"
                )
            arr = np.ascontiguousarray(feed[spec.name])
            dtype = self._dtype if arr.dtype.kind == "f" else None
            tensors.append(torch.as_tensor(arr, dtype=dtype, device=self._device))
        if self._cuda:
            torch.cuda.synchronize(self._device)  # the copy is finished before timing starts
        return tuple(tensors)

    def run(self, prepared: Any) -> Sequence[np.ndarray]:
        """Forward call; on CUDA waits for the kernels and copies the outputs back."""
        torch = self._torch
        with torch.inference_mode():
            out = self._module(*prepared)
            if self._cuda:
                torch.cuda.synchronize(self._device)
        if isinstance(out, torch.Tensor):
            return [out.cpu().numpy()]
        if isinstance(out, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in out):
            return [t.cpu().numpy() for t in out]
        raise ModelError(
            f"the TorchScript model returned {type(out).__name__}; wattbench needs a tensor "
            f"or a tuple of tensors: wrap its forward to return tensors"
        )

    def describe(self) -> AdapterDescription:
        torch = self._torch
        opts: dict[str, Any] = {
            "intra_op_threads": int(torch.get_num_threads()),
            "threads_scope": "process-global (torch.set_num_threads)",
            "requested_threads": self._options.threads or "runtime default",
            "inference_mode": True,
            "torch_device": self._device,
        }
        if self._options.precision == "int8":
            opts["quantized_engine"] = str(torch.backends.quantized.engine)
            opts["quantized_engine_scope"] = "process-global (torch.backends.quantized.engine)"
            opts["quantization"] = self._meta.get("quantization", "not recorded in the model")
        elif self._options.precision == "fp16":
            opts["fp16_cast"] = "module.half() at load; float inputs cast in prepare"
        if self._cuda:
            opts["cuda_synchronize_in_run"] = True
            opts["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
            # PyTorch lets cuDNN run fp32 convolutions in TF32 by default (process-global).
            opts["cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
            opts["float32_matmul_precision"] = str(torch.get_float32_matmul_precision())
            provider = f"CUDA {torch.version.cuda} ({torch.cuda.get_device_name(self._device)})"
        else:
            provider = f"CPU ({torch.backends.cpu.get_cpu_capability()})"
        return AdapterDescription(
            adapter=TorchAdapter.name,
            runtime="torch",
            runtime_version=str(torch.__version__),
            device=self._options.device,
            execution_provider=provider,
            precision=self._options.precision,
            options=opts,
        )

    def close(self) -> None:
        self._module = None


class TorchAdapter(Adapter):
    """Runs TorchScript models with PyTorch on CPU (fp32, int8) or CUDA (fp32, fp16)."""

    name: ClassVar[str] = "torch"
    formats: ClassVar[tuple[str, ...]] = ("torchscript",)

    def __init__(self, torch_module: ModuleType | None = None) -> None:
        # The torch module is injectable so tests can hand in a double.
        self._torch = torch_module

    @classmethod
    def runtime_version(cls) -> str | None:
        torch = _import_torch()
        return None if torch is None else str(torch.__version__)

    @classmethod
    def is_available(cls, device: str = "cpu") -> Availability:
        torch = _import_torch()
        if torch is None:
            return Availability.no(f"torch not installed: {INSTALL_HINT}")
        parsed = _parse_device(device)
        if parsed is None:
            return Availability.no(f"unknown device {device!r} for torch ({_DEVICES_HINT})")
        kind, index = parsed
        if kind == "cpu":
            return Availability.yes(
                f"torch {torch.__version__}, CPU ({torch.backends.cpu.get_cpu_capability()})"
            )
        problem = _cuda_problem(torch, index)
        if problem is not None:
            return Availability.no(problem)
        name = torch.cuda.get_device_name(index or 0)
        return Availability.yes(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {name}")

    def _runtime(self) -> ModuleType:
        torch = self._torch or _import_torch()
        if torch is None:
            raise UnavailableError(f"torch not installed: {INSTALL_HINT}")
        self._torch = torch
        return torch

    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> Session:
        torch = self._runtime()
        if artifact.format not in self.formats:
            raise ConfigError(
                f"torch loads TorchScript models, not {artifact.format}: "
                f"pass a TorchScript (.pt) file or pick an adapter that loads {artifact.format}"
            )
        parsed = _parse_device(options.device)
        if parsed is None:
            raise ConfigError(f"unknown device {options.device!r} for torch ({_DEVICES_HINT})")
        kind, index = parsed
        check_keys(self.name, options.extra, {})
        meta = read_io_meta(artifact.path)
        quantized = meta.get("precision") == "int8"
        if quantized and options.precision != "int8":
            raise ConfigError(
                f"{artifact.path.name} is a quantised (int8) TorchScript model: "
                f"pass --precision int8"
            )
        if options.precision == "int8" and not quantized:
            raise ConfigError(
                f"--precision int8 but {artifact.path.name} is not a quantised TorchScript model "
                f"(its {IO_EXTRA_FILE} does not say precision int8): pass --precision fp32, or "
                f"leave out --model so the suite builds its int8 model"
            )
        if options.precision == "int8" and kind != "cpu":
            raise ConfigError(
                "int8 TorchScript runs on the CPU only (PyTorch's quantised kernels have no "
                "CUDA backend): use --device cpu, or --adapter tensorrt for int8 on a GPU"
            )
        if kind == "cpu" and options.precision == "fp16":
            raise ConfigError(
                "fp16 on cpu is not supported by the torch adapter (PyTorch's CPU half "
                "kernels are a slow fallback): use --precision fp32 or --device cuda"
            )
        if quantized:
            engine = str(meta.get("quantized_engine") or torch.backends.quantized.engine)
            engines = list(torch.backends.quantized.supported_engines)
            if engine not in engines:
                raise UnavailableError(
                    f"{artifact.path.name} was quantised for the {engine} engine, which this "
                    f"torch build lacks (it has {', '.join(engines)}): rebuild the int8 model "
                    f"here (clear it from the model cache) or use --precision fp32"
                )
            torch.backends.quantized.engine = engine  # process-global; before jit.load
        if kind == "cuda":
            problem = _cuda_problem(torch, index)
            if problem is not None:
                raise UnavailableError(problem)
        device = "cpu" if kind == "cpu" else f"cuda:{index or 0}"
        if options.threads is not None:
            torch.set_num_threads(options.threads)  # process-global
        extra = {IO_EXTRA_FILE: ""}
        try:
            with warnings.catch_warnings():
                # torch 2.13 marks torch.jit.* deprecated; TorchScript is still our format.
                warnings.filterwarnings(
                    "ignore", r"`torch\.jit\.\w+` is deprecated", DeprecationWarning
                )
                module = torch.jit.load(str(artifact.path), map_location=device, _extra_files=extra)
        except Exception as exc:  # torch raises RuntimeError/ValueError/pickle errors
            raise ModelError(
                f"torch cannot load {artifact.path}: {_first_line(exc)} "
                f"(is it a TorchScript file from torch.jit.save? "
                f"re-export it or pass another --model)"
            ) from exc
        specs = _io_specs(extra[IO_EXTRA_FILE], artifact.path)
        module.eval()
        if options.precision == "fp16":
            module.half()
        return TorchSession(module, torch, options, device, specs, meta)

    def model_precision(self, artifact: ModelArtifact) -> Precision:
        """int8 when the file's I/O signature says so (a PyTorch-quantised model), else fp32."""
        return "int8" if read_io_meta(artifact.path).get("precision") == "int8" else "fp32"

"""Build an :class:`~wattbench.suites.models.mobilenet_v2.Architecture` as PyTorch / TorchScript.

Needs ``torch`` (``pip install 'wattbench[torch]'``), imported lazily, never at
module import. The module mirrors :mod:`wattbench.suites.models.onnx_export`
layer for layer (same conv order, same weights dict, ReLU6 as a clamp to
[0, 6], residual add, global average pool, linear head), so the ONNX and the
TorchScript artifacts of one recipe compute the same function.

TorchScript stores no tensor shapes, so the exporter writes the model's I/O
signature as the extra file :data:`TORCHSCRIPT_IO_FILE` inside the archive; the torch
adapter reads it back for ``Session.inputs()``/``outputs()``.

INT8 is PyTorch's own post-training static quantisation: ``torch.ao.quantization``
FX graph mode (``prepare_fx``/``convert_fx``) with the default qconfig mapping of
the quantised engine (``x86`` where the build has it, else ``qnnpack`` on ARM):
per-channel int8 weights, uint8 activations, MinMax/histogram observers
calibrated on the rows it is given (the suite's fixed input set, as for the ONNX
int8 model), then ``torch.jit.trace``. The input and output stay float32 (a
quantize at the start, a dequantize at the end). The engine is stored in the
I/O signature (``quantized_engine``): packed weights are re-packed for the
engine in effect when the file is loaded, so the adapter selects it first.
"""

from __future__ import annotations

import importlib
import io
import json
import warnings
from types import ModuleType
from typing import Any

import numpy as np

from wattbench.core.adapter import TORCHSCRIPT_IO_FILE, ModelArtifact
from wattbench.core.cache import ModelCache
from wattbench.core.errors import UnavailableError
from wattbench.suites.models.mobilenet_v2 import (
    Architecture,
    Conv,
    all_convs,
    mobilenet_v2,
    random_weights,
)

INSTALL_HINT = "pip install 'wattbench[torch]'"

#: Suffix of TorchScript files in the model cache.
SUFFIX = ".pt"

MODEL_NAME = "mobilenet_v2_1.0_224"


def _torch() -> ModuleType:
    # importlib keeps mypy from analysing (or requiring) torch: it is an optional extra.
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        raise UnavailableError(
            f"building TorchScript models needs torch: {INSTALL_HINT} "
            f"(or pass an existing model with --model)"
        ) from exc


def io_signature(arch: Architecture) -> dict[str, list[dict[str, Any]]]:
    """The model's inputs and outputs as :class:`~wattbench.core.adapter.TensorSpec` dicts."""
    size = arch.input_size
    return {
        "inputs": [{"name": "input", "shape": ["N", 3, size, size], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": ["N", arch.head.classes], "dtype": "float32"}],
    }


def to_torch_module(arch: Architecture, weights: dict[str, np.ndarray]) -> Any:
    """A ``torch.nn.Module`` (eval mode, float32) computing the same function as the ONNX export.

    Input NCHW float32, output ``(N, classes)`` logits. ``weights`` uses the keys of
    :func:`~wattbench.suites.models.mobilenet_v2.random_weights`.
    """
    torch = _torch()
    nn = torch.nn
    module_base: Any = nn.Module

    class Residual(module_base):
        """``x + body(x)``: the inverted-residual shortcut."""

        def __init__(self, body: Any) -> None:
            super().__init__()
            self.body = body

        def forward(self, x: Any) -> Any:
            return x + self.body(x)

    convs = all_convs(arch)
    index = {id(c): i for i, c in enumerate(convs)}

    def conv(c: Conv, idx: int) -> Any:
        layer = nn.Conv2d(
            c.cin,
            c.cout,
            kernel_size=c.kernel,
            stride=c.stride,
            padding=c.kernel // 2,
            groups=c.groups,
            bias=True,
        )
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(weights[f"conv{idx}.w"]))
            layer.bias.copy_(torch.from_numpy(weights[f"conv{idx}.b"]))
        return nn.Sequential(layer, nn.ReLU6()) if c.relu6 else layer

    layers: list[Any] = [conv(arch.stem, 0)]
    for block in arch.blocks:
        body = nn.Sequential(*(conv(c, index[id(c)]) for c in block.convs))
        layers.append(Residual(body) if block.residual else body)
    layers.append(conv(arch.last, len(convs) - 1))
    fc = nn.Linear(arch.head.cin, arch.head.classes, bias=True)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(weights["fc.w"]))
        fc.bias.copy_(torch.from_numpy(weights["fc.b"]))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1), fc]
    # nn.Sequential's forward argument is called ``input``: the traced graph's input
    # name then matches the ONNX export and the I/O signature.
    model = nn.Sequential(*layers)
    model.eval()
    return model


def to_torchscript_bytes(arch: Architecture, weights: dict[str, np.ndarray], name: str) -> bytes:
    """Serialised TorchScript (``torch.jit.trace`` in eval mode on a 1×3×H×W example).

    The traced graph has no fixed batch size. ``name`` and the I/O signature are
    stored in the archive's :data:`TORCHSCRIPT_IO_FILE`.
    """
    torch = _torch()
    model = to_torch_module(arch, weights)
    size = arch.input_size
    example = torch.zeros(1, 3, size, size, dtype=torch.float32)  # zeros: bytes stay seed-only
    meta = {"name": name, **io_signature(arch)}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # torch 2.13 marks torch.jit.* deprecated; TorchScript is still our format.
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", DeprecationWarning)
        with torch.no_grad():
            traced = torch.jit.trace(model, example)
        torch.jit.save(
            traced, buf, _extra_files={TORCHSCRIPT_IO_FILE: json.dumps(meta, sort_keys=True)}
        )
    return buf.getvalue()


def quantized_engine(torch: ModuleType | None = None) -> str:
    """The engine int8 models are built for: ``x86`` (fbgemm+oneDNN) if present, else qnnpack."""
    torch = torch or _torch()
    engines = list(torch.backends.quantized.supported_engines)
    for engine in ("x86", "fbgemm", "qnnpack"):
        if engine in engines:
            return engine
    raise UnavailableError(
        f"this torch build has no quantised engine (supported: {', '.join(engines) or 'none'}): "
        f"install a standard torch build or use --precision fp32"
    )


def to_int8_torchscript_bytes(
    arch: Architecture,
    weights: dict[str, np.ndarray],
    name: str,
    calibration: list[np.ndarray],
    engine: str,
) -> bytes:
    """Serialised TorchScript of the FX post-training static int8 model.

    ``calibration`` holds preprocessed NCHW float32 rows (no batch dimension);
    ``engine`` is a ``torch.backends.quantized`` engine (see :func:`quantized_engine`).
    """
    if not calibration:
        raise ValueError("int8 calibration needs at least one input row")
    torch = _torch()
    quantization = importlib.import_module("torch.ao.quantization")
    quantize_fx = importlib.import_module("torch.ao.quantization.quantize_fx")
    size = arch.input_size
    example = torch.zeros(1, 3, size, size, dtype=torch.float32)
    meta = {
        "name": name,
        **io_signature(arch),
        "precision": "int8",
        "quantized_engine": engine,
        "quantization": f"static int8, torch.ao.quantization FX graph mode, "
        f"get_default_qconfig_mapping({engine!r}), {len(calibration)} calibration rows",
    }
    previous = torch.backends.quantized.engine
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # torch 2.13 marks torch.ao.quantization and torch.jit.* deprecated (successors:
        # torchao's pt2e flow, torch.export); both still work and need no extra package.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao\..*")
        warnings.filterwarnings("ignore", r".*quantize_per_tensor.*", UserWarning)
        # the tracer sees the quantisation scales as Python floats: they are constants
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        try:
            torch.backends.quantized.engine = engine
            model = to_torch_module(arch, weights)
            prepared = quantize_fx.prepare_fx(
                model, quantization.get_default_qconfig_mapping(engine), (example,)
            )
            with torch.no_grad():
                for row in calibration:
                    prepared(torch.from_numpy(np.ascontiguousarray(row[None], dtype=np.float32)))
            quantized = quantize_fx.convert_fx(prepared)
            with torch.no_grad():
                traced = torch.jit.trace(quantized, example)
            torch.jit.save(
                traced, buf, _extra_files={TORCHSCRIPT_IO_FILE: json.dumps(meta, sort_keys=True)}
            )
        finally:
            torch.backends.quantized.engine = previous
    return buf.getvalue()


def int8_recipe_key(seed: int, version: str, engine: str, calibration_digest: str) -> str:
    """Model-cache recipe key of the MobileNetV2 int8 TorchScript build."""
    return (
        f"mobilenet_v2-1.0-224-torchscript-int8-fx-{engine}-random-seed{seed}"
        f"-calib-{calibration_digest[:16]}-v{version}"
    )


def build_torchscript_int8_artifact(
    seed: int,
    cache: ModelCache,
    version: str,
    calibration: list[np.ndarray],
    calibration_digest: str,
) -> ModelArtifact:
    """The suite's int8 TorchScript model, calibrated on ``calibration``, built once per cache."""
    engine = quantized_engine()
    key = int8_recipe_key(seed, version, engine, calibration_digest)
    sha = cache.recipe(key)
    path = cache.lookup(sha, SUFFIX) if sha else None
    if path is None or sha is None:
        arch = mobilenet_v2()
        data = to_int8_torchscript_bytes(
            arch, random_weights(arch, seed), MODEL_NAME, calibration, engine
        )
        path, sha = cache.put_bytes(data, SUFFIX)
        cache.remember_recipe(key, sha)
    return ModelArtifact(
        path=path,
        sha256=sha,
        format="torchscript",
        precision="int8",
        weights=f"random(seed={seed})",
        name=MODEL_NAME,
    )


def recipe_key(seed: int, version: str) -> str:
    """Model-cache recipe key of the MobileNetV2 TorchScript build."""
    return f"mobilenet_v2-1.0-224-torchscript-random-seed{seed}-v{version}"


def build_torchscript_artifact(seed: int, cache: ModelCache, version: str) -> ModelArtifact:
    """The mobilenet_v2 suite's TorchScript model (random weights ``seed``), built once per cache.

    Mirrors ``MobileNetV2Suite.build_model`` for ONNX: the recipe key remembers the
    sha256 of the first build, so later calls reuse the cached file even if a
    rebuild would serialise differently. ``version`` is the suite version.
    """
    key = recipe_key(seed, version)
    sha = cache.recipe(key)
    path = cache.lookup(sha, SUFFIX) if sha else None
    if path is None or sha is None:
        arch = mobilenet_v2()
        data = to_torchscript_bytes(arch, random_weights(arch, seed), MODEL_NAME)
        path, sha = cache.put_bytes(data, SUFFIX)
        cache.remember_recipe(key, sha)
    return ModelArtifact(
        path=path,
        sha256=sha,
        format="torchscript",
        precision="fp32",
        weights=f"random(seed={seed})",
        name=MODEL_NAME,
    )

"""Precision variants of an FP32 ONNX model: FP16 and INT8 (post-training static).

Both need the ``onnx`` and ``onnxruntime`` packages (imported lazily):

FP16
    ``onnxruntime.transformers.float16.convert_float_to_float16`` with
    ``keep_io_types=True``: weights and activations become float16, the graph's
    input and output stay float32 (a Cast at each end), so the suite feeds the
    same float32 rows to every variant.
INT8
    ``onnxruntime.quantization.quantize_static`` in QDQ format with per-channel
    int8 weights and int8 activations (S8S8, ONNX Runtime's recommended first
    choice for QDQ), MinMax-calibrated on the rows it is given — the suite's
    fixed input set. The model is first run through ``quant_pre_process``
    (shape inference and graph optimisation), as ONNX Runtime recommends. A QDQ
    model is read by OpenVINO as FakeQuantize nodes, so the same file serves the
    openvino adapter at ``--precision int8``.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from wattbench.core.errors import UnavailableError

INSTALL_HINT = "pip install 'wattbench[models,onnxruntime]'"


def _module(name: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise UnavailableError(
            f"building {what} models needs onnx and onnxruntime: {INSTALL_HINT} "
            f"(or pass an existing model with --model)"
        ) from exc


def fp16_onnx_bytes(fp32_path: Path) -> bytes:
    """The FP16 twin of an FP32 ONNX model, float32 inputs and outputs kept."""
    onnx = _module("onnx", "fp16")
    float16 = _module("onnxruntime.transformers.float16", "fp16")
    model = float16.convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    _topological_sort(model.graph)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _topological_sort(graph: Any) -> None:
    """Reorder ``graph.node`` so every node follows its inputs' producers.

    The converter appends the input Casts at the end of the node list; ONNX
    Runtime does not mind, but the ONNX checker and other tools do.
    """
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[Any] = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("fp16 conversion produced a graph with a cycle or a dangling input")
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered, strict=True):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


class _Rows:
    """A CalibrationDataReader over fixed rows (duck-typed: ORT calls get_next/rewind)."""

    def __init__(self, input_name: str, rows: Sequence[np.ndarray]) -> None:
        self._name = input_name
        self._rows = [np.ascontiguousarray(r[None], dtype=np.float32) for r in rows]
        self._it: Iterator[np.ndarray] = iter(self._rows)

    def get_next(self) -> dict[str, np.ndarray] | None:
        row = next(self._it, None)
        return None if row is None else {self._name: row}

    def rewind(self) -> None:
        self._it = iter(self._rows)


def int8_onnx_bytes(fp32_path: Path, input_name: str, calibration: Sequence[np.ndarray]) -> bytes:
    """The INT8 (QDQ, per-channel) twin of an FP32 ONNX model.

    ``calibration`` holds preprocessed rows (no batch dimension) for the input
    ``input_name``; activation ranges are their MinMax.
    """
    if not calibration:
        raise ValueError("int8 calibration needs at least one input row")
    quantization = _module("onnxruntime.quantization", "int8")
    shape_inference = _module("onnxruntime.quantization.shape_inference", "int8")
    reader: Any = _Rows(input_name, calibration)
    with tempfile.TemporaryDirectory(prefix="wattbench-quant-") as tmp:
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        shape_inference.quant_pre_process(str(fp32_path), str(pre))
        quantization.quantize_static(
            str(pre),
            str(out),
            reader,
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=True,
            activation_type=quantization.QuantType.QInt8,
            weight_type=quantization.QuantType.QInt8,
            calibrate_method=quantization.CalibrationMethod.MinMax,
        )
        return out.read_bytes()

"""Emit an :class:`~wattbench.suites.models.mobilenet_v2.Architecture` as ONNX.

Needs the ``onnx`` package (``pip install 'wattbench[models]'``), imported
lazily. Only the graph builder uses it; running the model needs a runtime.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wattbench.core.errors import UnavailableError
from wattbench.suites.models.mobilenet_v2 import Architecture, Conv, all_convs

OPSET = 13


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise UnavailableError(
            "building models needs the onnx package: pip install 'wattbench[models]' "
            "(or pass an existing model with --model)"
        ) from exc
    return onnx


def to_onnx_bytes(arch: Architecture, weights: dict[str, np.ndarray], name: str) -> bytes:
    """Serialised ONNX model with a symbolic batch dimension ``N`` (input NCHW float32)."""
    onnx = _onnx()
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    nodes: list[Any] = []
    inits: list[Any] = []
    counter = iter(range(1_000_000))

    def fresh(prefix: str) -> str:
        return f"{prefix}_{next(counter)}"

    def conv(x: str, c: Conv, idx: int) -> str:
        w, b = f"conv{idx}.w", f"conv{idx}.b"
        inits.append(numpy_helper.from_array(weights[w], w))
        inits.append(numpy_helper.from_array(weights[b], b))
        out = fresh("conv")
        pad = c.kernel // 2
        nodes.append(
            helper.make_node(
                "Conv",
                [x, w, b],
                [out],
                kernel_shape=[c.kernel, c.kernel],
                strides=[c.stride, c.stride],
                pads=[pad, pad, pad, pad],
                group=c.groups,
            )
        )
        if not c.relu6:
            return out
        z = fresh("relu6")
        nodes.append(helper.make_node("Clip", [out, "relu6_min", "relu6_max"], [z]))
        return z

    inits.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), "relu6_min"))
    inits.append(numpy_helper.from_array(np.array(6.0, dtype=np.float32), "relu6_max"))

    convs = all_convs(arch)
    index = {id(c): i for i, c in enumerate(convs)}
    x = conv("input", arch.stem, 0)
    for block in arch.blocks:
        y = x
        for c in block.convs:
            y = conv(y, c, index[id(c)])
        if block.residual:
            s = fresh("add")
            nodes.append(helper.make_node("Add", [x, y], [s]))
            y = s
        x = y
    x = conv(x, arch.last, len(convs) - 1)
    pooled, flat = fresh("pool"), fresh("flat")
    nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled]))
    nodes.append(helper.make_node("Flatten", [pooled], [flat], axis=1))
    inits.append(numpy_helper.from_array(weights["fc.w"], "fc.w"))
    inits.append(numpy_helper.from_array(weights["fc.b"], "fc.b"))
    nodes.append(helper.make_node("Gemm", [flat, "fc.w", "fc.b"], ["logits"], transB=1))

    size = arch.input_size
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", arch.head.classes])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="wattbench"
    )
    model.ir_version = 8  # readable by every ONNX Runtime release since 1.10
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())

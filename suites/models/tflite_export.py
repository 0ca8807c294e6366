"""Build an :class:`~wattbench.suites.models.mobilenet_v2.Architecture` as TFLite.

Needs TensorFlow (``pip install 'wattbench[tflite-build]'``, about 1.4 GB, so an
optional extra of its own), imported lazily. The Keras graph mirrors the ONNX
export layer for layer with the same weights: NHWC layout, explicit symmetric
zero padding before strided convolutions (Keras "same" pads stride-2 layers
asymmetrically, ONNX's export pads 1 on every side), ReLU6, residual adds,
global average pool and a dense head.

Variants
    ``fp32``: float32 model, input NHWC float32 *normalised* like the ONNX model
    (the suite's float preprocessing), output logits.
    ``fp16``: float16 weights (``target_spec.supported_types = [tf.float16]``),
    float32 input/output; LiteRT dequantises the weights when it loads them.
    ``int8``: full-integer (``TFLITE_BUILTINS_INT8``) with uint8 input and int8
    output. Its float graph starts with the ImageNet normalisation, so its
    input domain is raw pixels; the representative dataset includes a black
    and a white pixel so that the input quantisation is exactly scale 1, zero
    point 0 and the suite's raw uint8 pixels are the quantised input as they
    are. Outputs are int8 logits with the scale/zero point recorded in the
    model (the quality check's centred cosine is invariant to that affine map).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from wattbench.core.adapter import Precision
from wattbench.core.errors import UnavailableError
from wattbench.suites.images import IMAGENET_MEAN, IMAGENET_STD
from wattbench.suites.models.mobilenet_v2 import Architecture, Conv, all_convs

INSTALL_HINT = "pip install 'wattbench[tflite-build]'"


def _tf() -> ModuleType:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up chatter
    try:
        # importlib keeps mypy from analysing (or requiring) tensorflow
        return importlib.import_module("tensorflow")
    except ImportError as exc:
        raise UnavailableError(
            f"building TFLite models needs tensorflow: {INSTALL_HINT} "
            f"(about 1.4 GB; or pass an existing .tflite with --model)"
        ) from exc


def to_keras(arch: Architecture, weights: dict[str, np.ndarray], *, raw_pixels: bool) -> Any:
    """A Keras model computing the ONNX export's function in NHWC.

    ``raw_pixels``: the model takes 0..255 pixels and normalises them itself
    (the int8 variant); otherwise it takes normalised float input.
    """
    tf = _tf()
    layers = tf.keras.layers
    size = arch.input_size
    inp = tf.keras.Input(shape=(size, size, 3), batch_size=1, name="input", dtype="float32")
    x = inp
    if raw_pixels:
        scale = (1.0 / (255.0 * IMAGENET_STD)).astype(np.float32)
        offset = (-IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)
        x = layers.Lambda(lambda t: t * scale + offset, name="normalise")(x)
    convs = all_convs(arch)
    index = {id(c): i for i, c in enumerate(convs)}

    def conv(x: Any, c: Conv, idx: int) -> Any:
        w, b = weights[f"conv{idx}.w"], weights[f"conv{idx}.b"]  # OIHW
        pad = c.kernel // 2
        if c.stride > 1 and pad:
            x = layers.ZeroPadding2D(pad)(x)
            padding = "valid"
        else:
            padding = "same"
        if c.groups == 1:
            layer = layers.Conv2D(c.cout, c.kernel, strides=c.stride, padding=padding)
            x = layer(x)
            layer.set_weights([w.transpose(2, 3, 1, 0), b])  # OIHW -> HWIO
        elif c.groups == c.cin == c.cout:
            layer = layers.DepthwiseConv2D(c.kernel, strides=c.stride, padding=padding)
            x = layer(x)
            layer.set_weights([w.transpose(2, 3, 0, 1), b])  # (C,1,H,W) -> (H,W,C,1)
        else:
            raise ValueError(f"grouped convolution with {c.groups} groups is not supported")
        return layers.ReLU(max_value=6.0)(x) if c.relu6 else x

    x = conv(x, arch.stem, 0)
    for block in arch.blocks:
        y = x
        for c in block.convs:
            y = conv(y, c, index[id(c)])
        x = layers.Add()([x, y]) if block.residual else y
    x = conv(x, arch.last, len(convs) - 1)
    x = layers.GlobalAveragePooling2D()(x)
    dense = layers.Dense(arch.head.classes, name="logits")
    out = dense(x)
    dense.set_weights([weights["fc.w"].T, weights["fc.b"]])
    return tf.keras.Model(inp, out)


def to_tflite_bytes(
    arch: Architecture,
    weights: dict[str, np.ndarray],
    precision: Precision,
    calibration: Sequence[np.ndarray] = (),
) -> bytes:
    """Serialised .tflite of ``precision``.

    ``calibration`` (int8 only): raw-pixel rows (H, W, 3), uint8 or float, the
    representative dataset for the activation ranges.
    """
    tf = _tf()
    model = to_keras(arch, weights, raw_pixels=precision == "int8")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        if not calibration:
            raise ValueError("int8 calibration needs at least one input row")
        size = arch.input_size
        extremes = np.zeros((size, size, 3), dtype=np.float32)
        extremes[0, 0] = 255.0  # pins the input range to exactly 0..255

        def representative() -> Iterator[list[np.ndarray]]:
            for row in [*calibration, extremes]:
                yield [np.asarray(row, dtype=np.float32)[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.int8
    # Keras' export prints "Saved artifact at ..." on stdout, which would corrupt
    # `wattbench run --json`; progress belongs on stderr.
    with contextlib.redirect_stdout(sys.stderr):
        return bytes(converter.convert())

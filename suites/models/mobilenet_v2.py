"""MobileNetV2 (Sandler et al., 2018) as one framework-neutral definition.

The layer list and the seeded weights are shared by every exporter (ONNX now;
TFLite and OpenVINO builders consume the same list), so all formats of a
recipe compute the same function. BatchNorm is folded into conv biases, as
inference graphs do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: (expansion t, output channels c, repeats n, first stride s) from Table 2 of the paper
INVERTED_RESIDUAL_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


@dataclass(frozen=True)
class Conv:
    """2-D convolution with bias (folded BN) and optional ReLU6."""

    cin: int
    cout: int
    kernel: int
    stride: int
    groups: int
    relu6: bool


@dataclass(frozen=True)
class Block:
    """Inverted residual block; ``residual`` adds the block input to its output."""

    convs: tuple[Conv, ...]
    residual: bool


@dataclass(frozen=True)
class Head:
    """Global average pool then a fully connected classifier."""

    cin: int
    classes: int


@dataclass(frozen=True)
class Architecture:
    stem: Conv
    blocks: tuple[Block, ...]
    last: Conv
    head: Head
    input_size: int


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def mobilenet_v2(width: float = 1.0, classes: int = 1000, input_size: int = 224) -> Architecture:
    """The MobileNetV2 layer list for a width multiplier."""
    cin = _make_divisible(32 * width)
    stem = Conv(3, cin, 3, 2, 1, True)
    blocks = []
    for t, c, n, s in INVERTED_RESIDUAL_SETTINGS:
        cout = _make_divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            convs = []
            if t != 1:
                convs.append(Conv(cin, hidden, 1, 1, 1, True))
            convs.append(Conv(hidden, hidden, 3, stride, hidden, True))
            convs.append(Conv(hidden, cout, 1, 1, 1, False))  # linear bottleneck
            blocks.append(Block(tuple(convs), residual=stride == 1 and cin == cout))
            cin = cout
    last_c = _make_divisible(1280 * max(1.0, width))
    last = Conv(cin, last_c, 1, 1, 1, True)
    return Architecture(stem, tuple(blocks), last, Head(last_c, classes), input_size)


def all_convs(arch: Architecture) -> list[Conv]:
    return [arch.stem, *(c for b in arch.blocks for c in b.convs), arch.last]


def random_weights(arch: Architecture, seed: int) -> dict[str, np.ndarray]:
    """He-normal conv weights and small biases, deterministic in ``seed``.

    Keys: ``conv{i}.w`` (OIHW), ``conv{i}.b``, ``fc.w`` (out×in), ``fc.b``.
    """
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for i, c in enumerate(all_convs(arch)):
        fan_in = (c.cin // c.groups) * c.kernel * c.kernel
        shape = (c.cout, c.cin // c.groups, c.kernel, c.kernel)
        weights[f"conv{i}.w"] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(
            np.float32
        )
        weights[f"conv{i}.b"] = (rng.standard_normal(c.cout) * 0.01).astype(np.float32)
    h = arch.head
    weights["fc.w"] = (rng.standard_normal((h.classes, h.cin)) * np.sqrt(1.0 / h.cin)).astype(
        np.float32
    )
    weights["fc.b"] = np.zeros(h.classes, dtype=np.float32)
    return weights

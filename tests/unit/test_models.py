"""The framework-neutral MobileNetV2 definition and its ONNX export."""

from __future__ import annotations

import numpy as np
import pytest

from wattbench.suites.models.mobilenet_v2 import (
    Architecture,
    all_convs,
    mobilenet_v2,
    random_weights,
)

onnx = pytest.importorskip("onnx", reason="the onnx package (wattbench[models]) is not installed")

from wattbench.suites.models.onnx_export import to_onnx_bytes  # noqa: E402

#: torchvision's mobilenet_v2 has 3,504,872 parameters; folding each BatchNorm into
#: its conv's bias removes one of BN's two per-channel parameters (17,056 in all).
PARAMS_1_0_1000 = 3_487_816


def _param_count(arch: Architecture) -> int:
    n = sum(c.cout * (c.cin // c.groups) * c.kernel**2 + c.cout for c in all_convs(arch))
    return n + arch.head.classes * arch.head.cin + arch.head.classes


@pytest.fixture(scope="module")
def arch() -> Architecture:
    return mobilenet_v2()


@pytest.fixture(scope="module")
def model_bytes(arch: Architecture) -> bytes:
    return to_onnx_bytes(arch, random_weights(arch, 0), "mobilenet_v2_1.0_224")


def test_parameter_count(arch: Architecture) -> None:
    assert _param_count(arch) == PARAMS_1_0_1000
    w = random_weights(arch, 0)
    assert sum(v.size for v in w.values()) == PARAMS_1_0_1000


def test_architecture_shape(arch: Architecture) -> None:
    assert arch.input_size == 224
    assert arch.stem.cin == 3 and arch.stem.cout == 32 and arch.stem.stride == 2
    assert len(arch.blocks) == 17  # 1 + 2 + 3 + 4 + 3 + 3 + 1
    assert arch.last.cin == 320 and arch.last.cout == 1280
    assert (arch.head.cin, arch.head.classes) == (1280, 1000)
    assert sum(b.residual for b in arch.blocks) == 10
    # 52 convs: stem, 1x(dw, project) + 16x(expand, dw, project), last
    assert len(all_convs(arch)) == 1 + 2 + 16 * 3 + 1
    # total stride 32: 224 -> 7
    strides = [arch.stem.stride] + [c.stride for b in arch.blocks for c in b.convs]
    assert int(np.prod(strides)) == 32


def test_width_multiplier_and_classes() -> None:
    small = mobilenet_v2(width=0.5, classes=10)
    assert small.stem.cout == 16
    assert small.last.cout == 1280  # last conv never shrinks below 1280
    assert small.head.classes == 10
    assert _param_count(small) < PARAMS_1_0_1000


def test_random_weights_deterministic_per_seed(arch: Architecture) -> None:
    a, b = random_weights(arch, 0), random_weights(arch, 0)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == np.float32
        np.testing.assert_array_equal(a[k], b[k])


def test_random_weights_differ_across_seeds(arch: Architecture) -> None:
    a, b = random_weights(arch, 0), random_weights(arch, 1)
    assert not np.array_equal(a["conv0.w"], b["conv0.w"])
    assert not np.array_equal(a["fc.w"], b["fc.w"])


def test_random_weights_shapes(arch: Architecture) -> None:
    w = random_weights(arch, 0)
    convs = all_convs(arch)
    assert len(w) == 2 * len(convs) + 2
    for i, c in enumerate(convs):
        assert w[f"conv{i}.w"].shape == (c.cout, c.cin // c.groups, c.kernel, c.kernel)
        assert w[f"conv{i}.b"].shape == (c.cout,)
    assert w["fc.w"].shape == (1000, 1280)
    assert np.all(w["fc.b"] == 0)
    # He-normal: the stem's std is close to sqrt(2 / fan_in), fan_in = 3*3*3
    assert float(w["conv0.w"].std()) == pytest.approx(np.sqrt(2 / 27), rel=0.15)


def test_onnx_passes_the_checker(model_bytes: bytes) -> None:
    model = onnx.load_from_string(model_bytes)
    onnx.checker.check_model(model, full_check=True)
    assert model.producer_name == "wattbench"
    assert model.graph.name == "mobilenet_v2_1.0_224"


def test_onnx_io_signature(model_bytes: bytes) -> None:
    model = onnx.load_from_string(model_bytes)
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "input"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    in_dims = inp.type.tensor_type.shape.dim
    assert in_dims[0].dim_param == "N"
    assert [d.dim_value for d in in_dims[1:]] == [3, 224, 224]
    assert out.name == "logits"
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    out_dims = out.type.tensor_type.shape.dim
    assert out_dims[0].dim_param == "N"
    assert out_dims[1].dim_value == 1000


def test_onnx_weights_are_the_given_weights(arch: Architecture, model_bytes: bytes) -> None:
    model = onnx.load_from_string(model_bytes)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    w = random_weights(arch, 0)
    for k in ("conv0.w", "conv10.b", "fc.w"):
        np.testing.assert_array_equal(inits[k], w[k])
    n_params = sum(v.size for k, v in inits.items() if not k.startswith("relu6_"))
    assert n_params == PARAMS_1_0_1000


def test_onnx_runs_in_onnxruntime(model_bytes: bytes) -> None:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    (y,) = sess.run(None, {"input": x})
    assert y.shape == (2, 1000)
    assert y.dtype == np.float32
    assert np.all(np.isfinite(y))
    # the two rows come from different inputs, so they differ
    assert float(np.abs(y[0] - y[1]).max()) > 1e-4
    # batch-independent: a row run alone gives the same logits
    (y0,) = sess.run(None, {"input": x[:1]})
    np.testing.assert_allclose(y0[0], y[0], rtol=1e-4, atol=1e-4)


def test_onnx_bytes_deterministic_per_seed(arch: Architecture, model_bytes: bytes) -> None:
    again = to_onnx_bytes(arch, random_weights(arch, 0), "mobilenet_v2_1.0_224")
    assert again == model_bytes
    other = to_onnx_bytes(arch, random_weights(arch, 1), "mobilenet_v2_1.0_224")
    assert other != model_bytes

"""The mobilenet_v2 suite: inputs, preprocessing, quality check and model building."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wattbench.adapters.base import TensorSpec
from wattbench.harness.cache import ModelCache, sha256_file
from wattbench.harness.errors import ConfigError, ModelError
from wattbench.suites.base import InputSet, SuiteOptions
from wattbench.suites.images import IMAGENET_MEAN, IMAGENET_STD
from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

#: <repo root>/../shared/data/coral-test-data (tests/unit/<file> -> parents[2] is the root)
CORAL_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "coral-test-data"
CORAL_IMAGES = ["bird.bmp", "cat.bmp", "grace_hopper.bmp", "owl.jpg", "parrot.jpg"]

NCHW_F32 = TensorSpec(name="input", shape=["N", 3, 224, 224], dtype="float32")
NHWC_U8 = TensorSpec(name="input", shape=[1, 224, 224, 3], dtype="uint8")


def _synthetic(seed: int = 0) -> InputSet:
    return MobileNetV2Suite(SuiteOptions(seed=seed)).load_inputs()


# -- inputs ------------------------------------------------------------------------------


def test_synthetic_inputs_are_deterministic() -> None:
    a, b = _synthetic(0), _synthetic(0)
    assert a.source == "synthetic"
    assert len(a.samples) == 8
    assert a.names == [f"synthetic-{i}" for i in range(8)]
    assert a.description == b.description
    assert "seed=0" in a.description
    for x, y in zip(a.samples, b.samples, strict=True):
        assert x.size == (256, 256)
        assert x.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_synthetic_inputs_depend_on_seed() -> None:
    a, b = _synthetic(0), _synthetic(1)
    assert not np.array_equal(np.asarray(a.samples[0]), np.asarray(b.samples[0]))
    # the pictures within one set differ from each other too
    assert not np.array_equal(np.asarray(a.samples[0]), np.asarray(a.samples[1]))


@pytest.mark.skipif(
    not CORAL_DATA.is_dir(),
    reason=f"real test images not present at {CORAL_DATA} (shared/data/coral-test-data)",
)
def test_load_inputs_from_real_image_dir() -> None:
    suite = MobileNetV2Suite(SuiteOptions(data_dir=CORAL_DATA))
    inputs = suite.load_inputs()
    assert inputs.source == "user"
    assert len(inputs.samples) == 5
    assert inputs.names == CORAL_IMAGES  # name order; .txt/.tflite/LICENSE ignored
    assert all(isinstance(s, Image.Image) and s.mode == "RGB" for s in inputs.samples)
    assert "n=5" in inputs.description
    assert "sha256=" in inputs.description
    # and every real image preprocesses to a model row
    for s in inputs.samples:
        row = suite.preprocess(s, NCHW_F32)
        assert row.shape == (3, 224, 224)
        assert np.all(np.isfinite(row))


def test_load_inputs_from_a_tmp_image_dir(tmp_path: Path) -> None:
    for i, name in enumerate(["b.png", "a.jpg"]):
        Image.new("RGB", (32, 20), (i * 100, 50, 200)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("ignored")
    inputs = MobileNetV2Suite(SuiteOptions(data_dir=tmp_path)).load_inputs()
    assert inputs.source == "user"
    assert inputs.names == ["a.jpg", "b.png"]
    assert len(inputs.samples) == 2


def test_empty_data_dir_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ConfigError, match="no images"):
        MobileNetV2Suite(SuiteOptions(data_dir=tmp_path)).load_inputs()


def test_missing_data_dir_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        MobileNetV2Suite(SuiteOptions(data_dir=tmp_path / "absent")).load_inputs()


def test_undecodable_image_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"definitely not a jpeg")
    with pytest.raises(ConfigError, match="cannot decode"):
        MobileNetV2Suite(SuiteOptions(data_dir=tmp_path)).load_inputs()


# -- preprocessing -----------------------------------------------------------------------


def test_preprocess_nchw_float32_normalises() -> None:
    suite = MobileNetV2Suite()
    rows = [suite.preprocess(s, NCHW_F32) for s in _synthetic().samples]
    for r in rows:
        assert r.shape == (3, 224, 224)
        assert r.dtype == np.float32
        assert r.flags["C_CONTIGUOUS"]
    stacked = np.stack(rows)
    # ImageNet normalisation: values of order one around zero, not raw 0..255 pixels
    assert abs(float(stacked.mean())) < 1.0
    assert 0.3 < float(stacked.std()) < 2.0
    assert float(stacked.min()) >= (0 - IMAGENET_MEAN.max()) / IMAGENET_STD.min() - 1e-5
    assert float(stacked.max()) <= (1 - IMAGENET_MEAN.min()) / IMAGENET_STD.min() + 1e-5


def test_preprocess_nchw_mean_colour_maps_to_zero() -> None:
    mean_rgb = tuple(round(float(m) * 255) for m in IMAGENET_MEAN)
    row = MobileNetV2Suite().preprocess(Image.new("RGB", (256, 256), mean_rgb), NCHW_F32)
    assert np.abs(row).max() < 0.01
    # uniform noise (pixel mean 127.5) lands at (0.5 - mean) / std per channel
    noise = np.random.default_rng(0).integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    row = MobileNetV2Suite().preprocess(Image.fromarray(noise, "RGB"), NCHW_F32)
    expected = (0.5 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(row.mean(axis=(1, 2)), expected, atol=0.02)


def test_preprocess_nchw_exact_values_for_a_flat_image() -> None:
    img = Image.new("RGB", (300, 200), (255, 0, 128))
    row = MobileNetV2Suite().preprocess(img, NCHW_F32)
    expected = (np.array([255, 0, 128], dtype=np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(row[:, 100, 100], expected, rtol=1e-6)
    np.testing.assert_allclose(row[0], expected[0], rtol=1e-6)


def test_preprocess_nhwc_uint8_keeps_raw_pixels() -> None:
    img = Image.new("RGB", (300, 200), (255, 0, 128))
    row = MobileNetV2Suite().preprocess(img, NHWC_U8)
    assert row.shape == (224, 224, 3)
    assert row.dtype == np.uint8
    assert row[0, 0].tolist() == [255, 0, 128]
    assert np.all(row == np.array([255, 0, 128], dtype=np.uint8))


def test_preprocess_uses_spec_size() -> None:
    spec = TensorSpec(name="input", shape=["N", 3, 128, 160], dtype="float32")
    row = MobileNetV2Suite().preprocess(_synthetic().samples[0], spec)
    assert row.shape == (3, 128, 160)
    spec = TensorSpec(name="input", shape=[1, 96, 112, 3], dtype="uint8")
    row = MobileNetV2Suite().preprocess(_synthetic().samples[0], spec)
    assert row.shape == (96, 112, 3)


@pytest.mark.parametrize(
    "spec",
    [
        TensorSpec(name="x", shape=["N", 1000], dtype="float32"),
        TensorSpec(name="x", shape=["N", 3, 224], dtype="float32"),
        TensorSpec(name="x", shape=["N", 4, 224, 224], dtype="float32"),
        TensorSpec(name="x", shape=["N", 224, 224, 1], dtype="uint8"),
        TensorSpec(name="x", shape=["N", 3, 224, 224], dtype="int64"),
    ],
    ids=["2d", "3d", "4-channel", "1-channel", "int64"],
)
def test_bad_spec_raises_model_error(spec: TensorSpec) -> None:
    with pytest.raises(ModelError) as ei:
        MobileNetV2Suite().preprocess(_synthetic().samples[0], spec)
    assert "'x'" in str(ei.value)


def test_preprocess_rejects_non_images() -> None:
    with pytest.raises(TypeError, match="PIL"):
        MobileNetV2Suite().preprocess(np.zeros((224, 224, 3)), NCHW_F32)


# -- quality check -----------------------------------------------------------------------


def _logits(n: int = 8, classes: int = 1000, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(classes).astype(np.float32) for _ in range(n)]


def test_quality_passes_on_good_logits() -> None:
    inputs = _synthetic()
    q = MobileNetV2Suite().check_quality(_logits(), inputs)
    assert q.passed, q.detail
    assert q.kind == "sanity"
    assert q.metrics["finite_fraction"] == 1.0
    assert q.metrics["input_sensitivity"] > 0
    assert "accuracy not assessed" in q.detail


def test_quality_accepts_1001_classes() -> None:
    assert MobileNetV2Suite().check_quality(_logits(classes=1001), _synthetic()).passed


def test_quality_fails_on_nan() -> None:
    out = _logits()
    out[3][10] = np.nan
    q = MobileNetV2Suite().check_quality(out, _synthetic())
    assert not q.passed
    assert "NaN/inf" in q.detail
    assert q.metrics["finite_fraction"] == pytest.approx(1 - 1 / 8000)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_quality_fails_on_inf() -> None:
    out = _logits()
    out[0][:] = np.inf
    assert not MobileNetV2Suite().check_quality(out, _synthetic()).passed


def test_quality_fails_on_wrong_class_count() -> None:
    q = MobileNetV2Suite().check_quality(_logits(classes=10), _synthetic())
    assert not q.passed
    assert "10 classes" in q.detail


def test_quality_fails_on_input_independent_outputs() -> None:
    same = _logits(n=1)[0]
    q = MobileNetV2Suite().check_quality([same.copy() for _ in range(8)], _synthetic())
    assert not q.passed
    assert "do not depend on the input" in q.detail
    assert q.metrics["input_sensitivity"] == 0.0


def test_quality_accepts_batched_output_rows() -> None:
    # rows of shape (1, 1000) are flattened
    out = [o.reshape(1, -1) for o in _logits()]
    assert MobileNetV2Suite().check_quality(out, _synthetic()).passed


# -- model building ----------------------------------------------------------------------


def test_recipes_name_the_seed() -> None:
    (r,) = MobileNetV2Suite(SuiteOptions(seed=3)).recipes()
    assert r.formats == ["onnx", "torchscript"]
    assert r.weights == "random(seed=3)"


def test_build_model_other_format_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--model"):
        MobileNetV2Suite().build_model("tflite", ModelCache(tmp_path))


def test_build_model_uses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnx", reason="building the model needs the onnx package")
    from wattbench.suites.models import onnx_export

    builds = {"n": 0}
    real = onnx_export.to_onnx_bytes

    def counting(*args: object, **kwargs: object) -> bytes:
        builds["n"] += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(onnx_export, "to_onnx_bytes", counting)
    cache = ModelCache(tmp_path / "cache")
    suite = MobileNetV2Suite()
    a = suite.build_model("onnx", cache)
    assert builds["n"] == 1
    assert a.format == "onnx"
    assert a.precision == "fp32"
    assert a.weights == "random(seed=0)"
    assert a.name == "mobilenet_v2_1.0_224"
    assert a.path.is_file()
    assert a.path.parent.parent == cache.root
    assert sha256_file(a.path) == a.sha256

    b = MobileNetV2Suite().build_model("onnx", ModelCache(tmp_path / "cache"))
    assert builds["n"] == 1, "second build_model rebuilt instead of using the cache"
    assert (b.path, b.sha256) == (a.path, a.sha256)

    # a corrupted cached file is detected and rebuilt to the same bytes
    a.path.write_bytes(b"garbage")
    c = suite.build_model("onnx", cache)
    assert builds["n"] == 2
    assert c.sha256 == a.sha256
    assert sha256_file(c.path) == a.sha256

    # another seed is another recipe and another file
    d = MobileNetV2Suite(SuiteOptions(seed=1)).build_model("onnx", cache)
    assert builds["n"] == 3
    assert d.sha256 != a.sha256
    assert d.weights == "random(seed=1)"

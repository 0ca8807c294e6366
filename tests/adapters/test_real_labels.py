"""Real pretrained models on real images: the labels are known, so accuracy is checked.

Uses the Coral test data in shared/data/coral-test-data (skips with a reason
where it is absent), the suite's own preprocessing with each session's input
spec, and the pretrained-artifact registry (file:// and local files only:
nothing is downloaded).
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wattbench.core.adapter import Adapter, AdapterOptions, ModelArtifact, Session
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ChecksumError, ConfigError, ModelError
from wattbench.core.suite import SuiteOptions
from wattbench.suites.mobilenet_v2 import MobileNetV2Suite
from wattbench.suites.models import registry

CORAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coral-test-data"

#: image → (top-1 class, label) seen on LiteRT (shared/data/README.md); owl is a real miss
EXPECTED_TOP1 = {
    "cat.bmp": (286, "Egyptian cat"),
    "grace_hopper.bmp": (653, "military uniform"),
    "bird.bmp": (20, "chickadee"),
    "parrot.jpg": (89, "macaw"),
    "owl.jpg": (83, "ruffed grouse, partridge, Bonasa umbellus"),
}

needs_data = pytest.mark.skipif(
    not CORAL_DATA.is_dir(), reason=f"shared test data not present at {CORAL_DATA}"
)


def _needs(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed (pip install 'wattbench[{extra}]')")


def _litert() -> Adapter:
    _needs("ai_edge_litert", "litert")
    from wattbench.adapters.litert import LiteRtAdapter

    return LiteRtAdapter()


#: LiteRT's two APIs (--adapter-opt api=...)
LITERT_APIS = ["compiled", "interpreter"]


def _openvino() -> Adapter:
    _needs("openvino", "openvino")
    from wattbench.adapters.openvino import OpenVinoAdapter

    return OpenVinoAdapter()


def _coral_artifact(name: str) -> ModelArtifact:
    path = CORAL_DATA / name
    return MobileNetV2Suite().user_model(path).model_copy(update={"precision": "int8"})


def _top1(session: Session, image: Image.Image) -> tuple[int, np.ndarray]:
    suite = MobileNetV2Suite()
    (spec,) = session.inputs()
    row = suite.preprocess(image, spec)
    (out,) = session.run(session.prepare({spec.name: row[None]}))
    return int(np.argmax(out[0])), out[0]


@needs_data
@pytest.mark.parametrize(
    ("make", "extra"),
    [(_litert, {"api": a}) for a in LITERT_APIS] + [(_openvino, {})],
    ids=[f"litert-{a}" for a in LITERT_APIS] + ["openvino"],
)
def test_pretrained_mobilenet_v2_gives_the_known_labels(
    make: Callable[[], Adapter], extra: dict[str, str]
) -> None:
    adapter = make()
    session = adapter.load(
        _coral_artifact("mobilenet_v2_1.0_224_quant.tflite"),
        AdapterOptions(device="cpu", threads=2, precision="int8", extra=extra),
    )
    labels = (CORAL_DATA / "imagenet_labels.txt").read_text().splitlines()
    assert len(labels) == 1001
    try:
        (spec,) = session.inputs()
        assert spec.shape == [1, 224, 224, 3] and spec.dtype == "uint8"
        got = {}
        for name in EXPECTED_TOP1:
            with Image.open(CORAL_DATA / name) as im:
                top1, logits = _top1(session, im.convert("RGB"))
            assert logits.shape == (1001,)
            got[name] = (top1, labels[top1])
        assert got == EXPECTED_TOP1
    finally:
        session.close()


@needs_data
def test_suite_quality_check_accepts_the_1001_class_uint8_outputs() -> None:
    adapter = _litert()
    session = adapter.load(
        _coral_artifact("mobilenet_v2_1.0_224_quant.tflite"),
        AdapterOptions(device="cpu", precision="int8"),
    )
    suite = MobileNetV2Suite(SuiteOptions(data_dir=CORAL_DATA))
    inputs = suite.load_inputs()
    (spec,) = session.inputs()
    rows = [session.run(session.prepare({spec.name: suite.preprocess(s, spec)[None]}))[0][0]
            for s in inputs.samples]  # fmt: skip
    assert rows[0].dtype == np.uint8  # raw quantised softmax, as documented
    quality = suite.check_quality(rows, inputs)
    assert quality.passed, quality.detail
    # the documented post-step: real probabilities summing to ~1
    from wattbench.adapters.litert import LiteRtSession

    assert isinstance(session, LiteRtSession)
    probs = session.dequantize([rows[0][None]])[0]
    assert probs.dtype == np.float32
    assert abs(float(probs.sum()) - 1.0) < 0.05


@needs_data
@pytest.mark.parametrize("model", ["mobilenet_v2_1.0_224_quant", "mobilenet_v1_0.25_128_quant"])
def test_litert_apis_give_identical_outputs(model: str) -> None:
    """CompiledModel (the default, timed like litert-benchmark) and the Interpreter: the
    same raw tensors for every image, and the same dequantised values."""
    adapter = _litert()
    art = _coral_artifact(f"{model}.tflite")
    outs: dict[str, list[np.ndarray]] = {}
    real: dict[str, list[np.ndarray]] = {}
    for api in LITERT_APIS:
        s = adapter.load(art, AdapterOptions(threads=2, precision="int8", extra={"api": api}))
        assert s.describe().options["api"] == api
        (spec,) = s.inputs()
        outs[api] = []
        for name in EXPECTED_TOP1:
            with Image.open(CORAL_DATA / name) as im:
                row = MobileNetV2Suite().preprocess(im.convert("RGB"), spec)
            outs[api].append(s.run(s.prepare({spec.name: row[None]}))[0])
        from wattbench.adapters.litert import LiteRtSession

        assert isinstance(s, LiteRtSession)
        real[api] = [s.dequantize([o])[0] for o in outs[api]]
        s.close()
    for a, b in zip(outs["compiled"], outs["interpreter"], strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    for a, b in zip(real["compiled"], real["interpreter"], strict=True):
        np.testing.assert_array_equal(a, b)


@needs_data
def test_edgetpu_model_on_litert_is_a_one_line_edge_tpu_error() -> None:
    adapter = _litert()
    art = _coral_artifact("mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    with pytest.raises(ConfigError) as ei:
        adapter.load(art, AdapterOptions(device="cpu", precision="int8"))
    msg = str(ei.value)
    assert "\n" not in msg
    assert "Edge TPU model" in msg
    assert "--adapter coral" in msg
    assert "edgetpu-custom-op" in msg
    # the CPU twin of the same model loads fine
    ok = adapter.load(
        _coral_artifact("mobilenet_v1_0.25_128_quant.tflite"),
        AdapterOptions(device="cpu", precision="int8"),
    )
    assert ok.inputs()[0].shape == [1, 128, 128, 3]


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    pytest.importorskip("onnx", reason="building the suite model needs onnx (wattbench[models])")
    cache = ModelCache(tmp_path_factory.mktemp("cache"))
    return MobileNetV2Suite(SuiteOptions(seed=0)).build_model("onnx", cache)


@pytest.fixture(scope="module")
def two_runtimes(onnx_model: ModelArtifact) -> Iterator[tuple[Session, Session]]:
    _needs("onnxruntime", "onnxruntime")
    from wattbench.adapters.onnxruntime import OnnxRuntimeAdapter

    ov = _openvino()
    opts = AdapterOptions(device="cpu", threads=2, precision="fp32")
    a = OnnxRuntimeAdapter().load(onnx_model, opts)
    b = ov.load(onnx_model, opts)
    yield a, b
    a.close()
    b.close()


def test_onnxruntime_and_openvino_agree_on_the_same_onnx(
    two_runtimes: tuple[Session, Session],
) -> None:
    ort_s, ov_s = two_runtimes
    assert ov_s.describe().options["INFERENCE_PRECISION_HINT"] == "f32"
    suite = MobileNetV2Suite(SuiteOptions(seed=1))
    (spec,) = ort_s.inputs()
    assert ov_s.inputs()[0].shape[1:] == spec.shape[1:]
    batch = np.stack([suite.preprocess(s, spec) for s in suite.load_inputs().samples])
    a = ort_s.run(ort_s.prepare({spec.name: batch}))[0].astype(np.float64)
    b = ov_s.run(ov_s.prepare({spec.name: batch}))[0].astype(np.float64)
    assert a.shape == b.shape == (len(batch), 1000)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.999, cos
    np.testing.assert_array_equal(a.argmax(1), b.argmax(1))


# -- the registry of pretrained artifacts ------------------------------------------------


@needs_data
def test_registry_pins_the_shipped_coral_files() -> None:
    from wattbench.core.cache import sha256_file

    coral = [
        e for e in registry.REGISTRY.values() if e.url.startswith(registry.CORAL_TEST_DATA_URL)
    ]
    assert len(coral) == 9  # 3 models, the labels, 5 images
    for e in coral:
        assert e.url == registry.CORAL_TEST_DATA_URL + e.filename
        assert e.url.startswith("https://github.com/google-coral/test_data/raw/104342d")
        assert sha256_file(CORAL_DATA / e.filename) == e.sha256, e.filename
    assert registry.entry("mobilenet_v2_1.0_224_quant").format == "tflite"
    assert registry.entry("mobilenet_v2_1.0_224_quant.tflite").precision == "int8"


def test_unknown_registry_name_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"mobilenet_v2_1\.0_224_quant"):
        registry.entry("resnet50")


@needs_data
def test_fetch_pretrained_from_a_file_url(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache")
    seen: list[int] = []
    path = registry.fetch_pretrained(
        "mobilenet_v2_1.0_224_quant",
        cache,
        base_url=CORAL_DATA.as_uri(),
        progress=lambda done, total: seen.append(done),
    )
    e = registry.entry("mobilenet_v2_1.0_224_quant")
    assert path == cache.path_for(e.sha256, ".tflite")
    assert path.read_bytes() == (CORAL_DATA / e.filename).read_bytes()
    assert seen and seen[-1] == path.stat().st_size
    # second call: served from the cache, the mirror is not read again
    assert registry.fetch_pretrained(e.name, cache, base_url="file:///nonexistent/") == path
    art = registry.pretrained_artifact(e.name, cache, base_url="file:///nonexistent/")
    assert art.weights == f"pretrained(sha256={e.sha256[:12]})"
    assert (art.format, art.precision, art.path) == ("tflite", "int8", path)


@needs_data
def test_fetch_pretrained_refuses_wrong_bytes(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    # the labels file served under the model's name
    shutil.copy(CORAL_DATA / "imagenet_labels.txt", mirror / "mobilenet_v2_1.0_224_quant.tflite")
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(ChecksumError) as ei:
        registry.fetch_pretrained("mobilenet_v2_1.0_224_quant", cache, base_url=mirror.as_uri())
    assert "\n" not in str(ei.value)
    assert not list((tmp_path / "cache").rglob("*.tflite"))


def test_fetch_pretrained_missing_file_is_a_model_error(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(ModelError, match="--model"):
        registry.fetch_pretrained("cat", cache, base_url=(tmp_path / "empty").as_uri())


def test_pretrained_artifact_rejects_data_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a model"):
        registry.pretrained_artifact("imagenet_labels", ModelCache(tmp_path))


@needs_data
def test_import_dir_copies_matching_files_whatever_their_names(tmp_path: Path) -> None:
    offline = tmp_path / "usb-stick"
    offline.mkdir()
    shutil.copy(CORAL_DATA / "mobilenet_v2_1.0_224_quant.tflite", offline / "renamed.bin")
    shutil.copy(CORAL_DATA / "imagenet_labels.txt", offline / "imagenet_labels.txt")
    (offline / "notes.txt").write_text("not in the registry")
    cache = ModelCache(tmp_path / "cache")
    got = registry.import_dir(offline, cache)
    assert set(got) == {"mobilenet_v2_1.0_224_quant", "imagenet_labels"}
    e = registry.entry("mobilenet_v2_1.0_224_quant")
    assert got[e.name] == cache.path_for(e.sha256, ".tflite")
    assert got[e.name].read_bytes() == (offline / "renamed.bin").read_bytes()
    # now fetch works offline: the (unreachable) URL is never opened
    assert registry.fetch_pretrained(e.name, cache, base_url="file:///nonexistent/") == got[e.name]
    with pytest.raises(ConfigError, match="not a directory"):
        registry.import_dir(tmp_path / "missing", cache)

"""ImageNet class names and ``labels.csv`` in a ``--data-dir`` (mobilenet_v2 1.2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wattbench.core.errors import ConfigError
from wattbench.core.suite import SuiteOptions
from wattbench.suites import imagenet
from wattbench.suites import mobilenet_v2 as mobilenet_module
from wattbench.suites.mobilenet_v2 import MobileNetV2Suite


def test_the_class_list_is_the_standard_1000_class_order() -> None:
    names = imagenet.class_names()
    assert len(names) == 1000
    assert names[0] == ("tench", "Tinca tinca")
    assert names[934] == ("hotdog", "hot dog", "red hot")
    assert imagenet.class_name(285) == "Egyptian cat"
    assert imagenet.class_name(999) == "toilet tissue"
    # the shipped file says where it comes from and under which license
    header = imagenet.CLASSES_FILE.read_text().splitlines()[:6]
    assert any("Apache License 2.0" in line for line in header)
    assert any("104342d2d3480b3e66203073dac24f4e2dbb4c41" in line for line in header)


@pytest.mark.parametrize(
    ("label", "index"),
    [
        ("0", 0),
        ("934", 934),
        (" 999 ", 999),
        ("hot dog", 934),
        ("hotdog", 934),
        ("Hot  Dog", 934),
        ("red hot", 934),
        ("tench", 0),
        ("Tinca tinca", 0),
        ("great grey owl", 24),
        ("military uniform", 652),
    ],
)
def test_a_label_is_an_index_or_any_synonym(label: str, index: int) -> None:
    assert imagenet.resolve_label(label) == index


def test_bad_labels_are_config_errors_that_say_why() -> None:
    with pytest.raises(ConfigError, match=r"outside 0\.\.999"):
        imagenet.resolve_label("1000")
    with pytest.raises(ConfigError, match="not an ImageNet class name"):
        imagenet.resolve_label("unicorn")
    with pytest.raises(ConfigError, match=r"'crane' names 2 classes \(134 \(crane\), 517"):
        imagenet.resolve_label("crane")


def _image_dir(tmp_path: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(tmp_path / f"img{i}.png")
    return tmp_path


def test_labels_csv_parses_header_comments_and_leaves_others_unlabelled(tmp_path: Path) -> None:
    d = _image_dir(tmp_path)
    (d / "labels.csv").write_text("file,label\n# a comment\nimg0.png,hot dog\n\nimg2.png,7\n")
    labels, digest = imagenet.read_labels_csv(
        d / "labels.csv", ["img0.png", "img1.png", "img2.png"]
    )
    assert labels == [934, None, 7]
    # the digest is of the resolved labels: a synonym gives the same one
    (d / "labels.csv").write_text('img2.png,7\nimg0.png,"hotdog"\n')
    again, digest2 = imagenet.read_labels_csv(
        d / "labels.csv", ["img0.png", "img1.png", "img2.png"]
    )
    assert (again, digest2) == (labels, digest)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("img9.png,1\n", "no image 'img9.png'"),
        ("img0.png,1\nimg0.png,2\n", "labelled twice"),
        ("img0.png\n", "expected 'file,label'"),
        ("img0.png,1,extra\n", "expected 'file,label'"),
        ("file,label\n", "labels no image"),
        ("img0.png,unicorn\n", "labels.csv:1: 'unicorn' is not an ImageNet class name"),
    ],
)
def test_labels_csv_errors(tmp_path: Path, text: str, message: str) -> None:
    d = _image_dir(tmp_path)
    (d / "labels.csv").write_text(text)
    with pytest.raises(ConfigError, match=message):
        imagenet.read_labels_csv(d / "labels.csv", ["img0.png", "img1.png", "img2.png"])


def test_the_suite_reads_labels_csv_and_reports_accuracy_on_them(tmp_path: Path) -> None:
    d = _image_dir(tmp_path)
    (d / "labels.csv").write_text("img0.png,3\nimg1.png,goldfish\n")
    suite = MobileNetV2Suite(SuiteOptions(data_dir=d))
    inputs = suite.load_inputs()
    assert inputs.labels == [3, 1, None]
    assert "labels.csv labels 2" in inputs.description
    # a pretrained model that is not the suite's network: accuracy is the quality figure,
    # reported (the user's images: no target), top1_accuracy over the labelled images only
    f = tmp_path / "model.onnx"
    f.write_bytes(b"stand-in")
    suite._model = suite.user_model(f).model_copy(
        update={"weights": "pretrained(sha256=0123456789ab)"}
    )

    def onehot(c: int) -> np.ndarray:
        v = np.zeros(1000, dtype=np.float32)
        v[c] = 1
        return v

    q = suite.check_quality([onehot(3), onehot(2), onehot(5)], inputs)
    assert q.passed and q.kind == "accuracy", q.detail
    assert q.metrics["top1_accuracy"] == 0.5 and q.metrics["labelled_samples"] == 2
    assert "reported, not a target" in q.detail
    # with the FP32 reference of the same network the figure stays agreement, plus accuracy
    suite._model = None
    ref = [onehot(3), onehot(2), onehot(5)]
    q = suite.check_quality(ref, inputs, ref)
    assert q.kind == "agreement" and q.metrics["top1_agreement"] == 1.0
    assert "top1_accuracy" not in q.metrics  # an unknown model: no accuracy claimed


def test_without_labels_the_quality_stays_agreement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mobilenet_module, "_shipped_images", lambda cache=None: None)
    d = _image_dir(tmp_path)
    suite = MobileNetV2Suite(SuiteOptions(data_dir=d))
    inputs = suite.load_inputs()
    assert inputs.labels is None and suite.labels(inputs) is None
    rng = np.random.default_rng(3)
    ref = [rng.standard_normal(1000).astype(np.float32) for _ in range(3)]
    q = suite.check_quality(ref, inputs, ref)
    assert q.passed and q.kind == "agreement"
    assert "accuracy not assessed: the inputs have no labels (add labels.csv" in q.detail

"""Wire format: payload specs, encodings, decoding, confidence."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from wattbench.core.errors import ConfigError
from wattbench.harness.network.payload import (
    PayloadSpec,
    confidence_reader,
    decode,
    default_payload,
    encode,
    top1,
)
from wattbench.suites.images import encode_png, synthetic_images


@pytest.mark.parametrize(
    "text,kind,q,side",
    [
        ("jpeg", "jpeg", 90, None),
        ("jpeg:50@112", "jpeg", 50, 112),
        ("png@64", "png", None, 64),
        ("npy", "npy", None, None),
        ("RAW", "raw", None, None),
    ],
)
def test_parse(text: str, kind: str, q: int | None, side: int | None) -> None:
    s = PayloadSpec.parse(text)
    assert (s.kind, s.quality, s.max_side) == (kind, q, side)
    assert PayloadSpec.parse(str(s)) == s


@pytest.mark.parametrize("text", ["gif", "jpeg:0", "jpeg:101", "png:50", "npy@10", "jpeg@4"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="payload"):
        PayloadSpec.parse(text)


def test_reduction_shrinks_jpeg_and_decodes_to_the_right_size() -> None:
    img = synthetic_images(0, n=1, size=256)[0]
    full = encode(PayloadSpec.parse("jpeg:95"), None, img, None)
    small = encode(PayloadSpec.parse("jpeg:50@112"), None, img, None)
    png = encode(PayloadSpec.parse("png"), None, img, None)
    assert len(small) < len(full) < len(png)
    kind, out = decode(small, "image/jpeg")
    assert kind == "image" and out.size == (112, 112)


def test_raw_sends_the_source_bytes_with_a_sniffed_type() -> None:
    img = synthetic_images(0, n=1, size=32)[0]
    data = encode_png(img)
    spec = PayloadSpec.parse("raw")
    assert encode(spec, data, img, None) == data
    assert spec.content_type(data) == "image/png"
    buf = io.BytesIO()
    img.save(buf, format="BMP")
    assert spec.content_type(buf.getvalue()) == "image/bmp"
    with pytest.raises(ConfigError, match="raw"):
        encode(spec, img, img, None)


def test_npz_round_trip_adds_the_batch_dimension() -> None:
    feed = {"x": np.arange(12, dtype=np.float32).reshape(3, 4), "m": np.ones(5, np.int64)}
    body = encode(PayloadSpec.parse("npy"), None, None, feed)
    kind, out = decode(body, "application/x-npz")
    assert kind == "feed"
    assert out["x"].shape == (1, 3, 4) and out["x"].dtype == np.float32
    np.testing.assert_array_equal(out["x"][0], feed["x"])
    assert out["m"].dtype == np.int64


def test_default_payload_and_bad_bodies() -> None:
    assert default_payload(Image.new("RGB", (4, 4))).kind == "jpeg"
    assert default_payload(np.zeros(3)).kind == "npy"
    with pytest.raises(ConfigError, match="image samples"):
        encode(PayloadSpec.parse("jpeg"), None, np.zeros(3), None)
    with pytest.raises(ValueError, match="Content-Type"):
        decode(b"x", "text/plain")
    with pytest.raises(ValueError, match="decode"):
        decode(b"not a jpeg", "image/jpeg")


def test_top1_is_the_softmax_probability() -> None:
    k, p = top1(np.array([0.0, np.log(3.0)]))
    assert k == 1 and p == pytest.approx(0.75)
    k, p = top1(np.array([0.1, 0.6, 0.3]))  # already probabilities: kept
    assert k == 1 and p == pytest.approx(0.6)
    assert top1(np.array([np.nan, 1.0]))[1] == 0.0


class QuantSession:
    """The parts of a LiteRT session the confidence reader uses: a uint8 output."""

    def __init__(self, scale: float, zero: int) -> None:
        self.q = (scale, zero)

    def describe(self) -> object:
        from types import SimpleNamespace

        return SimpleNamespace(options={"output_quantization": {"out": self.q}})

    def dequantize(self, outs: list[np.ndarray]) -> list[np.ndarray]:
        return [(o.astype(np.float32) - self.q[1]) * self.q[0] for o in outs]


def test_quantised_softmax_is_read_as_probabilities_not_squashed_again() -> None:
    raw = np.zeros((1, 1001), dtype=np.uint8)
    raw[0, 20], raw[0, 7] = 105, 40  # 0.41 and 0.16 after dequantising: sums to 0.57
    assert confidence_reader(QuantSession(1 / 256, 0))([raw]) == (20, pytest.approx(105 / 256))
    # softmax over the raw integers would call it certain: the bug this reader avoids
    assert top1(raw[0])[1] > 0.99


def test_quantised_logits_are_dequantised_then_softmaxed() -> None:
    raw = np.full((1, 4), 128, dtype=np.uint8)
    raw[0, 2] = 148  # logit 20 * 0.1 = 2.0 above the others
    k, p = confidence_reader(QuantSession(0.1, 128))([raw])
    assert k == 2 and p == pytest.approx(np.e**2 / (np.e**2 + 3), rel=1e-5)


def test_float_sessions_read_the_first_output_as_is() -> None:
    row = np.array([[0.0, np.log(3.0)]], dtype=np.float32)
    k, p = confidence_reader(object())([row])
    assert k == 1 and p == pytest.approx(0.75)

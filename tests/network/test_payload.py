"""Wire format: payload specs, encodings, decoding, confidence."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from wattbench.harness.errors import ConfigError
from wattbench.harness.network.payload import PayloadSpec, decode, default_payload, encode, top1
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

"""The wire format between the edge and ``wattbench cloud serve``.

Request: ``POST /v1/infer`` with one sample as the body, its form named by
``Content-Type``:

* ``image/*`` — the sample exactly as the source gave it (payload ``raw``: the
  encoded file, e.g. BMP, PNG or JPEG bytes; content type from its magic bytes);
* ``image/png`` — the acquired image, lossless (payload ``png``);
* ``image/jpeg`` — the acquired image, JPEG at quality Q, its longer side resized
  to at most S pixels first (payload ``jpeg``, ``jpeg:Q``, ``jpeg:Q@S``): the
  on-device payload reduction;
* ``application/x-npz`` — the preprocessed model inputs, one array per input name
  (batch dimension included), ``numpy.savez`` uncompressed (payload ``npy``). The
  cloud runs them as they are, so the cloud model must take the same inputs.

Response: ``200`` with JSON ``{"answer": int, "confidence": float, "compute_j":
float | null, "energy_method": str | null, "server_ms": float}`` (``compute_j``:
the server's own reader over that request, null when it runs none); ``4xx`` for
a payload it cannot use, with ``{"error": "..."}``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

from wattbench.core.errors import ConfigError

CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "npy": "application/x-npz",
    "raw": "application/octet-stream",
}
_MAGIC = {
    b"\x89PNG": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"BM": "image/bmp",
    b"GIF8": "image/gif",
    b"RIFF": "image/webp",
}
_SPEC = re.compile(r"^(?P<kind>raw|png|jpeg|npy)(?::(?P<q>\d{1,3}))?(?:@(?P<side>\d{1,5}))?$")


@dataclass(frozen=True)
class PayloadSpec:
    """How the edge encodes a sample it sends."""

    kind: Literal["raw", "png", "jpeg", "npy"]
    quality: int | None = None
    max_side: int | None = None

    @classmethod
    def parse(cls, text: str) -> PayloadSpec:
        m = _SPEC.match(text.strip().lower())
        if m is None:
            raise ConfigError(
                f"invalid payload {text!r}: use raw, npy, png, png@SIDE, jpeg, jpeg:QUALITY or "
                f"jpeg:QUALITY@SIDE (e.g. jpeg:80@224)"
            )
        kind = m["kind"]
        q = int(m["q"]) if m["q"] else (90 if kind == "jpeg" else None)
        side = int(m["side"]) if m["side"] else None
        if q is not None and (kind != "jpeg" or not 1 <= q <= 100):
            raise ConfigError(f"invalid payload {text!r}: a quality (1-100) is for jpeg only")
        if side is not None and (kind in ("npy", "raw") or side < 8):
            raise ConfigError(f"invalid payload {text!r}: @SIDE (>= 8 px) is for png/jpeg only")
        return cls(kind=kind, quality=q, max_side=side)  # type: ignore[arg-type]

    def __str__(self) -> str:
        s = self.kind + (f":{self.quality}" if self.kind == "jpeg" else "")
        return s + (f"@{self.max_side}" if self.max_side else "")

    def content_type(self, body: bytes) -> str:
        if self.kind == "raw":
            return next((t for m, t in _MAGIC.items() if body.startswith(m)), CONTENT_TYPES["raw"])
        return CONTENT_TYPES[self.kind]


def default_payload(image: Any) -> PayloadSpec:
    """JPEG (quality 90, size kept) for image samples, the preprocessed tensors otherwise."""
    return PayloadSpec("jpeg", 90) if isinstance(image, Image.Image) else PayloadSpec("npy")


def encode(spec: PayloadSpec, raw: Any, image: Any, feed: dict[str, np.ndarray] | None) -> bytes:
    """The request body for one sample.

    ``raw``: the sample as the input set holds it; ``image``: the acquired (decoded)
    sample; ``feed``: its preprocessed rows, no batch dimension.
    """
    if spec.kind == "raw":
        if not isinstance(raw, bytes):
            raise ConfigError(
                f"payload raw needs samples held as encoded bytes; these are "
                f"{type(raw).__name__}: use --payload jpeg or npy"
            )
        return raw
    if spec.kind == "npy":
        if feed is None:
            raise ConfigError("payload npy needs the preprocessed inputs")
        buf = io.BytesIO()
        arrays = {k: np.ascontiguousarray(v)[None, ...] for k, v in feed.items()}
        savez: Any = np.savez  # numpy's stub types **kwds as its keyword options
        savez(buf, **arrays)
        return buf.getvalue()
    if not isinstance(image, Image.Image):
        raise ConfigError(
            f"payload {spec} needs image samples; this suite's are {type(image).__name__}: "
            f"use --payload npy"
        )
    img = image
    if spec.max_side and max(img.size) > spec.max_side:
        scale = spec.max_side / max(img.size)
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))),
            Image.Resampling.BILINEAR,
        )
    buf = io.BytesIO()
    if spec.kind == "jpeg":
        img.convert("RGB").save(buf, format="JPEG", quality=spec.quality or 90)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def decode(body: bytes, content_type: str) -> tuple[str, Any]:
    """("image", PIL image) or ("feed", {name: array}); ValueError for anything else."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype.startswith("image/"):
        try:
            with Image.open(io.BytesIO(body)) as im:
                return "image", im.convert("RGB")
        except (OSError, Image.DecompressionBombError) as exc:
            raise ValueError(f"cannot decode the {ctype} body: {exc}") from None
    if ctype == "application/x-npz":
        try:
            with np.load(io.BytesIO(body), allow_pickle=False) as z:
                return "feed", {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the npz body: {exc}") from None
    raise ValueError(
        f"unsupported Content-Type {content_type!r}: send an image/* or application/x-npz"
    )


def top1(outputs: Any, *, probabilities: bool | None = None) -> tuple[int, float]:
    """(class, confidence): the top-1 softmax probability of the first output's row.

    ``probabilities=None`` detects rows that already are probabilities
    (non-negative, summing to 1) and uses them as they are, so a model with a
    softmax head is not squashed twice; True says so outright (a quantised
    softmax, whose rounded values need not sum to 1), False always applies softmax.
    """
    x = np.asarray(outputs, dtype=np.float64).reshape(-1)
    if x.size == 0 or not np.all(np.isfinite(x)):
        return (int(np.nanargmax(x)) if x.size and not np.all(np.isnan(x)) else -1), 0.0
    if probabilities is None:
        probabilities = bool(np.all(x >= 0) and abs(float(x.sum()) - 1.0) < 1e-3)
    if probabilities:
        p = x
    else:
        e = np.exp(x - x.max())
        p = e / e.sum()
    k = int(np.argmax(p))
    return k, float(p[k])


#: TFLite's quantisation spec fixes a softmax output's scale at 1/256 (zero point 0
#: for uint8, -128 for int8): such an output is a probability row.
_SOFTMAX_SCALE = 1.0 / 256


def confidence_reader(session: Any) -> Callable[[Sequence[Any]], tuple[int, float]]:
    """How to read (class, confidence) from ``session.run``'s raw outputs.

    Sessions with ``dequantize`` (LiteRT, Coral) return integer tensors for a
    full-integer model: softmax over raw uint8 values would call every answer
    certain. Those outputs are dequantised first, and an output quantised as a
    softmax (scale 1/256) is taken as the model's own probabilities. Other
    sessions' first output is read as it is.
    """
    dequantize = getattr(session, "dequantize", None)
    if dequantize is None:
        return lambda outs: top1(np.asarray(outs[0])[0])
    quant = session.describe().options.get("output_quantization")
    first = next(iter(quant.values()), None) if isinstance(quant, dict) and quant else None
    softmax = (
        first is not None
        and abs(float(first[0]) - _SOFTMAX_SCALE) < 1e-12
        and int(first[1]) in (0, -128)
    )

    def read(outs: Sequence[Any]) -> tuple[int, float]:
        row = np.asarray(dequantize(list(outs))[0])[0]
        return top1(row, probabilities=True if softmax else None)

    return read

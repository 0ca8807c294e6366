"""The slm suite: prompts, user model folders and the agreement check (a broken model fails)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from wattbench.adapters.onnxruntime_genai import OnnxGenAiAdapter
from wattbench.core.adapter import AdapterOptions, ModelArtifact
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ConfigError, ModelError
from wattbench.core.suite import SuiteOptions
from wattbench.harness.generation import open_reference
from wattbench.suites.slm import PROMPTS, SlmTinySuite


def _open_ref(artifact: ModelArtifact):  # type: ignore[no-untyped-def]
    return open_reference("transformers", artifact)


def test_prompts_are_exactly_prompt_tokens_and_deterministic(hf_model: ModelArtifact) -> None:
    suite = SlmTinySuite()
    inputs = suite.load_inputs()
    assert inputs.source == "shipped" and len(inputs.samples) == len(PROMPTS) == 8
    a = suite.encode_prompts(hf_model, inputs)
    b = suite.encode_prompts(hf_model, inputs)
    assert all(x.shape == (128,) and x.dtype == np.int64 for x in a)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert len({x.tobytes() for x in a}) == 8  # every prompt is different
    tok = suite.tokenizer(hf_model)
    # repeated text, then cut: the prompt's own tokens open the sequence
    first = tok.encode(PROMPTS[0]).ids
    assert a[0][: len(first)].tolist() == first
    assert suite.run_version == "2.0"
    assert SlmTinySuite(prompt_tokens=16, output_tokens=8).run_version == "2.0+p16o8"


def test_fixed_prompts_refuse_a_data_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="drop --data-dir"):
        SlmTinySuite(SuiteOptions(data_dir=tmp_path)).load_inputs()


def test_only_fp32_and_known_formats_are_built(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    with pytest.raises(ConfigError, match="fp32 models only"):
        SlmTinySuite().build_model("onnx-genai-dir", cache, "int8")
    with pytest.raises(ConfigError, match="cannot build a onnx model"):
        SlmTinySuite().build_model("onnx", cache)


def test_user_model_folders(tmp_path: Path, hf_model: ModelArtifact) -> None:
    suite = SlmTinySuite()
    d = tmp_path / "my-model"
    shutil.copytree(hf_model.path, d)
    art = suite.user_model(d)
    assert art.format == "hf-dir" and art.sha256 == hf_model.sha256
    assert art.weights == f"user(sha256={hf_model.sha256[:12]})" and art.name == "my-model"
    with pytest.raises(ModelError, match="a GGUF file or a model folder"):
        suite.user_model(d / "config.json")
    with pytest.raises(ModelError, match="not found"):
        suite.user_model(tmp_path / "missing")
    (d / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"no tokenizer\.json"):
        suite.user_model(d)
    (d / "config.json").unlink()
    with pytest.raises(ModelError, match="neither"):
        suite.user_model(d)


def test_agreement_logic() -> None:
    suite = SlmTinySuite(quality_tokens=4)
    inputs = suite.load_inputs()
    ref = [np.arange(4) + i for i in range(8)]
    ok = suite.check_quality([r.copy() for r in ref], inputs, ref)
    assert ok.passed and ok.kind == "agreement" and ok.metrics["prompt_agreement"] == 1.0
    off = [r.copy() for r in ref]
    off[5][2] += 1
    bad = suite.check_quality(off, inputs, ref)
    assert not bad.passed and bad.metrics["prompt_agreement"] == 7 / 8
    assert "prompt-5 diverges at token 2" in bad.detail
    assert bad.metrics["min_matching_prefix"] == 2
    assert suite.check_quality(off, inputs, ref, precision="fp16").passed  # 87.5 % >= 75 %
    short = suite.check_quality([r[:3] for r in ref], inputs, ref)
    assert not short.passed and "gave 3 tokens" in short.detail
    sanity = suite.check_quality(ref, inputs, None)
    assert sanity.passed and sanity.kind == "sanity" and "not assessed" in sanity.detail


def test_a_corrupted_model_fails_the_check(
    slm_cache: ModelCache, genai_model: ModelArtifact, broken_genai_model: Path
) -> None:
    suite = SlmTinySuite()
    inputs = suite.load_inputs()
    prompts = suite.encode_prompts(genai_model, inputs)
    reference = suite.reference_tokens(genai_model, prompts, slm_cache, _open_ref)
    assert reference is not None
    opts = AdapterOptions(threads=1)
    for path, passes in ((Path(genai_model.path), True), (broken_genai_model, False)):
        s = OnnxGenAiAdapter().load(genai_model.model_copy(update={"path": path}), opts)
        outputs = [s.generate(p, suite.quality_tokens) for p in prompts]
        q = suite.check_quality(outputs, inputs, reference)
        assert q.passed is passes, q.detail
    assert q.metrics["prompt_agreement"] < 1.0 and "diverges" in q.detail


def test_user_genai_folder_has_no_reference(
    slm_cache: ModelCache, genai_model: ModelArtifact
) -> None:
    suite = SlmTinySuite()
    user = suite.user_model(Path(genai_model.path))
    assert suite.reference_tokens(user, [], slm_cache, _open_ref) is None
    hf_user = user.model_copy(update={"format": "hf-dir"})
    assert suite.reference_artifact(hf_user, slm_cache) is not None

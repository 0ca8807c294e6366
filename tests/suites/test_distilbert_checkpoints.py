"""The distilbert suite's real-weight paths, with a tiny DistilBERT checkpoint written here.

No trained DistilBERT is available offline, so the canonical checkpoint's download is served
from a ``file://`` mirror of a tiny random checkpoint (same file names), and ``--model DIR``
gets the same folder. What is checked is the mechanics: sha256 recorded at the first
download and pinned afterwards, the checkpoint's own tokenizer, its ONNX export, provenance,
and accuracy on the labelled sentences.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wattbench.core.cache import ModelCache
from wattbench.core.errors import ChecksumError, ConfigError, ModelError
from wattbench.core.suite import SuiteOptions
from wattbench.suites import distilbert as db
from wattbench.suites.distilbert import DistilBertSuite
from wattbench.suites.models import first_download

pytest.importorskip("onnxruntime", reason="needs the onnxruntime extra")
pytest.importorskip("tokenizers", reason="needs the nlp extra")
torch = pytest.importorskip("torch", reason="building needs the torch extra")
transformers = pytest.importorskip("transformers", reason="building needs the transformers extra")

WATTBENCH = str(Path(sys.executable).with_name("wattbench"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DistilBERT SST-2-shaped checkpoint: config.json, model.safetensors, vocab.txt."""
    d = tmp_path_factory.mktemp("tiny-distilbert")
    vocab = sorted(db.build_tokenizer().get_vocab().items(), key=lambda kv: kv[1])
    (d / "vocab.txt").write_text("".join(f"{tok}\n" for tok, _ in vocab))
    config = transformers.DistilBertConfig(
        vocab_size=len(vocab), dim=32, n_layers=1, n_heads=2, hidden_dim=64,
        id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.DistilBertForSequenceClassification(config).save_pretrained(d)
    assert (d / "model.safetensors").is_file()
    return d


@pytest.fixture
def mirror(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The canonical URL pointed at the tiny checkpoint (a file:// mirror)."""
    monkeypatch.setattr(db, "CANONICAL_URL", f"file://{checkpoint}/")
    return checkpoint


def test_the_canonical_checkpoint_is_an_immutable_revision() -> None:
    assert re.fullmatch(r"[0-9a-f]{40}", db.CANONICAL_REVISION)
    assert (
        "https://huggingface.co/distilbert/distilbert-base-uncased-finetuned-sst-2-english"
        f"/resolve/{db.CANONICAL_REVISION}/"
    ) == db.CANONICAL_URL
    (recipe,) = DistilBertSuite().recipes()
    assert recipe.weights.startswith("pretrained(distilbert/")
    (recipe,) = DistilBertSuite(SuiteOptions(weights="random")).recipes()
    assert recipe.weights == "random(seed=0)"


def test_first_download_records_the_sha256_and_pins_it(mirror: Path, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache")
    art = DistilBertSuite().build_model("onnx", cache)
    sha = first_download.recorded_sha256(db.CANONICAL_URL + "model.safetensors", cache)
    assert sha == hashlib.sha256((mirror / "model.safetensors").read_bytes()).hexdigest()
    assert art.weights == f"pretrained(sha256={sha[:12]})"
    prov = art.provenance
    assert prov is not None and prov.kind == "pretrained" and not prov.sha256_pinned
    assert prov.sha256 == sha and prov.license == "Apache-2.0"
    assert set(prov.files) == {"config.json", "vocab.txt"}
    assert "recorded at its first download" in prov.notes
    # the checkpoint's own tokenizer (its vocab.txt), not the random model's derived one
    suite = DistilBertSuite()
    suite.build_model("onnx", cache)
    assert suite._checkpoint is not None and suite._checkpoint.canonical
    assert suite.tokenizer().get_vocab_size() == len((mirror / "vocab.txt").read_text().split())
    # a second suite downloads nothing: the files come from the cache
    for name in db.CANONICAL_FILES:
        assert first_download.recorded_sha256(db.CANONICAL_URL + name, cache) is not None


def test_a_later_download_must_match_the_recorded_sha256(tmp_path: Path) -> None:
    src = tmp_path / "upstream" / "vocab.txt"
    src.parent.mkdir()
    src.write_text("[PAD]\n[UNK]\n")
    cache = ModelCache(tmp_path / "cache")
    url = f"file://{src}"
    path, sha = first_download.fetch_first_use(url, ".txt", cache)
    assert first_download.recorded_sha256(url, cache) == sha
    src.write_text("changed upstream\n")
    assert first_download.fetch_first_use(url, ".txt", cache) == (path, sha)  # the cache
    path.unlink()  # a cleared cache: downloaded again, and refused
    with pytest.raises(ChecksumError, match=f"expected {sha}"):
        first_download.fetch_first_use(url, ".txt", cache)


def test_an_unreachable_checkpoint_names_the_offline_remedies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(db, "CANONICAL_URL", f"file://{tmp_path}/absent/")
    with pytest.raises(ModelError) as ei:
        DistilBertSuite().build_model("onnx", ModelCache(tmp_path / "cache"))
    msg = str(ei.value)
    assert "huggingface-cli download" in msg and db.CANONICAL_REVISION in msg
    assert "--model DIR" in msg and "--weights random" in msg


def test_accuracy_on_the_labelled_sentences_with_real_weights(mirror: Path, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache")
    suite = DistilBertSuite()
    suite.bind(suite.build_model("onnx", cache))
    inputs = suite.load_inputs()
    labels = [s.label for s in inputs.samples]
    assert len(labels) == 64 and None not in labels

    def logits(flip: bool) -> list[np.ndarray]:
        return [np.array([0.0, 1.0]) if (y == 1) != flip else np.array([1.0, 0.0]) for y in labels]

    ref = logits(False)
    q = suite.check_quality(ref, inputs, ref)
    assert q.passed and q.kind == "accuracy", q.detail
    assert q.metrics["top1_accuracy"] == 1.0 and q.metrics["labelled_samples"] == 64
    assert q.metrics["target_top1_accuracy"] == db.DistilBertSuite.accuracy_target
    q = suite.check_quality(logits(True), inputs, logits(True))  # agrees, but always wrong
    assert not q.passed and "below the target 0.85" in q.detail
    # with random weights accuracy means nothing and is never claimed
    random = DistilBertSuite(SuiteOptions(weights="random"))
    q = random.check_quality(ref, inputs, ref)
    assert "top1_accuracy" not in q.metrics
    assert "accuracy not assessed: random weights" in q.detail


def test_cli_model_dir_is_a_user_checkpoint_with_its_provenance(
    checkpoint: Path, tmp_path: Path
) -> None:
    sentences = tmp_path / "sentences"
    sentences.mkdir()
    lines = [x for x in db.SENTENCES_FILE.read_text().splitlines() if x and x[0] != "#"]
    (sentences / "few.txt").write_text("\n".join(lines[:6]) + "\n")
    env = {**os.environ, "WATTBENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [WATTBENCH, "run", "--suite", "distilbert", "--adapter", "onnxruntime", "--model",
         str(checkpoint), "--data-dir", str(sentences), "--duration", "0.2", "--repeats", "1",
         "--warmup", "0.05", "--idle-s", "0.1", "--cooldown", "0", "--min-queries", "3",
         "--e2e-queries", "3", "--threads", "2", "--power", "estimate", "--json",
         "--no-git-labels", "--db", f"sqlite:///{tmp_path / 'r.db'}"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["suite_version"] == "1.1"
    model = result["model"]
    assert model["weights"].startswith("user(sha256=") and model["format"] == "onnx"
    prov = model["provenance"]
    assert prov["kind"] == "user" and set(prov["files"]) >= {"config.json", "vocab.txt"}
    q = result["quality"]
    # the checkpoint's fp32 export is its reference: agreement; the user's sentences are
    # labelled, so accuracy is reported (no target outside the shipped set)
    assert q["passed"] and q["kind"] == "agreement", q
    assert q["metrics"]["labelled_samples"] == 6 and "top1_accuracy" in q["metrics"]
    assert result["valid"], result["invalid_reasons"]


def test_a_folder_that_is_not_a_checkpoint_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"lacks model\.safetensors .*tokenizer\.json"):
        DistilBertSuite().user_model(tmp_path)

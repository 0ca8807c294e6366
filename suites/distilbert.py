"""The distilbert suite: SST-2 style sentence classification at sequence length 128.

The work it pins (version 1.1):

* model, by default (``--weights pretrained``): the canonical fine-tuned checkpoint
  ``distilbert/distilbert-base-uncased-finetuned-sst-2-english`` at the immutable Hugging
  Face revision :data:`CANONICAL_REVISION` (Apache-2.0), downloaded once into the model
  cache (``config.json``, ``model.safetensors``, ``vocab.txt``). No verified sha256 of those
  files was available, so each file's sha256 is recorded at its first download
  (:mod:`wattbench.suites.models.first_download`), pinned from then on and stored with every
  run. ``--model DIR`` takes any local Hugging Face DistilBERT sequence-classification
  checkpoint instead (its own tokenizer). Both are exported to ONNX as below.
* model with ``--weights random`` (tests, smoke runs): the DistilBERT-base architecture
  (``DistilBertConfig()`` defaults: 6 layers, hidden 768, 12 heads, vocabulary 30522) with a
  2-label sequence-classification head, random weights seeded by ``--seed``, exported to ONNX
  (inputs ``input_ids`` and ``attention_mask``, int64 ``[batch, 128]``; output ``logits``
  ``[batch, 2]``). The classifier bias is then shifted so that the fixed sentence set splits
  between the two labels at the widest gap in the margins: a random head otherwise answers one
  label for every sentence, and top-1 agreement with the reference would tell nothing.
* inputs: the 64 sentences of ``data/distilbert_sentences.txt`` (written for wattbench, with
  positive/negative labels), or the user's sentence files (``--data-dir``).
* preprocessing: a checkpoint's own WordPiece tokenizer (``tokenizer.json``, else its
  ``vocab.txt``); with random weights a WordPiece tokenizer (BERT normaliser, lowercase, BERT
  pre-tokeniser, ``[CLS] … [SEP]``) whose vocabulary is derived deterministically from the
  shipped text files. Padded/truncated to 128. Tokenising is timed as part of the end-to-end
  latency; it needs only the ``tokenizers`` package (``wattbench[nlp]``).
* quality: top-1 agreement and mean cosine similarity of the logits against the FP32
  reference (the ONNX model of the same weights on ONNX Runtime CPU), with targets per
  precision in :attr:`DistilBertSuite.quality_targets`; with real weights also the accuracy
  on the labelled sentences (a target on the shipped set). Random weights make accuracy
  against the labels meaningless, so it is not assessed.

Building the model needs ``transformers`` and ``torch`` (``wattbench[transformers,torch]``);
running it needs only a runtime and ``tokenizers``.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Literal

import numpy as np

from wattbench.core.adapter import ModelArtifact, Precision, Provenance, TensorSpec
from wattbench.core.cache import ModelCache, sha256_file
from wattbench.core.errors import ConfigError, ModelError, UnavailableError, WattbenchError
from wattbench.core.suite import InputSet, ModelRecipe, QualityResult, Suite, SuiteOptions

#: tokens per sequence (padded or truncated)
SEQ_LEN = 128
MODEL_NAME = "distilbert_base_sst2_seq128"
INPUT_NAMES = ("input_ids", "attention_mask")
NUM_LABELS = 2
DATA_DIR = Path(__file__).resolve().with_name("data")
SENTENCES_FILE = DATA_DIR / "distilbert_sentences.txt"
WORDS_FILE = DATA_DIR / "distilbert_words.txt"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: word endings given their own continuation piece, so inflected words split into few pieces
SUFFIXES = (
    *("s", "es", "ed", "ing", "ly", "er", "ers", "est", "ness", "ful", "less", "able", "ible"),
    *("ment", "ments", "tion", "tions", "ity", "ous", "ive", "al", "ic", "y", "ish", "ism"),
    *("ist", "ists", "ance", "ence", "ant", "ent", "ize", "ise"),
)
#: sha256 (first 16 hex) of the tokenizer vocabulary the 1.0 recipe yields; a change means
#: different work, so the suite version must change with it (tests/suites checks this)
VOCAB_DIGEST = "1a22f7c3f4d2c7ad"

NLP_HINT = "pip install 'wattbench[nlp]'"
BUILD_HINT = "pip install 'wattbench[transformers,torch]'"

#: The canonical fine-tuned checkpoint, at an immutable Hugging Face revision (the revision
#: transformers' sentiment-analysis pipeline pins, "714eb0f").
CANONICAL_REPO = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
CANONICAL_REVISION = "714eb0fa89d2f80546fda750413ed43d93601a13"
CANONICAL_URL = f"https://huggingface.co/{CANONICAL_REPO}/resolve/{CANONICAL_REVISION}/"
CANONICAL_FILES = ("config.json", "model.safetensors", "vocab.txt")
CANONICAL_LICENSE = "Apache-2.0"
#: files of a local checkpoint folder that make up its identity
CHECKPOINT_FILES = (
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
)
OFFLINE_HINT = (
    f"offline: `huggingface-cli download {CANONICAL_REPO} --revision {CANONICAL_REVISION} "
    f"--local-dir DIR` on a machine with internet, then pass --model DIR; or run with "
    f"--weights random"
)


@dataclass(frozen=True)
class Checkpoint:
    """A Hugging Face sequence-classification checkpoint on disk."""

    directory: Path
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    lowercase: bool = True
    positive: int = 1  # index of the positive label in the logits
    canonical: bool = False

    @property
    def digest(self) -> str:
        items = sorted(self.files.items())
        return hashlib.sha256(json.dumps(items).encode()).hexdigest()

    @property
    def weights_sha256(self) -> str:
        return self.files.get("model.safetensors") or self.files.get("pytorch_model.bin", "")


def read_checkpoint(directory: Path, *, canonical: bool = False) -> Checkpoint:
    """A checkpoint folder's identity (sha256 of its files), case and label order.

    ConfigError naming what is missing for a folder that is not a classifier checkpoint.
    """
    d = Path(directory)
    missing = [n for n in ("config.json",) if not (d / n).is_file()]
    if not any((d / n).is_file() for n in ("model.safetensors", "pytorch_model.bin")):
        missing.append("model.safetensors (or pytorch_model.bin)")
    if not any((d / n).is_file() for n in ("tokenizer.json", "vocab.txt")):
        missing.append("tokenizer.json (or vocab.txt)")
    if missing:
        raise ConfigError(
            f"{d} is not a Hugging Face checkpoint folder: it lacks {', '.join(missing)} "
            f"(save one with save_pretrained, or pass an ONNX file)"
        )
    files = {n: sha256_file(d / n) for n in CHECKPOINT_FILES if (d / n).is_file()}
    config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    labels = {int(k): str(v).lower() for k, v in (config.get("id2label") or {}).items()}
    positive = next((i for i, n in labels.items() if n.startswith("pos")), 1)
    lowercase = True
    if (d / "tokenizer_config.json").is_file():
        tok_cfg = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
        lowercase = bool(tok_cfg.get("do_lower_case", True))
    return Checkpoint(d, files, lowercase, positive, canonical)


def checkpoint_tokenizer(ckpt: Checkpoint, seq_len: int = SEQ_LEN) -> Any:
    """The checkpoint's own tokenizer (``tokenizer.json``, else ``vocab.txt`` in BERT style)."""
    tk = _tokenizers()
    if (ckpt.directory / "tokenizer.json").is_file():
        tok = tk.Tokenizer.from_file(str(ckpt.directory / "tokenizer.json"))
    else:
        tok = tk.BertWordPieceTokenizer(str(ckpt.directory / "vocab.txt"), lowercase=ckpt.lowercase)
    tok.enable_truncation(max_length=seq_len)
    pad = tok.token_to_id("[PAD]")
    tok.enable_padding(length=seq_len, pad_id=0 if pad is None else pad, pad_token="[PAD]")
    return tok


def canonical_checkpoint(cache: ModelCache) -> Checkpoint:
    """The canonical checkpoint, downloaded into the cache once (sha256 recorded then)."""
    from wattbench.suites.models.first_download import fetch_first_use

    shas = {}
    for name in CANONICAL_FILES:
        _, shas[name] = fetch_first_use(
            CANONICAL_URL + name, Path(name).suffix, cache, hint=OFFLINE_HINT
        )
    digest = hashlib.sha256(json.dumps(sorted(shas.items())).encode()).hexdigest()
    folder = cache.root / "unpacked" / f"distilbert-sst2-{digest[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, sha in shas.items():
        link, target = folder / name, cache.path_for(sha, Path(name).suffix)
        if not link.exists():
            try:
                os.symlink(target, link)
            except OSError:  # no symlinks here (Windows without the privilege)
                shutil.copyfile(target, link)
    return Checkpoint(folder, shas, lowercase=True, positive=1, canonical=True)


def export_checkpoint_onnx(ckpt: Checkpoint, example: dict[str, np.ndarray]) -> bytes:
    """A checkpoint folder's sequence classifier as ONNX bytes (same I/O as the random model)."""
    torch, transformers = _builder_modules()
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(ckpt.directory)
    ).eval()
    if model.config.num_labels != NUM_LABELS:
        raise ModelError(
            f"{ckpt.directory} classifies into {model.config.num_labels} labels; the distilbert "
            f"suite needs a 2-label (negative/positive) checkpoint"
        )
    return _export(torch, model, example)


@dataclass(frozen=True)
class Sentence:
    """One input: the text and, when known, its label (1 positive, 0 negative)."""

    text: str
    label: int | None = None


def parse_sentences(text: str, source: str) -> list[Sentence]:
    """``<label>\\t<sentence>`` or bare ``<sentence>`` lines; ``#`` lines are comments."""
    out: list[Sentence] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        label: int | None = None
        if "\t" in raw.strip(" \r\n"):
            line = raw.strip(" \r\n")
            head, _, body = line.partition("\t")
            if head.strip() not in ("0", "1"):
                raise ConfigError(
                    f"{source}:{lineno}: label {head.strip()!r} is not 0 or 1 "
                    f"(write '<0|1><TAB><sentence>' or the bare sentence)"
                )
            label, line = int(head), body.strip()
        if not line:
            raise ConfigError(f"{source}:{lineno}: empty sentence after the label")
        out.append(Sentence(line, label))
    return out


def _tokenizers() -> ModuleType:
    try:
        return importlib.import_module("tokenizers")
    except ImportError as exc:
        raise UnavailableError(
            f"the distilbert suite tokenises with the tokenizers package: {NLP_HINT}"
        ) from exc


def build_tokenizer(seq_len: int = SEQ_LEN) -> Any:
    """The suite's WordPiece tokenizer, the same on every machine and every call.

    The vocabulary is derived, not trained: ``tokenizers``' WordPiece trainer gives
    vocabularies that differ between processes (1700-1702 tokens in three runs here), which
    would make the work differ between machines. Instead: special tokens, every printable
    ASCII character alone and (letters/digits) as a ``##`` continuation, common suffixes,
    then every word of the shipped text files, sorted. Any ASCII text tokenises without
    ``[UNK]``.
    """
    tk = _tokenizers()
    normalizer = tk.normalizers.BertNormalizer(lowercase=True)
    pre = tk.pre_tokenizers.BertPreTokenizer()
    words: set[str] = set()
    for path in (SENTENCES_FILE, WORDS_FILE):
        for s in parse_sentences(path.read_text(encoding="utf-8"), path.name):
            for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(s.text)):
                words.add(word)
    chars = [chr(c) for c in range(33, 127)]
    pieces = [
        *SPECIAL_TOKENS,
        *chars,
        *(f"##{c}" for c in chars if c.isalnum() and not c.isupper()),
        *(f"##{s}" for s in SUFFIXES),
    ]
    vocab: dict[str, int] = {}
    for p in [*pieces, *sorted(words)]:
        vocab.setdefault(p, len(vocab))
    tok = tk.Tokenizer(tk.models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.post_processor = tk.processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.enable_truncation(max_length=seq_len)
    tok.enable_padding(length=seq_len, pad_id=vocab["[PAD]"], pad_token="[PAD]")
    return tok


def vocab_digest(tokenizer: Any) -> str:
    """First 16 hex digits of the sha256 of the vocabulary (token → id, in id order)."""
    items = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


def _split_threshold(margins: np.ndarray) -> float:
    """A margin threshold in the widest gap between the middle 25-75 % of ``margins``.

    Subtracting it from the positive logit splits the set between the labels with no
    sentence close to the decision boundary (a near-tie would flip on float noise).
    """
    m = np.sort(np.asarray(margins, dtype=np.float64))
    n = len(m)
    if n < 2:
        return float(m[0]) if n else 0.0
    lo, hi = max(0, n // 4 - 1), min(n - 1, (3 * n) // 4)
    gaps = np.diff(m[lo : hi + 1])
    k = int(np.argmax(gaps))
    return float((m[lo + k] + m[lo + k + 1]) / 2)


def _builder_modules() -> tuple[ModuleType, ModuleType]:
    try:
        transformers = importlib.import_module("transformers")
        torch = importlib.import_module("torch")
    except ImportError as exc:
        raise UnavailableError(
            f"building the distilbert model needs transformers and torch: {BUILD_HINT} "
            f"(or pass an ONNX model with --model)"
        ) from exc
    return torch, transformers


def export_onnx(seed: int, calibration: dict[str, np.ndarray]) -> bytes:
    """Random-weight DistilBERT-base sequence classifier as ONNX bytes (opset 17).

    ``calibration`` (the tokenised fixed set) places the classifier bias, see
    :func:`_split_threshold`. About 6 s on 2 cores; the file is ~255 MB.
    """
    torch, transformers = _builder_modules()
    torch.manual_seed(seed)
    config = transformers.DistilBertConfig(num_labels=NUM_LABELS)
    model = transformers.DistilBertForSequenceClassification(config).eval()
    ids = torch.from_numpy(calibration["input_ids"].astype(np.int64))
    mask = torch.from_numpy(calibration["attention_mask"].astype(np.int64))
    # Padding is masked out of attention, so the longest real sentence bounds the
    # calibration pass (7x less work than 128 tokens for the shipped set).
    used = max(1, int(calibration["attention_mask"].sum(axis=1).max()))
    with torch.no_grad():
        logits = model(input_ids=ids[:, :used], attention_mask=mask[:, :used]).logits.numpy()
        threshold = _split_threshold(logits[:, 1] - logits[:, 0])
        model.classifier.bias[1] -= threshold
    return _export(torch, model, {"input_ids": ids[:1].numpy(), "attention_mask": mask[:1].numpy()})


def _export(torch: ModuleType, model: Any, example: dict[str, np.ndarray]) -> bytes:
    ids = torch.from_numpy(np.ascontiguousarray(example["input_ids"][:1], dtype=np.int64))
    mask = torch.from_numpy(np.ascontiguousarray(example["attention_mask"][:1], dtype=np.int64))
    buf = io.BytesIO()
    batch = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, mask),
            buf,
            input_names=list(INPUT_NAMES),
            output_names=["logits"],
            dynamic_axes={"input_ids": batch, "attention_mask": batch, "logits": batch},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter: ~6 s, no onnxscript needed
        )
    return buf.getvalue()


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity; a zero row is similar to nothing (0)."""
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    denom = na * nb
    dots = np.einsum("ij,ij->i", a, b)
    return np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)


class DistilBertSuite(Suite):
    """DistilBERT-base sentence classification (2 labels), one sentence per query."""

    name: ClassVar[str] = "distilbert"
    # Bump when the model recipe, sentence set, tokenizer, sequence length or quality check
    # changes. 1.1: the canonical fine-tuned checkpoint by default (random: --weights random),
    # accuracy on the labelled sentences with real weights.
    version: ClassVar[str] = "1.1"
    task: ClassVar[str] = "text-classification"
    #: scenarios the suite is meaningful in
    scenarios: ClassVar[tuple[str, ...]] = ("single-stream", "offline", "server")
    #: minimum agreement with the FP32 reference, by the precision the model runs at.
    #: fp32/fp16 differ from the reference by float round-off only. int8: ONNX Runtime dynamic
    #: quantisation of the suite model measured top-1 0.9375 and centred cosine 0.977 here,
    #: another seed 0.58 / 0.02 and a zeroed classifier 0.56 / 0.01. The cosine is taken after
    #: subtracting the reference's mean logits over the input set (see check_quality).
    quality_targets: ClassVar[dict[str, dict[str, float]]] = {
        "fp32": {"top1_agreement": 0.99, "centred_logits_cosine": 0.999},
        "fp16": {"top1_agreement": 0.99, "centred_logits_cosine": 0.99},
        "int8": {"top1_agreement": 0.90, "centred_logits_cosine": 0.95},
    }
    #: minimum accuracy of real weights on the 64 shipped sentences (clear-cut movie-review
    #: sentiment; the checkpoint scores 91.3 % on SST-2's dev set)
    accuracy_target: ClassVar[float] = 0.85

    def __init__(self, options: SuiteOptions | None = None) -> None:
        super().__init__(options)
        self._tokenizer: Any = None
        self._precision: Precision = "fp32"
        self._reference_note = ""
        self._checkpoint: Checkpoint | None = None  # the run's checkpoint, real weights
        self._model: ModelArtifact | None = None

    # -- model ------------------------------------------------------------------------------
    @property
    def weights_choice(self) -> str:
        """pretrained (the canonical checkpoint, the default) or random."""
        return self.options.weights or "pretrained"

    def recipes(self) -> list[ModelRecipe]:
        weights = (
            f"random(seed={self.options.seed})"
            if self.weights_choice == "random"
            else f"pretrained({CANONICAL_REPO}@{CANONICAL_REVISION[:7]})"
        )
        return [ModelRecipe(name=MODEL_NAME, formats=["onnx"], weights=weights)]

    def _recipe_key(self) -> str:
        return (
            f"distilbert-base-sst2-seq{SEQ_LEN}-onnx-random-seed{self.options.seed}-v{self.version}"
        )

    def _checks(self, fmt: str, precision: Precision) -> None:
        if fmt != "onnx":
            raise ConfigError(
                f"distilbert builds ONNX models only, not {fmt}: use an adapter that loads "
                f"ONNX (onnxruntime, openvino) or pass a model with --model"
            )
        if precision != "fp32":
            raise ConfigError(
                f"distilbert cannot build a {precision} model: quantise the fp32 ONNX model "
                f"(e.g. onnxruntime.quantization.quantize_dynamic) and pass it with --model "
                f"--precision {precision}"
            )

    def build_model(
        self, fmt: str, cache: ModelCache, precision: Precision = "fp32"
    ) -> ModelArtifact:
        """The fp32 ONNX model of the suite's weights (OpenVINO reads it directly; no IR)."""
        self._checks(fmt, precision)
        self._precision = precision
        if self.weights_choice == "pretrained":
            self._use_checkpoint(canonical_checkpoint(cache))
            art = self._checkpoint_artifact(cache)
            self._model = art
            return art
        key = self._recipe_key()
        sha = cache.recipe(key)
        path = cache.lookup(sha, ".onnx") if sha else None
        if path is None or sha is None:
            shipped = self._shipped_inputs()
            rows = [self._encode(s.text) for s in shipped]
            calib = {n: np.stack([r[n] for r in rows]) for n in INPUT_NAMES}
            path, sha = cache.put_bytes(export_onnx(self.options.seed, calib), ".onnx")
            cache.remember_recipe(key, sha)
        art = ModelArtifact(
            path=path,
            sha256=sha,
            format="onnx",
            precision="fp32",
            weights=f"random(seed={self.options.seed})",
            name=MODEL_NAME,
            provenance=Provenance(
                kind="random",
                source=f"seeded random weights (torch.manual_seed({self.options.seed})) of "
                f"DistilBERT-base with a 2-label head, its bias placed to split the shipped "
                f"sentences",
                notes="the architecture's compute, not a sentiment classifier",
            ),
        )
        self._model = art
        return art

    def _use_checkpoint(self, ckpt: Checkpoint) -> None:
        if self._checkpoint != ckpt:
            self._checkpoint, self._tokenizer = ckpt, None

    def _checkpoint_artifact(self, cache: ModelCache) -> ModelArtifact:
        """The ONNX export of the current checkpoint, cached by the checkpoint's digest."""
        ckpt = self._checkpoint
        assert ckpt is not None
        key = f"distilbert-checkpoint-{ckpt.digest[:24]}-seq{SEQ_LEN}-onnx-v{self.version}"
        sha = cache.recipe(key)
        path = cache.lookup(sha, ".onnx") if sha else None
        if path is None or sha is None:
            example = self._encode(self._shipped_inputs()[0].text)
            data = export_checkpoint_onnx(ckpt, {k: v[None] for k, v in example.items()})
            path, sha = cache.put_bytes(data, ".onnx")
            cache.remember_recipe(key, sha)
        files = {k: v for k, v in ckpt.files.items() if k not in ("model.safetensors",)}
        export = f"exported with torch.onnx (opset 17, seq {SEQ_LEN})"
        if ckpt.canonical:
            weights = f"pretrained(sha256={ckpt.weights_sha256[:12]})"
            provenance = Provenance(
                kind="pretrained",
                source=f"{CANONICAL_REPO} @ {CANONICAL_REVISION[:8]}",
                license=CANONICAL_LICENSE,
                url=CANONICAL_URL + "model.safetensors",
                sha256=ckpt.weights_sha256,
                sha256_pinned=False,
                files=files,
                notes=f"sha256 of each file recorded at its first download into this model "
                f"cache (no verified digest was published); {export}",
            )
        else:
            weights = f"user(sha256={ckpt.digest[:12]})"
            provenance = Provenance(
                kind="user",
                source=f"Hugging Face checkpoint folder {ckpt.directory.name}",
                sha256=ckpt.weights_sha256 or None,
                files=files,
                notes=f"--model {ckpt.directory}; {export}",
            )
        return ModelArtifact(
            path=path,
            sha256=sha,
            format="onnx",
            precision="fp32",
            weights=weights,
            name=MODEL_NAME if ckpt.canonical else ckpt.directory.name,
            provenance=provenance,
        )

    def user_model(self, path: Path) -> ModelArtifact:
        """An ONNX file, or a Hugging Face checkpoint folder (exported to ONNX here)."""
        if path.is_dir():
            self._use_checkpoint(read_checkpoint(path))
            art = self._checkpoint_artifact(ModelCache())
        else:
            art = super().user_model(path)
        self._model, self._precision = art, art.precision
        return art

    def bind(self, artifact: ModelArtifact) -> None:
        """Tell the suite the model it judges (precision after the adapter's resolution)."""
        self._model, self._precision = artifact, artifact.precision

    def _random(self) -> bool:
        """Whether the run's model belongs to the random-weight family: the suite's random
        model, or a user's ONNX file run with --weights random (judged against it, tokenised
        with its vocabulary). A checkpoint (canonical or --model DIR) never does."""
        if self._checkpoint is not None:
            return False
        if self._model is not None and self._model.weights.startswith("random("):
            return True
        return self.weights_choice == "random"

    # -- inputs -----------------------------------------------------------------------------
    def _shipped_inputs(self) -> list[Sentence]:
        return parse_sentences(SENTENCES_FILE.read_text(encoding="utf-8"), SENTENCES_FILE.name)

    def load_inputs(self) -> InputSet:
        d = self.options.data_dir
        source: Literal["shipped", "user"]
        if d is None:
            text = SENTENCES_FILE.read_text(encoding="utf-8")
            sentences, source, what = self._shipped_inputs(), "shipped", "sst2-like"
        else:
            files = sorted(p for p in Path(d).glob("*") if p.suffix in (".txt", ".tsv"))
            if not Path(d).is_dir() or not files:
                raise ConfigError(
                    f"no sentence files (*.txt, *.tsv) in {d}: put '<0|1><TAB><sentence>' "
                    f"lines in one, or drop --data-dir to use the shipped set"
                )
            text = "".join(p.read_text(encoding="utf-8") for p in files)
            sentences = [s for p in files for s in parse_sentences(p.read_text("utf-8"), p.name)]
            source, what = "user", f"sentences(dir={Path(d).name})"
            if not sentences:
                raise ConfigError(f"the sentence files in {d} hold no sentences")
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        vocab = vocab_digest(self.tokenizer())
        return InputSet(
            source=source,
            description=(
                f"{what}(n={len(sentences)}, sha256={digest}, seq={SEQ_LEN}, "
                f"wordpiece-vocab={vocab})"
            ),
            samples=sentences,
            names=[f"sentence-{i}" for i in range(len(sentences))],
        )

    # -- pre/post-processing ----------------------------------------------------------------
    def tokenizer(self) -> Any:
        """The run's tokenizer: the checkpoint's own (the canonical one unless --model DIR;
        downloaded with it), or with random weights the suite's derived WordPiece."""
        if self._tokenizer is None:
            ckpt = self._checkpoint
            if ckpt is None and self.weights_choice == "pretrained":
                ckpt = canonical_checkpoint(ModelCache())
                self._checkpoint = ckpt
            self._tokenizer = build_tokenizer() if ckpt is None else checkpoint_tokenizer(ckpt)
        return self._tokenizer

    def _encode(self, text: str) -> dict[str, np.ndarray]:
        enc = self.tokenizer().encode(text)
        return {
            "input_ids": np.asarray(enc.ids, dtype=np.int64),
            "attention_mask": np.asarray(enc.attention_mask, dtype=np.int64),
        }

    def acquire(self, sample: Any) -> Any:
        """The sentence's text (the label stays with the input set)."""
        return sample.text if isinstance(sample, Sentence) else sample

    def preprocess_feed(self, sample: Any, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
        """Tokenise one sentence: ``input_ids`` and ``attention_mask`` rows of length 128."""
        text = self.acquire(sample)
        if not isinstance(text, str):
            raise TypeError(f"distilbert samples are sentences, got {type(text).__name__}")
        names = {s.name for s in specs}
        if names != set(INPUT_NAMES):
            raise ModelError(
                f"model inputs are {', '.join(sorted(names))}; the distilbert suite feeds "
                f"input_ids and attention_mask: export the model with those input names"
            )
        enc = self._encode(text)
        feed: dict[str, np.ndarray] = {}
        for s in specs:
            length = s.shape[1] if len(s.shape) > 1 else None
            if len(s.shape) != 2 or (isinstance(length, int) and length != SEQ_LEN):
                raise ModelError(
                    f"model input {s.name!r} has shape {s.shape}; the distilbert suite feeds "
                    f"[batch, {SEQ_LEN}]: export the model with sequence length {SEQ_LEN}"
                )
            if s.dtype not in ("int64", "int32"):
                raise ModelError(
                    f"model input {s.name!r} is {s.dtype}; token ids must be int64 or int32"
                )
            feed[s.name] = enc[s.name].astype(s.dtype)
        return feed

    def preprocess(self, sample: Any, spec: TensorSpec) -> np.ndarray:
        """One input only: the row of ``spec`` (use :meth:`preprocess_feed` for both)."""
        if spec.name not in INPUT_NAMES:
            raise ModelError(f"the distilbert suite has no input {spec.name!r}")
        return self._encode(self.acquire(sample))[spec.name].astype(spec.dtype)

    def postprocess(self, outputs: Sequence[np.ndarray]) -> int:
        """Logits → label (1 positive, 0 negative)."""
        return int(np.argmax(np.asarray(outputs[0]).reshape(-1)))

    # -- quality ----------------------------------------------------------------------------
    def reference_outputs(self, inputs: InputSet, cache: ModelCache) -> list[np.ndarray] | None:
        """Logits of the FP32 ONNX model of the run's weights (the checkpoint's export, or the
        suite's random model) on ONNX Runtime CPU, cached per input set.

        None (with the reason kept for :meth:`check_quality`) when onnxruntime is missing or
        the model cannot be built here.
        """
        try:
            ort = importlib.import_module("onnxruntime")
        except ImportError:
            self._reference_note = (
                "onnxruntime not installed (pip install 'wattbench[onnxruntime]')"
            )
            return None
        try:
            if self._random():
                art = type(self)(self.options).build_model("onnx", cache, "fp32")
            else:
                self.tokenizer()  # the canonical checkpoint when the run has none of its own
                art = self._checkpoint_artifact(cache)
        except WattbenchError as exc:
            self._reference_note = f"no reference model: {exc}"
            return None
        key_src = f"{art.sha256}|{inputs.description}|{ort.__version__}"
        key = f"distilbert-reference-{hashlib.sha256(key_src.encode()).hexdigest()[:24]}"
        sha = cache.recipe(key)
        cached = cache.lookup(sha, ".npy") if sha else None
        if cached is not None:
            logits = np.load(cached)
            if logits.shape == (len(inputs.samples), NUM_LABELS):
                return list(logits)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(art.path), so, providers=["CPUExecutionProvider"])
        rows = [self._encode(self.acquire(s)) for s in inputs.samples]
        out = []
        for i in range(0, len(rows), 16):  # bounded memory for a long user set
            chunk = rows[i : i + 16]
            feed = {n: np.stack([r[n] for r in chunk]) for n in INPUT_NAMES}
            out.append(np.asarray(sess.run(["logits"], feed)[0], dtype=np.float32))
        logits = np.concatenate(out)
        buf = io.BytesIO()
        np.save(buf, logits)
        _, sha = cache.put_bytes(buf.getvalue(), ".npy")
        cache.remember_recipe(key, sha)
        return list(logits)

    def _accuracy(self, logits: np.ndarray, inputs: InputSet) -> tuple[dict[str, float], str]:
        """Accuracy on the labelled sentences (real weights only), and the note for the detail."""
        if self._random():
            return {}, "accuracy not assessed: random weights"
        labels = [s.label if isinstance(s, Sentence) else None for s in inputs.samples]
        if len(labels) != len(logits):
            return {}, f"accuracy not assessed: {len(logits)} outputs for {len(labels)} sentences"
        pairs = [(row, y) for row, y in zip(logits, labels, strict=True) if y is not None]
        if not pairs:
            return {}, "accuracy not assessed: the sentences have no labels"
        positive = self._checkpoint.positive if self._checkpoint is not None else 1
        hits = [(int(np.argmax(row)) == positive) == (y == 1) for row, y in pairs]
        acc = float(np.mean(hits))
        metrics = {"top1_accuracy": acc, "labelled_samples": float(len(pairs))}
        return metrics, f"accuracy {acc:.3f} on {len(pairs)} labelled sentences"

    def check_quality(
        self,
        outputs: Sequence[np.ndarray],
        inputs: InputSet,
        reference: Sequence[np.ndarray] | None = None,
    ) -> QualityResult:
        """Agreement with the FP32 reference against :attr:`quality_targets`; with real
        weights also the accuracy on the labelled sentences (a target on the shipped set).

        Without a reference, only sanity (two finite, input-dependent logits) and accuracy are
        checked and the detail says why agreement was not assessed.
        """
        logits = np.stack([np.asarray(o, dtype=np.float64).reshape(-1) for o in outputs])
        problems: list[str] = []
        if logits.shape[1] != NUM_LABELS:
            problems.append(f"{logits.shape[1]} logits per sentence, expected {NUM_LABELS}")
        finite = float(np.isfinite(logits).mean())
        if finite < 1.0:
            problems.append(f"{(1 - finite) * 100:.1f}% of logits are NaN/inf")
        metrics: dict[str, float] = {"finite_fraction": finite}
        accuracy: dict[str, float] = {}
        note = "accuracy not assessed: malformed logits"
        if not problems:
            accuracy, note = self._accuracy(logits, inputs)
            if accuracy and inputs.source == "shipped":
                accuracy["target_top1_accuracy"] = self.accuracy_target
                if accuracy["top1_accuracy"] < self.accuracy_target:
                    problems.append(f"{note} below the target {self.accuracy_target}")
                note += f" (target {self.accuracy_target})"
        metrics.update(accuracy)
        kind: Literal["accuracy", "agreement", "sanity"]
        if reference is None or problems:
            spread = float(np.nanstd(logits - logits[0], axis=0).mean()) if len(logits) > 1 else 1
            metrics["input_sensitivity"] = spread
            if len(logits) > 1 and not spread > 0:
                problems.append("outputs do not depend on the input")
            notes = [note]
            if reference is None:
                notes.insert(0, f"agreement not assessed: {self._reference_note or 'no reference'}")
            kind = "accuracy" if accuracy else "sanity"
            return QualityResult(
                passed=not problems,
                kind=kind,
                metrics=metrics,
                detail="; ".join(problems or notes),
            )
        ref = np.stack([np.asarray(r, dtype=np.float64).reshape(-1) for r in reference])
        if ref.shape != logits.shape:
            return QualityResult(
                passed=False,
                kind="agreement",
                metrics=metrics,
                detail=f"outputs {logits.shape} do not match the reference {ref.shape}",
            )
        targets = self.quality_targets[self._precision]
        metrics["top1_agreement"] = float(np.mean(logits.argmax(1) == ref.argmax(1)))
        # A random head's logits share a large input-independent part (raw cosine ~1 even
        # for other weights): centring on the reference mean compares what depends on input.
        mu = ref.mean(axis=0)
        metrics["centred_logits_cosine"] = float(np.mean(_cosine_rows(logits - mu, ref - mu)))
        metrics["logits_cosine"] = float(np.mean(_cosine_rows(logits, ref)))
        metrics["logits_max_abs_diff"] = float(np.max(np.abs(logits - ref)))
        for metric, target in targets.items():
            if not metrics[metric] >= target:
                problems.append(
                    f"{metric} {metrics[metric]:.4f} below the {self._precision} target {target}"
                )
        summary = ", ".join(f"{m} {metrics[m]:.4f} (≥{t})" for m, t in targets.items())
        kind = "accuracy" if "target_top1_accuracy" in metrics else "agreement"
        return QualityResult(
            passed=not problems,
            kind=kind,
            metrics=metrics,
            detail="; ".join(problems)
            if problems
            else f"{self._precision} vs FP32 reference: {summary}; {note}",
        )

"""The slm suites: decoder-only text generation, 128 prompt tokens in, 128 tokens out, greedy.

Work per request: one of :data:`PROMPTS` tokenized with the model's own tokenizer and brought
to exactly ``prompt_tokens`` tokens by repeating the prompt text (joined by a space) and
cutting the token list, then ``output_tokens`` tokens generated greedily with the
end-of-sequence token masked (a fixed amount of work whatever the model). Prompts are plain
text continuations, not chat turns: chat templates differ between models and would change
the prompt length.

``slm`` 2.0 runs a real model: SmolLM2-135M-Instruct as the GGUF Q4_1 file pinned in the
registry (:mod:`wattbench.suites.models.gguf_llm`). Every runtime runs the same weights:
llama.cpp the file itself (``gguf``), transformers the weights dequantised to fp32
(``hf-dir``, the reference), ONNX Runtime GenAI that folder converted by its builder
(``onnx-genai-dir``, fp32 or int8). Larger models have their own suites
(``slm-smollm2-360m``, ...), and ``slm-tiny`` keeps the tiny random Llama for smoke tests.

Quality (2.0): after the usual agreement of the first ``quality_tokens`` greedy tokens with
the reference (reported, not judged: near-tied logits legitimately flip between runtimes),
the session under test answers the fixed question set ``data/slm_questions_v1.txt`` (chat
template, greedy, :data:`QA_MAX_TOKENS` tokens, normalised match) and scores the perplexity
of a public-domain passage (``data/slm_perplexity_pride_and_prejudice.txt``). The reference
— transformers at fp32 on the CPU on the dequantised weights — does the same (cached per
model and library versions); a run whose answer score falls, or whose perplexity rises,
beyond :attr:`SlmSuite.quality_targets` for its precision is invalid.

``slm-tiny`` (random weights) judges only the token agreement, as ``slm`` 1.0 did.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from wattbench.core.adapter import ModelArtifact, Precision, Provenance, TensorSpec
from wattbench.core.cache import ModelCache, sha256_file
from wattbench.core.errors import ConfigError, ModelError, UnavailableError
from wattbench.core.generative import GenerativeSession
from wattbench.core.suite import InputSet, ModelRecipe, QualityResult, Suite, SuiteOptions

#: The fixed prompts: varied topics and punctuation, plain English.
PROMPTS: tuple[str, ...] = (
    "The history of the bicycle begins in the early nineteenth century, when inventors in "
    "Germany and France built wooden machines that riders pushed along with their feet.",
    "To bake a simple loaf of bread you need flour, water, salt and yeast. Mix them, knead "
    "the dough for ten minutes, let it rise for an hour and bake it until golden.",
    "Small language models run on phones, laptops and single-board computers. Their energy "
    "per token decides how long a battery lasts and how warm the device becomes.",
    "The river leaves the mountains through a narrow gorge, widens across the plain and "
    "finally reaches the sea in a delta of marshes, sandbanks and fishing villages.",
    "Dear team, the quarterly review is moved to Thursday at 10:00. Please send your slides "
    "by Wednesday noon and bring the figures for sales, costs and open support tickets.",
    "In chess, the opening phase is about developing pieces, controlling the centre and "
    "keeping the king safe; many beginners move the queen too early and lose time.",
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
    "    return a\n\n# The function above returns the n-th Fibonacci number because",
    "Photosynthesis converts light energy into chemical energy: chlorophyll absorbs light, "
    "water is split, oxygen is released and carbon dioxide is fixed into sugars.",
)

#: The tiny random model's name (``slm-tiny``).
MODEL_NAME = "tiny-llama-h64-l2"

#: ``ModelArtifact.format`` of the layouts.
HF_DIR = "hf-dir"
GENAI_DIR = "onnx-genai-dir"
OV_DIR = "openvino-genai-dir"
GGUF = "gguf"

DATA_DIR = Path(__file__).resolve().with_name("data")
#: The versioned question set (a new set is a new file and a new suite version).
QUESTIONS_FILE = DATA_DIR / "slm_questions_v1.txt"
QUESTION_SET = "v1"
#: The perplexity text: the opening of Pride and Prejudice (Jane Austen, 1813; public domain).
PASSAGE_FILE = DATA_DIR / "slm_perplexity_pride_and_prejudice.txt"
#: Tokens generated per question (greedy); the reply is cut at a special token or line break.
QA_MAX_TOKENS = 16


def _tokenizers() -> Any:
    try:
        return importlib.import_module("tokenizers")
    except ImportError as exc:
        raise UnavailableError(
            "the slm suite tokenizes with `tokenizers`: pip install 'wattbench[nlp]'"
        ) from exc


# -- the question set ------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...]


def load_questions(path: Path = QUESTIONS_FILE) -> list[Question]:
    """The question set: ``id TAB question TAB answer|answer...`` lines, ``#`` comments."""
    out: list[Question] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise ModelError(f"{path}:{n}: expected 'id<TAB>question<TAB>answers'")
        answers = tuple(a.strip() for a in parts[2].split("|") if a.strip())
        out.append(Question(parts[0].strip(), parts[1].strip(), answers))
    return out


def load_passage(path: Path = PASSAGE_FILE) -> str:
    """The perplexity text (leading ``#`` lines are provenance, not text)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\n".join(lines).strip() + "\n"


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise(text: str) -> str:
    """Lower case, punctuation → spaces (``-`` too), articles dropped, spaces collapsed."""
    t = re.sub(r"[^\w\s]", " ", text.lower().replace("_", " "))
    return " ".join(_ARTICLES.sub(" ", t).split())


def score_reply(reply: str, answers: Sequence[str]) -> tuple[bool, bool]:
    """``(answered, exact)``: an accepted answer appears in the normalised reply as a
    whole-word sequence / the normalised reply equals one."""
    r = normalise(reply)
    padded = f" {r} "
    norm = [normalise(a) for a in answers]
    return any(a and f" {a} " in padded for a in norm), any(a == r for a in norm)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


class SlmSuite(Suite):
    """Greedy text generation with a pretrained small language model (default SmolLM2-135M)."""

    name: ClassVar[str] = "slm"
    # Bump when the prompts, lengths, decoding rule, model, question set or checks change.
    version: ClassVar[str] = "2.0"
    # llama.cpp is the edge runtime; ONNX Runtime GenAI the light one; transformers the reference
    default_adapters: ClassVar[tuple[str, ...]] = ("llama-cpp", "onnxruntime-genai", "transformers")
    #: the generative adapter (entry-point name) whose fp32 CPU output is the reference
    reference_adapter: ClassVar[str] = "transformers"
    task: ClassVar[str] = "text-generation"
    #: key of :data:`~wattbench.suites.models.gguf_llm.SLM_MODELS`; None: the tiny random Llama
    MODEL: ClassVar[str | None] = "smollm2-135m"

    #: tokens per prompt (prefill length)
    PROMPT_TOKENS: ClassVar[int] = 128
    #: tokens generated per prompt, the first included (decode length + 1)
    OUTPUT_TOKENS: ClassVar[int] = 128
    #: leading greedy tokens compared with the reference
    QUALITY_TOKENS: ClassVar[int] = 16
    #: one prompt at a time: generation's own phases replace the MLPerf scenarios
    scenarios: ClassVar[tuple[str, ...]] = ("single-stream",)
    #: Tolerance against the fp32 reference by the precision the run states: the question
    #: score may drop by at most ``qa_score_drop`` (a fraction of the questions) and the
    #: perplexity rise by at most the factor ``perplexity_ratio``. int4 covers the 4-bit
    #: variants (GGUF Q4_1/Q4_K, NNCF INT4), int8 the 5- to 8-bit ones (GGUF Q8_0, GenAI and
    #: NNCF int8): both are held to the same bound.
    quality_targets: ClassVar[Mapping[str, Any]] = {
        "fp32": {"qa_score_drop": 0.04, "perplexity_ratio": 1.01},
        "fp16": {"qa_score_drop": 0.06, "perplexity_ratio": 1.03},
        "int8": {"qa_score_drop": 0.10, "perplexity_ratio": 1.10},
        "int4": {"qa_score_drop": 0.10, "perplexity_ratio": 1.10},
    }

    #: the tiny random model's check (``--weights random``): share of prompts whose first
    #: ``quality_tokens`` greedy tokens all equal the reference's, by precision
    TINY_TARGETS: ClassVar[Mapping[str, float]] = {"fp32": 1.0, "fp16": 0.75, "int8": 0.5}

    def __init__(
        self,
        options: SuiteOptions | None = None,
        *,
        prompt_tokens: int | None = None,
        output_tokens: int | None = None,
        quality_tokens: int | None = None,
        questions: int | None = None,
        cache: ModelCache | None = None,
    ) -> None:
        """``prompt_tokens``/``output_tokens``/``quality_tokens`` override the standard
        lengths and ``questions`` keeps only the first N questions (tests, exploration);
        such runs are stored under a suffixed suite version (see :attr:`run_version`) and
        never ranked with the standard ones. ``cache`` is where derived folders (the
        tokenizer of a GGUF file) are kept when no build passed one (default: the user's).
        """
        super().__init__(options)
        self.prompt_tokens = prompt_tokens or self.PROMPT_TOKENS
        self.output_tokens = output_tokens or self.OUTPUT_TOKENS
        self.quality_tokens = min(quality_tokens or self.QUALITY_TOKENS, self.output_tokens)
        if min(self.prompt_tokens, self.output_tokens, self.quality_tokens) < 1:
            raise ConfigError("slm: token counts must be at least 1")
        all_questions = [] if self.tiny else load_questions()
        if questions is not None and not 1 <= questions <= len(all_questions):
            raise ConfigError(f"slm: questions must be 1..{len(all_questions)}")
        self.questions = all_questions[:questions] if questions else all_questions
        self._cache = cache
        self._precision: Precision = "fp32"
        self._bound: ModelArtifact | None = None
        #: the reference's task metrics, set by reference_tokens for assess_session
        self._reference_task: dict[str, Any] | None = None
        self._reference_note = ""

    # -- identity ------------------------------------------------------------------------
    @property
    def tiny(self) -> bool:
        """True for the tiny random-weight Llama: ``--weights random`` (or ``slm-tiny``)."""
        return self.MODEL is None or self.options.weights == "random"

    @property
    def model(self) -> Any:
        """The pinned :class:`~wattbench.suites.models.gguf_llm.SlmModel` (None: tiny)."""
        if self.tiny or self.MODEL is None:
            return None
        from wattbench.suites.models.gguf_llm import SLM_MODELS

        return SLM_MODELS[self.MODEL]

    def _entry(self) -> Any:
        from wattbench.suites.models import registry

        return registry.entry(self.model.entry)

    def _pinned_weights(self) -> str:
        if self.tiny:
            return f"random(seed={self.options.seed})"
        return f"pretrained(sha256={self._entry().sha256[:12]})"

    def _is_pinned(self, artifact: ModelArtifact) -> bool:
        return artifact.weights == self._pinned_weights()

    def bind(self, artifact: ModelArtifact) -> None:
        """Remember the artifact that runs: its precision picks the tolerance."""
        self._precision = artifact.precision
        self._bound = artifact

    @property
    def run_version(self) -> str:
        """The version stored with a run: ``2.0``, or suffixed for non-standard work —
        ``+p16o8`` (lengths), ``+q8`` (first 8 questions), ``+m<sha>`` (a model that is
        not the suite's own, e.g. a user's GGUF file)."""
        v = self.version
        if (self.prompt_tokens, self.output_tokens) != (self.PROMPT_TOKENS, self.OUTPUT_TOKENS):
            v += f"+p{self.prompt_tokens}o{self.output_tokens}"
        if not self.tiny and len(self.questions) != len(load_questions()):
            v += f"+q{len(self.questions)}"
        if not self.tiny and self._bound is not None and not self._is_pinned(self._bound):
            v += f"+m{self._bound.sha256[:8]}"
        return v

    def _cache_for(self, cache: ModelCache | None = None) -> ModelCache:
        if cache is not None:
            self._cache = cache
        if self._cache is None:
            self._cache = ModelCache()
        return self._cache

    # -- models --------------------------------------------------------------------------
    def recipes(self) -> list[ModelRecipe]:
        if self.tiny:
            return [
                ModelRecipe(
                    name=MODEL_NAME,
                    formats=[HF_DIR, GENAI_DIR],
                    weights=f"random(seed={self.options.seed})",
                )
            ]
        return [
            ModelRecipe(
                name=self.model.entry,
                formats=[GGUF, HF_DIR, GENAI_DIR, OV_DIR],
                weights=self._pinned_weights(),
            )
        ]

    def _key(self, fmt: str, precision: str) -> str:
        return f"slm-{MODEL_NAME}-{fmt}-{precision}-random-seed{self.options.seed}-v1.0"

    def build_model(
        self, fmt: str, cache: ModelCache, precision: Precision = "fp32"
    ) -> ModelArtifact:
        """The suite's model in ``fmt``: the pinned GGUF file, or a folder derived from it
        (cached as a deterministic tar, unpacked); the tiny random Llama for ``slm-tiny``."""
        self._cache_for(cache)
        if self.tiny:
            return self._build_tiny(fmt, cache, precision)
        from wattbench.suites.models import gguf_llm

        e = self._entry()
        weights = self._pinned_weights()
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
                provenance=self._provenance(e, "run as the GGUF file itself"),
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
                provenance=self._provenance(
                    e, f"dequantised to fp32 by transformers {_version('transformers')} + gguf"
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
                provenance=self._provenance(
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
                provenance=self._provenance(
                    e,
                    f"dequantised to fp32 by transformers {_version('transformers')}, exported "
                    f"to a {how} (openvino {_version('openvino')})",
                ),
            )
        raise ConfigError(
            f"{self.name} cannot build a {fmt} model: it builds {GGUF}, {HF_DIR}, "
            f"{GENAI_DIR} and {OV_DIR}; pass one with --model"
        )

    def _provenance(self, e: Any, how: str) -> Provenance:
        from wattbench.suites.models.registry import PYPI_SOURCES

        m = self.model
        wheel = PYPI_SOURCES.get(e.name)
        return Provenance(
            kind="pretrained",
            source=f"{m.title}, from {m.source}" if m is not None else e.name,
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

    def _build_tiny(self, fmt: str, cache: ModelCache, precision: Precision) -> ModelArtifact:
        from wattbench.suites.models import tiny_llm

        if precision != "fp32":
            raise ConfigError(
                f"slm builds fp32 models only: convert a {precision} model yourself "
                f"(e.g. onnxruntime_genai.models.builder -p int4) and pass it with --model"
            )
        seed = self.options.seed
        if fmt == HF_DIR:
            path, sha = tiny_llm.cached_dir(
                cache,
                self._key(fmt, precision),
                lambda out: tiny_llm.build_hf_dir(out, seed, PROMPTS),
            )
        elif fmt == GENAI_DIR:
            hf = self._build_tiny(HF_DIR, cache, precision)
            path, sha = tiny_llm.cached_dir(
                cache,
                self._key(fmt, precision),
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

    def user_model(self, path: Path) -> ModelArtifact:
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
            return self._gguf_artifact(path)
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

    def _gguf_artifact(self, path: Path) -> ModelArtifact:
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

    # -- inputs --------------------------------------------------------------------------
    def load_inputs(self) -> InputSet:
        if self.options.data_dir is not None:
            raise ConfigError(f"the {self.name} suite has fixed prompts: drop --data-dir")
        return InputSet(
            source="shipped",
            description=(
                f"slm prompts(n={len(PROMPTS)}, {self.prompt_tokens} tokens in, "
                f"{self.output_tokens} out, greedy)"
                + (
                    f"; questions {QUESTION_SET} (n={len(self.questions)}); perplexity text "
                    f"{PASSAGE_FILE.name}"
                    if not self.tiny
                    else ""
                )
            ),
            samples=list(PROMPTS),
            names=[f"prompt-{i}" for i in range(len(PROMPTS))],
        )

    def tokenizer_dir(self, artifact: ModelArtifact) -> Path:
        """The folder holding the model's ``tokenizer.json`` (and chat template).

        A GGUF file's is converted from its own vocabulary (cached); the suite's derived
        folders carry the same files.
        """
        if artifact.format == GGUF:
            from wattbench.suites.models import gguf_llm

            return gguf_llm.tokenizer_dir(self._cache_for(), Path(artifact.path), artifact.sha256)
        return Path(artifact.path)

    def tokenizer(self, artifact: ModelArtifact) -> Any:
        """The model's ``tokenizers.Tokenizer``."""
        tk = _tokenizers()
        file = self.tokenizer_dir(artifact) / "tokenizer.json"
        if not file.is_file():
            raise ModelError(
                f"{artifact.path} has no tokenizer.json: copy it from the original model folder"
            )
        try:
            return tk.Tokenizer.from_file(str(file))
        except Exception as exc:  # tokenizers raises a bare Exception for a bad file
            raise ModelError(f"cannot read {file}: {exc}; copy it afresh") from exc

    def encode(self, tokenizer: Any, text: str) -> np.ndarray:
        """``text`` as exactly ``prompt_tokens`` ids: repeated (space-joined), then cut."""
        ids: list[int] = list(tokenizer.encode(text).ids)
        if not ids:
            raise ModelError("the tokenizer turned a prompt into no tokens: check tokenizer.json")
        reps = 1
        while len(ids) < self.prompt_tokens:
            reps *= 2
            ids = list(tokenizer.encode(" ".join([text] * reps)).ids)
        return np.asarray(ids[: self.prompt_tokens], dtype=np.int64)

    def encode_prompts(self, artifact: ModelArtifact, inputs: InputSet) -> list[np.ndarray]:
        """Every prompt of ``inputs`` as ``prompt_tokens`` ids of the model's tokenizer."""
        tok = self.tokenizer(artifact)
        return [self.encode(tok, str(s)) for s in inputs.samples]

    def preprocess(self, sample: Any, spec: TensorSpec) -> np.ndarray:
        raise ConfigError(
            "the slm suites run on generative adapters (llama-cpp, transformers, "
            "onnxruntime-genai), not on tensor-in/tensor-out adapters"
        )

    # -- task texts ----------------------------------------------------------------------
    def chat_prompt(self, folder: Path, question: str) -> str:
        """``question`` as one user turn in the model's chat template, assistant to answer."""
        template, specials = _chat_template(folder)
        if template is None:
            raise ModelError(
                f"{folder} has no chat template (chat_template.jinja or tokenizer_config.json): "
                f"the slm question set needs a chat model"
            )
        jinja2 = importlib.import_module("jinja2")
        sandbox = importlib.import_module("jinja2.sandbox")

        def raise_exception(message: str) -> None:
            raise ModelError(f"the chat template refused the question: {message}")

        env = sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        try:
            return str(
                env.from_string(template).render(
                    messages=[{"role": "user", "content": question}],
                    add_generation_prompt=True,
                    **specials,
                )
            )
        except jinja2.TemplateError as exc:
            raise ModelError(f"cannot render the chat template of {folder}: {exc}") from exc

    def task_quality(self, session: GenerativeSession, artifact: ModelArtifact) -> dict[str, Any]:
        """The question-set score and the passage perplexity of ``session`` (greedy).

        ``artifact`` gives the tokenizer and chat template. Perplexity needs the session's
        optional ``token_logprobs(ids)``; without it it is left out.
        """
        folder = self.tokenizer_dir(artifact)
        tok = self.tokenizer(artifact)
        special = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
        answered = exact = 0
        replies: dict[str, str] = {}
        for q in self.questions:
            ids = tok.encode(self.chat_prompt(folder, q.text), add_special_tokens=False).ids
            out = session.generate(np.asarray(ids, dtype=np.int64), QA_MAX_TOKENS).tolist()
            cut = next((k for k, t in enumerate(out) if t in special), len(out))
            reply = tok.decode(out[:cut], skip_special_tokens=True).strip().split("\n")[0]
            ok, ex = score_reply(reply, q.answers)
            answered += ok
            exact += ex
            replies[q.id] = reply
        n = len(self.questions)
        task: dict[str, Any] = {
            "qa_score": answered / n,
            "qa_exact": exact / n,
            "qa_correct": answered,
            "qa_questions": n,
            "replies": replies,
        }
        scorer = getattr(session, "token_logprobs", None)
        if callable(scorer):
            ids = np.asarray(tok.encode(load_passage(), add_special_tokens=False).ids, np.int64)
            lp = np.asarray(scorer(ids), dtype=np.float64)
            task["perplexity"] = float(np.exp(-lp.mean()))
            task["perplexity_tokens"] = int(lp.size)
        return task

    # -- quality -------------------------------------------------------------------------
    def reference_artifact(
        self, artifact: ModelArtifact, cache: ModelCache
    ) -> ModelArtifact | None:
        """The Hugging Face folder whose fp32 transformers output is the reference: the
        tiny model's, the dequantised weights of a GGUF file (the suite's or a user's), or a
        user's own Hugging Face folder. A user's ``onnx-genai-dir`` has none."""
        if artifact.weights.startswith("random("):
            return self._build_tiny(HF_DIR, cache, "fp32")
        if not self.tiny and self._is_pinned(artifact):
            return self.build_model(HF_DIR, cache, "fp32")
        if artifact.format == GGUF:
            from wattbench.suites.models import gguf_llm

            path, sha = gguf_llm.hf_dir(cache, Path(artifact.path), artifact.sha256)
            return artifact.model_copy(
                update={"path": path, "sha256": sha, "format": HF_DIR, "precision": "fp32"}
            )
        if artifact.format == HF_DIR:
            return artifact.model_copy(update={"precision": "fp32"})
        return None

    def reference_tokens(
        self,
        artifact: ModelArtifact,
        prompts: Sequence[np.ndarray],
        cache: ModelCache,
        open_reference: Callable[[ModelArtifact], GenerativeSession],
    ) -> list[np.ndarray] | None:
        """Greedy ``quality_tokens`` of the reference (``reference_adapter`` at fp32 on CPU),
        per prompt; None if no reference model exists for ``artifact``.

        For a real model the reference also answers the question set and scores the
        passage (kept for :meth:`assess_session`); everything is cached per reference model,
        texts and library versions. ``open_reference`` loads a session of
        :attr:`reference_adapter`: the runner resolves it through the plug-in registry, so
        the suite never imports a runtime adapter itself.
        """
        self._cache_for(cache)
        self._reference_task = None
        try:
            ref = self.reference_artifact(artifact, cache)
        except (ModelError, UnavailableError) as exc:
            self._reference_note = f"no reference model: {exc}"
            return None
        if ref is None:
            self._reference_note = (
                f"no reference model for a user's {artifact.format}; pass the Hugging Face "
                f"folder or the GGUF file for one"
            )
            return None
        real = not self.tiny and not ref.weights.startswith("random(")
        key = self._reference_key(ref, prompts) if real else None
        cached = _load_json(cache, key) if key else None
        if cached is not None:
            self._reference_task = cached["task"]
            return [np.asarray(t, dtype=np.int64) for t in cached["tokens"]]
        session = open_reference(ref)
        try:
            tokens = [session.generate(p, self.quality_tokens) for p in prompts]
            if real:
                self._reference_task = self.task_quality(session, ref)
        finally:
            session.close()
        if key is not None:
            _store_json(
                cache,
                key,
                {"tokens": [t.tolist() for t in tokens], "task": self._reference_task},
            )
        return tokens

    def _reference_key(self, ref: ModelArtifact, prompts: Sequence[np.ndarray]) -> str:
        texts = hashlib.sha256()
        for p in prompts:
            texts.update(np.asarray(p, dtype=np.int64).tobytes())
        texts.update(QUESTIONS_FILE.read_bytes())
        texts.update(PASSAGE_FILE.read_bytes())
        versions = "|".join(_version(d) for d in ("transformers", "torch", "tokenizers"))
        d = _digest(
            ref.sha256,
            texts.hexdigest(),
            f"{self.quality_tokens}/{len(self.questions)}/{QA_MAX_TOKENS}",
            versions,
        )
        return f"slm-reference-{self.version}-{d}"

    def check_quality(
        self,
        outputs: Sequence[np.ndarray],
        inputs: InputSet,
        reference: Sequence[np.ndarray] | None = None,
        *,
        precision: Precision | None = None,
    ) -> QualityResult:
        """Greedy-token agreement with the reference over the first ``quality_tokens``.

        ``slm-tiny`` passes when the share of prompts whose leading tokens all agree reaches
        :attr:`quality_targets` for ``precision``. For a real model the agreement is reported
        only (the verdict is :meth:`assess_session`'s). Without a reference, checks only that
        the right number of tokens came out.
        """
        n = self.quality_tokens
        toks = [np.asarray(o, dtype=np.int64).reshape(-1)[:n] for o in outputs]
        problems = [
            f"{inputs.names[i]} gave {t.size} tokens, expected {n}"
            for i, t in enumerate(toks)
            if t.size != n
        ]
        if reference is None:
            note = self._reference_note or (
                f"no reference model for a user's {GENAI_DIR}; pass the Hugging Face folder for one"
            )
            return QualityResult(
                passed=not problems,
                kind="sanity",
                metrics={"prompts": float(len(toks))},
                detail="; ".join(problems)
                or f"{n} tokens per prompt generated (agreement not assessed: {note})",
            )
        refs = [np.asarray(r, dtype=np.int64).reshape(-1)[:n] for r in reference]
        prefix = []
        for t, r in zip(toks, refs, strict=True):
            same = t[: r.size] == r[: t.size]
            prefix.append(int(np.argmin(same)) if not same.all() else int(same.size))
        agree = sum(p == n for p in prefix) / len(prefix)
        precision = precision or self._precision
        metrics = {
            "prompt_agreement": agree,
            "mean_matching_prefix": float(np.mean(prefix)),
            "min_matching_prefix": float(min(prefix)),
            "tokens_compared": float(n),
        }
        if not self.tiny:  # reported; the task metrics decide
            return QualityResult(
                passed=not problems,
                kind="agreement",
                metrics=metrics,
                detail="; ".join(problems)
                or f"{agree * 100:.0f}% of {len(prefix)} prompts match the reference's first "
                f"{n} greedy tokens (reported, not judged)",
            )
        need = float(self.TINY_TARGETS.get(precision, 1.0))
        if agree < need:
            worst = int(np.argmin(prefix))
            problems.append(
                f"{agree * 100:.0f}% of prompts match the reference's first {n} greedy tokens "
                f"(need {need * 100:.0f}% at {precision}); {inputs.names[worst]} diverges at "
                f"token {prefix[worst]}"
            )
        return QualityResult(
            passed=not problems,
            kind="agreement",
            metrics=metrics,
            detail="; ".join(problems)
            or f"{agree * 100:.0f}% of {len(prefix)} prompts match the transformers fp32 "
            f"reference's first {n} greedy tokens",
        )

    def assess_session(
        self,
        session: GenerativeSession,
        artifact: ModelArtifact,
        quality: QualityResult,
        *,
        precision: Precision | None = None,
    ) -> QualityResult:
        """The run's verdict for a real model: question score and perplexity of ``session``
        against the reference's (from :meth:`reference_tokens`), within
        :attr:`quality_targets` for ``precision``. The GenerationRunner calls it after
        :meth:`check_quality`, outside every energy window; ``slm-tiny`` keeps ``quality``."""
        if self.tiny:
            return quality
        precision = precision or self._precision
        ref = self._reference_task
        reuse = (
            ref is not None
            and precision == "fp32"
            and self._bound is not None
            and self._bound.format == HF_DIR
            and session.describe().adapter == self.reference_adapter
            and session.describe().device == "cpu"
        )
        task = dict(ref) if reuse and ref is not None else self.task_quality(session, artifact)
        return self.judge(quality, task, ref, precision)

    def judge(
        self,
        quality: QualityResult,
        task: Mapping[str, Any],
        reference: Mapping[str, Any] | None,
        precision: Precision,
    ) -> QualityResult:
        """Merge the task metrics into ``quality`` and apply the tolerance for ``precision``."""
        metrics = dict(quality.metrics)
        metrics.update(
            {
                "qa_score": float(task["qa_score"]),
                "qa_exact": float(task["qa_exact"]),
                "qa_questions": float(task["qa_questions"]),
            }
        )
        if "perplexity" in task:
            metrics["perplexity"] = float(task["perplexity"])
        problems = [] if quality.passed else [quality.detail]
        summary = f"questions {task['qa_correct']}/{task['qa_questions']} answered" + (
            f", perplexity {task['perplexity']:.3f}" if "perplexity" in task else ""
        )
        if reference is None:
            notes = f"tolerance not assessed: {self._reference_note or 'no reference'}"
        else:
            tol = self.quality_targets.get(precision, self.quality_targets["fp32"])
            drop = float(reference["qa_score"]) - float(task["qa_score"])
            metrics["reference_qa_score"] = float(reference["qa_score"])
            metrics["qa_score_drop"] = drop
            if drop > tol["qa_score_drop"] + 1e-9:
                problems.append(
                    f"question score {task['qa_score']:.3f} is {drop:.3f} below the fp32 "
                    f"reference's {reference['qa_score']:.3f} (at most {tol['qa_score_drop']} at "
                    f"{precision})"
                )
            if "perplexity" in task and "perplexity" in reference:
                ratio = float(task["perplexity"]) / float(reference["perplexity"])
                metrics["reference_perplexity"] = float(reference["perplexity"])
                metrics["perplexity_ratio"] = ratio
                if ratio > tol["perplexity_ratio"]:
                    problems.append(
                        f"perplexity {task['perplexity']:.3f} is {ratio:.3f}x the fp32 reference's "
                        f"{reference['perplexity']:.3f} (at most {tol['perplexity_ratio']}x at "
                        f"{precision})"
                    )
            elif "perplexity" not in task:
                problems.append(
                    "this runtime cannot score the perplexity text (no token_logprobs): the "
                    "tolerance cannot be checked"
                )
            notes = (
                f"reference (transformers fp32, dequantised weights): "
                f"{reference['qa_correct']}/{reference['qa_questions']} answered"
                + (
                    f", perplexity {reference['perplexity']:.3f}"
                    if "perplexity" in reference
                    else ""
                )
            )
        detail = "; ".join([*problems, summary, notes] if problems else [summary, notes])
        return QualityResult(passed=not problems, kind="accuracy", metrics=metrics, detail=detail)


class SlmTinySuite(SlmSuite):
    """``slm`` with ``--weights random``: the tiny random-weight Llama (smoke tests)."""

    MODEL: ClassVar[str | None] = None
    default_adapters: ClassVar[tuple[str, ...]] = ("onnxruntime-genai", "transformers")


class SlmSmolLM2_360MSuite(SlmSuite):
    """The slm workload on SmolLM2-360M-Instruct (GGUF Q4_K_S)."""

    name: ClassVar[str] = "slm-smollm2-360m"
    MODEL: ClassVar[str | None] = "smollm2-360m"


class SlmQwen25_05BSuite(SlmSuite):
    """The slm workload on Qwen2.5-0.5B-Instruct (GGUF Q4_K_S)."""

    name: ClassVar[str] = "slm-qwen2.5-0.5b"
    MODEL: ClassVar[str | None] = "qwen2.5-0.5b"


class SlmLlama32_1BSuite(SlmSuite):
    """The slm workload on Llama-3.2-1B-Instruct (GGUF Q4_K_M)."""

    name: ClassVar[str] = "slm-llama3.2-1b"
    MODEL: ClassVar[str | None] = "llama3.2-1b"


class SlmSmolLM2_1_7BSuite(SlmSuite):
    """The slm workload on SmolLM2-1.7B-Instruct (GGUF Q4_K_M)."""

    name: ClassVar[str] = "slm-smollm2-1.7b"
    MODEL: ClassVar[str | None] = "smollm2-1.7b"


# -- helpers -----------------------------------------------------------------------------------


def _is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"GGUF"
    except OSError:
        return False


def _chat_template(folder: Path) -> tuple[str | None, dict[str, str]]:
    """The folder's chat template and the special-token strings it may use."""
    specials: dict[str, str] = {}
    template: str | None = None
    cfg_file = folder / "tokenizer_config.json"
    if cfg_file.is_file():
        try:
            cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        except ValueError:
            cfg = {}
        for k in ("bos_token", "eos_token", "pad_token", "unk_token"):
            v = cfg.get(k)
            if isinstance(v, dict):
                v = v.get("content")
            if isinstance(v, str):
                specials[k] = v
        if isinstance(cfg.get("chat_template"), str):
            template = cfg["chat_template"]
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    return template, specials


def _load_json(cache: ModelCache, key: str) -> dict[str, Any] | None:
    sha = cache.recipe(key)
    path = cache.lookup(sha, ".json") if sha else None
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _store_json(cache: ModelCache, key: str, data: Mapping[str, Any]) -> None:
    _, sha = cache.put_bytes(json.dumps(data, sort_keys=True).encode(), ".json")
    cache.remember_recipe(key, sha)

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

import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from wattbench.core.adapter import ModelArtifact, Precision, TensorSpec
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ConfigError, ModelError, UnavailableError
from wattbench.core.generative import GenerativeSession
from wattbench.core.suite import InputSet, ModelRecipe, QualityResult, Suite, SuiteOptions
from wattbench.suites import slm_models, slm_quality
from wattbench.suites.slm_models import GENAI_DIR, GGUF, HF_DIR, MODEL_NAME, OV_DIR
from wattbench.suites.slm_quality import (
    DATA_DIR,
    PASSAGE_FILE,
    QA_MAX_TOKENS,
    QUESTION_SET,
    QUESTIONS_FILE,
    Question,
    load_passage,
    load_questions,
    normalise,
    score_reply,
)

# The models and the answer-quality machinery live in slm_models / slm_quality; their
# public names stay importable from here, where tests, docs and entry points name them.
__all__ = [
    "DATA_DIR",
    "GENAI_DIR",
    "GGUF",
    "HF_DIR",
    "MODEL_NAME",
    "OV_DIR",
    "PASSAGE_FILE",
    "PROMPTS",
    "QA_MAX_TOKENS",
    "QUESTIONS_FILE",
    "QUESTION_SET",
    "Question",
    "SlmLlama32_1BSuite",
    "SlmQwen25_05BSuite",
    "SlmSmolLM2_1_7BSuite",
    "SlmSmolLM2_360MSuite",
    "SlmSuite",
    "SlmTinySuite",
    "load_passage",
    "load_questions",
    "normalise",
    "score_reply",
]


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


def _tokenizers() -> Any:
    try:
        return importlib.import_module("tokenizers")
    except ImportError as exc:
        raise UnavailableError(
            "the slm suite tokenizes with `tokenizers`: pip install 'wattbench[nlp]'"
        ) from exc


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

    def build_model(
        self, fmt: str, cache: ModelCache, precision: Precision = "fp32"
    ) -> ModelArtifact:
        """The suite's model in ``fmt``: the pinned GGUF file, or a folder derived from it
        (cached as a deterministic tar, unpacked); the tiny random Llama for ``slm-tiny``."""
        self._cache_for(cache)
        if self.tiny:
            return self._build_tiny(fmt, cache, precision)
        return slm_models.build_pretrained(
            self.model,
            self._entry(),
            fmt,
            cache,
            precision,
            weights=self._pinned_weights(),
            suite=self.name,
        )

    def _build_tiny(self, fmt: str, cache: ModelCache, precision: Precision) -> ModelArtifact:
        return slm_models.build_tiny(fmt, cache, precision, seed=self.options.seed, texts=PROMPTS)

    def user_model(self, path: Path) -> ModelArtifact:
        """A user's GGUF file, or model *folder* (onnxruntime-genai or Hugging Face).

        A GGUF file whose sha256 is a registry entry is recorded as that pretrained model.
        """
        return slm_models.user_model(path)

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
        return slm_quality.chat_prompt(folder, question)

    def task_quality(self, session: GenerativeSession, artifact: ModelArtifact) -> dict[str, Any]:
        """The question-set score and the passage perplexity of ``session`` (greedy).

        ``artifact`` gives the tokenizer and chat template. Perplexity needs the session's
        optional ``token_logprobs(ids)``; without it it is left out.
        """
        folder = self.tokenizer_dir(artifact)
        tok = self.tokenizer(artifact)
        return slm_quality.task_quality(session, folder, tok, self.questions)

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
        key = None
        if real:
            key = slm_quality.reference_key(
                ref.sha256,
                prompts,
                version=self.version,
                quality_tokens=self.quality_tokens,
                questions=len(self.questions),
            )
        tokens, self._reference_task = slm_quality.reference_results(
            ref,
            prompts,
            cache,
            open_reference,
            tokens=self.quality_tokens,
            key=key,
            task_quality=self.task_quality if real else None,
        )
        return tokens

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
        return slm_quality.check_agreement(
            outputs,
            inputs,
            reference,
            tokens=self.quality_tokens,
            precision=precision or self._precision,
            tiny=self.tiny,
            tiny_targets=self.TINY_TARGETS,
            note=self._reference_note
            or f"no reference model for a user's {GENAI_DIR}; pass the Hugging Face folder for one",
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
        return slm_quality.judge(
            quality,
            task,
            reference,
            precision,
            targets=self.quality_targets,
            note=self._reference_note,
        )


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

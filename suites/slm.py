"""The slm suite: decoder-only text generation, 128 prompt tokens in, 128 tokens out, greedy.

Work per request: one of :data:`PROMPTS` tokenized with the model's own
``tokenizer.json`` and brought to exactly ``prompt_tokens`` tokens by repeating the
prompt text (joined by a space) and cutting the token list, then ``output_tokens``
tokens generated greedily with the end-of-sequence token masked (a fixed amount of
work whatever the model). Prompts are plain text continuations, not chat turns: chat
templates differ between models and would change the prompt length.

Model: a tiny random-weight Llama built offline (:mod:`wattbench.suites.models.tiny_llm`)
as a Hugging Face folder (``hf-dir``, for the transformers reference) or converted by
onnxruntime-genai's builder (``onnx-genai-dir``). Real models are passed as folders with
``--model`` (see docs/suites.md).

Quality: the runtime's first ``quality_tokens`` greedy tokens for every prompt must equal
those of the reference — transformers at fp32 on the Hugging Face folder of the same
model (the suite's own, or a user's ``hf-dir``). A user's ``onnx-genai-dir`` has no
reference beside it, so only a sanity check runs and the result says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from wattbench.core.adapter import ModelArtifact, Precision, TensorSpec
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ConfigError, ModelError
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

MODEL_NAME = "tiny-llama-h64-l2"

#: ``ModelArtifact.format`` of the two folder layouts.
HF_DIR = "hf-dir"
GENAI_DIR = "onnx-genai-dir"


def _tokenizers() -> Any:
    import importlib

    try:
        return importlib.import_module("tokenizers")
    except ImportError as exc:
        from wattbench.core.errors import UnavailableError

        raise UnavailableError(
            "the slm suite tokenizes with `tokenizers`: pip install 'wattbench[nlp]'"
        ) from exc


class SlmSuite(Suite):
    """Greedy text generation with a small decoder-only language model."""

    name: ClassVar[str] = "slm"
    # Bump when the prompts, lengths, decoding rule, model recipe or quality check change.
    version: ClassVar[str] = "1.0"
    # ONNX Runtime GenAI is the light runtime a device installs; transformers the reference
    default_adapters: ClassVar[tuple[str, ...]] = ("onnxruntime-genai", "transformers")
    #: the generative adapter (entry-point name) whose fp32 CPU output is the reference
    reference_adapter: ClassVar[str] = "transformers"
    task: ClassVar[str] = "text-generation"

    #: tokens per prompt (prefill length)
    PROMPT_TOKENS: ClassVar[int] = 128
    #: tokens generated per prompt, the first included (decode length + 1)
    OUTPUT_TOKENS: ClassVar[int] = 128
    #: leading greedy tokens compared with the reference
    QUALITY_TOKENS: ClassVar[int] = 16
    #: one prompt at a time: generation's own phases replace the MLPerf scenarios
    scenarios: ClassVar[tuple[str, ...]] = ("single-stream",)
    #: share of prompts whose first ``quality_tokens`` greedy tokens all equal the reference's
    quality_targets: ClassVar[Mapping[str, Any]] = {
        "fp32": {"prompt_agreement": 1.0},
        "fp16": {"prompt_agreement": 0.75},
        "int8": {"prompt_agreement": 0.5},
    }

    def __init__(
        self,
        options: SuiteOptions | None = None,
        *,
        prompt_tokens: int | None = None,
        output_tokens: int | None = None,
        quality_tokens: int | None = None,
    ) -> None:
        """``prompt_tokens``/``output_tokens``/``quality_tokens`` override the standard
        lengths (tests, exploration); runs with other lengths are stored under a suffixed
        suite version (see :attr:`run_version`) and never ranked with the standard ones.
        """
        super().__init__(options)
        self.prompt_tokens = prompt_tokens or self.PROMPT_TOKENS
        self.output_tokens = output_tokens or self.OUTPUT_TOKENS
        self.quality_tokens = min(quality_tokens or self.QUALITY_TOKENS, self.output_tokens)
        if min(self.prompt_tokens, self.output_tokens, self.quality_tokens) < 1:
            raise ConfigError("slm: token counts must be at least 1")
        self._precision: Precision = "fp32"

    def bind(self, artifact: ModelArtifact) -> None:
        """Remember the precision that runs: it picks the quality target."""
        self._precision = artifact.precision

    @property
    def run_version(self) -> str:
        """The version stored with a run: ``1.0``, or ``1.0+p16o8`` for non-standard lengths."""
        if (self.prompt_tokens, self.output_tokens) == (self.PROMPT_TOKENS, self.OUTPUT_TOKENS):
            return self.version
        return f"{self.version}+p{self.prompt_tokens}o{self.output_tokens}"

    # -- models ------------------------------------------------------------------------
    def recipes(self) -> list[ModelRecipe]:
        return [
            ModelRecipe(
                name=MODEL_NAME,
                formats=[HF_DIR, GENAI_DIR],
                weights=f"random(seed={self.options.seed})",
            )
        ]

    def _key(self, fmt: str, precision: str) -> str:
        return f"slm-{MODEL_NAME}-{fmt}-{precision}-random-seed{self.options.seed}-v{self.version}"

    def build_model(
        self, fmt: str, cache: ModelCache, precision: Precision = "fp32"
    ) -> ModelArtifact:
        """The tiny random Llama as a folder (cached as a deterministic tar, unpacked)."""
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
            hf = self.build_model(HF_DIR, cache, precision)
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
        )

    def user_model(self, path: Path) -> ModelArtifact:
        """A user's model *folder*: onnxruntime-genai (genai_config.json) or HF (config.json)."""
        from wattbench.suites.models.tiny_llm import dir_sha256

        if path.is_file():
            raise ModelError(
                f"the slm suite takes a model folder, not a file: pass the folder holding "
                f"{path.name} with --model"
            )
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
        )

    # -- inputs ------------------------------------------------------------------------
    def load_inputs(self) -> InputSet:
        if self.options.data_dir is not None:
            raise ConfigError("the slm suite has fixed prompts: drop --data-dir")
        return InputSet(
            source="shipped",
            description=(
                f"slm prompts(n={len(PROMPTS)}, {self.prompt_tokens} tokens in, "
                f"{self.output_tokens} out, greedy)"
            ),
            samples=list(PROMPTS),
            names=[f"prompt-{i}" for i in range(len(PROMPTS))],
        )

    def tokenizer(self, artifact: ModelArtifact) -> Any:
        """The model's ``tokenizers.Tokenizer`` (from ``tokenizer.json`` in its folder)."""
        tk = _tokenizers()
        file = Path(artifact.path) / "tokenizer.json"
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
            "the slm suite runs on generative adapters (transformers, onnxruntime-genai), "
            "not on tensor-in/tensor-out adapters"
        )

    # -- quality -----------------------------------------------------------------------
    def reference_artifact(
        self, artifact: ModelArtifact, cache: ModelCache
    ) -> ModelArtifact | None:
        """The Hugging Face folder whose fp32 transformers output is the reference."""
        if artifact.weights.startswith("random("):
            return self.build_model(HF_DIR, cache, "fp32")
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

        ``open_reference`` loads a session of :attr:`reference_adapter` on the reference
        model: the runner resolves the adapter through the plug-in registry, so the suite
        never imports a runtime adapter itself.
        """
        ref = self.reference_artifact(artifact, cache)
        if ref is None:
            return None
        session = open_reference(ref)
        try:
            return [session.generate(p, self.quality_tokens) for p in prompts]
        finally:
            session.close()

    def check_quality(
        self,
        outputs: Sequence[np.ndarray],
        inputs: InputSet,
        reference: Sequence[np.ndarray] | None = None,
        *,
        precision: Precision | None = None,
    ) -> QualityResult:
        """Greedy-token agreement with the reference over the first ``quality_tokens``.

        Passes when the share of prompts whose leading tokens all agree reaches
        :attr:`quality_targets` for ``precision`` (default: the bound artifact's; 100 % at
        fp32). Without a reference,
        checks only that the right number of tokens came out.
        """
        n = self.quality_tokens
        toks = [np.asarray(o, dtype=np.int64).reshape(-1)[:n] for o in outputs]
        problems = [
            f"{inputs.names[i]} gave {t.size} tokens, expected {n}"
            for i, t in enumerate(toks)
            if t.size != n
        ]
        if reference is None:
            return QualityResult(
                passed=not problems,
                kind="sanity",
                metrics={"prompts": float(len(toks))},
                detail="; ".join(problems)
                or f"{n} tokens per prompt generated (agreement not assessed: no reference "
                f"model for a user's {GENAI_DIR}; pass the Hugging Face folder for one)",
            )
        refs = [np.asarray(r, dtype=np.int64).reshape(-1)[:n] for r in reference]
        prefix = []
        for t, r in zip(toks, refs, strict=True):
            same = t[: r.size] == r[: t.size]
            prefix.append(int(np.argmin(same)) if not same.all() else int(same.size))
        agree = sum(p == n for p in prefix) / len(prefix)
        precision = precision or self._precision
        need = float(self.quality_targets.get(precision, {}).get("prompt_agreement", 1.0))
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
            metrics={
                "prompt_agreement": agree,
                "mean_matching_prefix": float(np.mean(prefix)),
                "min_matching_prefix": float(min(prefix)),
                "tokens_compared": float(n),
            },
            detail="; ".join(problems)
            or f"{agree * 100:.0f}% of {len(prefix)} prompts match the transformers fp32 "
            f"reference's first {n} greedy tokens",
        )

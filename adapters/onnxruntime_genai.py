"""ONNX Runtime GenAI: an edge runtime for the slm suite.

Loads a folder written by onnxruntime-genai's model builder (``genai_config.json``,
``model.onnx`` + weights; format ``onnx-genai-dir``).

Timing semantics, and how the two phases are separated with the GenAI API:

* :meth:`OnnxGenAiSession.prefill` (timed as TTFT) creates the ``og.Generator`` (its
  KV-cache buffers are allocated here, sized for prompt + ``max_new_tokens``), calls
  ``append_tokens(prompt)`` — the forward pass over the whole prompt — and then
  ``generate_next_token()`` plus ``get_next_tokens()``, which only *select* the first
  token from the logits ``append_tokens`` already computed.
* :meth:`OnnxGenAiSession.step` (timed per token) is ``generate_next_token()`` — the
  forward pass of the last token against the cache, then the greedy choice — plus
  ``get_next_tokens()``.

So a prefilled generator can be kept aside and decoded later: the decode energy window
holds only decode steps. Greedy search with ``min_length = max_length = prompt +
max_new_tokens`` masks the end-of-sequence token until the end, like the reference.

``threads`` is applied as the decoder's ``intra_op_num_threads`` session option through
``og.Config.overlay``. ``cuda`` uses the CUDA provider when this onnxruntime-genai build
has it (the ``onnxruntime-genai-cuda`` wheel).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from wattbench.adapters.options import check_keys
from wattbench.core.adapter import AdapterDescription, AdapterOptions, ModelArtifact
from wattbench.core.availability import Availability
from wattbench.core.errors import ConfigError, ModelError, UnavailableError
from wattbench.core.generative import (
    GenerationState,
    GenerativeAdapter,
    GenerativeSession,
    as_token_ids,
    first_line,
)

INSTALL_HINT = "pip install 'wattbench[genai]'"


def _import_og() -> ModuleType | None:
    # importlib keeps mypy from analysing (or requiring) the optional runtime.
    try:
        return importlib.import_module("onnxruntime_genai")
    except ImportError:
        return None


def _provider(og: ModuleType, device: str) -> str:
    """The GenAI provider name for ``device`` (``cpu`` means the default CPU provider)."""
    if device == "cpu":
        return "cpu"
    if device in ("cuda", "cuda:0"):
        if not og.is_cuda_available():
            raise UnavailableError(
                "onnxruntime-genai: this build has no CUDA provider: install "
                "onnxruntime-genai-cuda or use --device cpu"
            )
        return "cuda"
    raise ConfigError(f"onnxruntime-genai: unknown device {device!r}: use cpu or cuda")


class _State(GenerationState):
    def __init__(self, generator: Any, last: int) -> None:
        self.generator = generator
        self.last_token = last
        self.generated = 1


class OnnxGenAiSession(GenerativeSession):
    """An ``og.Model`` ready to create generators."""

    def __init__(
        self,
        og: ModuleType,
        model: Any,
        options: AdapterOptions,
        provider: str,
        genai_config: dict[str, Any],
    ) -> None:
        self._og = og
        self._model = model
        self._options = options
        self._provider = provider
        self._config = genai_config

    @property
    def max_context(self) -> int | None:
        n = self._config.get("model", {}).get("context_length")
        return int(n) if n else None

    def prefill(self, prompt_ids: np.ndarray, max_new_tokens: int) -> GenerationState:
        og = self._og
        ids = as_token_ids(prompt_ids).astype(np.int32)
        total = int(ids.size) + max_new_tokens
        params = og.GeneratorParams(self._model)
        params.set_search_options(
            do_sample=False, max_length=total, min_length=total, num_beams=1, batch_size=1
        )
        generator = og.Generator(self._model, params)
        generator.append_tokens(ids)
        generator.generate_next_token()
        return _State(generator, int(generator.get_next_tokens()[0]))

    def step(self, state: GenerationState) -> int:
        assert isinstance(state, _State)
        g = state.generator
        g.generate_next_token()
        state.last_token = int(g.get_next_tokens()[0])
        state.generated += 1
        return state.last_token

    def token_logprobs(self, token_ids: np.ndarray) -> np.ndarray:
        """log p(token[i] | tokens[:i]) for i = 1 … n-1: one ``append_tokens`` over the text
        returns every position's logits (the slm suite's perplexity)."""
        og = self._og
        ids = as_token_ids(token_ids).astype(np.int32)
        params = og.GeneratorParams(self._model)
        params.set_search_options(do_sample=False, max_length=int(ids.size) + 1, batch_size=1)
        generator = og.Generator(self._model, params)
        generator.append_tokens(ids)
        logits = np.asarray(generator.get_output("logits"))
        if logits.ndim != 3 or logits.shape[1] != ids.size:
            raise ModelError(
                f"onnxruntime-genai returned logits of shape {logits.shape} for a {ids.size}-token "
                f"text: this model does not expose every position's logits"
            )
        rows = logits[0, :-1].astype(np.float64)
        top = rows.max(axis=1, keepdims=True)
        logz = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
        return rows[np.arange(ids.size - 1), ids[1:]] - logz

    def describe(self) -> AdapterDescription:
        og = self._og
        return AdapterDescription(
            adapter=OnnxGenAiAdapter.name,
            runtime="onnxruntime-genai",
            runtime_version=str(og.__version__),
            device=self._options.device,
            execution_provider=self._provider,
            precision=self._options.precision,
            options={
                "threads": self._options.threads,
                "model_type": str(self._model.type),
                "device_type": str(self._model.device_type),
                "decoding": "greedy, EOS masked, fixed length",
            },
        )

    def close(self) -> None:
        self._model = None


class OnnxGenAiAdapter(GenerativeAdapter):
    """onnxruntime-genai (``og.Model`` / ``og.Generator``)."""

    name: ClassVar[str] = "onnxruntime-genai"
    formats: ClassVar[tuple[str, ...]] = ("onnx-genai-dir",)

    @classmethod
    def is_available(cls, device: str = "cpu") -> Availability:
        og = _import_og()
        if og is None:
            return Availability.no(f"onnxruntime-genai is not installed: {INSTALL_HINT}")
        try:
            _provider(og, device)
        except (ConfigError, UnavailableError) as exc:
            return Availability.no(str(exc))
        return Availability.yes(f"onnxruntime-genai {og.__version__}")

    @classmethod
    def runtime_version(cls) -> str | None:
        og = _import_og()
        return str(og.__version__) if og is not None else None

    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> OnnxGenAiSession:
        check_keys(self.name, options.extra, {})
        og = _import_og()
        if og is None:
            raise UnavailableError(f"onnxruntime-genai is not installed: {INSTALL_HINT}")
        provider = _provider(og, options.device)
        path = Path(artifact.path)
        cfg_file = path / "genai_config.json"
        if not cfg_file.is_file():
            raise ModelError(
                f"{path} is not an onnxruntime-genai model folder (no genai_config.json): "
                f"convert it with `python -m onnxruntime_genai.models.builder`"
            )
        try:
            genai_config = json.loads(cfg_file.read_text())
        except ValueError as exc:
            raise ModelError(f"{cfg_file} is not valid JSON: {exc}; rebuild the model") from exc
        try:
            config = og.Config(str(path))
            if provider != "cpu":
                config.clear_providers()
                config.append_provider(provider)
            if options.threads is not None:
                overlay = {
                    "model": {
                        "decoder": {"session_options": {"intra_op_num_threads": options.threads}}
                    }
                }
                config.overlay(json.dumps(overlay))
            model = og.Model(config)
        except Exception as exc:  # og raises RuntimeError (and others) for a bad folder
            raise ModelError(
                f"onnxruntime-genai cannot load {path}: {first_line(exc)}; rebuild the folder "
                f"with onnxruntime_genai.models.builder"
            ) from exc
        return OnnxGenAiSession(og, model, options, provider, genai_config)

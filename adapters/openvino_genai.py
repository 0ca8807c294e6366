"""OpenVINO GenAI: an edge runtime for the slm suite (format ``openvino-genai-dir``).

The folder is what ``openvino_genai.LLMPipeline`` loads: a stateful ``openvino_model.xml``
(KV cache held as OpenVINO states, inputs ``input_ids, attention_mask, position_ids,
beam_idx``) with ``openvino_tokenizer.xml``/``openvino_detokenizer.xml`` (built by
:mod:`wattbench.suites.models.openvino_llm`). ``load`` checks the folder with
``LLMPipeline`` itself, then compiles the same IR for the timed loop.

Timing semantics: ``LLMPipeline.generate`` runs prefill and decode in one call, so the
phases cannot be given separate energy windows through it. The session therefore drives the
same compiled stateful IR directly with an OpenVINO infer request, exactly as the pipeline
does for greedy search:

* :meth:`OpenVinoGenAiSession.prefill` (timed as TTFT) resets the states, runs the whole
  prompt once and picks the first token from the last position's logits;
* :meth:`OpenVinoGenAiSession.step` (timed per token) runs one token against the states.

``threads`` is the CPU plugin's ``INFERENCE_NUM_THREADS``. Only ``cpu`` is supported.
"""

from __future__ import annotations

import importlib
import weakref
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from wattbench.adapters.options import check_keys
from wattbench.core.adapter import AdapterDescription, AdapterOptions, ModelArtifact, Precision
from wattbench.core.availability import Availability
from wattbench.core.errors import ConfigError, ModelError, UnavailableError
from wattbench.core.generative import (
    GenerationState,
    GenerativeAdapter,
    GenerativeSession,
    as_token_ids,
    first_line,
)

INSTALL_HINT = "pip install 'wattbench[openvino-genai]'"


def _import(name: str) -> ModuleType | None:
    # importlib keeps mypy from analysing (or requiring) the optional runtime.
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _json(path: Path) -> dict[str, Any]:
    import json

    return dict(json.loads(path.read_text())) if path.is_file() else {}


def _check_device(device: str) -> None:
    if device != "cpu":
        raise ConfigError(f"openvino-genai: device {device!r} is not supported: use --device cpu")


class _State(GenerationState):
    def __init__(self, length: int, last: int, request: Any) -> None:
        self.length = length
        self.last_token = last
        self.generated = 1
        # the infer request whose OpenVINO states hold this prompt's KV cache
        self.request = request


class OpenVinoGenAiSession(GenerativeSession):
    """A compiled stateful OpenVINO LLM; one infer request per live generation.

    OpenVINO keeps a stateful model's KV cache in the infer request, so each prefilled
    prompt gets a request of its own (the harness prepares several KV caches before a decode
    window opens). A request goes back to the pool when its generation state is dropped, so
    a steady run reuses the same few requests instead of creating one per prompt.
    """

    def __init__(
        self,
        ov: Any,
        ogv: Any,
        compiled: Any,
        options: AdapterOptions,
        max_ctx: int | None,
        eos_ids: list[int] | None = None,
    ) -> None:
        self._ov = ov
        self._ogv = ogv
        self._compiled = compiled
        self._free: list[Any] = [compiled.create_infer_request()]
        self._options = options
        self._max_ctx = max_ctx
        # in-range ids, once: the mask is applied to every decoded token
        self._eos = np.asarray(sorted(set(eos_ids or [])), dtype=np.intp)

    @property
    def max_context(self) -> int | None:
        return self._max_ctx

    def _request(self) -> Any:
        if self._compiled is None:
            raise ModelError("openvino-genai: the session is closed")
        request = self._free.pop() if self._free else self._compiled.create_infer_request()
        request.reset_state()
        return request

    @staticmethod
    def _run(request: Any, ids: np.ndarray, start: int) -> np.ndarray:
        n = int(ids.size)
        request.infer(
            {
                "input_ids": ids.reshape(1, n).astype(np.int64),
                "attention_mask": np.ones((1, start + n), dtype=np.int64),
                "position_ids": np.arange(start, start + n, dtype=np.int64).reshape(1, n),
                "beam_idx": np.zeros(1, dtype=np.int32),
            }
        )
        return np.asarray(request.get_tensor("logits").data)

    def _pick(self, logits: np.ndarray) -> int:
        """Greedy next token with EOS masked (fixed-length generation, as the reference)."""
        last = logits[0, -1]
        if self._eos.size:
            # in place: the request's output buffer is rewritten by its next infer
            last[self._eos] = -np.inf
        return int(np.argmax(last))

    def prefill(self, prompt_ids: np.ndarray, max_new_tokens: int) -> GenerationState:
        ids = as_token_ids(prompt_ids)
        request = self._request()
        logits = self._run(request, ids, 0)
        state = _State(int(ids.size), self._pick(logits), request)
        # back to the pool once the harness lets go of this generation
        weakref.finalize(state, self._free.append, request)
        return state

    def step(self, state: GenerationState) -> int:
        assert isinstance(state, _State)
        logits = self._run(
            state.request, np.asarray([state.last_token], dtype=np.int64), state.length
        )
        state.length += 1
        state.last_token = self._pick(logits)
        state.generated += 1
        return state.last_token

    def token_logprobs(self, token_ids: np.ndarray) -> np.ndarray:
        """log p(token[i] | tokens[:i]) for i = 1 … n-1 from one pass over the text."""
        ids = as_token_ids(token_ids)
        request = self._request()
        try:
            rows = self._run(request, ids, 0)[0, :-1].astype(np.float64)
        finally:
            self._free.append(request)
        top = rows.max(axis=1, keepdims=True)
        logz = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
        return rows[np.arange(ids.size - 1), ids[1:]] - logz

    def describe(self) -> AdapterDescription:
        return AdapterDescription(
            adapter=OpenVinoGenAiAdapter.name,
            runtime="openvino-genai",
            runtime_version=str(self._ogv.__version__),
            device=self._options.device,
            execution_provider="CPU",
            precision=self._options.precision,
            options={
                "threads": self._options.threads,
                "openvino": str(self._ov.__version__),
                "decoding": "greedy, EOS masked, fixed length (stateful IR infer request)",
            },
        )

    def close(self) -> None:
        self._free.clear()
        self._compiled = None


class OpenVinoGenAiAdapter(GenerativeAdapter):
    """openvino-genai (``LLMPipeline`` folders, run on the OpenVINO CPU plugin)."""

    name: ClassVar[str] = "openvino-genai"
    formats: ClassVar[tuple[str, ...]] = ("openvino-genai-dir",)
    #: fp32 and NNCF weight compression (CPU; fp16 would be an inference hint, not weights)
    precisions: ClassVar[tuple[Precision, ...]] = ("fp32", "int8", "int4")

    @classmethod
    def is_available(cls, device: str = "cpu") -> Availability:
        ogv = _import("openvino_genai")
        if ogv is None or _import("openvino") is None:
            return Availability.no(f"openvino-genai is not installed: {INSTALL_HINT}")
        try:
            _check_device(device)
        except ConfigError as exc:
            return Availability.no(str(exc))
        return Availability.yes(f"openvino-genai {ogv.__version__}")

    @classmethod
    def runtime_version(cls) -> str | None:
        ogv = _import("openvino_genai")
        return str(ogv.__version__) if ogv is not None else None

    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> OpenVinoGenAiSession:
        check_keys(self.name, options.extra, {})
        ogv = _import("openvino_genai")
        ov = _import("openvino")
        if ogv is None or ov is None:
            raise UnavailableError(f"openvino-genai is not installed: {INSTALL_HINT}")
        _check_device(options.device)
        path = Path(artifact.path)
        if not (path / "openvino_model.xml").is_file():
            raise ModelError(
                f"{path} is not an OpenVINO GenAI folder (no openvino_model.xml): build it "
                f"with the slm suite (--adapter openvino-genai) or optimum-cli export openvino"
            )
        config: dict[str, Any] = {}
        if options.threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(options.threads)
        try:
            ogv.LLMPipeline(str(path), "CPU")  # the folder must be one LLMPipeline accepts
            compiled = ov.Core().compile_model(str(path / "openvino_model.xml"), "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError (and others) for a bad folder
            raise ModelError(
                f"openvino-genai cannot load {path}: {first_line(exc)}; rebuild the folder"
            ) from exc
        cfg = _json(path / "config.json")
        n = cfg.get("max_position_embeddings")
        max_ctx = int(n) if n else None
        # EOS masked as in the other adapters: fixed-length generation, as the reference
        eos = _json(path / "generation_config.json").get("eos_token_id")
        if eos is None:
            eos = cfg.get("eos_token_id")
        eos_ids = [eos] if isinstance(eos, int) else [int(i) for i in eos or []]
        vocab = cfg.get("vocab_size")
        if vocab:
            eos_ids = [i for i in eos_ids if 0 <= i < int(vocab)]
        return OpenVinoGenAiSession(ov, ogv, compiled, options, max_ctx, eos_ids)

"""PyTorch / Hugging Face transformers: the reference runtime of the slm suite.

Loads a Hugging Face model folder (``config.json`` + weights, format ``hf-dir``) with
``AutoModelForCausalLM.from_pretrained(..., local_files_only=True)``: nothing is
downloaded.

Timing semantics:

* :meth:`TransformersSession.prefill` (timed as TTFT) is one forward pass over the
  prompt under ``torch.inference_mode()`` with ``use_cache=True``, computing the logits
  of the last position only (``logits_to_keep=1``, as ``generate`` does), then the
  argmax. Reading the token as a Python int synchronises CUDA, so the clock stops when
  the token exists on the host.
* :meth:`TransformersSession.step` (timed per token) is one forward pass of the last
  token against the state's ``DynamicCache`` (grown in place) and the argmax.
* The end-of-sequence ids are masked before the argmax so generation has a fixed
  length; :meth:`TransformersSession.generate` calls ``model.generate`` with
  ``do_sample=False`` and ``min_new_tokens = max_new_tokens``, which masks them the
  same way (the unit tests check that both paths give the same tokens).

``threads`` calls ``torch.set_num_threads`` (process-global). fp16 runs on CUDA only
(PyTorch's CPU half kernels measure a slow fallback path); int8 is not offered.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
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

INSTALL_HINT = "pip install 'wattbench[transformers]' torch"


def _import(name: str) -> ModuleType | None:
    # importlib keeps mypy from analysing (or requiring) the optional heavy packages.
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _device(torch: ModuleType, device: str) -> str:
    base, sep, index = device.partition(":")
    if base == "cpu" and not sep:
        return "cpu"
    if base != "cuda" or (sep and not index.isdigit()):
        raise ConfigError(f"transformers: unknown device {device!r}: use cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise UnavailableError(
            f"transformers: no CUDA device (torch {torch.__version__}): use --device cpu"
        )
    return device


def _dtype_kw(version: str) -> str:
    # `torch_dtype` became `dtype` in transformers 4.56
    major, minor = (int(x) if x.isdigit() else 0 for x in [*version.split("."), "0"][:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


class _State(GenerationState):
    def __init__(self, cache: Any, token: Any, last: int) -> None:
        self.cache = cache
        self.token = token  # (1, 1) tensor on the model's device
        self.last_token = last
        self.generated = 1


class TransformersSession(GenerativeSession):
    """A causal LM on one torch device."""

    def __init__(self, model: Any, torch: ModuleType, options: AdapterOptions, device: str) -> None:
        self._model = model
        self._torch = torch
        self._options = options
        self._device = device
        params = inspect.signature(model.forward).parameters
        # transformers 5 renamed `past_key_values` to `cache`; accept both generations.
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = next(
            (k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None
        )
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = model.config.eos_token_id
        ids = [eos] if isinstance(eos, int) else list(eos or [])
        vocab = int(model.config.vocab_size)
        self._eos = torch.tensor([i for i in ids if 0 <= i < vocab], dtype=torch.long)

    @property
    def max_context(self) -> int | None:
        n = getattr(self._model.config, "max_position_embeddings", None)
        return int(n) if n else None

    def _next(self, logits: Any) -> Any:
        last = logits[:, -1, :]
        if self._eos.numel():
            last = last.index_fill(1, self._eos.to(last.device), float("-inf"))
        return last.argmax(dim=-1, keepdim=True)

    @staticmethod
    def _cache_of(out: Any) -> Any:
        cache = getattr(out, "past_key_values", None)
        return cache if cache is not None else getattr(out, "cache", None)

    def prefill(self, prompt_ids: np.ndarray, max_new_tokens: int) -> GenerationState:
        torch = self._torch
        ids = torch.from_numpy(as_token_ids(prompt_ids)).view(1, -1).to(self._device)
        kw: dict[str, Any] = {"use_cache": True}
        if self._keep_kw:
            kw[self._keep_kw] = 1
        with torch.inference_mode():
            out = self._model(input_ids=ids, **kw)
            token = self._next(out.logits)
        return _State(self._cache_of(out), token, int(token))

    def step(self, state: GenerationState) -> int:
        assert isinstance(state, _State)
        torch = self._torch
        with torch.inference_mode():
            out = self._model(
                input_ids=state.token, use_cache=True, **{self._cache_kw: state.cache}
            )
            token = self._next(out.logits)
        state.cache = self._cache_of(out)
        state.token = token
        state.last_token = int(token)
        state.generated += 1
        return state.last_token

    def generate(self, prompt_ids: np.ndarray, max_new_tokens: int) -> np.ndarray:
        """``model.generate``, greedy, exactly ``max_new_tokens`` (EOS masked until then)."""
        torch = self._torch
        ids = torch.from_numpy(as_token_ids(prompt_ids)).view(1, -1).to(self._device)
        eos = self._eos.tolist()
        with torch.inference_mode(), warnings.catch_warnings():
            # chat models ship sampling defaults (temperature, top_p) that greedy ignores
            warnings.simplefilter("ignore")
            out = self._model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=max_new_tokens,
                min_new_tokens=max_new_tokens,
                pad_token_id=eos[0] if eos else 0,
            )
        return np.asarray(out[0, ids.shape[1] :].cpu().numpy(), dtype=np.int64)

    def token_logprobs(self, token_ids: np.ndarray) -> np.ndarray:
        """log p(token[i] | tokens[:i]) for i = 1 … n-1, from one forward pass (the slm
        suite's perplexity)."""
        torch = self._torch
        ids = torch.from_numpy(as_token_ids(token_ids)).view(1, -1).to(self._device)
        with torch.inference_mode():
            logits = self._model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            logp = torch.log_softmax(logits, dim=-1)
            picked = logp.gather(1, ids[0, 1:].view(-1, 1)).view(-1)
        return np.asarray(picked.cpu().numpy(), dtype=np.float64)

    def describe(self) -> AdapterDescription:
        torch = self._torch
        tf = importlib.import_module("transformers")
        return AdapterDescription(
            adapter=TransformersAdapter.name,
            runtime="transformers",
            runtime_version=f"{tf.__version__} (torch {torch.__version__})",
            device=self._device,
            execution_provider=f"torch-{self._device.split(':')[0]}",
            precision=self._options.precision,
            options={
                "threads": int(torch.get_num_threads()),
                "dtype": str(self._model.dtype).removeprefix("torch."),
                "attn_implementation": getattr(self._model.config, "_attn_implementation", None),
                "decoding": "greedy, EOS masked, fixed length",
            },
        )

    def close(self) -> None:
        self._model = None


class TransformersAdapter(GenerativeAdapter):
    """Hugging Face transformers on PyTorch: the slm suite's reference runtime."""

    name: ClassVar[str] = "transformers"
    formats: ClassVar[tuple[str, ...]] = ("hf-dir",)

    @classmethod
    def is_available(cls, device: str = "cpu") -> Availability:
        torch = _import("torch")
        tf = _import("transformers")
        if torch is None or tf is None:
            return Availability.no(f"transformers or torch is not installed: {INSTALL_HINT}")
        try:
            _device(torch, device)
        except (ConfigError, UnavailableError) as exc:
            return Availability.no(str(exc))
        return Availability.yes(f"transformers {tf.__version__}, torch {torch.__version__}")

    @classmethod
    def runtime_version(cls) -> str | None:
        tf = _import("transformers")
        return str(tf.__version__) if tf is not None else None

    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> TransformersSession:
        check_keys(self.name, options.extra, {})
        torch = _import("torch")
        tf = _import("transformers")
        if torch is None or tf is None:
            raise UnavailableError(f"transformers or torch is not installed: {INSTALL_HINT}")
        device = _device(torch, options.device)
        if options.precision == "int8":
            raise ConfigError("transformers runs fp32 or fp16 (CUDA) models: drop --precision int8")
        if options.precision == "fp16" and device == "cpu":
            raise ConfigError(
                "transformers fp16 runs on CUDA only (CPU half kernels are a slow fallback): "
                "use --device cuda or --precision fp32"
            )
        path = Path(artifact.path)
        if not (path / "config.json").is_file():
            raise ModelError(
                f"{path} is not a Hugging Face model folder (no config.json): pass the folder "
                f"`huggingface-cli download` or save_pretrained wrote"
            )
        if options.threads is not None:
            torch.set_num_threads(options.threads)
        dtype = torch.float16 if options.precision == "fp16" else torch.float32
        tf.utils.logging.disable_progress_bar()
        tf.utils.logging.set_verbosity_error()
        try:
            model = tf.AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True, **{_dtype_kw(tf.__version__): dtype}
            )
        except Exception as exc:  # transformers raises many types for a bad folder
            raise ModelError(
                f"transformers cannot load {path}: {first_line(exc)}; check that the folder "
                f"holds a causal language model"
            ) from exc
        model = model.to(device).eval()
        return TransformersSession(model, torch, options, device)

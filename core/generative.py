"""The generative-adapter contract: a decoder-only language model behind one interface.

A :class:`GenerativeAdapter` turns a model folder into a :class:`GenerativeSession`
that separates the two phases of text generation, so the harness can time and
measure the energy of each in its own window:

* :meth:`GenerativeSession.prefill` — the prompt's token ids in, the KV cache built
  and the first generated token out (time to first token, TTFT);
* :meth:`GenerativeSession.step` — one decode step from a prefilled state: the last
  token in, the next token out (time per output token, TPOT).

Decoding is greedy (argmax) and never stops early: the end-of-sequence token is
masked until ``max_new_tokens`` are produced, so every run does the same amount of
work whatever the weights say (for real models, a fixed-length continuation of the
prompt). :meth:`GenerativeSession.generate` runs the same greedy search for the
quality check.

Like :class:`wattbench.core.adapter.Adapter`, generative adapters are registered in
the ``wattbench.adapters`` entry-point group (``wattbench adapters`` lists them with
the others) and import their runtime lazily.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from wattbench.core.adapter import (
    COMMON_PRECISIONS,
    AdapterDescription,
    AdapterOptions,
    ModelArtifact,
    Precision,
)
from wattbench.core.availability import Availability


class GenerationState:
    """One prompt's generation in progress: its KV cache and the last token produced.

    Each runtime subclasses it to hold its own cache object.
    """

    #: tokens generated so far (the prefill's first token included)
    generated: int = 0
    #: the most recently generated token id
    last_token: int = -1


class GenerativeSession(ABC):
    """A loaded language model, ready to prefill prompts and decode tokens."""

    @abstractmethod
    def prefill(self, prompt_ids: np.ndarray, max_new_tokens: int) -> GenerationState:
        """Process the prompt and produce the first token (``state.last_token``).

        ``max_new_tokens`` bounds the state's later :meth:`step` calls (some runtimes
        size the KV cache from it). This call is timed as the time to first token.
        """

    @abstractmethod
    def step(self, state: GenerationState) -> int:
        """One greedy decode step from ``state``; returns the new token. Timed per token."""

    def generate(self, prompt_ids: np.ndarray, max_new_tokens: int) -> np.ndarray:
        """Greedy generation of exactly ``max_new_tokens`` tokens (EOS masked)."""
        state = self.prefill(prompt_ids, max_new_tokens)
        out = [state.last_token]
        while len(out) < max_new_tokens:
            out.append(self.step(state))
        return np.asarray(out, dtype=np.int64)

    @property
    @abstractmethod
    def max_context(self) -> int | None:
        """Longest prompt + output the model accepts, when known."""

    @abstractmethod
    def describe(self) -> AdapterDescription:
        """Runtime, version, device, provider and options in effect."""

    def close(self) -> None:  # noqa: B027 - most runtimes free on garbage collection
        """Release runtime resources."""


class GenerativeAdapter(ABC):
    """A text-generation runtime plug-in (same registry and probes as ``Adapter``)."""

    #: entry-point name, e.g. ``"transformers"``
    name: ClassVar[str]
    #: artifact formats this adapter loads, in order of preference
    formats: ClassVar[tuple[str, ...]]
    #: ``--adapter-opt`` keys this adapter understands (key → values), checked before a run
    option_keys: ClassVar[Mapping[str, str]] = {}
    #: the device used when the user names none (and probed by `wattbench adapters`)
    default_device: ClassVar[str] = "cpu"
    #: see Adapter.runs_suite_builds: generative runtimes load the suite's own builds
    runs_suite_builds: ClassVar[bool] = True
    #: see Adapter.precisions
    precisions: ClassVar[tuple[Precision, ...]] = COMMON_PRECISIONS

    @classmethod
    @abstractmethod
    def is_available(cls, device: str = "cpu") -> Availability:
        """Whether the runtime imports and supports ``device``; the reason names the fix."""

    @classmethod
    @abstractmethod
    def runtime_version(cls) -> str | None:
        """Version of the installed runtime, None when not installed."""

    @abstractmethod
    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> GenerativeSession:
        """Load the model folder ``artifact.path``; raise ModelError/UnavailableError."""

    def model_precision(self, artifact: ModelArtifact) -> Precision:
        """The precision ``artifact`` runs at when the user asks for none."""
        return artifact.precision


def first_line(exc: BaseException) -> str:
    """An exception's first message line, for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def as_token_ids(prompt_ids: Any) -> np.ndarray:
    """A 1-D int64 array of token ids (rejects anything else with a ValueError)."""
    a = np.asarray(prompt_ids)
    if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"prompt must be a non-empty 1-D array of token ids, got {a.shape}")
    return a.astype(np.int64, copy=False)

"""llama.cpp through ``llama-cpp-python``: GGUF models on the CPU (or an offload build's GPU).

Loads one GGUF file (format ``gguf``) with ``llama_cpp.Llama`` (model and context set-up,
logging off) and then drives llama.cpp's own C API (``llama_decode``, the logits buffer,
the KV memory), so that nothing of llama-cpp-python's sampling machinery runs inside a
timed region.

Timing semantics:

* :meth:`LlamaCppSession.prefill` (timed as TTFT) clears the context's KV memory, decodes
  the whole prompt in one ``llama_decode`` call (logits of the last position only) and
  takes the greedy token from those logits.
* :meth:`LlamaCppSession.step` (timed per token) decodes the last token at the next
  position and takes the greedy token.

One llama.cpp context holds one KV cache, while the harness keeps many prefilled prompts
aside (the decode window's caches are prepared before it opens). So a state that stops
being the context's *active* one while it may still be decoded has its sequence copied
out (``llama_state_seq_get_data``, outside any window: it happens in the next prefill),
and is copied back in (``llama_state_seq_set_data``) by its first step. That restore, a
few MB for a 128-token prompt of a small model, is part of the first decode step of each
prompt in a decode window — about 0.4 ms against ~10 ms a step, once every 127 steps (plus,
once per window, copying out the last prompt prepared before it). A state that has produced
its ``max_new_tokens`` or has been dropped is never copied, so the prefill window copies
nothing.

Greedy means argmax of the logits with the model's end-of-sequence token
(``tokenizer.ggml.eos_token_id``, the id the Hugging Face conversion of the same file
uses) masked, so the length is fixed, as in the transformers reference.

Precision: a GGUF file carries its own weight format (``general.file_type``: F32, F16,
Q4_1, Q4_K_M, ...). wattbench's precision is the weights' width: types of at most about
4.5 bits per weight (Q4_0/Q4_1, Q4_K_*, Q3/Q2 and the IQ1–IQ4 types) are ``int4``, Q5/Q6/Q8
types ``int8`` (llama.cpp multiplies either with 8-bit-quantised activations); the exact
type is in the description (``options["weights"]``, e.g. ``Q4_1``). F16/BF16 files are
``fp16``, F32 files ``fp32``. A ``--precision`` that contradicts the file is refused.

``threads`` sets both ``n_threads`` (decode) and ``n_threads_batch`` (prompt); without it
llama-cpp-python's defaults apply (half the logical CPUs for decode, all for the prompt)
and the description records them.

:meth:`LlamaCppSession.token_logprobs` scores a text (every position's logits in one
batch) for the slm suite's perplexity; it leaves no active state behind.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import struct
import weakref
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from wattbench.adapters.options import check_keys, positive_int
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

INSTALL_HINT = "pip install 'wattbench[llama-cpp]' (compiles llama.cpp: a few minutes)"

#: Context allocated when the model allows it (the slm suite needs 256 + its quality texts).
DEFAULT_N_CTX = 2048
#: Tokens per ``llama_decode`` call (and per micro-batch): a whole prompt in one call.
N_BATCH = 512

#: ``general.file_type`` (llama.cpp's ``llama_ftype``) → name, for the record.
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
}


def _import_lc() -> ModuleType | None:
    # importlib keeps mypy from analysing (or requiring) the optional runtime.
    try:
        return importlib.import_module("llama_cpp")
    except ImportError:
        return None


def weights_type(file_type: int | None) -> str:
    """The GGUF weight format's name (``Q4_1``, ``F16``, ...; ``type N`` when unknown)."""
    if file_type is None:
        return "unknown"
    return FILE_TYPES.get(file_type, f"type {file_type}")


#: ``general.file_type`` values of 5- to 8-bit weights (Q8_0, Q5_*, Q6_K): ``int8``.
EIGHT_BIT_TYPES = frozenset({7, 8, 9, 16, 17, 18})


def precision_of(file_type: int | None) -> Precision:
    """wattbench's precision for a GGUF weight format: F32 → fp32, F16/BF16 → fp16, Q5/Q6/Q8
    → int8, the 4-bit-or-less types (Q4, Q3, Q2, IQ*) → int4."""
    if file_type == 0:
        return "fp32"
    if file_type in (1, 32):
        return "fp16"
    if file_type in EIGHT_BIT_TYPES:
        return "int8"
    return "int4"


def _gpu_layers(lc: ModuleType, device: str) -> int:
    """0 on the CPU; all layers (-1) on ``gpu``/``cuda`` when this build can offload."""
    if device == "cpu":
        return 0
    if device.partition(":")[0] in ("gpu", "cuda", "metal", "vulkan"):
        if not lc.llama_supports_gpu_offload():
            raise UnavailableError(
                "llama-cpp: this llama-cpp-python build has no GPU offload: rebuild it with "
                "CMAKE_ARGS=-DGGML_CUDA=on (or Metal/Vulkan), or use --device cpu"
            )
        return -1
    raise ConfigError(f"llama-cpp: unknown device {device!r}: use cpu or gpu")


#: GGUF value types: struct format of the scalars (8 = string, 9 = array)
_GGUF_SCALARS = {
    **{0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?"},
    **{10: "Q", 11: "q", 12: "d"},
}


def read_gguf_metadata(path: Path, wanted: set[str]) -> dict[str, Any]:
    """The scalar/string values of ``wanted`` keys from a GGUF file's header.

    Reads only until every wanted key was seen (arrays such as the vocabulary are skipped),
    so no model, vocabulary or context is loaded. ModelError for a file that is not GGUF.
    """
    out: dict[str, Any] = {}
    try:
        with path.open("rb") as fh:

            def read(fmt: str) -> Any:
                size = struct.calcsize("<" + fmt)
                data = fh.read(size)
                if len(data) != size:
                    raise ModelError(f"{path} ends inside its GGUF header: the file is truncated")
                return struct.unpack("<" + fmt, data)[0]

            def string() -> str:
                return bytes(fh.read(read("Q"))).decode("utf-8", "replace")

            def value(vtype: int) -> Any:
                if vtype in _GGUF_SCALARS:
                    return read(_GGUF_SCALARS[vtype])
                if vtype == 8:
                    return string()
                if vtype == 9:
                    etype, count = read("I"), read("Q")
                    if etype in _GGUF_SCALARS:
                        fh.seek(count * struct.calcsize("<" + _GGUF_SCALARS[etype]), 1)
                    else:
                        for _ in range(count):
                            value(etype)
                    return None
                raise ModelError(f"{path}: unknown GGUF value type {vtype}")

            if fh.read(4) != b"GGUF":
                raise ModelError(f"{path} is not a GGUF file: llama-cpp loads .gguf models")
            version = read("I")
            if version < 2:
                raise ModelError(f"{path} is GGUF version {version}: convert it to GGUF v3")
            read("Q")  # tensor count
            for _ in range(read("Q")):
                key = string()
                v = value(read("I"))
                if key in wanted:
                    out[key] = v
                    if len(out) == len(wanted):
                        break
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    return out


class _State(GenerationState):
    def __init__(self, n_past: int, last: int, max_new_tokens: int) -> None:
        self.n_past = n_past
        self.last_token = last
        self.generated = 1
        self.max_new_tokens = max_new_tokens
        #: the sequence's KV data while another state holds the context, else None
        self.saved: Any = None

    @property
    def exhausted(self) -> bool:
        return self.generated >= self.max_new_tokens


class LlamaCppSession(GenerativeSession):
    """A loaded GGUF model and its one llama.cpp context."""

    def __init__(
        self,
        lc: ModuleType,
        llm: Any,
        options: AdapterOptions,
        file_type: int | None,
        n_ctx: int,
        gpu_layers: int,
    ) -> None:
        self._lc = lc
        self._llm = llm
        self._ctx = llm.ctx
        self._mem = lc.llama_get_memory(self._ctx)
        self._options = options
        self._file_type = file_type
        self._n_ctx = n_ctx
        self._gpu_layers = gpu_layers
        self._n_vocab = int(llm.n_vocab())
        vocab = lc.llama_model_get_vocab(llm.model)
        eos = int(lc.llama_vocab_eos(vocab))
        self._eos = [eos] if 0 <= eos < self._n_vocab else []
        self._active: weakref.ref[_State] | None = None
        self._tok_buf = (lc.llama_token * N_BATCH)()

    # -- the context ------------------------------------------------------------------
    @property
    def max_context(self) -> int | None:
        return self._n_ctx

    def _decode(self, ids: np.ndarray) -> None:
        """Decode ``ids`` after the sequence's last position; logits of the last one only."""
        n = int(ids.size)
        buf = self._tok_buf if n <= N_BATCH else (self._lc.llama_token * n)()
        for i, t in enumerate(ids.tolist()):
            buf[i] = t
        rc = self._lc.llama_decode(self._ctx, self._lc.llama_batch_get_one(buf, n))
        if rc != 0:
            raise ModelError(f"llama.cpp could not decode {n} tokens (llama_decode returned {rc})")

    def _greedy(self) -> int:
        ptr = self._lc.llama_get_logits_ith(self._ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))
        token = int(logits.argmax())
        if token in self._eos:  # masked: fixed-length generation, as the reference
            masked = logits.copy()
            masked[self._eos] = -np.inf
            token = int(masked.argmax())
        return token

    def _release_context(self) -> None:
        """Copy the active state out of the context if it may still be decoded."""
        active = self._active() if self._active is not None else None
        self._active = None
        if active is not None and not active.exhausted:
            lc = self._lc
            size = int(lc.llama_state_seq_get_size(self._ctx, 0))
            buf = (ctypes.c_uint8 * size)()
            if int(lc.llama_state_seq_get_data(self._ctx, buf, size, 0)) != size:
                raise ModelError("llama.cpp could not save a sequence's KV cache")
            active.saved = buf
        self._lc.llama_memory_clear(self._mem, True)

    def _activate(self, state: _State) -> None:
        if self._active is not None and self._active() is state:
            return
        if state.saved is None:
            raise ModelError("llama-cpp: this generation state was never prefilled here")
        self._release_context()
        saved, state.saved = state.saved, None
        if int(self._lc.llama_state_seq_set_data(self._ctx, saved, len(saved), 0)) == 0:
            raise ModelError("llama.cpp could not restore a sequence's KV cache")
        self._active = weakref.ref(state)

    # -- generation -------------------------------------------------------------------
    def prefill(self, prompt_ids: np.ndarray, max_new_tokens: int) -> GenerationState:
        ids = as_token_ids(prompt_ids)
        if ids.size + max_new_tokens > self._n_ctx:
            raise ConfigError(
                f"llama-cpp: {ids.size} prompt + {max_new_tokens} new tokens exceed the "
                f"{self._n_ctx}-token context"
            )
        self._release_context()
        self._decode(ids)
        state = _State(int(ids.size), self._greedy(), max_new_tokens)
        self._active = weakref.ref(state)
        return state

    def step(self, state: GenerationState) -> int:
        assert isinstance(state, _State)
        self._activate(state)
        self._decode(np.asarray([state.last_token], dtype=np.int64))
        state.n_past += 1
        state.last_token = self._greedy()
        state.generated += 1
        return state.last_token

    def token_logprobs(self, token_ids: np.ndarray) -> np.ndarray:
        """log p(token[i] | tokens[:i]) for i = 1 … n-1, from one pass over the text."""
        lc = self._lc
        ids = as_token_ids(token_ids)
        n = int(ids.size)
        if n > self._n_ctx:
            raise ConfigError(f"llama-cpp: a {n}-token text exceeds the {self._n_ctx} context")
        self._release_context()
        out = np.empty(n - 1, dtype=np.float64)
        batch = lc.llama_batch_init(N_BATCH, 0, 1)
        try:
            for start in range(0, n, N_BATCH):
                chunk = ids[start : start + N_BATCH].tolist()
                for j, t in enumerate(chunk):
                    batch.token[j] = t
                    batch.pos[j] = start + j
                    batch.n_seq_id[j] = 1
                    batch.seq_id[j][0] = 0
                    batch.logits[j] = 1
                batch.n_tokens = len(chunk)
                rc = lc.llama_decode(self._ctx, batch)
                if rc != 0:
                    raise ModelError(f"llama.cpp could not score a text (llama_decode: {rc})")
                for j in range(len(chunk)):
                    i = start + j
                    if i + 1 >= n:
                        break
                    row = np.ctypeslib.as_array(
                        lc.llama_get_logits_ith(self._ctx, j), shape=(self._n_vocab,)
                    )
                    row64 = row.astype(np.float64)
                    top = row64.max()
                    out[i] = row64[ids[i + 1]] - top - np.log(np.exp(row64 - top).sum())
        finally:
            lc.llama_batch_free(batch)
            lc.llama_memory_clear(self._mem, True)
        return out

    def describe(self) -> AdapterDescription:
        lc = self._lc
        params = self._llm.context_params
        return AdapterDescription(
            adapter=LlamaCppAdapter.name,
            runtime="llama.cpp (llama-cpp-python)",
            runtime_version=str(lc.__version__),
            device=self._options.device,
            execution_provider="cpu" if self._gpu_layers == 0 else "gpu-offload",
            precision=self._options.precision,
            options={
                "threads": int(params.n_threads),
                "threads_batch": int(params.n_threads_batch),
                "weights": weights_type(self._file_type),
                "n_ctx": self._n_ctx,
                "n_batch": N_BATCH,
                "gpu_layers": self._gpu_layers,
                "decoding": "greedy, EOS masked, fixed length",
            },
        )

    def close(self) -> None:
        self._active = None
        if self._llm is not None:
            self._llm.close()
        self._llm = None


class LlamaCppAdapter(GenerativeAdapter):
    """llama.cpp (``llama-cpp-python``) on GGUF files."""

    name: ClassVar[str] = "llama-cpp"
    formats: ClassVar[tuple[str, ...]] = ("gguf",)
    precisions: ClassVar[tuple[Precision, ...]] = ("fp32", "fp16", "int8", "int4")
    option_keys: ClassVar[dict[str, str]] = {
        "n_ctx": f"context tokens to allocate (default {DEFAULT_N_CTX}, at most the model's)"
    }

    @classmethod
    def is_available(cls, device: str = "cpu") -> Availability:
        lc = _import_lc()
        if lc is None:
            return Availability.no(f"llama-cpp-python is not installed: {INSTALL_HINT}")
        try:
            _gpu_layers(lc, device)
        except (ConfigError, UnavailableError) as exc:
            return Availability.no(str(exc))
        return Availability.yes(f"llama-cpp-python {lc.__version__}")

    @classmethod
    def runtime_version(cls) -> str | None:
        lc = _import_lc()
        return str(lc.__version__) if lc is not None else None

    @staticmethod
    def _header(path: Path) -> tuple[int | None, int | None]:
        """(``general.file_type``, trained context length) from the file's header."""
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {path} (check the --model path)")
        arch = read_gguf_metadata(path, {"general.architecture"}).get("general.architecture")
        meta = read_gguf_metadata(path, {"general.file_type", f"{arch}.context_length"})
        ftype, ctx = meta.get("general.file_type"), meta.get(f"{arch}.context_length")
        return (int(ftype) if ftype is not None else None, int(ctx) if ctx else None)

    def model_precision(self, artifact: ModelArtifact) -> Precision:
        """Read from the file (:func:`precision_of`)."""
        return precision_of(self._header(Path(artifact.path))[0])

    def load(self, artifact: ModelArtifact, options: AdapterOptions) -> LlamaCppSession:
        check_keys(self.name, options.extra, self.option_keys)
        lc = _import_lc()
        if lc is None:
            raise UnavailableError(f"llama-cpp-python is not installed: {INSTALL_HINT}")
        gpu_layers = _gpu_layers(lc, options.device)
        want_ctx = DEFAULT_N_CTX
        if "n_ctx" in options.extra:
            want_ctx = positive_int(self.name, "n_ctx", options.extra["n_ctx"])
        path = Path(artifact.path)
        file_type, train_ctx = self._header(path)
        n_ctx = min(want_ctx, train_ctx) if train_ctx else want_ctx
        stored = precision_of(file_type)
        if options.precision != stored:
            raise ConfigError(
                f"llama-cpp: {path.name} holds {weights_type(file_type)} weights (recorded as "
                f"precision {stored}): drop --precision or pass --precision {stored}"
            )
        kw: dict[str, Any] = {
            "n_ctx": n_ctx,
            "n_batch": N_BATCH,
            "n_ubatch": N_BATCH,
            "n_gpu_layers": gpu_layers,
            "logits_all": False,
        }
        if options.threads is not None:
            kw["n_threads"] = kw["n_threads_batch"] = options.threads
        else:  # llama-cpp-python's own defaults, spelled out so describe() can report them
            cpus = os.cpu_count() or 1
            kw["n_threads"] = max(cpus // 2, 1)
            kw["n_threads_batch"] = cpus
        try:
            llm = lc.Llama(model_path=str(path), verbose=False, **kw)
        except Exception as exc:  # llama-cpp-python raises ValueError/RuntimeError
            raise ModelError(
                f"llama.cpp cannot load {path}: {first_line(exc)}; check that the file is a "
                f"complete GGUF model of an architecture this llama.cpp supports"
            ) from exc
        return LlamaCppSession(lc, llm, options, file_type, n_ctx, gpu_layers)

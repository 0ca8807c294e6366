"""A tiny random-weight Llama, built offline, and directory artifacts in the model cache.

The slm suite needs a decoder-only language model that every test can build without a
model hub: :func:`build_hf_dir` trains a byte-level BPE tokenizer (``tokenizers``) on the
suite's prompt text and saves a seeded random :class:`transformers.LlamaForCausalLM`
(hidden 64, 2 layers, grouped-query attention like the real small models) with
``save_pretrained``. :func:`build_genai_dir` converts such a folder with ONNX Runtime
GenAI's own model builder (``python -m onnxruntime_genai.models.builder``).

Random weights give the compute and memory traffic of the architecture, not sensible
text. ``initializer_range`` is raised above Llama's 0.02 so that the greedy choice is
decided by a clear logit margin, not by float round-off between runtimes.

Language models are directories, the cache holds single files: a directory is stored as
a *deterministic* tar (sorted names, zero times and owners, fixed modes) under
``<cache>/sha256/<hex>.tar`` and unpacked once under ``<cache>/unpacked/<hex>/``. The
tar's sha256 is the directory's identity (:func:`dir_sha256` computes the same hash from
a directory, so a user's model folder gets an identity the same way), and an unpacked
folder is re-verified against it before use.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from wattbench.core.cache import ModelCache
from wattbench.core.errors import ModelError, UnavailableError

TRANSFORMERS_HINT = "pip install 'wattbench[transformers]'"
GENAI_HINT = "pip install 'wattbench[genai]' onnx-ir"

#: Architecture of the tiny model (recorded in the recipe key; change → new key).
HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
INTERMEDIATE = 128
MAX_POSITIONS = 1024
VOCAB_TARGET = 512
INIT_RANGE = 0.1

BOS, EOS = "<s>", "</s>"

#: Suffix of directory artifacts in the content-addressed cache.
TAR_SUFFIX = ".tar"


def _import(name: str, hint: str) -> ModuleType:
    # importlib keeps mypy from analysing (or requiring) the optional heavy packages.
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise UnavailableError(
            f"building the tiny language model needs {name.split('.')[0]}: {hint} "
            f"(or pass a model folder with --model)"
        ) from exc


# -- deterministic directory tar ---------------------------------------------------------


class _HashWriter(io.RawIOBase):
    """A write-only stream that hashes (and optionally keeps) what is written."""

    def __init__(self, keep: bool) -> None:
        self.h = hashlib.sha256()
        self.buf = io.BytesIO() if keep else None

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.h.update(data)
        if self.buf is not None:
            self.buf.write(data)
        return len(data)


def _files(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ModelError(f"model folder not found: {root} (check the --model path)")
    out = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    if not out:
        raise ModelError(f"model folder {root} is empty: pass a folder with the model files")
    return out


def _write_tar(root: Path, sink: Any) -> None:
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in _files(root):
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size = path.stat().st_size
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as fh:
                tar.addfile(info, fh)


def dir_sha256(root: Path) -> str:
    """sha256 of the directory's deterministic tar: the same bytes give the same hash."""
    w = _HashWriter(keep=False)
    _write_tar(root, w)
    return w.h.hexdigest()


def dir_tar_bytes(root: Path) -> tuple[bytes, str]:
    """The directory as deterministic tar bytes, and their sha256."""
    w = _HashWriter(keep=True)
    _write_tar(root, w)
    assert w.buf is not None
    return w.buf.getvalue(), w.h.hexdigest()


def _unpacked(cache: ModelCache, sha: str) -> Path:
    return cache.root / "unpacked" / sha


def _unpack(cache: ModelCache, tar_path: Path, sha: str) -> Path:
    dest = _unpacked(cache, sha)
    if dest.is_dir():
        if dir_sha256(dest) == sha:
            return dest
        shutil.rmtree(dest)  # tampered with or half-removed: unpack afresh
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".tmp-"))
    try:
        with tarfile.open(tar_path) as tar:
            tar.extractall(tmp, filter="data")
        try:
            os.replace(tmp, dest)  # atomic: nobody sees a half-unpacked folder
        except OSError:
            if not dest.is_dir():  # another process won the race: theirs is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def cached_dir(cache: ModelCache, key: str, build: Callable[[Path], None]) -> tuple[Path, str]:
    """The unpacked directory recipe ``key`` produces, building it with ``build(dir)`` once.

    Returns ``(unpacked_dir, sha256_of_its_tar)``.
    """
    sha = cache.recipe(key)
    tar_path = cache.lookup(sha, TAR_SUFFIX) if sha else None
    if tar_path is None or sha is None:
        work = cache.root / "tmp"
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            out = Path(tmp) / "model"
            out.mkdir()
            build(out)
            data, sha = dir_tar_bytes(out)
        tar_path, sha = cache.put_bytes(data, TAR_SUFFIX)
        cache.remember_recipe(key, sha)
    return _unpack(cache, tar_path, sha), sha


# -- the model ---------------------------------------------------------------------------


def train_tokenizer(texts: Sequence[str], vocab_size: int = VOCAB_TARGET) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``texts`` (deterministic).

    Byte-level, so any text encodes; ``<s>`` is prepended to every encoding like Llama's.
    """
    tk = _import("tokenizers", TRANSFORMERS_HINT)
    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS],
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    bos = tok.token_to_id(BOS)
    tok.post_processor = tk.processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, bos)]
    )
    return tok


def build_hf_dir(out: Path, seed: int, texts: Sequence[str]) -> None:
    """Save a seeded random tiny Llama and its tokenizer to ``out`` (HF layout)."""
    torch = _import("torch", TRANSFORMERS_HINT)
    tf = _import("transformers", TRANSFORMERS_HINT)
    tok = train_tokenizer(texts)
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS)
    config = tf.LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        initializer_range=INIT_RANGE,
        bos_token_id=tok.token_to_id(BOS),
        eos_token_id=tok.token_to_id(EOS),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = tf.LlamaForCausalLM(config).eval()
    model.save_pretrained(out)
    fast.save_pretrained(out)


def build_genai_dir(
    hf_dir: Path, out: Path, precision: str = "fp32", execution_provider: str = "cpu"
) -> None:
    """Convert the HF folder ``hf_dir`` with ONNX Runtime GenAI's model builder into ``out``.

    The builder runs as a subprocess with the hub switched off, so nothing is downloaded.
    """
    _import("onnxruntime_genai", GENAI_HINT)
    _import("onnx_ir", GENAI_HINT)  # the builder needs it but onnxruntime-genai omits it
    with tempfile.TemporaryDirectory() as cache_dir:
        cmd = [
            sys.executable,
            "-m",
            "onnxruntime_genai.models.builder",
            "-i",
            str(hf_dir),
            "-o",
            str(out),
            "-p",
            precision,
            "-e",
            execution_provider,
            "-c",
            cache_dir,
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0 or not (out / "genai_config.json").is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelError(
            f"onnxruntime-genai's model builder failed on {hf_dir}: {tail[0]}; "
            f"convert the model yourself and pass the folder with --model"
        )

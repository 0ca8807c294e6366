"""The tiny-model builder and directory artifacts in the content-addressed cache."""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from pathlib import Path

import pytest

from wattbench.core.adapter import ModelArtifact
from wattbench.core.cache import ModelCache
from wattbench.core.errors import ModelError
from wattbench.suites.models import tiny_llm
from wattbench.suites.slm import PROMPTS


def _tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(b"\x00\x01\x02")


def test_dir_sha256_is_the_sha_of_the_deterministic_tar(tmp_path: Path) -> None:
    _tree(tmp_path / "x")
    data, sha = tiny_llm.dir_tar_bytes(tmp_path / "x")
    assert hashlib.sha256(data).hexdigest() == sha == tiny_llm.dir_sha256(tmp_path / "x")
    # same content elsewhere, other times and modes: same identity
    _tree(tmp_path / "y")
    (tmp_path / "y" / "a.txt").chmod(0o600)
    assert tiny_llm.dir_sha256(tmp_path / "y") == sha
    (tmp_path / "y" / "a.txt").write_text("alphA")
    assert tiny_llm.dir_sha256(tmp_path / "y") != sha
    with tarfile.open(fileobj=__import__("io").BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a.txt", "sub/b.bin"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in members} == {(0, 0, 0, "", 0o644)}


def test_empty_or_missing_folder_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="empty"):
        tiny_llm.dir_sha256(tmp_path)
    with pytest.raises(ModelError, match="not found"):
        tiny_llm.dir_sha256(tmp_path / "nope")


def test_cached_dir_builds_once_and_repairs_a_tampered_unpack(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache")
    calls: list[Path] = []

    def build(out: Path) -> None:
        calls.append(out)
        _tree(out)

    path, sha = tiny_llm.cached_dir(cache, "k1", build)
    assert (path / "a.txt").read_text() == "alpha"
    assert cache.lookup(sha, ".tar") is not None
    again, sha2 = tiny_llm.cached_dir(cache, "k1", build)
    assert (again, sha2) == (path, sha) and len(calls) == 1
    (path / "a.txt").write_text("tampered")
    repaired, _ = tiny_llm.cached_dir(cache, "k1", build)
    assert (repaired / "a.txt").read_text() == "alpha" and len(calls) == 1
    assert tiny_llm.dir_sha256(repaired) == sha
    # a corrupt tar is rebuilt, not trusted
    cache.path_for(sha, ".tar").write_bytes(b"garbage")
    tiny_llm.cached_dir(cache, "k1", build)
    assert len(calls) == 2


def test_tokenizer_training_is_deterministic_and_byte_level() -> None:
    a = tiny_llm.train_tokenizer(PROMPTS)
    b = tiny_llm.train_tokenizer(PROMPTS)
    assert a.to_str() == b.to_str()
    enc = a.encode("Zebra ✓ 42")  # text far from the training set still encodes
    assert enc.ids[0] == a.token_to_id(tiny_llm.BOS)
    assert a.decode(enc.ids, skip_special_tokens=True) == "Zebra ✓ 42"


def test_built_model_is_the_recipe(hf_model: ModelArtifact, genai_model: ModelArtifact) -> None:
    import json

    cfg = json.loads((Path(hf_model.path) / "config.json").read_text())
    assert (cfg["hidden_size"], cfg["num_hidden_layers"]) == (tiny_llm.HIDDEN, tiny_llm.LAYERS)
    assert hf_model.weights == "random(seed=0)" and hf_model.format == "hf-dir"
    assert tiny_llm.dir_sha256(Path(hf_model.path)) == hf_model.sha256
    assert (Path(genai_model.path) / "genai_config.json").is_file()
    assert genai_model.format == "onnx-genai-dir"


def test_hf_build_is_deterministic(tmp_path: Path, hf_model: ModelArtifact) -> None:
    tiny_llm.build_hf_dir(tmp_path, 0, PROMPTS)
    assert tiny_llm.dir_sha256(tmp_path) == hf_model.sha256


def test_builder_failure_is_one_model_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real builder runs in the session fixtures; here only its failure is faked (fast).
    def failing_run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        assert cmd[1:3] == ["-m", "onnxruntime_genai.models.builder"]
        assert kw["env"]["HF_HUB_OFFLINE"] == "1"  # type: ignore[index]
        return subprocess.CompletedProcess(cmd, 1, "", "Traceback ...\nValueError: bad config")

    monkeypatch.setattr(tiny_llm.subprocess, "run", failing_run)
    with pytest.raises(ModelError, match=r"model builder failed .*ValueError: bad config"):
        tiny_llm.build_genai_dir(tmp_path / "in", tmp_path / "out")

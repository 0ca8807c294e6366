"""Content-addressed model cache, recipes and verified downloads."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wattbench.core.cache import ModelCache, sha256_file
from wattbench.core.errors import ChecksumError, ModelError

PAYLOAD = b"wattbench model bytes " * 5000  # ~110 kB
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def cached_files(cache: ModelCache) -> list[Path]:
    """Every file under the cache's sha256/ and tmp/ folders."""
    return sorted(
        p for sub in ("sha256", "tmp") for p in (cache.root / sub).rglob("*") if p.is_file()
    )


@pytest.fixture
def cache(tmp_path: Path) -> ModelCache:
    return ModelCache(tmp_path / "cache")


# -- put / lookup ------------------------------------------------------------------------


def test_put_bytes_is_content_addressed(cache: ModelCache) -> None:
    path, sha = cache.put_bytes(PAYLOAD, ".onnx")
    assert sha == PAYLOAD_SHA
    assert path == cache.root / "sha256" / f"{PAYLOAD_SHA}.onnx"
    assert path.read_bytes() == PAYLOAD
    assert cache.lookup(sha, ".onnx") == path
    # identical bytes share one file
    path2, sha2 = cache.put_bytes(PAYLOAD, ".onnx")
    assert (path2, sha2) == (path, sha)
    assert list((cache.root / "sha256").iterdir()) == [path]
    # no temporary files are left behind
    assert list((cache.root / "tmp").iterdir()) == []


def test_put_file_copies_and_keeps_the_suffix(cache: ModelCache, tmp_path: Path) -> None:
    src = tmp_path / "model.tflite"
    src.write_bytes(PAYLOAD)
    path, sha = cache.put_file(src)
    assert sha == PAYLOAD_SHA == sha256_file(src)
    assert path.name == f"{PAYLOAD_SHA}.tflite"
    assert path.read_bytes() == PAYLOAD
    assert src.exists()  # copied, not moved
    path2, _ = cache.put_file(src, ".bin")
    assert path2.name == f"{PAYLOAD_SHA}.bin"


def test_lookup_absent_or_wrong_suffix(cache: ModelCache) -> None:
    assert cache.lookup(PAYLOAD_SHA, ".onnx") is None
    cache.put_bytes(PAYLOAD, ".onnx")
    assert cache.lookup(PAYLOAD_SHA, ".tflite") is None
    assert cache.lookup("0" * 64, ".onnx") is None


def test_lookup_detects_a_corrupted_file(cache: ModelCache) -> None:
    path, sha = cache.put_bytes(PAYLOAD, ".onnx")
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    assert cache.lookup(sha, ".onnx") is None


def test_recipes_remember_and_lookup(cache: ModelCache) -> None:
    assert cache.recipe("mobilenet_v2-seed0") is None
    cache.remember_recipe("mobilenet_v2-seed0", PAYLOAD_SHA)
    assert cache.recipe("mobilenet_v2-seed0") == PAYLOAD_SHA
    assert cache.recipe("mobilenet_v2-seed1") is None
    cache.remember_recipe("mobilenet_v2-seed0", "f" * 64)
    assert cache.recipe("mobilenet_v2-seed0") == "f" * 64
    # a fresh cache object on the same root sees it
    assert ModelCache(cache.root).recipe("mobilenet_v2-seed0") == "f" * 64


def test_corrupt_recipe_file_is_treated_as_absent(cache: ModelCache) -> None:
    cache.remember_recipe("k", PAYLOAD_SHA)
    (cache.root / "recipes" / "k.json").write_text("{not json")
    assert cache.recipe("k") is None
    (cache.root / "recipes" / "k.json").write_text('{"other": 1}')
    assert cache.recipe("k") is None


def test_default_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WATTBENCH_CACHE", str(tmp_path / "elsewhere"))
    assert ModelCache().root == tmp_path / "elsewhere"


# -- fetch -------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a temporary folder; yields (base url, folder)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def closed_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def test_fetch_from_file_url(cache: ModelCache, tmp_path: Path) -> None:
    src = tmp_path / "model.onnx"
    src.write_bytes(PAYLOAD)
    path = cache.fetch(src.as_uri(), PAYLOAD_SHA, ".onnx")
    assert path == cache.path_for(PAYLOAD_SHA, ".onnx")
    assert path.read_bytes() == PAYLOAD
    assert cache.lookup(PAYLOAD_SHA, ".onnx") == path


def test_fetch_over_http_with_progress(cache: ModelCache, http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "m.onnx").write_bytes(PAYLOAD)
    calls: list[tuple[int, int | None]] = []
    path = cache.fetch(
        f"{base}/m.onnx", PAYLOAD_SHA, ".onnx", progress=lambda d, t: calls.append((d, t))
    )
    assert path.read_bytes() == PAYLOAD
    assert calls, "progress callback never called"
    assert calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert list((cache.root / "tmp").iterdir()) == []


def test_fetch_uses_the_cache_when_present(cache: ModelCache, http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "m.onnx").write_bytes(PAYLOAD)
    first = cache.fetch(f"{base}/m.onnx", PAYLOAD_SHA, ".onnx")
    (root / "m.onnx").unlink()  # the server no longer has it
    calls: list[tuple[int, int | None]] = []
    second = cache.fetch(
        f"{base}/m.onnx", PAYLOAD_SHA, ".onnx", progress=lambda d, t: calls.append((d, t))
    )
    assert second == first
    assert calls == []


def test_fetch_wrong_sha_raises_and_caches_nothing(
    cache: ModelCache, http_root: tuple[str, Path]
) -> None:
    base, root = http_root
    (root / "m.onnx").write_bytes(PAYLOAD)
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as ei:
        cache.fetch(f"{base}/m.onnx", wrong, ".onnx")
    msg = str(ei.value)
    assert PAYLOAD_SHA in msg and wrong in msg
    assert "\n" not in msg
    assert cached_files(cache) == []
    assert cache.lookup(wrong, ".onnx") is None
    assert cache.lookup(PAYLOAD_SHA, ".onnx") is None


def test_fetch_wrong_sha_from_file_url(cache: ModelCache, tmp_path: Path) -> None:
    src = tmp_path / "model.onnx"
    src.write_bytes(PAYLOAD)
    with pytest.raises(ChecksumError):
        cache.fetch(src.as_uri(), "1" * 64, ".onnx")
    assert cached_files(cache) == []


def test_fetch_unreachable_url_raises_model_error(cache: ModelCache, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/m.onnx"
    with pytest.raises(ModelError) as ei:
        cache.fetch(url, PAYLOAD_SHA, ".onnx", timeout_s=5)
    assert not isinstance(ei.value, ChecksumError)
    msg = str(ei.value)
    assert url in msg
    assert "--model" in msg  # names the offline remedy
    assert cached_files(cache) == []


def test_fetch_http_404_raises_model_error(cache: ModelCache, http_root: tuple[str, Path]) -> None:
    base, _ = http_root
    with pytest.raises(ModelError) as ei:
        cache.fetch(f"{base}/missing.onnx", PAYLOAD_SHA, ".onnx")
    assert not isinstance(ei.value, ChecksumError)
    assert cached_files(cache) == []


def test_fetch_missing_local_file_raises_model_error(cache: ModelCache, tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        cache.fetch((tmp_path / "nope.onnx").as_uri(), PAYLOAD_SHA, ".onnx")
    assert cached_files(cache) == []


def test_fetch_malformed_url_is_a_model_error_and_leaves_nothing(cache: ModelCache) -> None:
    with pytest.raises(ModelError):
        cache.fetch("not a url", PAYLOAD_SHA, ".onnx")
    assert cached_files(cache) == []

"""Content-addressed model cache and verified downloads.

Files live under ``<root>/sha256/<hex>.<ext>``; a file's name *is* its hash,
so two recipes that produce identical bytes share one file and a corrupted
file is detectable. ``<root>/recipes/<key>.json`` remembers which hash a
deterministic recipe (e.g. "mobilenet_v2 onnx random seed 0") produced, so
builders run once per machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import platformdirs

from wattbench.core.errors import ChecksumError, ModelError

_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``WATTBENCH_CACHE`` or the platform's user cache directory."""
    env = os.environ.get("WATTBENCH_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("wattbench")) / "models"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class ModelCache:
    """A directory of artifacts addressed by sha256."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path_for(self, sha256: str, suffix: str) -> Path:
        return self.root / "sha256" / f"{sha256}{suffix}"

    def _tmp(self) -> Path:
        d = self.root / "tmp"
        d.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=d)
        os.close(fd)
        return Path(name)

    def _commit(self, tmp: Path, sha256: str, suffix: str) -> Path:
        dest = self.path_for(sha256, suffix)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)  # atomic: readers never see a half-written file
        return dest

    def put_bytes(self, data: bytes, suffix: str) -> tuple[Path, str]:
        sha = hashlib.sha256(data).hexdigest()
        tmp = self._tmp()
        tmp.write_bytes(data)
        return self._commit(tmp, sha, suffix), sha

    def put_file(self, src: Path, suffix: str | None = None) -> tuple[Path, str]:
        sha = sha256_file(src)
        tmp = self._tmp()
        shutil.copyfile(src, tmp)
        return self._commit(tmp, sha, suffix if suffix is not None else src.suffix), sha

    def lookup(self, sha256: str, suffix: str) -> Path | None:
        """The cached file for ``sha256``, verified; None when absent or corrupt."""
        path = self.path_for(sha256, suffix)
        if path.is_file() and sha256_file(path) == sha256:
            return path
        return None

    def recipe(self, key: str) -> str | None:
        """sha256 a recipe produced earlier, if any."""
        path = self.root / "recipes" / f"{key}.json"
        try:
            return str(json.loads(path.read_text())["sha256"])
        except (OSError, ValueError, KeyError):
            return None

    def remember_recipe(self, key: str, sha256: str) -> None:
        path = self.root / "recipes" / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp()
        tmp.write_text(json.dumps({"sha256": sha256}))
        os.replace(tmp, path)

    def fetch(
        self,
        url: str,
        sha256: str,
        suffix: str,
        progress: Callable[[int, int | None], None] | None = None,
        timeout_s: float = 60.0,
    ) -> Path:
        """Download ``url`` into the cache unless already there; verify its sha256.

        ``progress(bytes_done, bytes_total_or_None)`` is called while downloading.
        """
        cached = self.lookup(sha256, suffix)
        if cached is not None:
            return cached
        tmp = self._tmp()
        h = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp, tmp.open("wb") as out:
                total = resp.headers.get("Content-Length")
                total_n = int(total) if total and total.isdigit() else None
                done = 0
                while chunk := resp.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total_n)
        except (urllib.error.URLError, OSError, ValueError) as exc:  # ValueError: bad URL
            tmp.unlink(missing_ok=True)
            raise ModelError(
                f"cannot download {url}: {exc}; on an offline machine fetch the file elsewhere "
                f"and `wattbench models import DIR` it, or pass it with --model"
            ) from exc
        if h.hexdigest() != sha256:
            tmp.unlink(missing_ok=True)
            raise ChecksumError(
                f"{url} has sha256 {h.hexdigest()}, expected {sha256}: the file changed "
                f"upstream or the download was corrupted; nothing was cached"
            )
        return self._commit(tmp, sha256, suffix)

"""Downloads whose sha256 was not published: recorded on the first download, then pinned.

For upstream files whose digest wattbench could not verify when the entry was written (the
registry's entries are all sha256-pinned; these are not registry entries). The first download
of a URL records its sha256 in the model cache (``recipes/first-download-<hash of URL>.json``);
the file is then served from the cache, and a later download (a cleared cache) must have the
same bytes or it is refused. A run records the sha256 with ``sha256_pinned=False`` in its
provenance, so two machines that downloaded different bytes are told apart.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from wattbench.core.cache import ModelCache
from wattbench.core.errors import ModelError

_CHUNK = 1 << 20


def recipe_key(url: str) -> str:
    return f"first-download-{hashlib.sha256(url.encode()).hexdigest()[:32]}"


def recorded_sha256(url: str, cache: ModelCache) -> str | None:
    """The sha256 recorded at the first download of ``url`` into ``cache``, if any."""
    return cache.recipe(recipe_key(url))


def fetch_first_use(
    url: str, suffix: str, cache: ModelCache, *, hint: str = "", timeout_s: float = 60.0
) -> tuple[Path, str]:
    """(cached path, sha256) of ``url``; downloads it unless the cache holds it.

    ``hint`` is appended to a download error (what to do offline). A re-download whose bytes
    differ from the recorded sha256 raises ChecksumError and caches nothing.
    """
    key = recipe_key(url)
    sha = cache.recipe(key)
    if sha is not None:
        path = cache.lookup(sha, suffix)
        if path is not None:
            return path, sha
        return cache.fetch(url, sha, suffix, timeout_s=timeout_s), sha
    tmp_dir = cache.root / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir)
    tmp = Path(name)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:
            while chunk := resp.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"cannot download {url}: {exc}" + (f"; {hint}" if hint else "")) from exc
    sha = h.hexdigest()
    dest = cache.path_for(sha, suffix)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    cache.remember_recipe(key, sha)
    return dest, sha

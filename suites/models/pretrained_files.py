"""Finding the registry's pinned files: the model cache, a source checkout, or a download.

Order: the model cache (``wattbench models fetch`` / ``models import DIR`` put files there);
then, in a source checkout (or an editable install of one), the folders
:func:`checkout_dirs` names — ``../shared/data/coral-test-data`` beside the checkout and
``.cache/pretrained`` inside it, where ``scripts/test.sh`` extracts the weights CI uses —
matched by file name and sha256 (one level of sub-folders too); finally a download from the
entry's canonical URL, verified against its sha256 and kept in the cache.
"""

from __future__ import annotations

from pathlib import Path

from wattbench.core.cache import ModelCache, sha256_file
from wattbench.suites.models.registry import PretrainedEntry, entry, fetch_pretrained

#: sha256 of files already hashed in this process: (path, size, mtime_ns) -> sha256
_HASHED: dict[tuple[str, int, int], str] = {}


def checkout_dirs() -> list[Path]:
    """Folders a source checkout keeps pinned files in (only those that exist)."""
    repo = Path(__file__).resolve().parents[2]
    dirs = [repo.parent / "shared" / "data" / "coral-test-data", repo / ".cache" / "pretrained"]
    return [d for d in dirs if d.is_dir()]


def _sha(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = sha256_file(path)
    return _HASHED[key]


def find(name: str | PretrainedEntry, cache: ModelCache | None = None) -> Path | None:
    """The verified local file of registry entry ``name``, or None: nothing is downloaded."""
    e = entry(name) if isinstance(name, str) else name
    cache = cache or ModelCache()
    cached = cache.lookup(e.sha256, e.suffix)
    if cached is not None:
        return cached
    for d in checkout_dirs():
        candidates = [d / e.filename, *sorted(d.glob(f"*/{e.filename}"))]
        for c in candidates:
            if c.is_file() and c.stat().st_size > 0 and _sha(c) == e.sha256:
                return c
    return None


def require(name: str | PretrainedEntry, cache: ModelCache | None = None) -> Path:
    """The verified local file of entry ``name``, downloading it into the cache if needed.

    Errors (ModelError, ChecksumError) say how to get the file onto an offline machine.
    """
    e = entry(name) if isinstance(name, str) else name
    cache = cache or ModelCache()
    found = find(e, cache)
    return found if found is not None else fetch_pretrained(e.name, cache)

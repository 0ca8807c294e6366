"""Shared fixtures: isolated data/cache directories and database URLs.

PostgreSQL tests use ``WATTBENCH_TEST_PG_URL`` (e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Without it they skip
with a visible reason; with ``WATTBENCH_REQUIRE_PG=1`` (set by .ci/run) a
missing or unreachable server is a failure instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CORAL_DATA = SHARED_DATA / "coral-test-data"


@pytest.fixture(autouse=True)
def _isolated_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test touches the user's real database or cache."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("WATTBENCH_DB", f"sqlite:///{home / 'default.db'}")
    monkeypatch.setenv("WATTBENCH_JOURNAL_DIR", str(home / "journal"))  # the run journal
    # every wattbench start restores a stale tune journal: never the user's real one
    monkeypatch.setenv("WATTBENCH_TUNE_JOURNAL", str(home / "tune-journal.json"))
    monkeypatch.setenv("WATTBENCH_CACHE", str(_shared_cache(tmp_path_factory)))
    monkeypatch.delenv("WATTBENCH_DATA_DIR", raising=False)


_CACHE: Path | None = None


def _shared_cache(factory: pytest.TempPathFactory) -> Path:
    # Model builds are deterministic and content-addressed: one cache per session
    # keeps the suite fast without sharing state that could hide a bug.
    global _CACHE
    if _CACHE is None:
        _CACHE = factory.mktemp("model-cache")
    return _CACHE


@pytest.fixture(scope="session")
def shared_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The session's model cache (the one WATTBENCH_CACHE points at), for in-process builds."""
    from wattbench.core.cache import ModelCache

    return ModelCache(_shared_cache(tmp_path_factory))


def _pg_admin_url() -> str | None:
    return os.environ.get("WATTBENCH_TEST_PG_URL")


def _pg_unavailable(reason: str) -> None:
    if os.environ.get("WATTBENCH_REQUIRE_PG") == "1":
        pytest.fail(f"PostgreSQL required (WATTBENCH_REQUIRE_PG=1) but {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin = _pg_admin_url()
    if not admin:
        _pg_unavailable("WATTBENCH_TEST_PG_URL is not set")
    assert admin is not None
    try:
        import psycopg
        from sqlalchemy.engine import make_url
    except ImportError:
        _pg_unavailable("psycopg is not installed (pip install 'wattbench[postgres]')")
    url = make_url(admin)
    name = f"wb_test_{uuid.uuid4().hex[:12]}"
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _pg_unavailable(f"cannot connect to {admin}: {str(exc).strip().splitlines()[0]}")
    try:
        yield url.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same store test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wattbench.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def coral_data() -> Path:
    if not CORAL_DATA.is_dir():
        pytest.skip(f"shared test data not present at {CORAL_DATA}")
    return CORAL_DATA


@pytest.fixture
def mobilenet_weights() -> Path:
    """torchvision's ImageNet MobileNetV2 weights (the mobilenet_v2 suite's default)."""
    return require_pretrained("mobilenet_v2-b0353104")


from pretrained_helpers import require_pretrained  # noqa: E402 - shared with test modules

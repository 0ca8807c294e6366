"""Connecting to a results database and keeping its schema at this wattbench's revision.

Every error here is one line that names what to do (``--db``, the postgres extra,
``wattbench db upgrade``), because these are the first things a user runs into.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from wattbench.core.errors import SchemaVersionError, StoreError

UPGRADE_HINT = "run `wattbench db upgrade`"


def default_db_url() -> str:
    """``WATTBENCH_DB`` or SQLite in the platform's user data directory."""
    env = os.environ.get("WATTBENCH_DB")
    if env:
        return env
    path = Path(platformdirs.user_data_dir("wattbench")) / "wattbench.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def alembic_config(connection: Any) -> Config:
    """Alembic pointed at the packaged migrations, running on ``connection``."""
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(resources.files("wattbench.results_db") / "migrations")
    )
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config(None))
    head = script.get_current_head()
    assert head is not None
    return head


def one_line(exc: BaseException) -> str:
    """The first line of a database error, for messages that fit on one line."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def display_url(engine: Engine) -> str:
    """The engine's URL without its password, for messages."""
    return engine.url.render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the dashboard read while a runner writes; the timeout waits out
    # short write locks instead of failing with "database is locked".
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def open_engine(url: str | None = None) -> Engine:
    """An engine on ``url`` (default: :func:`default_db_url`) that has answered once.

    Failing here, with the reason, beats failing at the first query: a bad URL, a
    missing driver, a missing SQLite directory or an unreachable server.
    """
    url = url or default_db_url()
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"invalid database URL {url!r}: use e.g. sqlite:///path/wattbench.db or "
            f"postgresql+psycopg://user@host/db"
        ) from exc
    if parsed.drivername == "postgresql":  # psycopg 3, not the legacy psycopg2 default
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        parent = Path(parsed.database).expanduser().resolve().parent
        if not parent.is_dir():
            raise StoreError(
                f"cannot open database {parsed.database}: directory {parent} does not exist "
                f"(create it or pass another --db)"
            )
    try:
        engine = create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        raise StoreError(
            f"no driver for {parsed.drivername}: pip install 'wattbench[postgres]' "
            f"({one_line(exc)})"
        ) from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except (DBAPIError, SQLAlchemyError) as exc:
        engine.dispose()
        raise StoreError(
            f"cannot connect to database {display_url(engine)}: {one_line(exc)} "
            f"(check the server and --db / WATTBENCH_DB)"
        ) from exc
    return engine


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_schema(engine: Engine) -> None:
    """Create a fresh schema in an empty database; otherwise insist on the head."""
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
    if current is None:
        if not inspect(engine).get_table_names():
            upgrade(engine)
            return
        raise StoreError(
            f"{display_url(engine)} has tables but is not a wattbench database: pass another --db"
        )
    script = ScriptDirectory.from_config(alembic_config(None))
    try:
        known = script.get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise SchemaVersionError(
            f"database schema {current} is newer than this wattbench ({head}): upgrade wattbench"
        )
    raise SchemaVersionError(
        f"database schema is at {current}, this wattbench needs {head}: {UPGRADE_HINT}"
    )


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Apply pending migrations; returns (from, to) revisions."""
    before = current_revision(engine)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
    except (DBAPIError, SQLAlchemyError) as exc:
        raise StoreError(f"migration failed on {display_url(engine)}: {one_line(exc)}") from exc
    return before, head_revision()

"""Open a results store read-only: what the dashboard (and ``wattbench dashboard``) read through.

SQLite is opened with ``mode=ro`` and ``PRAGMA query_only``; PostgreSQL sessions are set
``default_transaction_read_only``. A missing file, an empty database and a schema at another
revision are told apart, so the caller can say which (and name ``wattbench db upgrade``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from wattbench.core.errors import SchemaVersionError, StoreError
from wattbench.results_db.schema import Run
from wattbench.results_db.store import UPGRADE_HINT, Store, default_db_url, head_revision

#: Environment variable through which ``wattbench dashboard`` hands the URL to the app.
DB_ENV = "WATTBENCH_DASHBOARD_DB"

#: Columns added by later migrations (nullable); selected only when the schema has them.
OPTIONAL_RUN_COLUMNS = (
    "latency_e2e_p50_ms",
    "latency_e2e_p90_ms",
    "ttft_ms",
    "tpot_ms",
    "tokens_per_joule",
    "mode",
    "network_j_per_inference",
    "energy_to_solution_j_per_inference",
)

DbState = Literal["ok", "empty", "missing"]


# -- opening ---------------------------------------------------------------------------------
def _sqlite_readonly(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # mode=ro already refuses writes; query_only also covers a plain path handed in by a
    # caller, and the busy timeout waits out a runner's short write lock.
    cur.execute("PRAGMA query_only=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _pg_readonly(dbapi_conn: Any, _record: Any) -> None:
    # Before any transaction: every transaction of this connection is then read-only.
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    with dbapi_conn.cursor() as cur:
        cur.execute("SET default_transaction_read_only = on")
    dbapi_conn.autocommit = autocommit


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL (None for in-memory or non-SQLite URLs)."""
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    db = str(url.database)
    if db.startswith("file:"):  # already a URI filename
        db = db[len("file:") :].split("?", 1)[0]
    return Path(db).expanduser()


def readonly_engine(url: str) -> Engine:
    """An engine on ``url`` that cannot write (see the module docstring)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"invalid database URL {url!r}: use e.g. sqlite:///path/wattbench.db or "
            f"postgresql+psycopg://user@host/db"
        ) from exc
    if parsed.drivername == "postgresql":  # psycopg 3, as the store uses
        parsed = parsed.set(drivername="postgresql+psycopg")
    path = sqlite_path(parsed)
    try:
        if path is not None:
            engine = create_engine(
                URL.create(
                    "sqlite",
                    database=f"file:{path.resolve()}",
                    query={"mode": "ro", "uri": "true"},
                ),
                pool_pre_ping=True,
            )
            event.listen(engine, "connect", _sqlite_readonly)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
            if engine.dialect.name == "postgresql":
                event.listen(engine, "connect", _pg_readonly)
            elif engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_readonly)
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        raise StoreError(
            f"no driver for {parsed.drivername}: pip install 'wattbench[postgres]' "
            f"({_one_line(exc)})"
        ) from exc
    return engine


@dataclass
class Database:
    """What the dashboard reads: a read-only :class:`Store` (or none yet) and its state."""

    url: str
    display_url: str
    state: DbState
    store: Store | None = None
    optional_columns: tuple[str, ...] = field(default_factory=tuple)

    @property
    def engine(self) -> Engine:
        if self.store is None:
            raise StoreError(f"no database at {self.display_url}")
        return self.store.engine

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def open_readonly(url: str | None = None) -> Database:
    """Open ``url`` (default: ``WATTBENCH_DB`` or the user's SQLite) read-only.

    Returns a :class:`Database` in state ``ok``, ``empty`` (no wattbench schema yet) or
    ``missing`` (the SQLite file does not exist). Raises :class:`StoreError` when the
    server cannot be reached and :class:`SchemaVersionError` for a schema at another
    revision (naming ``wattbench db upgrade``).
    """
    url = url or default_db_url()
    engine = readonly_engine(url)  # raises StoreError for a malformed URL
    parsed_display = make_url(url).render_as_string(hide_password=True)
    path = sqlite_path(make_url(url))
    if path is not None and not path.is_file():
        engine.dispose()
        return Database(url, parsed_display, "missing")
    store = Store(engine)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        current = store.current_revision()
        tables = set(inspect(engine).get_table_names())
    except (DBAPIError, SQLAlchemyError) as exc:
        engine.dispose()
        raise StoreError(
            f"cannot read database {parsed_display}: {_one_line(exc)} "
            f"(check the server and --db / WATTBENCH_DB)"
        ) from exc
    if current is None:
        if tables:
            engine.dispose()
            raise StoreError(f"{parsed_display} has tables but is not a wattbench database")
        return Database(url, parsed_display, "empty", store)
    head = head_revision()
    if current != head:
        engine.dispose()
        raise SchemaVersionError(
            f"database schema is at {current}, this wattbench needs {head}: {UPGRADE_HINT} "
            f"(or upgrade wattbench if the database is newer)"
        )
    cols = {c["name"] for c in inspect(engine).get_columns("runs")}
    optional = tuple(c for c in OPTIONAL_RUN_COLUMNS if c in cols and hasattr(Run, c))
    state: DbState = "ok" if _has_runs(engine) else "empty"
    return Database(url, parsed_display, state, store, optional)


def _has_runs(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(Run.id).limit(1)).first() is not None

"""Moving whole runs between stores: ``wattbench import``.

The flat exports of :mod:`wattbench.results_db.export` are for spreadsheets; they
cannot be read back. Whole runs move as :class:`~wattbench.core.results.RunResult`
JSON: ``wattbench import SOURCE`` reads

* a file: one run (``wattbench run --json`` output), a JSON array of runs, or JSON
  Lines (one run per line, what :func:`dump_runs` writes);
* a database URL: every run of that store (``sqlite:///other.db``,
  ``postgresql+psycopg://…``), each exactly as it is stored there.

The same rules as the ingest API apply to each run: it must pass
:func:`wattbench.core.validation.validate_result`; a run id already here with the same
content (:mod:`wattbench.core.canonical`) is a duplicate and skipped; the same id with
different content is a **conflict**: reported with the first differing field, and the
run stored here is kept. Imported runs are ``received`` (they were recorded elsewhere
and are not uploaded from here) and keep their payload, so they come back verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.engine import make_url

from wattbench.core.errors import ConfigError
from wattbench.core.results import RunResult
from wattbench.core.validation import describe_problems, validate_result
from wattbench.results_db.errors import RunConflictError
from wattbench.results_db.schema import UPLOAD_RECEIVED, Run
from wattbench.results_db.store import Store
from wattbench.results_db.upload import is_database_url, run_payload


@dataclass
class ImportReport:
    """What one import did; ``problems`` are one-line reasons, by source position."""

    source: str
    created: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.conflicts and not self.invalid

    def summary(self) -> str:
        text = (
            f"{len(self.created)} run(s) imported from {self.source}, "
            f"{len(self.duplicates)} already there"
        )
        if self.conflicts:
            text += f", {len(self.conflicts)} in conflict (kept as stored here)"
        if self.invalid:
            text += f", {len(self.invalid)} refused as invalid"
        return text


def _file_runs(path: Path) -> Iterator[tuple[str, bytes]]:
    """(where, JSON of one run) for every run in ``path``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror} (check the path)") from None
    if data.lstrip().startswith(b"["):  # a JSON array of runs
        try:
            items = json.loads(data)
        except ValueError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from None
        for i, item in enumerate(items):
            yield f"{path}[{i}]", json.dumps(item).encode()
        return
    try:
        json.loads(data)
    except ValueError:  # not one JSON document: JSON Lines
        for n, line in enumerate(data.splitlines(), 1):
            if line.strip():
                yield f"{path}:{n}", line
        return
    yield str(path), data  # one run (wattbench run --json)


def _database_runs(url: str) -> Iterator[tuple[str, bytes]]:
    source = Store.open(url)
    try:
        for run_id in _run_ids(source):
            yield f"{source.display_url} run {run_id}", run_payload(source, run_id)
    finally:
        source.close()


def _run_ids(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.scalars(select(Run.uuid).order_by(Run.id)))


def import_runs(
    store: Store,
    source: str,
    *,
    on_problem: Callable[[str], None] | None = None,
) -> ImportReport:
    """Import every run of ``source`` (a file or a database URL) into ``store``.

    ``on_problem(line)`` is called with one line per run refused or in conflict.
    """
    if "://" in source and is_database_url(source):
        runs = _database_runs(source)
        shown = make_url(source).render_as_string(hide_password=True)
    else:
        runs = _file_runs(Path(source))
        shown = source
    report = ImportReport(source=shown)

    def problem(kind: list[tuple[str, str]], key: str, line: str) -> None:
        kind.append((key, line))
        if on_problem is not None:
            on_problem(line)

    for where, body in runs:
        try:
            result = RunResult.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(x) for x in first.get("loc", ())) or "body"
            problem(report.invalid, where, f"{where}: not a wattbench run ({loc}: {first['msg']})")
            continue
        problems = validate_result(result)
        if problems:
            problem(
                report.invalid,
                result.run_id,
                f"{where}: run {result.run_id[:60]} refused: {describe_problems(problems)}",
            )
            continue
        try:
            created = store.save_run(result, upload_state=UPLOAD_RECEIVED, keep_payload=True)
        except RunConflictError as exc:
            problem(report.conflicts, result.run_id, f"{where}: {exc}")
            continue
        (report.created if created else report.duplicates).append(result.run_id)
    return report


def dump_runs(store: Store, out: IO[str]) -> int:
    """Write every run of ``store`` as JSON Lines (what :func:`import_runs` reads back)."""
    ids = _run_ids(store)
    for run_id in ids:
        out.write(run_payload(store, run_id).decode() + "\n")
    return len(ids)

"""Export stored runs: one flat row per run, as CSV, JSON, Parquet or a pandas DataFrame.

CSV and JSON need nothing extra; Parquet needs pyarrow and :func:`to_dataframe`
needs pandas (``pip install 'wattbench[export]'``). Both are imported only when
used. In CSV the list columns (labels, invalid_reasons, tags) are JSON arrays, so
labels containing commas, semicolons or quotes come back verbatim.

In a notebook::

    from wattbench.results_db.export import to_dataframe
    df = to_dataframe("postgresql+psycopg://lab@db/wattbench", suite="mobilenet_v2")
"""

from __future__ import annotations

import csv
import importlib
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from wattbench.core.errors import ConfigError
from wattbench.results_db.leaderboard import rank_group
from wattbench.results_db.schema import Device, ModelArtifactRow, Run, SuiteRow
from wattbench.results_db.store import Store

FORMATS = ("csv", "json", "parquet")

#: (column, kind) in output order; kind drives the Parquet type and CSV encoding.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "str"),
    ("started_at", "datetime"),
    ("finished_at", "datetime"),
    ("created_at", "datetime"),
    ("suite", "str"),
    ("suite_version", "str"),
    ("scenario", "str"),
    ("device", "str"),
    ("hostname", "str"),
    ("hardware", "str"),
    ("cpu_model", "str"),
    ("accelerator", "str"),
    ("arch", "str"),
    ("memory_bytes", "int"),
    ("nameplate_power_w", "float"),
    ("purchase_price", "float"),
    ("currency", "str"),
    ("rack", "str"),
    ("location", "str"),
    ("tags", "json"),
    ("model", "str"),
    ("model_sha256", "str"),
    ("model_format", "str"),
    ("weights", "str"),
    ("adapter", "str"),
    ("runtime_version", "str"),
    ("execution_provider", "str"),
    ("device_target", "str"),
    ("precision", "str"),
    ("batch", "int"),
    ("threads", "int"),
    ("inputs", "str"),
    ("valid", "bool"),
    ("invalid_reasons", "list"),
    ("labels", "list"),
    ("inferences", "int"),
    ("throughput_ips", "float"),
    ("load_ms", "float"),
    ("first_inference_ms", "float"),
    ("latency_mean_ms", "float"),
    ("latency_p50_ms", "float"),
    ("latency_p90_ms", "float"),
    ("latency_p95_ms", "float"),
    ("latency_p99_ms", "float"),
    ("latency_p999_ms", "float"),
    ("latency_cv", "float"),
    ("inferences_per_joule", "float"),
    ("joules_per_inference", "float"),
    ("energy_method", "str"),
    ("energy_scope", "str"),
    ("energy_estimated", "bool"),
    ("energy_uncertainty_j", "float"),
    ("upload_state", "str"),
    ("rank_group", "str"),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)


def parse_since(value: str | date | datetime | None) -> datetime | None:
    """``2026-11-01`` or an ISO datetime (naive = UTC) as an aware UTC datetime."""
    if value is None or isinstance(value, datetime):
        return _as_utc(value) if value is not None else None
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"invalid --since {value!r}: use a date like 2026-11-01 or 2026-11-01T12:00"
        ) from None
    return _as_utc(parsed)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def iter_rows(
    store: Store,
    *,
    suite: str | None = None,
    labels: Sequence[str] = (),
    since: str | date | datetime | None = None,
    include_invalid: bool = True,
    batch_size: int = 2000,
) -> Iterator[dict[str, Any]]:
    """Flat rows (see :data:`COLUMNS`) of the runs that match, oldest first.

    ``labels``: runs carrying every one of them (exact match); ``since``: runs started
    at or after it. Streams in batches, so exporting a million runs does not load
    them all at once.
    """
    since_dt = parse_since(since)
    q = (
        select(Run, SuiteRow, Device, ModelArtifactRow)
        .join(SuiteRow, Run.suite_id == SuiteRow.id)
        .join(Device, Run.device_id == Device.id)
        .join(ModelArtifactRow, Run.model_artifact_id == ModelArtifactRow.id)
        .order_by(Run.started_at, Run.id)
    )
    if suite:
        q = q.where(SuiteRow.name == suite)
    if not include_invalid:
        q = q.where(Run.valid.is_(True))
    if since_dt is not None:
        # SQLite keeps naive UTC; PostgreSQL compares aware timestamps.
        bound = since_dt.replace(tzinfo=None) if store.engine.dialect.name == "sqlite" else since_dt
        q = q.where(Run.started_at >= bound)
    for label in labels:
        # Narrow in SQL on the JSON text (same encoding on both dialects), then match exactly.
        pattern = "%" + _like_escape(json.dumps(label)) + "%"
        q = q.where(cast(Run.labels, String).like(pattern, escape="\\"))
    wanted = set(labels)
    with Session(store.engine) as s:
        for run, st, dev, art in s.execute(q.execution_options(yield_per=batch_size)):
            if wanted and not wanted.issubset(run.labels or []):
                continue
            yield _row(run, st, dev, art)


def _row(run: Run, st: SuiteRow, dev: Device, art: ModelArtifactRow) -> dict[str, Any]:
    def utc(v: datetime | None) -> datetime | None:
        return None if v is None else _as_utc(v)

    return {
        "run_id": run.uuid,
        "started_at": utc(run.started_at),
        "finished_at": utc(run.finished_at),
        "created_at": utc(run.created_at),
        "suite": st.name,
        "suite_version": st.version,
        "scenario": run.scenario,
        "device": dev.name,
        "hostname": dev.hostname,
        "hardware": dev.accelerator or dev.cpu_model,
        "cpu_model": dev.cpu_model,
        "accelerator": dev.accelerator,
        "arch": dev.arch,
        "memory_bytes": dev.memory_bytes,
        "nameplate_power_w": dev.nameplate_power_w,
        "purchase_price": dev.purchase_price,
        "currency": dev.currency,
        "rack": dev.rack,
        "location": dev.location,
        "tags": dev.tags,
        "model": art.name,
        "model_sha256": art.sha256,
        "model_format": art.format,
        "weights": art.weights,
        "adapter": run.adapter,
        "runtime_version": run.runtime_version,
        "execution_provider": run.execution_provider,
        "device_target": run.device_target,
        "precision": run.precision,
        "batch": run.batch,
        "threads": run.threads,
        "inputs": run.inputs,
        "valid": run.valid,
        "invalid_reasons": list(run.invalid_reasons or []),
        "labels": list(run.labels or []),
        "inferences": run.inferences,
        "throughput_ips": run.throughput_ips,
        "load_ms": run.load_ms,
        "first_inference_ms": run.first_inference_ms,
        "latency_mean_ms": run.latency_mean_ms,
        "latency_p50_ms": run.latency_p50_ms,
        "latency_p90_ms": run.latency_p90_ms,
        "latency_p95_ms": run.latency_p95_ms,
        "latency_p99_ms": run.latency_p99_ms,
        "latency_p999_ms": run.latency_p999_ms,
        "latency_cv": run.latency_cv,
        "inferences_per_joule": run.inferences_per_joule,
        "joules_per_inference": run.joules_per_inference,
        "energy_method": run.energy_method,
        "energy_scope": run.energy_scope,
        "energy_estimated": run.energy_method == "estimated",
        "energy_uncertainty_j": run.energy_uncertainty_j,
        "upload_state": run.upload_state,
        "rank_group": rank_group(
            st.name,
            st.version,
            run.scenario,
            run.mode,
            run.energy_scope,
            run.energy_method == "estimated",
        ),
    }


def write_csv(rows: Iterator[dict[str, Any]], out: TextIO) -> int:
    """CSV with a header; list/JSON columns as JSON text; returns the number of runs."""
    kinds = dict(COLUMNS)
    w = csv.DictWriter(out, fieldnames=COLUMN_NAMES, lineterminator="\n")
    w.writeheader()
    n = 0
    for row in rows:
        w.writerow(
            {
                k: (
                    ""
                    if v is None
                    else json.dumps(v, ensure_ascii=False)
                    if kinds[k] in ("list", "json")
                    else v.isoformat()
                    if isinstance(v, datetime)
                    else v
                )
                for k, v in row.items()
            }
        )
        n += 1
    return n


def write_json(rows: Iterator[dict[str, Any]], out: TextIO) -> int:
    """A JSON array of row objects, written as it streams; returns the number of runs."""
    n = 0
    out.write("[")
    for row in rows:
        out.write(",\n " if n else "\n ")
        out.write(json.dumps(row, default=_json_default, ensure_ascii=False))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _pyarrow() -> Any:
    try:
        pyarrow = importlib.import_module("pyarrow")
        importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ConfigError(
            "Parquet export needs pyarrow: pip install 'wattbench[export]' "
            "(or use --format csv / json)"
        ) from None
    return pyarrow


def write_parquet(rows: Iterator[dict[str, Any]], path: Path, batch_size: int = 5000) -> int:
    """A Parquet file (typed columns, lists as list<string>); returns the number of runs."""
    pa = _pyarrow()
    types = {
        "str": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "datetime": pa.timestamp("us", tz="UTC"),
        "list": pa.list_(pa.string()),
        "json": pa.string(),
    }
    schema = pa.schema([(name, types[kind]) for name, kind in COLUMNS])
    json_cols = [name for name, kind in COLUMNS if kind == "json"]
    n = 0
    with pa.parquet.ParquetWriter(str(path), schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows:
            for c in json_cols:
                if row[c] is not None:
                    row[c] = json.dumps(row[c], ensure_ascii=False)
            batch.append(row)
            if len(batch) >= batch_size:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                n += len(batch)
                batch = []
        if batch or n == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            n += len(batch)
    return n


def export(
    store: Store,
    fmt: str,
    output: Path | None,
    *,
    stdout: TextIO | None = None,
    **filters: Any,
) -> int:
    """Write the matching runs in ``fmt`` to ``output`` (or ``stdout``); returns how many."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}: use csv, json or parquet")
    rows = iter_rows(store, **filters)
    if fmt == "parquet":
        if output is None:
            raise ConfigError("Parquet is binary: give a file with -o FILE.parquet")
        _pyarrow()  # fail before querying
        return write_parquet(rows, output)
    writer = write_csv if fmt == "csv" else write_json
    if output is None:
        return writer(rows, stdout if stdout is not None else sys.stdout)
    try:
        with output.open("w", encoding="utf-8", newline="") as fh:
            return writer(rows, fh)
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror} (check -o)") from None


def to_dataframe(url: str | None = None, **filters: Any) -> Any:
    """The matching runs as a pandas DataFrame (one row per run, :data:`COLUMNS`).

    ``url``: a database URL (default ``WATTBENCH_DB`` or the local SQLite); ``filters``:
    ``suite``, ``labels``, ``since``, ``include_invalid`` as for :func:`iter_rows`.
    """
    try:
        pd = importlib.import_module("pandas")
    except ImportError:
        raise ConfigError("to_dataframe needs pandas: pip install 'wattbench[export]'") from None
    store = Store.open(url)
    try:
        frame = pd.DataFrame.from_records(list(iter_rows(store, **filters)), columns=COLUMN_NAMES)
    finally:
        store.close()
    for name, kind in COLUMNS:
        if kind == "datetime":
            frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame

"""The local spool of the upload path: the payloads of pending runs, and marking runs
acknowledged by the central store as uploaded."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from wattbench.core.errors import StoreError
from wattbench.results_db.engine import one_line
from wattbench.results_db.schema import UPLOAD_DONE, Run, RunPayload
from wattbench.results_db.store import Store


def run_payload(store: Store, run_id: str) -> bytes:
    """The JSON body to upload for a stored run: as recorded, or rebuilt from its rows."""
    with store.engine.connect() as conn:
        row = conn.execute(
            select(RunPayload.encoding, RunPayload.data)
            .join(Run, Run.id == RunPayload.run_id)
            .where(Run.uuid == run_id)
        ).first()
    if row is not None and row.encoding == "json+gzip":
        return gzip.decompress(row.data)
    result = store.load_result(run_id)
    if result is None:
        raise StoreError(f"run {run_id} is not in {store.display_url}")
    return result.model_dump_json().encode()


def run_payloads(store: Store, run_ids: list[str]) -> dict[str, bytes]:
    """:func:`run_payload` of many runs: the kept payloads in one query."""
    found: dict[str, bytes] = {}
    with store.engine.connect() as conn:
        for k in range(0, len(run_ids), 500):
            rows = conn.execute(
                select(Run.uuid, RunPayload.encoding, RunPayload.data)
                .join(Run, Run.id == RunPayload.run_id)
                .where(Run.uuid.in_(run_ids[k : k + 500]))
            )
            for run_id, encoding, data in rows:
                if encoding == "json+gzip":
                    found[run_id] = gzip.decompress(data)
    for run_id in run_ids:
        if run_id not in found:
            found[run_id] = run_payload(store, run_id)
    return found


def _mark_uploaded(store: Store, run_ids: list[str]) -> None:
    """:meth:`Store.mark_uploaded` of many runs, in one transaction."""
    try:
        with store.engine.begin() as conn:
            conn.execute(
                update(Run)
                .where(Run.uuid.in_(run_ids))
                .values(
                    upload_state=UPLOAD_DONE,
                    uploaded_at=datetime.now(timezone.utc),
                    upload_attempts=Run.upload_attempts + 1,
                    upload_last_error=None,
                )
            )
    except SQLAlchemyError as exc:
        raise StoreError(
            f"could not mark {len(run_ids)} run(s) uploaded in {store.display_url}: {one_line(exc)}"
        ) from exc

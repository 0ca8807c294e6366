"""Database transport of the upload path: copies runs straight into the central
database (a SQLAlchemy URL, on trusted lab machines)."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from wattbench.core.errors import StoreError
from wattbench.core.results import RunResult
from wattbench.core.validation import describe_problems, validate_result
from wattbench.results_db.errors import RunConflictError
from wattbench.results_db.schema import UPLOAD_RECEIVED
from wattbench.results_db.store import Store
from wattbench.results_db.upload_outcomes import (
    CONFLICT,
    CREATED,
    DUPLICATE,
    REJECTED,
    _Answer,
    _Conflict,
    _Fatal,
    _Rejected,
    _Transient,
)


class _DatabaseTarget:
    """Copy runs straight into the central database (trusted lab machines)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.store: Store | None = None
        self.display = make_url(url).render_as_string(hide_password=True)
        self.batches = True

    def _open(self) -> Store:
        try:
            if self.store is None:
                self.store = Store.open(self.url)
        except StoreError as exc:
            raise _store_failure(exc) from exc
        return self.store

    def send(self, run_id: str, body: bytes) -> str:
        store = self._open()
        try:
            result = _plausible_run(body)
            created = store.save_run(result, upload_state=UPLOAD_RECEIVED, keep_payload=False)
        except RunConflictError as exc:
            raise _Conflict(str(exc)) from exc
        except StoreError as exc:
            raise _store_failure(exc) from exc
        return CREATED if created else DUPLICATE

    def send_batch(self, group: list[tuple[str, bytes]]) -> list[_Answer]:
        """The plausible runs in one transaction (:meth:`Store.save_runs`)."""
        store = self._open()
        answers: list[_Answer] = [("", "")] * len(group)
        good: list[tuple[int, RunResult]] = []
        for i, (_, body) in enumerate(group):
            try:
                good.append((i, _plausible_run(body)))
            except _Rejected as exc:
                answers[i] = (REJECTED, str(exc))
        try:
            outcomes = store.save_runs(
                [r for _, r in good], upload_state=UPLOAD_RECEIVED, keep_payload=False
            )
        except StoreError as exc:
            raise _store_failure(exc) from exc
        for (i, _), outcome in zip(good, outcomes, strict=True):
            if outcome.conflict is not None:
                answers[i] = (CONFLICT, str(outcome.conflict))
            else:
                answers[i] = (CREATED if outcome.status == "created" else DUPLICATE, "")
        return answers

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


def _plausible_run(body: bytes) -> RunResult:
    """The run in ``body``, or :class:`_Rejected` (not a run, or implausible)."""
    try:
        result = RunResult.model_validate_json(body)
    except ValidationError as exc:
        raise _Rejected(f"not a valid run: {exc.errors()[0]['msg']}") from exc
    problems = validate_result(result)
    if problems:
        raise _Rejected(f"implausible run: {describe_problems(problems)}")
    return result


def _store_failure(exc: StoreError) -> Exception:
    """A database target's error: a schema to upgrade stops the pass, the rest is retried."""
    if "wattbench db upgrade" in str(exc) or "newer than" in str(exc):
        return _Fatal(str(exc))
    return _Transient(str(exc))


def is_database_url(target: str) -> bool:
    """True for a SQLAlchemy URL (sqlite:///…, postgresql+psycopg://…), not http(s)."""
    if target.split(":", 1)[0].lower() in ("http", "https"):
        return False
    try:
        make_url(target).get_dialect()
    except (ArgumentError, NoSuchModuleError):
        return False
    return True

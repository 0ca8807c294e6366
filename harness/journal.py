"""Run journal: one small file per run in progress, so a killed run is seen, not lost.

``wattbench run`` writes ``<journal dir>/<id>.json`` when the run starts and rewrites it
(atomically: a temporary file, then ``os.replace``) at every phase change — preparing
the model, loading, warm-up, idle baseline, each trial, the store write — with the pid
and the process's start time. A run that finishes (stored, or refused with an error
line) removes its file. So a file whose process is gone is a run that was **killed**
(SIGKILL, power cut, OOM killer): unless its run id is in the store (killed after the
commit, before the file was removed), it is reported as **aborted**, with the phase it
died in, at the next ``wattbench`` start and by ``wattbench runs --aborted [--json]``.

The store write itself is one transaction, so a killed run never leaves a row behind:
nothing half-written can rank.

The journal directory is ``$WATTBENCH_JOURNAL_DIR`` or ``journal/`` in the user data
directory (next to the default SQLite store). A run whose figures were refused as
implausible keeps its result there as ``<run id>.rejected.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from wattbench.core.errors import ImplausibleResultError

if TYPE_CHECKING:  # the journal is read at every CLI start: keep pydantic/numpy out of it
    from wattbench.core.results import RunResult

ENV_DIR = "WATTBENCH_JOURNAL_DIR"
#: The phase recorded while the result is written to the store.
STORE_PHASE = "store write"

RUNNING = "running"
ABORTED = "aborted"
STORED = "stored"


def journal_dir() -> Path:
    """``$WATTBENCH_JOURNAL_DIR`` or ``<user data dir>/journal``."""
    env = os.environ.get(ENV_DIR)
    return Path(env) if env else Path(platformdirs.user_data_dir("wattbench")) / "journal"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (to tell it from a later process given the same pid)."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # no such process, no psutil, no permission
        return None


def _alive(pid: int, started: float | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if started is None:
        return True
    now = _process_start(pid)
    # a zombie (killed, not yet reaped by its parent) is as dead as a gone process
    return now is not None and abs(now - started) < 1.0 and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        import psutil

        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except Exception:
        return False


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class RunJournal:
    """The journal file of one run in progress (see the module docstring)."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def begin(
        cls,
        *,
        suite: str,
        adapter: str,
        device_name: str | None,
        db: str,
        directory: Path | None = None,
    ) -> RunJournal:
        """Write the journal of a run that starts now (phase ``starting``)."""
        folder = directory or journal_dir()
        folder.mkdir(parents=True, exist_ok=True)
        jid = uuid.uuid4().hex
        pid = os.getpid()
        now = _now()
        data: dict[str, Any] = {
            "journal": jid,
            "pid": pid,
            "process_started": _process_start(pid),
            "host": socket.gethostname(),
            "started_at": now,
            "suite": suite,
            "adapter": adapter,
            "device_name": device_name,
            "db": db,
            "phase": "starting",
            "phase_at": now,
            "phases": 1,
            "run_id": None,
        }
        journal = cls(folder / f"{jid}.json", data)
        _write_atomic(journal.path, data)
        return journal

    def phase(self, name: str) -> None:
        """Record that the run entered phase ``name``."""
        if name == self.data["phase"]:
            return
        self.data.update(phase=name, phase_at=_now(), phases=self.data["phases"] + 1)
        _write_atomic(self.path, self.data)

    def storing(self, run_id: str) -> None:
        """The result is about to be written: a kill from now on may leave it stored."""
        self.data["run_id"] = run_id
        self.phase(STORE_PHASE)

    def finish(self) -> None:
        """The run is over (stored, or ended with an error the user saw): drop the file."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def keep_rejected(self, result: RunResult) -> Path:
        """Keep a refused result for inspection: ``<journal dir>/<run id>.rejected.json``."""
        path = self.path.parent / f"{result.run_id}.rejected.json"
        path.write_text(result.model_dump_json(indent=1), encoding="utf-8")
        return path

    def progress(self, inner: Any) -> JournalProgress:
        """``inner`` (the progress bar) that also records each phase here."""
        return JournalProgress(self, inner)

    @classmethod
    @contextlib.contextmanager
    def recording(cls, **begin: Any) -> Iterator[RunJournal]:
        """``begin(**begin)``; the file is removed however the block ends — except by a
        kill, which is the point."""
        journal = cls.begin(**begin)
        try:
            yield journal
        finally:
            journal.finish()


class JournalProgress:
    """A :class:`~wattbench.harness.protocol.Progress` that journals each phase change."""

    def __init__(self, journal: RunJournal, inner: Any) -> None:
        self.journal = journal
        self.inner = inner

    def phase(self, name: str, total: float | None = None) -> None:
        self.journal.phase(name)
        self.inner.phase(name, total)

    def update(self, completed: float) -> None:
        self.inner.update(completed)


def store_result(result: RunResult, store: Any, journal: RunJournal | None = None) -> None:
    """Validate ``result`` and save it in ``store`` (one transaction), journalled.

    An implausible result is not stored: :class:`ImplausibleResultError` (one line),
    with the result kept in the journal directory when there is a journal.
    """
    from wattbench.core.validation import describe_problems, validate_result

    problems = validate_result(result)
    if problems:
        kept = journal.keep_rejected(result) if journal is not None else None
        where = f"; the result is kept in {kept}" if kept is not None else ""
        raise ImplausibleResultError(
            f"run {result.run_id} is implausible, nothing was stored: "
            f"{describe_problems(problems)}{where}"
        )
    if journal is not None:
        journal.storing(result.run_id)
    store.save_run(result)


# -- reading the journal --------------------------------------------------------------------
@dataclass
class JournalEntry:
    """A journal file and what became of its run: running, aborted or stored."""

    path: Path
    data: dict[str, Any]
    status: str

    @property
    def phase(self) -> str:
        return str(self.data.get("phase") or "unknown")

    def as_dict(self) -> dict[str, Any]:
        keys = (
            "journal",
            "run_id",
            "suite",
            "adapter",
            "device_name",
            "db",
            "pid",
            "host",
            "started_at",
            "phase",
            "phase_at",
        )
        return {"status": self.status, **{k: self.data.get(k) for k in keys}}

    def describe(self) -> str:
        what = f"{self.data.get('suite')} on {self.data.get('adapter')}"
        return (
            f"run {self.data.get('run_id') or self.data.get('journal')} ({what}, started "
            f"{self.data.get('started_at')}) {self.status} in phase {self.phase!r} "
            f"(pid {self.data.get('pid')}, last update {self.data.get('phase_at')})"
        )


def scan(
    directory: Path | None = None,
    *,
    is_stored: Callable[[dict[str, Any]], bool | None] | None = None,
    tidy: bool = True,
) -> list[JournalEntry]:
    """Every journal in ``directory``, oldest first, with its run's status.

    ``is_stored(data)`` says whether a dead run's ``run_id`` is in its store (None:
    cannot tell). A dead run that reached the store is ``stored``; with ``tidy`` its
    file is removed. Every other dead run is ``aborted``.
    """
    folder = directory or journal_dir()
    entries: list[JournalEntry] = []
    try:
        files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    except FileNotFoundError:
        return []
    for path in files:
        if path.name.endswith(".rejected.json") or path.name.startswith(".tmp-"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # vanished (its run just finished) or not ours
        if not isinstance(data, dict) or "pid" not in data:
            continue
        host = data.get("host")
        if host and host != socket.gethostname():
            continue  # a shared data directory: another machine's run
        if _alive(int(data["pid"]), data.get("process_started")):
            entries.append(JournalEntry(path, data, RUNNING))
            continue
        if data.get("run_id") and is_stored is not None and is_stored(data):
            if tidy:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            entries.append(JournalEntry(path, data, STORED))
            continue
        entries.append(JournalEntry(path, data, ABORTED))
    return entries


def mark_announced(entry: JournalEntry) -> None:
    """Remember that the user was told about this aborted run (told once at start-up)."""
    entry.data["announced"] = True
    with contextlib.suppress(OSError):
        _write_atomic(entry.path, entry.data)


def forget(entry: JournalEntry) -> None:
    """Remove an aborted run's journal (``wattbench runs --aborted --clear``)."""
    with contextlib.suppress(FileNotFoundError):
        entry.path.unlink()

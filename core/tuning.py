"""Change device settings under a journal, so the originals always come back.

Before the first change of a setting its original value is written to the journal (a JSON
file in the user data dir, or ``WATTBENCH_TUNE_JOURNAL``). :class:`TuneSession` restores
every changed setting on normal exit, on exceptions, on SIGINT and on SIGTERM, then removes
the journal. After a SIGKILL (or a power cut) the journal stays; it names the process that
wrote it (pid, its start time and the boot id), so the next ``wattbench`` command can tell a
journal whose writer is gone (:func:`writer_alive`) and restore it
(:func:`restore_stale_journal`), as ``wattbench tune restore`` does on request. A journal of a
live process (a sweep running now) is never touched.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import platformdirs

from wattbench.core import plugins
from wattbench.core.errors import ConfigError, WattbenchError
from wattbench.core.tuner import Tuner

JOURNAL_ENV = "WATTBENCH_TUNE_JOURNAL"
JOURNAL_VERSION = 1
#: changes at every boot: a journal from an earlier boot was left by a power cut or a reboot
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


class TuneRestoreError(WattbenchError):
    """A setting could not be put back; the journal is kept for `wattbench tune restore`."""


def journal_path() -> Path:
    """Where the journal lives: ``WATTBENCH_TUNE_JOURNAL`` or the user data dir."""
    env = os.environ.get(JOURNAL_ENV)
    if env:
        return Path(env)
    return Path(platformdirs.user_data_dir("wattbench")) / "tune-journal.json"


def read_journal(path: Path) -> dict[str, Any] | None:
    """The journal at ``path``, or None when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"tune journal {path} is not valid JSON ({exc}); fix or delete it"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        raise ConfigError(f"tune journal {path} has no entries; fix or delete it")
    return data


def _write_journal(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)  # atomic: a kill leaves the old journal or the new one


def boot_id() -> str | None:
    """This boot's id (Linux), or None where it cannot be read."""
    try:
        return BOOT_ID_FILE.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of ``pid`` from /proc, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = text[text.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return fields[0], fields[19]  # fields 3 (state) and 22 (starttime) of proc(5)


def writer_identity() -> dict[str, Any]:
    """What the journal records of the process writing it, for :func:`writer_alive`."""
    pid = os.getpid()
    stat = _proc_stat(pid)
    return {"pid": pid, "boot_id": boot_id(), "pid_start": stat[1] if stat else None}


def writer_alive(data: dict[str, Any]) -> bool:
    """Whether the process that wrote the journal ``data`` may still be running.

    Gone: no pid recorded, an earlier boot (power cut, reboot), no such process, a zombie,
    or a different process under the same pid (another start time). Where nothing can be
    told (no /proc, not POSIX) the writer counts as alive: a live sweep's settings must
    never be restored under it.
    """
    pid = data.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    recorded_boot, current_boot = data.get("boot_id"), boot_id()
    if recorded_boot and current_boot and recorded_boot != current_boot:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's process, alive
        pass
    stat = _proc_stat(pid)
    if stat is not None:
        if stat[0] in ("Z", "X"):  # killed, not yet reaped
            return False
        recorded_start = data.get("pid_start")
        if recorded_start is not None and str(recorded_start) != stat[1]:
            return False  # the pid was recycled
    return True


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


TunerFactory = Callable[[str, "Path | None"], Tuner]


def load_tuner(
    name: str, sysfs_root: Path | None = None, options: dict[str, Any] | None = None
) -> Tuner:
    """The registered tuner ``name`` (entry-point group ``wattbench.tuners``), configured
    with ``options`` (:meth:`Tuner.configure`)."""
    cls = plugins.load(plugins.TUNERS, name)
    tuner: Tuner = cls.create(sysfs_root=sysfs_root)
    if options:
        tuner.configure(**options)
    return tuner


class TuneSession:
    """Apply settings; restore them all when the ``with`` block ends, however it ends."""

    def __init__(
        self,
        tuners: dict[str, Tuner],
        *,
        journal: Path | None = None,
        sysfs_root: Path | None = None,
    ) -> None:
        self.tuners = tuners
        self.journal = journal if journal is not None else journal_path()
        self.sysfs_root = sysfs_root
        self.saved: dict[str, Any] = {}
        self._old_handlers: dict[int, Any] = {}

    def __enter__(self) -> TuneSession:
        if self.journal.exists():
            data = _read_quietly(self.journal)
            if data is not None and writer_alive(data):
                raise ConfigError(
                    f"another wattbench (pid {data.get('pid')}) is changing device settings "
                    f"now (journal {self.journal}): wait until it ends"
                )
            raise ConfigError(
                f"a tune journal from an earlier run is at {self.journal}: run "
                f"`wattbench tune restore` first (or delete it if the settings are back)"
            )
        for tuner in self.tuners.values():
            tuner.check_permission()  # all of them before any change
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    @staticmethod
    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        # unwind through __exit__ like Ctrl-C does; 128 + N is the shell's convention
        raise SystemExit(128 + signum)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # a second Ctrl-C during the restore must not leave settings changed
            old_int = None
            if threading.current_thread() is threading.main_thread():
                old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                self.restore_all()
            finally:
                if old_int is not None:
                    signal.signal(signal.SIGINT, old_int)
        finally:
            for sig, handler in self._old_handlers.items():
                signal.signal(sig, handler)
            self._old_handlers.clear()

    def apply(self, name: str, value: Any) -> None:
        """Set tuner ``name`` to ``value``, journalling its original value first."""
        tuner = self.tuners[name]
        if name not in self.saved:
            self.saved[name] = tuner.snapshot()
            _write_journal(
                self.journal,
                {
                    "version": JOURNAL_VERSION,
                    **writer_identity(),
                    "created_at": datetime.now(timezone.utc).isoformat(),
                    "sysfs_root": str(self.sysfs_root) if self.sysfs_root else None,
                    "entries": {
                        n: {"saved": v, "unit": self.tuners[n].unit} for n, v in self.saved.items()
                    },
                },
            )
        tuner.set(value)

    def restore_all(self) -> list[str]:
        """Restore every changed setting (last changed first), then remove the journal."""
        failures = []
        for name in reversed(list(self.saved)):
            try:
                self.tuners[name].restore(self.saved[name])
            except Exception as exc:  # keep restoring the others
                failures.append(f"{name}: {_one_line(exc)}")
        restored = list(self.saved)
        if failures:
            raise TuneRestoreError(
                f"could not restore {'; '.join(failures)}; the journal {self.journal} is kept: "
                f"fix the cause and run `wattbench tune restore`"
            )
        self.saved.clear()
        self.journal.unlink(missing_ok=True)
        return restored


def restore_from_journal(
    path: Path | None = None,
    *,
    sysfs_root: Path | None = None,
    factory: TunerFactory = load_tuner,
) -> list[tuple[str, Any]]:
    """Restore what the journal at ``path`` saved, then remove it; [(name, saved)]."""
    path = path if path is not None else journal_path()
    data = read_journal(path)
    if data is None:
        return []
    root = sysfs_root
    if root is None and data.get("sysfs_root"):
        root = Path(data["sysfs_root"])
    done, failures = [], []
    for name, entry in reversed(list(data["entries"].items())):
        try:
            factory(name, root).restore(entry["saved"])
            done.append((name, entry["saved"]))
        except Exception as exc:
            failures.append(f"{name}: {_one_line(exc)}")
    if failures:
        raise TuneRestoreError(
            f"could not restore {'; '.join(failures)}; the journal {path} is kept"
        )
    path.unlink(missing_ok=True)
    return done


def _read_quietly(path: Path) -> dict[str, Any] | None:
    try:
        return read_journal(path)
    except (OSError, WattbenchError):
        return None


def restore_stale_journal(
    path: Path | None = None, *, factory: TunerFactory = load_tuner
) -> tuple[dict[str, Any], list[tuple[str, Any]]] | None:
    """Restore the journal at ``path`` if the process that wrote it is gone (killed, or
    an earlier boot), then remove it: (journal data, [(name, saved)]). None when there is
    no journal or its writer is alive. Raises :class:`TuneRestoreError` (journal kept)
    when a setting cannot be put back, :class:`ConfigError` when the journal is corrupt."""
    path = path if path is not None else journal_path()
    data = read_journal(path)  # one failed open() when there is none: cheap at every start
    if data is None or writer_alive(data):
        return None
    return data, restore_from_journal(path, factory=factory)

"""``wattbench worker``: one per device; runs the cells of its device's and tags' queues.

One cell at a time (Celery's solo pool, prefetch 1), acknowledged only when finished
(acks late, reject on worker lost). For each delivered cell:

1. :func:`~wattbench.fleet.ledger.claim` it: a message of an older attempt, of a cancelled
   campaign or of a finished cell is dropped; a cell whose deterministic run uuid is already
   in the store (a worker stored it and died before acknowledging) becomes ``done``
   without running again.
2. A cell the device cannot run (adapter not installed, no accelerator) is ``skipped`` with
   the reason.
3. The run: the `wattbench run` protocol with the cell's options. Its result is stored (one
   transaction, under the cell's run uuid) only when it is whole, so a worker killed with
   SIGKILL mid-cell stores nothing; the broker delivers the cell again (its connection
   closed with the message unacknowledged).
4. SIGTERM (systemd stop) stops the run at its next phase or progress tick (the current
   trial's window is closed and discarded), puts the cell back to ``pending``, requeues its
   message and exits.

A heartbeat thread refreshes the device registry every ``heartbeat_s`` seconds.

Upload mode (``--upload-to URL --token T``, no database access): the ledger is reached
through the ingest server's fleet routes (:mod:`wattbench.fleet.api`); a result is saved to
a local SQLite spool, then uploaded under the cell's run uuid before the cell is finished.
Runs the spool still holds (an upload that failed) are uploaded before the next claim, so a
redelivered cell whose run reached the server is acknowledged, not run again.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattbench.core.errors import ConfigError, WattbenchError
from wattbench.fleet import broker, ledger
from wattbench.fleet.api import DbLedger, HttpLedger, LedgerClient
from wattbench.fleet.executor import CellAborted, Executor, load_executor
from wattbench.fleet.metrics import WorkerMetrics
from wattbench.results_db.schema import (
    CELL_CANCELLED,
    CELL_DONE,
    CELL_FAILED,
    CELL_PENDING,
    CELL_SKIPPED,
)

log = logging.getLogger("wattbench.fleet.worker")


class UploadFailed(Exception):
    """A cell's result could not be uploaded (it stays in the local spool)."""


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, WattbenchError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Progress:
    """The runner's progress hook: metrics, and the place a run is stopped."""

    def __init__(self, worker: Worker, campaign_id: str) -> None:
        self.worker = worker
        self.campaign_id = campaign_id
        self._next_check = 0.0

    def _check(self) -> None:
        if self.worker.stopping.is_set():
            raise CellAborted("the worker is shutting down")
        t = time.monotonic()
        if t >= self._next_check:  # at most once a second: one indexed read
            self._next_check = t + 1.0
            if self.worker.book.is_cancelled(self.campaign_id):
                raise CellAborted("campaign cancelled")

    def phase(self, name: str, total: float | None = None) -> None:
        if self.worker.metrics is not None:
            self.worker.metrics.cell_phase(name)
        self._check()

    def update(self, completed: float) -> None:
        if self.worker.stopping.is_set():
            raise CellAborted("the worker is shutting down")


@dataclass
class Worker:
    """The state of one worker process."""

    device: str
    tags: list[str]
    store: Any  # wattbench.results_db.store.Store
    executor: Executor
    metrics: WorkerMetrics | None = None
    heartbeat_s: float = ledger.HEARTBEAT_S
    stopping: threading.Event = field(default_factory=threading.Event)
    current_cell: int | None = None
    #: the campaign ledger (default: the ledger in ``store``)
    ledger_client: LedgerClient | None = None
    #: upload mode: sends the spool's pending runs; returns the run ids now on the server
    upload: Callable[[], set[str]] | None = None

    def __post_init__(self) -> None:
        if self.ledger_client is None:
            self.ledger_client = DbLedger(self.store.engine)

    @property
    def book(self) -> LedgerClient:
        """The campaign ledger."""
        assert self.ledger_client is not None
        return self.ledger_client

    # -- registry --------------------------------------------------------------------------
    def adapters_here(self) -> dict[str, str | None]:
        """adapter -> None when it runs on its default device here, else why not."""
        from wattbench.core import plugins

        out: dict[str, str | None] = {}
        for name in plugins.names(plugins.ADAPTERS):
            try:
                cls = plugins.load(plugins.ADAPTERS, name)
                ok, reason = cls.is_available(cls.default_device)
                out[name] = None if ok else str(reason)
            except Exception as exc:
                out[name] = _one_line(exc)
        return out

    def register(self) -> None:
        self.book.register(
            self.device,
            self.tags,
            socket.gethostname(),
            self.metrics.port if self.metrics else None,
        )

    def scan_adapters(self) -> None:
        """Report which adapters run here (seconds: it imports every runtime), so that
        `campaign submit` skips the cells this device cannot run up front."""
        try:
            self.book.set_adapters(self.device, self.adapters_here())
        except Exception as exc:
            log.warning("adapter scan failed: %s", _one_line(exc))

    def _beat_loop(self, scan: bool) -> None:
        if scan:
            self.scan_adapters()
        while not self.stopping.wait(self.heartbeat_s):
            try:
                self.book.heartbeat(self.device, self.current_cell)
            except Exception as exc:  # the store may be restarting; keep beating
                log.warning("heartbeat failed: %s", _one_line(exc))

    def start_heartbeat(self, scan_adapters: bool = True) -> threading.Thread:
        t = threading.Thread(
            target=self._beat_loop, args=(scan_adapters,), name="wattbench-heartbeat", daemon=True
        )
        t.start()
        return t

    # -- one cell --------------------------------------------------------------------------
    def handle(self, cell_id: int, campaign_id: str, attempt: int) -> str:
        """Run one delivered cell; returns what happened. Raises CellAborted to requeue."""
        book = self.book
        if self.upload is not None:
            self.upload()  # runs left by a failed upload first: their cells become stored
        c = book.claim(cell_id, attempt, self.device)
        if c.action != "run":
            log.info("cell %s: %s", cell_id, c.detail)
            return c.action
        self.current_cell = cell_id
        m = self.metrics
        if m is not None:
            m.cell_started(c.campaign_id, c.cell_index)
        status, inferences = CELL_FAILED, 0
        try:
            reason = self.executor.unavailable(c.params, self.device)
            if reason:
                status = CELL_SKIPPED
                book.finish(cell_id, c.attempt, CELL_SKIPPED, reason)
                return status
            try:
                cfg = self.executor.config(
                    c.params,
                    device=self.device,
                    labels=[f"campaign:{c.campaign_id}", f"cell:{c.cell_index}"],
                )
                result = self.executor.run(cfg, _Progress(self, c.campaign_id))
            except CellAborted as exc:
                if exc.why == "campaign cancelled":
                    status = CELL_CANCELLED
                    book.finish(cell_id, c.attempt, CELL_CANCELLED, exc.why)
                    return status
                status = CELL_PENDING
                book.finish(cell_id, c.attempt, CELL_PENDING, None)
                raise
            except Exception as exc:
                log.exception("cell %s failed", cell_id)
                book.finish(cell_id, c.attempt, CELL_FAILED, _one_line(exc))
                return status
            # Stored under the cell's uuid, whole or not at all (one transaction).
            result = result.model_copy(update={"run_id": c.run_uuid})
            self.store.save_run(result)
            if self.upload is not None and c.run_uuid not in self.upload():
                # kept in the spool; the redelivery uploads it and finds it stored
                raise UploadFailed(f"run {c.run_uuid} not uploaded yet; the cell is requeued")
            if result.valid:
                status, inferences = CELL_DONE, result.inferences
                book.finish(cell_id, c.attempt, CELL_DONE, None)
            else:
                reasons = "; ".join(result.invalid_reasons) or "invalid"
                book.finish(cell_id, c.attempt, CELL_FAILED, f"run invalid: {reasons}")
            return status
        finally:
            self.current_cell = None
            if m is not None:
                m.cell_finished(status, inferences)


#: Upper bound of the worker loop's socket poll. kombu's hub polls with a 1 s timeout when
#: no timer is scheduled (and this worker schedules none: no heartbeats, gossip or events),
#: so a delivery already read into the client's buffer waited up to 1 s (docs/fleet.md).
POLL_TICK_S = 0.05


def _make_poll_tick() -> Any:
    from celery import bootsteps

    class PollTick(bootsteps.StartStopStep):
        """A no-op hub timer every POLL_TICK_S, bounding the hub's poll timeout."""

        requires = ("celery.worker.components:Hub",)

        def start(self, w: Any) -> None:
            if getattr(w, "hub", None) is not None:
                w.hub.call_repeatedly(POLL_TICK_S, _noop)

    return PollTick


def _noop() -> None:
    pass


def default_state_dir(device: str) -> Path:
    """The upload-mode worker's spool folder: the user state directory, per device."""
    import platformdirs

    return Path(platformdirs.user_state_dir("wattbench")) / "worker" / device


def _uploader(store: Any, url: str, token: str) -> Callable[[], set[str]]:
    """Sends the spool's pending runs to ``url``; returns the run ids the server holds."""
    from wattbench.results_db.upload import upload_pending

    def upload() -> set[str]:
        report = upload_pending(store, url, token, max_attempts=3, batch_size=1)
        if report.stopped or report.rejected or report.conflicts:
            log.warning("upload: %s (%s)", report.summary(), report.stopped or "see the server")
        return set(report.created) | set(report.duplicates)

    return upload


def _register_or_explain(
    book: LedgerClient, device: str, tags: list[str], metrics_port: int | None, url: str
) -> None:
    """Register through the server; an unreachable or failing server is one ConfigError."""
    try:
        book.register(device, tags, socket.gethostname(), metrics_port)
    except OSError as exc:
        raise ConfigError(
            f"cannot register {device} with {url}: {_one_line(exc)}: check that "
            f"`wattbench serve` runs there with the fleet routes"
        ) from None


def serve(
    *,
    broker_url: str,
    device: str,
    tags: list[str],
    db: str | None,
    upload_to: str | None = None,
    token: str | None = None,
    state_dir: str | Path | None = None,
    metrics_port: int | None = None,
    queue_prefix: str = broker.DEFAULT_PREFIX,
    heartbeat_s: float = ledger.HEARTBEAT_S,
    executor: str | None = None,
    power: tuple[str, ...] = ("auto",),
    loglevel: str = "INFO",
    scan_adapters: bool = True,
) -> int:
    """Run the worker until SIGTERM/SIGINT; returns its exit code."""
    from celery import signals
    from celery.exceptions import Reject

    from wattbench.results_db.store import Store

    broker.check_name("device", device)
    for t in tags:
        broker.check_name("tag", t)
    broker.check_name("queue prefix", queue_prefix)
    queues = broker.worker_queues(queue_prefix, device, tags)
    book: LedgerClient | None = None
    if upload_to is not None:
        # the token is checked first: a refused worker says one line and opens nothing
        book = HttpLedger(upload_to, token or "")
        _register_or_explain(book, device, list(tags), metrics_port, upload_to)
    logging.basicConfig(
        level=getattr(logging, loglevel.upper(), logging.INFO),
        format=f"%(asctime)s {device} %(levelname)s %(name)s: %(message)s",
    )
    upload: Callable[[], set[str]] | None = None
    if upload_to is not None:
        spool = Path(state_dir) if state_dir else default_state_dir(device)
        spool.mkdir(parents=True, exist_ok=True)
        store = Store.open(f"sqlite:///{spool / 'spool.db'}")
        upload = _uploader(store, upload_to, token or "")
    else:
        store = Store.open(db)
    metrics = WorkerMetrics(device, metrics_port) if metrics_port is not None else None
    worker = Worker(
        device,
        list(tags),
        store,
        load_executor(executor),
        metrics,
        heartbeat_s,
        ledger_client=book,
        upload=upload,
    )
    try:
        worker.register()
    except BaseException:
        store.close()
        raise
    worker.start_heartbeat(scan_adapters)
    if metrics is not None:
        metrics.start_sampler(power)

    app = broker.make_app(broker_url)
    app.steps["worker"].add(_make_poll_tick())
    app.conf.task_queues = [broker.queue(queue_prefix, q) for q in queues]

    @app.task(name=broker.TASK_NAME, acks_late=True, reject_on_worker_lost=True)
    def run_cell(cell_id: int, campaign_id: str, attempt: int = 0) -> None:
        try:
            worker.handle(cell_id, campaign_id, attempt)
        except CellAborted as exc:
            log.info("cell %s requeued: %s", cell_id, exc.why)
            raise Reject(exc.why, requeue=True) from None
        except Exception as exc:  # the store is unreachable: give the cell back
            log.error("cell %s: %s; requeued", cell_id, _one_line(exc))
            time.sleep(2.0)
            raise Reject(_one_line(exc), requeue=True) from None

    def _shutting_down(**_kw: Any) -> None:
        worker.stopping.set()

    signals.worker_shutting_down.connect(_shutting_down, weak=False)
    log.info("worker %s on %s consuming %s", device, broker.describe(broker_url), ", ".join(queues))
    w = app.Worker(
        hostname=f"{device}@{socket.gethostname()}",
        pool_cls="solo",
        concurrency=1,
        loglevel=loglevel.upper(),
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
        quiet=True,
    )
    try:
        w.start()
    finally:
        worker.stopping.set()
        try:
            worker.book.device_stopped(device)
        except Exception as exc:
            log.warning("could not mark %s stopped: %s", device, _one_line(exc))
        if metrics is not None:
            metrics.close()
        store.close()
    return int(getattr(w, "exitcode", 0) or 0)

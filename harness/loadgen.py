"""``--driver loadgen``: the same scenarios issued by MLPerf LoadGen.

LoadGen (``mlcommons-loadgen``, module ``mlperf_loadgen``, the ``loadgen`` extra) owns the
query schedule; wattbench provides the query sample library (QSL) and the system under test
(SUT). One LoadGen *sample* is one prepared batch of ``--batch`` inputs (with the default
``--batch 1`` exactly MLPerf's sample), so LoadGen's samples-per-second figures are batches
per second; the window's ``samples`` count inputs.

The SUT times every sample itself (``clock`` at issue → ``clock`` at completion):

* single-stream: LoadGen's issue call runs the query inline, as the built-in driver does;
* server: samples go into a FIFO served by ``--concurrency`` threads; latency runs from
  LoadGen's issue call, so queueing in the SUT counts (LoadGen's own figures run from the
  scheduled arrival and are kept in the details);
* offline: LoadGen issues everything at once; a sample's latency is its batch's run time.

LoadGen's ``mlperf_log_summary.txt`` and ``mlperf_log_detail.txt`` of the last window are
kept with the run (:meth:`LoadGenDriver.artifacts`); the summary's figures are parsed into
the window's details, and an INVALID result becomes a warning.
"""

from __future__ import annotations

import importlib
import json
import queue
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from wattbench.core.adapter import Session
from wattbench.core.config import RunConfig
from wattbench.core.errors import UnavailableError
from wattbench.harness.scenario_drivers import (
    OfflineDriver,
    ServerDriver,
)
from wattbench.harness.scenarios import ClockNs, OnTick, ScenarioDriver, WindowResult, timed_loop

INSTALL_HINT = "--driver loadgen needs MLPerf LoadGen: pip install 'wattbench[loadgen]'"
SUMMARY_FILE = "mlperf_log_summary.txt"
DETAIL_FILE = "mlperf_log_detail.txt"
#: Offline: LoadGen sizes its one query as expected QPS × min duration × 1.1; aiming 20 %
#: above the calibrated rate keeps "min duration satisfied" despite run-to-run noise.
OFFLINE_QPS_HEADROOM = 1.2
#: Calibration of the expected single-stream latency / offline rate (no energy window open).
CALIBRATION_S = 0.3
CALIBRATION_QUERIES = 10

_LG_SCENARIO = {"single-stream": "SingleStream", "offline": "Offline", "server": "Server"}


def load_loadgen() -> ModuleType:
    """``mlperf_loadgen``, or an :class:`UnavailableError` naming the extra."""
    try:
        return importlib.import_module("mlperf_loadgen")
    except ImportError:
        raise UnavailableError(INSTALL_HINT) from None


_SECTION_TITLES = {"MLPerf Results Summary", "Additional Stats", "Test Parameters Used"}
_PERCENTILE_LINE = re.compile(r"^([\d.]+)\s*(?:th)?\s*percentile latency \(ns\)$")
_NUMBER_KEYS = {
    "Samples per second": "samples_per_s",
    "Completed samples per second": "completed_samples_per_s",
    "Scheduled samples per second": "scheduled_samples_per_s",
    "QPS w/ loadgen overhead": "qps_with_loadgen_overhead",
    "QPS w/o loadgen overhead": "qps_without_loadgen_overhead",
    "Min latency (ns)": "min_latency_ns",
    "Max latency (ns)": "max_latency_ns",
    "Mean latency (ns)": "mean_latency_ns",
    "target_qps": "target_qps",
    "samples_per_query": "samples_per_query",
    "min_duration (ms)": "min_duration_ms",
    "min_query_count": "min_query_count",
    "target_latency (ns)": "target_latency_ns",
}


def parse_summary(text: str) -> dict[str, Any]:
    """The figures of an ``mlperf_log_summary.txt``.

    Returns ``scenario``, ``mode``, ``result`` ("VALID"/"INVALID"), ``valid``, ``checks``
    (e.g. ``{"Min duration satisfied": True}``), ``percentiles_ns`` (``{"50.00": ns, ...}``;
    the headline percentile line of single-stream, e.g. "90.0th", is included), the rates
    and latencies of :data:`_NUMBER_KEYS`, and ``notes`` (recommendations, early stopping,
    warnings and errors LoadGen wrote, one string per line).
    """
    out: dict[str, Any] = {"checks": {}, "percentiles_ns": {}, "notes": []}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or set(line) == {"="} or line in _SECTION_TITLES:
            continue
        if line.startswith("*") or (":" not in line and line[0].islower()):
            out["notes"].append(line.lstrip("* "))
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            if line.startswith(("No warnings", "No errors")):
                continue
            if not line.endswith(":"):
                out["notes"].append(line)
            continue
        if key == "Scenario":
            out["scenario"] = value
        elif key == "Mode":
            out["mode"] = value
        elif key == "SUT name":
            out["sut_name"] = value
        elif key == "Result is":
            out["result"] = value
            out["valid"] = value == "VALID"
        elif value in ("Yes", "NO", "No"):
            out["checks"][key] = value == "Yes"
        elif m := _PERCENTILE_LINE.match(key):
            pct = float(m.group(1))
            out["percentiles_ns"].setdefault(f"{pct:.2f}", _number(value))
        elif key in _NUMBER_KEYS:
            out[_NUMBER_KEYS[key]] = _number(value)
    return out


def parse_detail(text: str) -> dict[str, Any]:
    """The result records of an ``mlperf_log_detail.txt`` (``:::MLLOG {json}`` lines).

    Returns every ``result_*`` key (validity, query count, latencies, invalid reason),
    ``effective_samples_per_query``, ``num_errors``, and the texts LoadGen flagged as errors
    or warnings (``errors``, ``warnings``).
    """
    out: dict[str, Any] = {"errors": [], "warnings": []}
    for line in text.splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        try:
            rec = json.loads(line[len(":::MLLOG ") :])
        except json.JSONDecodeError:
            continue
        key, value, meta = rec.get("key", ""), rec.get("value"), rec.get("metadata") or {}
        if key.startswith("result_") or key in ("num_errors", "effective_samples_per_query"):
            out[key] = value
        if meta.get("is_error"):
            out["errors"].append(f"{key}: {value}")
        elif meta.get("is_warning"):
            out["warnings"].append(f"{key}: {value}")
    return out


def loadgen_percentile_ns(latencies_ns: Sequence[int], percentile: float) -> int:
    """A percentile as LoadGen's summary computes it: the sorted sample at rank
    ``floor(n × p)`` (no interpolation; wattbench's own statistics interpolate)."""
    ordered = sorted(latencies_ns)
    return ordered[min(len(ordered) - 1, int(len(ordered) * percentile / 100.0))]


def _number(value: str) -> float | int | None:
    try:
        f = float(value)
    except ValueError:
        return None
    return int(f) if f.is_integer() and "." not in value else f


class LoadGenDriver(ScenarioDriver):
    """Runs each window as one LoadGen ``PerformanceOnly`` test of the configured scenario."""

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.lg = load_loadgen()  # fail at construction: before anything loads
        self.scenario = config.scenario  # type: ignore[misc]
        self.headline = {  # type: ignore[misc]
            "single-stream": "p90 latency",
            "offline": "samples per second",
            "server": "highest QPS meeting the p99 latency bound",
        }[config.scenario]
        self.concurrency = config.concurrency or 1
        self._server = ServerDriver(config) if config.scenario == "server" else None
        self._expected_latency_ns: int | None = None
        self._offline_qps: float | None = None
        self._artifacts: dict[str, str] = {}

    # -- calibration ------------------------------------------------------------------
    def calibrate(
        self, session: Session, prepared: Sequence[Any], clock: ClockNs = time.perf_counter_ns
    ) -> dict[str, Any]:
        details: dict[str, Any] = {"driver": "loadgen", "loadgen_version": self._version()}
        if self.config.scenario == "single-stream":
            lat, _ = timed_loop(session, prepared, CALIBRATION_S, CALIBRATION_QUERIES, clock)
            self._expected_latency_ns = int(sorted(lat)[len(lat) // 2])
            details["single_stream_expected_latency_ns"] = self._expected_latency_ns
        elif self.config.scenario == "offline":
            probe = OfflineDriver(self.config).window(
                session, prepared, CALIBRATION_S, CALIBRATION_QUERIES, clock
            )
            self._offline_qps = probe.queries / (probe.duration_ns / 1e9)
            details |= {
                "concurrency": self.concurrency,
                "batch": self.config.batch,
                "measured_queries_per_s": self._offline_qps,
                "offline_expected_qps": self._offline_qps * OFFLINE_QPS_HEADROOM,
            }
        else:
            assert self._server is not None
            details |= self._server.calibrate(session, prepared, clock)
        return details

    def _version(self) -> str | None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("mlcommons-loadgen")
        except PackageNotFoundError:
            return None

    # -- one window ---------------------------------------------------------------------
    def _settings(self, n_prepared: int, min_s: float, min_queries: int) -> Any:
        lg = self.lg
        cfg = self.config
        ts = lg.TestSettings()
        ts.scenario = getattr(lg.TestScenario, _LG_SCENARIO[cfg.scenario])
        ts.mode = lg.TestMode.PerformanceOnly
        ts.min_duration_ms = max(1, round(min_s * 1000))
        ts.min_query_count = min_queries
        ts.performance_sample_count_override = n_prepared
        ts.sample_index_rng_seed = cfg.seed
        ts.schedule_rng_seed = cfg.seed
        ts.qsl_rng_seed = cfg.seed
        if cfg.scenario == "single-stream" and self._expected_latency_ns:
            ts.single_stream_expected_latency_ns = self._expected_latency_ns
        elif cfg.scenario == "offline":
            qps = (self._offline_qps or 1.0) * OFFLINE_QPS_HEADROOM
            # LoadGen's one offline query holds expected QPS × min duration × 1.1 samples;
            # keep it at least min_queries.
            ts.offline_expected_qps = max(qps, min_queries / max(min_s, 1e-3))
        elif cfg.scenario == "server":
            assert self._server is not None
            if self._server.target_qps is None:
                raise RuntimeError("LoadGenDriver.window() before calibrate() settled the QPS")
            ts.server_target_qps = self._server.target_qps
            ts.server_target_latency_ns = int(self._server.latency_bound_ms * 1e6)
        return ts

    def window(
        self,
        session: Session,
        prepared: Sequence[Any],
        min_s: float,
        min_queries: int,
        clock: ClockNs = time.perf_counter_ns,
        on_tick: OnTick | None = None,
    ) -> WindowResult:
        lg = self.lg
        run = session.run
        inline = self.config.scenario == "single-stream"
        latencies: list[int] = []
        lock = threading.Lock()
        errors: list[BaseException] = []
        first_issue: list[int] = []
        last_done = 0
        fifo: queue.SimpleQueue[tuple[int, int, int] | None] = queue.SimpleQueue()

        def complete(sample_id: int, t_issue: int, t_done: int) -> None:
            nonlocal last_done
            with lock:
                latencies.append(t_done - t_issue)
                last_done = max(last_done, t_done)
                count = len(latencies)
            lg.QuerySamplesComplete([lg.QuerySampleResponse(sample_id, 0, 0)])
            if on_tick is not None and not count & 63:
                on_tick((t_done - first_issue[0]) / 1e9)

        def execute(sample_id: int, index: int, t_issue: int | None) -> None:
            # Any exception must still complete the sample, or LoadGen waits forever;
            # after one, the rest complete unrun and window() raises it.
            t0 = t1 = clock()
            if not errors:
                try:
                    run(prepared[index])
                    t1 = clock()
                except BaseException as exc:
                    errors.append(exc)
            complete(sample_id, t0 if t_issue is None else t_issue, t1)

        def issue_queries(samples: Sequence[Any]) -> None:
            t = clock()
            if not first_issue:
                first_issue.append(t)
            if inline:
                for s in samples:
                    execute(s.id, s.index, t)
                return
            # offline: latency is the run time (t_issue None); server: from LoadGen's issue
            t_issue = t if self.config.scenario == "server" else -1
            for s in samples:
                fifo.put((s.id, s.index, t_issue))

        def worker() -> None:
            while (item := fifo.get()) is not None:
                sid, index, t_issue = item
                execute(sid, index, None if t_issue < 0 else t_issue)

        def flush_queries() -> None:
            pass

        workers = (
            []
            if inline
            else [
                threading.Thread(target=worker, name=f"wb-loadgen-{i}", daemon=True)
                for i in range(self.concurrency)
            ]
        )
        outdir = Path(tempfile.mkdtemp(prefix="wattbench-loadgen-"))
        sut = lg.ConstructSUT(issue_queries, flush_queries)
        qsl = lg.ConstructQSL(len(prepared), len(prepared), _noop, _noop)
        try:
            for w in workers:
                w.start()
            log = lg.LogSettings()
            log.log_output.outdir = str(outdir)
            log.log_output.copy_summary_to_stdout = False  # stdout may carry --json
            log.log_output.copy_detail_to_stdout = False
            log.enable_trace = False
            settings = self._settings(len(prepared), min_s, min_queries)
            t_start = clock()
            lg.StartTestWithLogSettings(sut, qsl, settings, log)
            t_end = clock()
        finally:
            for _ in workers:
                fifo.put(None)
            for w in workers:
                if w.is_alive():
                    w.join()
            lg.DestroyQSL(qsl)
            lg.DestroySUT(sut)
            summary_text, detail_text = _read_logs(outdir)
            shutil.rmtree(outdir, ignore_errors=True)
        if errors:
            raise errors[0]
        self._artifacts = {SUMMARY_FILE: summary_text, DETAIL_FILE: detail_text}
        return self._result(
            latencies, t_start, t_end, first_issue, last_done, summary_text, detail_text
        )

    def _result(
        self,
        latencies: list[int],
        t_start: int,
        t_end: int,
        first_issue: list[int],
        last_done: int,
        summary_text: str,
        detail_text: str,
    ) -> WindowResult:
        summary = parse_summary(summary_text) if summary_text else {}
        detail = parse_detail(detail_text)
        warnings: list[str] = [f"MLPerf LoadGen error: {e}" for e in detail["errors"]]
        if not summary_text:
            warnings.append(f"MLPerf LoadGen wrote no {SUMMARY_FILE}: its figures are missing")
        elif not summary.get("valid", False):
            failed = [k for k, ok in summary.get("checks", {}).items() if not ok]
            why = f" ({', '.join(failed)}: NO)" if failed else ""
            warnings.append(
                f"MLPerf LoadGen result is {summary.get('result', 'unknown')}{why}: lengthen "
                f"--duration or raise --min-queries (see {SUMMARY_FILE} in the run's artifacts)"
            )
        busy_ns = last_done - first_issue[0] if first_issue and last_done else 0
        details: dict[str, Any] = {
            "driver": "loadgen",
            "loadgen": summary,
            "loadgen_detail": detail,
            # the SUT's own timing of the same samples, ranked as LoadGen ranks them
            "sut_percentiles_ns": {
                f"{p:.2f}": loadgen_percentile_ns(latencies, p) for p in (50.0, 90.0, 99.0)
            }
            if latencies
            else {},
            # StartTest's wall time is the window (it is what the energy reading covers);
            # LoadGen's set-up and log writing around the queries is this part of it.
            "loadgen_overhead_s": max(0, (t_end - t_start) - busy_ns) / 1e9,
        }
        if self.config.scenario == "server" and self._server is not None:
            p99 = summary.get("percentiles_ns", {}).get("99.00")
            details["target_qps"] = self._server.target_qps
            details["latency_bound_ms"] = self._server.latency_bound_ms
            if p99 is not None:
                met = p99 / 1e6 <= self._server.latency_bound_ms
                details["bound_met"] = met
                if not met:
                    warnings.append(
                        f"server: LoadGen's p99 latency {p99 / 1e6:.1f} ms breaks the "
                        f"{self._server.latency_bound_ms:g} ms bound: lower --target-qps"
                    )
        if warnings:
            details["warnings"] = warnings
        return WindowResult(latencies, t_end - t_start, len(latencies) * self.config.batch, details)

    def artifacts(self) -> dict[str, str]:
        """The last window's ``mlperf_log_summary.txt`` and ``mlperf_log_detail.txt``."""
        return dict(self._artifacts)


def _noop(indices: Sequence[int]) -> None:
    """QSL load/unload: the prepared batches are already in memory."""


def _read_logs(outdir: Path) -> tuple[str, str]:
    texts = []
    for name in (SUMMARY_FILE, DETAIL_FILE):
        p = outdir / name
        texts.append(p.read_text(errors="replace") if p.is_file() else "")
    return texts[0], texts[1]

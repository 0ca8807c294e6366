"""The MLPerf LoadGen driver, on the real LoadGen with a sleeping runtime double."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scenario_fakes import PREPARED, SleepSession, config

from wattbench.core.errors import UnavailableError
from wattbench.harness.loadgen import (
    DETAIL_FILE,
    INSTALL_HINT,
    SUMMARY_FILE,
    LoadGenDriver,
    loadgen_percentile_ns,
    parse_detail,
    parse_summary,
)
from wattbench.harness.scenarios import make_driver

# A summary LoadGen 6.0 wrote for a 1 s server run (trimmed of its parameter block).
SERVER_INVALID = """\
================================================
MLPerf Results Summary
================================================
SUT name : PySUT
Scenario : Server
Mode     : PerformanceOnly
Completed samples per second    : 90.17
Result is : INVALID
  Performance constraints satisfied : Yes
  Min duration satisfied : Yes
  Min queries satisfied : Yes
  Early stopping satisfied: NO
Recommendations:
Early Stopping Result:
 * Run unsuccessful.
 * Processed 93 queries.
 * Would need to run at least 366 more queries,
 with the run being successful if every additional
 query were under latency.

================================================
Additional Stats
================================================
Scheduled samples per second : 90.37
Min latency (ns)                : 2160958
Max latency (ns)                : 4476779
Mean latency (ns)               : 2416048
50.00 percentile latency (ns)   : 2240133
90.00 percentile latency (ns)   : 2935222
95.00 percentile latency (ns)   : 3686580
97.00 percentile latency (ns)   : 4047580
99.00 percentile latency (ns)   : 4476779
99.90 percentile latency (ns)   : 4476779

================================================
Test Parameters Used
================================================
samples_per_query : 1
target_qps : 100
target_latency (ns): 100000000
min_duration (ms): 1000

No warnings encountered during test.

No errors encountered during test.
"""


def test_parse_an_invalid_server_summary() -> None:
    s = parse_summary(SERVER_INVALID)
    assert s["scenario"] == "Server" and s["mode"] == "PerformanceOnly"
    assert s["result"] == "INVALID" and s["valid"] is False
    assert s["checks"] == {
        "Performance constraints satisfied": True,
        "Min duration satisfied": True,
        "Min queries satisfied": True,
        "Early stopping satisfied": False,
    }
    assert s["completed_samples_per_s"] == 90.17 and s["scheduled_samples_per_s"] == 90.37
    assert s["percentiles_ns"]["50.00"] == 2240133 and s["percentiles_ns"]["99.00"] == 4476779
    assert s["min_latency_ns"] == 2160958 and s["mean_latency_ns"] == 2416048
    assert s["target_qps"] == 100 and s["target_latency_ns"] == 100_000_000
    assert "Processed 93 queries." in s["notes"]
    assert not any("Additional Stats" in n or "No errors" in n for n in s["notes"])


def test_parse_detail_records() -> None:
    text = "\n".join(
        [
            ':::MLLOG {"key": "result_validity", "value": "VALID", "metadata": {}}',
            ':::MLLOG {"key": "result_query_count", "value": 42, "metadata": {}}',
            ':::MLLOG {"key": "num_errors", "value": 1, "metadata": {}}',
            ':::MLLOG {"key": "error_runtime", "value": "boom", "metadata": {"is_error": true}}',
            ':::MLLOG {"key": "generic_message", "value": "hm", "metadata": {"is_warning": true}}',
            ":::MLLOG {not json",
            "something else",
        ]
    )
    d = parse_detail(text)
    assert d["result_validity"] == "VALID" and d["result_query_count"] == 42
    assert d["num_errors"] == 1
    assert d["errors"] == ["error_runtime: boom"] and d["warnings"] == ["generic_message: hm"]


def test_loadgen_percentile_is_the_floor_rank() -> None:
    lat = list(range(100, 0, -1))  # 1..100, unsorted
    assert loadgen_percentile_ns(lat, 50) == 51  # sorted[50]
    assert loadgen_percentile_ns(lat, 90) == 91
    assert loadgen_percentile_ns(lat, 99.9) == 100
    assert loadgen_percentile_ns([7], 99) == 7


def test_without_loadgen_it_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlperf_loadgen", None)  # import now raises ImportError
    with pytest.raises(UnavailableError) as exc:
        make_driver(config(driver="loadgen"))
    assert str(exc.value) == INSTALL_HINT
    assert "pip install 'wattbench[loadgen]'" in INSTALL_HINT


pytest.importorskip("mlperf_loadgen", reason="needs MLPerf LoadGen (wattbench[loadgen])")


def test_single_stream_valid_logs_and_own_timing_agree() -> None:
    d = make_driver(config(driver="loadgen"))
    assert isinstance(d, LoadGenDriver) and d.scenario == "single-stream"
    session = SleepSession(0.002)
    cal = d.calibrate(session, PREPARED)
    assert cal["driver"] == "loadgen" and cal["single_stream_expected_latency_ns"] >= 2_000_000
    session.runs = 0
    win = d.window(session, PREPARED, 0.3, 20)
    lg = win.details["loadgen"]
    assert lg["scenario"] == "SingleStream" and lg["result"] == "VALID", lg
    assert "warnings" not in win.details
    detail = win.details["loadgen_detail"]
    assert detail["result_validity"] == "VALID" and detail["num_errors"] == 0
    # every query LoadGen counted was timed by the SUT, and run once
    assert win.queries == detail["result_query_count"] == session.runs
    assert win.samples == win.queries
    assert win.duration_ns >= 0.3e9
    # the same queries timed twice: issue→complete in the SUT vs LoadGen's own clock
    ours = [win.details["sut_percentiles_ns"][k] for k in ("50.00", "90.00")]
    theirs = [lg["percentiles_ns"]["50.00"], lg["percentiles_ns"]["90.00"]]
    assert ours == pytest.approx(theirs, rel=0.05)
    logs = d.artifacts()
    assert set(logs) == {SUMMARY_FILE, DETAIL_FILE}
    assert "Result is : VALID" in logs[SUMMARY_FILE]
    assert logs[DETAIL_FILE].startswith(":::MLLOG")


def test_offline_issues_everything_to_the_workers() -> None:
    d = LoadGenDriver(config(scenario="offline", driver="loadgen", concurrency=2, batch=2))
    session = SleepSession(0.004)
    cal = d.calibrate(session, PREPARED)
    assert cal["concurrency"] == 2 and cal["offline_expected_qps"] > cal["measured_queries_per_s"]
    session.runs = session.max_in_flight = 0
    win = d.window(session, PREPARED, 0.3, 10)
    lg, detail = win.details["loadgen"], win.details["loadgen_detail"]
    assert lg["scenario"] == "Offline" and lg["valid"] is True, lg
    assert win.queries == detail["effective_samples_per_query"] == session.runs
    assert win.samples == 2 * win.queries  # a LoadGen sample is one prepared batch
    assert session.max_in_flight == 2
    assert min(win.latencies_ns) >= 0.004e9  # a sample's run time, not its wait in the queue
    assert np.percentile(win.latencies_ns, 50) < 0.05e9


def test_server_short_run_is_invalid_and_says_so() -> None:
    d = LoadGenDriver(
        config(scenario="server", driver="loadgen", target_qps=100.0, latency_bound_ms=50.0)
    )
    session = SleepSession(0.002)
    cal = d.calibrate(session, PREPARED)
    assert cal["target_qps"] == 100.0 and cal["search"] == []
    win = d.window(session, PREPARED, 0.3, 10)
    lg = win.details["loadgen"]
    assert lg["scenario"] == "Server" and lg["target_qps"] == 100
    assert lg["target_latency_ns"] == 50_000_000
    # ~30 queries cannot satisfy LoadGen's early-stopping rule for p99
    assert lg["valid"] is False and lg["checks"]["Early stopping satisfied"] is False
    (warning,) = win.details["warnings"]
    assert "INVALID" in warning and "Early stopping satisfied: NO" in warning
    assert win.details["bound_met"] is True  # 2 ms queries at 100 QPS: far within 50 ms
    assert win.queries == session.runs >= 10  # a given QPS: calibrate() ran nothing
    assert "Result is : INVALID" in d.artifacts()[SUMMARY_FILE]


@pytest.mark.parametrize(("scenario", "concurrency"), [("single-stream", 1), ("offline", 2)])
def test_a_runtime_error_ends_the_test_and_propagates(scenario: str, concurrency: int) -> None:
    d = LoadGenDriver(config(scenario=scenario, driver="loadgen", concurrency=concurrency))
    d.calibrate(SleepSession(0.001), PREPARED)
    with pytest.raises(RuntimeError, match="exploded"):
        d.window(SleepSession(0.001, fail_after=3), PREPARED, 0.2, 5)

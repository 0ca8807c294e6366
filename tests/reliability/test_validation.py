# ruff: noqa: E501  (the bad-input table reads best one case per line)
"""Plausibility rules (core/validation.py) and the places that apply them.

``BAD_INPUTS`` is the bad-input table of docs/reliability.md: each entry is refused with
its JSON path by ``validate_result``, by the ingest API (422) and by ``wattbench
import``, and nothing is written.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import DEVICE, local_store

from wattbench.core.results import RunResult
from wattbench.core.validation import (
    CLOCK_SKEW_S,
    RATIO_TOLERANCE,
    Problem,
    describe_problems,
    validate_result,
)
from wattbench.results_db.store import Store
from wattbench.results_db.tokens import create_token
from wattbench.results_db.transfer import import_runs
from wattbench.results_db.upload import upload_pending


def _trial(r: RunResult, k: int, **update: Any) -> RunResult:
    t = r.trials[k].model_copy(update=update)
    return r.model_copy(update={"trials": [*r.trials[:k], t, *r.trials[k + 1 :]]})


def _reading(r: RunResult, **update: Any) -> RunResult:
    e = r.trials[0].energy[0].model_copy(update=update)
    return _trial(r, 0, energy=[e, *r.trials[0].energy[1:]])


def _summary(r: RunResult, **update: Any) -> RunResult:
    return r.model_copy(update={"energy": [r.energy[0].model_copy(update=update)]})


def _latency(r: RunResult, **update: Any) -> RunResult:
    return r.model_copy(update={"latency": r.latency.model_copy(update=update)})


NOW = datetime.now(timezone.utc)

#: (case, how the run is spoiled, the JSON path refused). The docs' bad-input table.
BAD_INPUTS: list[tuple[str, Callable[[RunResult], RunResult], str]] = [
    ("negative throughput", lambda r: r.model_copy(update={"throughput_ips": -50.0}), "throughput_ips"),
    ("negative inferences", lambda r: r.model_copy(update={"inferences": -1}), "inferences"),
    ("NaN load time", lambda r: r.model_copy(update={"load_ms": float("nan")}), "load_ms"),
    ("infinite trial energy", lambda r: _reading(r, gross_j=float("inf")), "trials[0].energy[0].gross_j"),
    ("negative idle power", lambda r: _reading(r, idle_w=-1.0), "trials[0].energy[0].idle_w"),
    ("negative latency", lambda r: _latency(r, min_ms=-0.5), "latency.min_ms"),
    ("p90 below p50", lambda r: _latency(r, p90_ms=r.latency.p50_ms / 2), "latency.p90_ms"),
    ("p99 above max", lambda r: _latency(r, p99_ms=r.latency.max_ms * 2, p999_ms=r.latency.max_ms * 2), "latency.max_ms"),
    ("inferences/J ≠ inferences ÷ J", lambda r: _summary(r, inferences_per_joule=r.energy[0].inferences_per_joule * 2), "energy[0].inferences_per_joule"),
    ("trial throughput ≠ inferences ÷ s", lambda r: _trial(r, 1, throughput_ips=r.trials[1].throughput_ips * 1.5), "trials[1].throughput_ips"),
    ("run throughput ≠ inferences ÷ s", lambda r: r.model_copy(update={"throughput_ips": r.throughput_ips * 3}), "throughput_ips"),
    ("net above gross", lambda r: _summary(r, net_j=r.energy[0].gross_j * 2), "energy[0].net_j"),
    ("finished in the future", lambda r: r.model_copy(update={"finished_at": NOW + timedelta(days=1)}), "finished_at"),
    ("finished before started", lambda r: r.model_copy(update={"finished_at": r.started_at - timedelta(seconds=1)}), "finished_at"),
    ("run id not a UUID", lambda r: r.model_copy(update={"run_id": "1; DROP TABLE runs"}), "run_id"),
    ("10 kB device name", lambda r: r.model_copy(update={"device": r.device | {"name": "d" * 10_000}}), "device.name"),
    ("10 kB label", lambda r: r.model_copy(update={"labels": ["x" * 10_000]}), "labels[0]"),
    ("101 labels", lambda r: r.model_copy(update={"labels": [f"l{i}" for i in range(101)]}), "labels"),
    ("control character in a label", lambda r: r.model_copy(update={"labels": ["a\x1b[31mred"]}), "labels[0]"),
    ("control character in the model name", lambda r: r.model_copy(update={"model": r.model.model_copy(update={"name": "m\r\nX-Injected: 1"})}), "model.name"),
    ("NUL in a warning", lambda r: r.model_copy(update={"warnings": ["a\x00b"]}), "warnings[0]"),
    ("NaN deep in the environment", lambda r: r.model_copy(update={"environment": r.environment | {"x": {"y": [1.0, float("nan")]}}}), "environment.x.y[1]"),
    ("negative histogram count", lambda r: r.model_copy(update={"latency_histogram": [(1.0, -3)]}), "latency_histogram[0]"),
    ("wrong type of a device fact", lambda r: r.model_copy(update={"device": r.device | {"memory_bytes": "lots"}}), "device.memory_bytes"),
    ("measured energy without uncertainty", lambda r: _summary(r, uncertainty_j=None), "energy[0].uncertainty_j"),
]  # fmt: skip


def _paths(problems: list[Problem]) -> list[str]:
    return [p.path for p in problems]


def test_a_real_run_is_plausible(base_result: RunResult) -> None:
    assert validate_result(base_result) == []
    again = RunResult.model_validate_json(base_result.model_dump_json())
    assert validate_result(again) == []


@pytest.mark.parametrize(("case", "spoil", "path"), BAD_INPUTS, ids=[c for c, _, _ in BAD_INPUTS])
def test_each_rule(
    base_result: RunResult, case: str, spoil: Callable[[RunResult], RunResult], path: str
) -> None:
    problems = validate_result(spoil(base_result))
    assert path in _paths(problems), (case, problems)
    line = describe_problems(problems)
    assert "\n" not in line and path in line


def test_a_measured_figure_without_uncertainty_is_refused_naming_reader_and_remedy(
    base_result: RunResult, tmp_path: Path
) -> None:
    from wattbench.core.errors import ImplausibleResultError
    from wattbench.core.power import EnergyMethod
    from wattbench.harness.journal import store_result

    head = base_result.energy[0]
    assert head.method is not EnergyMethod.ESTIMATED and head.uncertainty_j is not None
    bad = _summary(base_result, uncertainty_j=None)
    problems = validate_result(bad)
    assert _paths(problems) == ["energy[0].uncertainty_j"]
    line = describe_problems(problems)
    assert f"reader {head.reader!r}" in line and "must report its accuracy" in line
    assert "docs/measurement.md" in line and "\n" not in line
    # the local store (what `wattbench run` saves through) refuses it: one line, nothing kept
    store = local_store(tmp_path)
    with pytest.raises(ImplausibleResultError, match="must report its accuracy") as info:
        store_result(bad, store)
    assert "\n" not in str(info.value)
    assert store.count_runs() == 0
    # An estimate is a model, not a measurement: its uncertainty may be unknown.
    estimate = _summary(
        base_result, uncertainty_j=None, method=EnergyMethod.ESTIMATED, estimated=True
    )
    assert validate_result(estimate) == []


def test_tolerances_are_tolerated(base_result: RunResult) -> None:
    r = base_result
    ipj = r.energy[0].inferences_per_joule
    assert ipj is not None
    near = _summary(r, inferences_per_joule=ipj * (1 + RATIO_TOLERANCE / 2))
    assert validate_result(near) == []
    # "now" is the receiver's clock: the run's own end, not import time (the session
    # fixture may be built minutes after this module was imported).
    now = r.finished_at
    skewed = r.model_copy(update={"finished_at": now + timedelta(seconds=CLOCK_SKEW_S / 2)})
    assert validate_result(skewed, now=now) == []
    noisy = _summary(r, net_j=-0.5)  # net energy may be negative (a noisy baseline)
    assert validate_result(noisy) == []
    hostile_ok = r.model_copy(
        update={"labels": ["x'); DROP TABLE runs; --", "<script>alert(1)</script>"]}
    )
    assert validate_result(hostile_ok) == []  # stored verbatim, not refused


def test_problems_are_bounded(base_result: RunResult) -> None:
    r = base_result.model_copy(update={"warnings": ["\x00"] * 500})
    problems = validate_result(r)
    assert 0 < len(problems) <= 50


def _client(store: Store) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from wattbench.results_db.server import create_app

    client = TestClient(create_app(store))
    client.headers["Authorization"] = f"Bearer {create_token(store, DEVICE)}"
    client.store = store  # type: ignore[attr-defined]
    return client


@pytest.fixture
def api(db_url: str) -> Any:
    store = Store.open(db_url)
    yield _client(store)
    store.close()


@pytest.fixture(scope="module")
def sqlite_api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('table') / 'central.db'}")
    yield _client(store)
    store.close()


def _json_default(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _post(api: Any, r: RunResult) -> Any:
    # NaN/Infinity are not JSON: send them as a careless producer (allow_nan) would
    body = json.dumps(r.model_dump(), default=_json_default, allow_nan=True)
    return api.post("/api/v1/runs", content=body)


def test_negative_throughput_upload_is_refused_and_never_ranks(
    api: Any, new_run: Callable[..., RunResult]
) -> None:
    good = new_run()
    assert api.post("/api/v1/runs", content=good.model_dump_json()).status_code == 201
    bad = new_run(throughput_ips=-1234.0)
    resp = _post(api, bad)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "invalid_run" and "throughput_ips" in body["detail"]
    assert body["problems"] == [{"path": "throughput_ips", "message": "-1234.0 is negative"}]
    assert api.store.count_runs() == 1
    board = api.get("/api/v1/leaderboard").json()
    assert [x["run_id"] for x in board] == [good.run_id]


def test_the_api_names_every_bad_field(api: Any, base_result: RunResult) -> None:
    spoiled = base_result
    for _case, spoil, _path in BAD_INPUTS[:13]:  # numbers and times
        spoiled = spoil(spoiled)
    resp = _post(api, spoiled)
    if resp.status_code == 400:  # NaN / Infinity in the body: not JSON at all
        assert resp.json()["error"] == "malformed_json"
        spoiled = spoiled.model_copy(update={"load_ms": 1.0})
        spoiled = _reading(spoiled, gross_j=1.0)
        resp = _post(api, spoiled)
    assert resp.status_code == 422, resp.text
    paths = {p["path"] for p in resp.json()["problems"]}
    assert {"throughput_ips", "inferences", "latency.p90_ms", "finished_at"} <= paths
    assert api.store.count_runs() == 0


@pytest.mark.parametrize(("case", "spoil", "path"), BAD_INPUTS, ids=[c for c, _, _ in BAD_INPUTS])
def test_bad_input_table_through_the_api(
    sqlite_api: Any,
    base_result: RunResult,
    case: str,
    spoil: Callable[[RunResult], RunResult],
    path: str,
) -> None:
    """Each bad input: 4xx with its path (NaN/Infinity are not JSON: 400), nothing stored."""
    api = sqlite_api
    resp = _post(api, spoil(base_result))
    assert resp.status_code in (400, 422), (case, resp.text)
    body = resp.json()
    if resp.status_code == 422:
        assert path in {p["path"] for p in body.get("problems", [])} or path in body["detail"]
    else:
        assert body["error"] == "malformed_json"
    assert api.store.count_runs() == 0


def test_import_and_database_upload_refuse_implausible_runs(
    tmp_path: Path, new_run: Callable[..., RunResult]
) -> None:
    target = Store.open(f"sqlite:///{tmp_path / 'target.db'}")
    bad, good = new_run(throughput_ips=-1.0), new_run()
    path = tmp_path / "in.jsonl"
    path.write_text(bad.model_dump_json() + "\n" + good.model_dump_json() + "\n")
    lines: list[str] = []
    report = import_runs(target, str(path), on_problem=lines.append)
    assert report.created == [good.run_id] and [k for k, _ in report.invalid] == [bad.run_id]
    assert len(lines) == 1 and "throughput_ips" in lines[0] and "in.jsonl:1" in lines[0]
    assert target.count_runs() == 1
    device = local_store(tmp_path)
    device.save_run(bad)  # an older wattbench recorded it
    up = upload_pending(device, str(target.engine.url), None)
    assert [k for k, _ in up.rejected] == [bad.run_id] and "throughput_ips" in up.rejected[0][1]
    assert target.count_runs() == 1 and device.pending_run_ids() == [bad.run_id]

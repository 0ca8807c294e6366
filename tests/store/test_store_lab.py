"""Store features of migration 0002 on SQLite and PostgreSQL: traces, histograms,
payloads, device inventory, the upload queue, the top-N leaderboard, concurrent writers."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

import wattbench.results_db.leaderboard as leaderboard_mod
from wattbench.core.power import EnergyMethod, EnergyScope
from wattbench.core.results import RunResult
from wattbench.results_db.schema import (
    UPLOAD_DONE,
    UPLOAD_PENDING,
    UPLOAD_RECEIVED,
    Device,
    EnergyMeasurement,
    LatencyBin,
    PowerTrace,
    Run,
    RunPayload,
)
from wattbench.results_db.store import MAX_TRACE_POINTS, Store


def with_long_trace(r: RunResult, n: int) -> RunResult:
    trace = [(i * 0.001, 5.0 + (i % 7)) for i in range(n)]
    e0 = r.trials[0].energy[0].model_copy(update={"trace": trace})
    t0 = r.trials[0].model_copy(update={"energy": [e0]})
    return r.model_copy(update={"trials": [t0, *r.trials[1:]]})


def test_traces_go_to_their_own_table_bounded(db_url: str, new_run: Callable[..., Any]) -> None:
    store = Store.open(db_url)
    r = with_long_trace(new_run(), 5003)
    store.save_run(r)
    traces = store.power_traces(r.run_id)
    long = traces[(0, "fake")]
    assert len(long) == MAX_TRACE_POINTS
    assert long[0] == (0.0, 5.0) and long[-1] == r.trials[0].energy[0].trace[-1]
    assert traces[(1, "fake")] == r.trials[1].energy[0].trace  # short ones verbatim
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.max(PowerTrace.n_points))) == MAX_TRACE_POINTS
        details = conn.scalars(select(EnergyMeasurement.details)).all()
    assert details and all("trace" not in d for d in details)


def test_latency_histogram_rows(db_url: str, new_run: Callable[..., Any]) -> None:
    store = Store.open(db_url)
    hist = [(0.5, 3), (1.0, 2000), (1.122, 7)]
    r = new_run().model_copy(update={"latency_histogram": hist})
    store.save_run(r)
    assert store.latency_histogram(r.run_id) == hist
    # Fixed edges: the merged histogram of many runs is one GROUP BY.
    store.save_run(new_run().model_copy(update={"latency_histogram": [(1.0, 5)]}))
    with store.engine.connect() as conn:
        merged = conn.execute(
            select(LatencyBin.upper_ms, func.sum(LatencyBin.count))
            .group_by(LatencyBin.upper_ms)
            .order_by(LatencyBin.upper_ms)
        ).all()
    assert [(u, int(c)) for u, c in merged] == [(0.5, 3), (1.0, 2005), (1.122, 7)]


def test_local_runs_come_back_exactly_central_ones_rebuilt(
    db_url: str, new_run: Callable[..., Any]
) -> None:
    store = Store.open(db_url)
    local, central = new_run(), new_run()
    store.save_run(local)
    store.save_run(central, upload_state=UPLOAD_RECEIVED, keep_payload=False)
    assert store.load_result(local.run_id) == local
    rebuilt = store.load_result(central.run_id)
    assert rebuilt is not None
    assert rebuilt.model_copy(update={"model": central.model}) == central
    assert str(rebuilt.model.path) == "."  # the only thing the rows do not keep
    assert store.load_result("00000000-0000-0000-0000-000000000000") is None
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(RunPayload)) == 1


def test_device_inventory_is_stored_and_updated(db_url: str, new_run: Callable[..., Any]) -> None:
    store = Store.open(db_url)
    first = new_run()
    first = first.model_copy(
        update={
            "device": first.device
            | {
                "nameplate_power_w": 15.0,
                "purchase_price": 249.0,
                "currency": "EUR",
                "rack": "R2",
                "location": "lab B, shelf 3",
                "tags": ["fanless", "jetson"],
            }
        }
    )
    store.save_run(first)
    moved = new_run()
    store.save_run(moved.model_copy(update={"device": moved.device | {"location": "lab C"}}))
    with store.engine.connect() as conn:
        dev = conn.execute(select(Device)).one()
    assert (dev.nameplate_power_w, dev.purchase_price, dev.currency) == (15.0, 249.0, "EUR")
    assert (dev.rack, dev.location, dev.tags) == ("R2", "lab C", ["fanless", "jetson"])


def test_upload_queue_bookkeeping(db_url: str, new_run: Callable[..., Any]) -> None:
    store = Store.open(db_url)
    a, b, c = new_run(), new_run(), new_run()
    for r in (a, b):
        store.save_run(r)
    store.save_run(c, upload_state=UPLOAD_RECEIVED, keep_payload=False)
    assert store.pending_run_ids() == [a.run_id, b.run_id]
    store.record_upload_failure(a.run_id, "HTTP 503: down")
    store.record_upload_failure(a.run_id, "HTTP 503: still down")
    store.mark_uploaded(b.run_id)
    assert store.pending_run_ids() == [a.run_id]
    assert store.count_pending() == 1
    with store.engine.connect() as conn:
        rows = {
            r.uuid: r
            for r in conn.execute(
                select(
                    Run.uuid,
                    Run.upload_state,
                    Run.upload_attempts,
                    Run.upload_last_error,
                    Run.uploaded_at,
                )
            )
        }
    assert rows[a.run_id].upload_state == UPLOAD_PENDING
    assert (rows[a.run_id].upload_attempts, rows[a.run_id].upload_last_error) == (
        2,
        "HTTP 503: still down",
    )
    assert rows[b.run_id].upload_state == UPLOAD_DONE and rows[b.run_id].uploaded_at
    assert rows[b.run_id].upload_last_error is None
    assert rows[c.run_id].upload_state == UPLOAD_RECEIVED


def test_top_n_leaderboard_equals_the_full_ranking_cut(
    db_url: str, new_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.open(db_url)
    base = new_run()
    variants: list[RunResult] = []
    for i, (ipj, valid, scenario, suite, method, energy_scope) in enumerate(
        itertools.product(
            (None, 50.0, 200.0, 200.0),
            (True, False),
            ("single-stream", "offline"),
            ("fake", "other"),
            (EnergyMethod.COUNTER, EnergyMethod.ESTIMATED),
            (EnergyScope.CHIP, EnergyScope.WALL),
        )
    ):
        r = new_run(ipj=ipj) if ipj is not None else new_run()
        head = r.energy[0].model_copy(update={"method": method, "scope": energy_scope})
        if ipj is None:
            head = head.model_copy(update={"inferences_per_joule": None})
        variants.append(
            r.model_copy(
                update={
                    "valid": valid,
                    "scenario": scenario,
                    "suite": suite,
                    "energy": [head],
                    "started_at": base.started_at,
                    "labels": [f"v{i}"],
                }
            )
        )
    for r in variants:
        store.save_run(r)
    for include_invalid, hide_estimated in itertools.product((False, True), repeat=2):
        full = store.leaderboard(include_invalid=include_invalid, hide_estimated=hide_estimated)
        for limit in (1, 3, 100):
            top = store.leaderboard(
                include_invalid=include_invalid, hide_estimated=hide_estimated, limit=limit
            )
            assert top == [r for r in full if r.rank <= limit], (include_invalid, limit)
    top = store.leaderboard("fake", hide_estimated=True, limit=3)
    assert {r.suite for r in top} == {"fake"}
    offline_wall = [r for r in top if r.scenario == "offline" and r.energy_scope == "wall"]
    assert [r.inferences_per_joule for r in offline_wall] == [200.0, 200.0, 50.0]
    assert [r.rank for r in offline_wall] == [1, 2, 3]
    # like with like: each (scope, measured/estimated) group has its own rank 1
    assert {(r.rank_group, r.rank) for r in top if r.rank == 1} == {
        (f"fake {r.suite_version} · {sc} · edge · {scope} · measured", 1)
        for r in top[:1]
        for sc in ("offline", "single-stream")
        for scope in ("chip", "wall")
    }
    assert {r.energy_scope for r in store.leaderboard(scope="chip", limit=3)} == {"chip"}
    assert {r.energy_scope for r in store.leaderboard(scope="wall")} == {"wall"}
    assert store.leaderboard(limit=0) == []
    # More groups than one compound SELECT may hold: read in several statements.
    monkeypatch.setattr(leaderboard_mod, "_UNION_TERMS", 3)
    full = store.leaderboard(include_invalid=True)
    assert store.leaderboard(include_invalid=True, limit=3) == [r for r in full if r.rank <= 3]


@pytest.mark.parametrize("threads", [20])
def test_concurrent_writers_store_each_run_once(
    db_url: str, new_run: Callable[..., Any], threads: int
) -> None:
    """Every thread saves the same 5 runs plus its own, on a device new to the store."""
    store = Store.open(db_url)
    shared = [new_run(device="fresh-device") for _ in range(5)]
    own = [new_run(device="fresh-device") for _ in range(threads)]
    outcomes: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)
    lock = threading.Lock()

    def work(i: int) -> None:
        try:
            barrier.wait()
            for r in [*shared, own[i]]:
                created = store.save_run(r)
                with lock:
                    outcomes.append(created)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not errors, errors[0]
    assert outcomes.count(True) == len(shared) + threads
    assert outcomes.count(False) == len(shared) * (threads - 1)
    assert store.count_runs() == len(shared) + threads
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count(Device.id))) == 1

"""Run ids and label selectors resolved against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from gate_factory import dump, make_run

from wattbench.analysis.gate import record_from_result
from wattbench.analysis.gate_queries import find_run, select_labelled
from wattbench.core.errors import ConfigError
from wattbench.core.results import RunResult
from wattbench.harness.cli.gate import resolve_runs
from wattbench.results_db.store import Store

BASE = [4.00, 4.04, 3.97, 4.02, 3.99]
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def save(store: Store, *runs: RunResult) -> None:
    for r in runs:
        assert store.save_run(r) is True


def test_a_stored_run_reads_back_exactly_as_its_json(db_url: str) -> None:
    store = Store.open(db_url)
    result = make_run(BASE, labels=["git:abc", "branch:main"], started_at=at(0))
    save(store, result)
    from_db = find_run(store, result.run_id)
    from_json = record_from_result(result, source="json")
    assert dataclasses.replace(from_db, source="json") == from_json


def test_run_id_prefix_unique_ambiguous_or_missing(db_url: str) -> None:
    store = Store.open(db_url)
    a = make_run(BASE).model_copy(update={"run_id": "abcd1111-0000-4000-8000-000000000001"})
    b = make_run(BASE).model_copy(update={"run_id": "abcd2222-0000-4000-8000-000000000002"})
    save(store, a, b)
    assert find_run(store, "ABCD1").run_id == a.run_id
    assert find_run(store, b.run_id).run_id == b.run_id
    with pytest.raises(ConfigError, match=r"matches 2 runs .*give more characters"):
        find_run(store, "abcd")
    with pytest.raises(ConfigError, match="no run with id 'ffff'"):
        find_run(store, "ffff")
    with pytest.raises(ConfigError, match="too short"):
        find_run(store, "ab")


def test_label_selector_takes_the_latest_n_of_that_exact_label(db_url: str) -> None:
    store = Store.open(db_url)
    runs = [make_run(BASE, labels=["branch:main"], started_at=at(i)) for i in range(4)]
    decoys = [
        make_run(BASE, labels=["branch:mainline"], started_at=at(10)),
        make_run(BASE, labels=["x-branch:main"], started_at=at(11)),
        make_run(BASE, labels=["main"], started_at=at(12)),
    ]
    save(store, *reversed(runs), *decoys)  # insertion order must not matter
    got = select_labelled(store, "branch:main", limit=2)
    assert [r.run_id for r in got.records] == [runs[3].run_id, runs[2].run_id]
    assert [r.run_id for r in select_labelled(store, "branch:main").records] == [
        r.run_id for r in reversed(runs)
    ]
    with pytest.raises(ConfigError, match="no runs labelled 'branch:nope'"):
        select_labelled(store, "branch:nope")


@pytest.mark.parametrize(
    "label", ["x'); DROP TABLE runs; --", "50%_off", "ünïcødé ⚡", 'quo"te', "back\\slash"]
)
def test_labels_with_sql_and_json_metacharacters(db_url: str, label: str) -> None:
    store = Store.open(db_url)
    run = make_run(BASE, labels=[label, "other"])
    # "50X_off" would match an unescaped LIKE '%50%_off%'
    save(store, run, make_run(BASE, labels=["other", "50X_off", "150%_off"]))
    assert [r.run_id for r in select_labelled(store, label).records] == [run.run_id]


def test_baseline_selection_matches_the_candidates_configuration(db_url: str) -> None:
    store = Store.open(db_url)
    fp32 = make_run(BASE, labels=["branch:main"], started_at=at(0))
    int8 = make_run(BASE, labels=["branch:main"], started_at=at(1), precision="int8")
    save(store, fp32, int8)
    key = record_from_result(fp32, source="x").key
    got = select_labelled(store, "branch:main", limit=5, key=key)
    assert [r.run_id for r in got.records] == [fp32.run_id]
    assert got.skipped_other_config == 1
    assert (
        "1 run(s) labelled 'branch:main' with another configuration" in got.notes("branch:main")[0]
    )
    other = dataclasses.replace(key, batch=8)
    with pytest.raises(
        ConfigError, match=r"differs in precision \(baseline int8, candidate fp16\)"
    ):
        select_labelled(store, "branch:main", key=dataclasses.replace(key, precision="fp16"))
    with pytest.raises(ConfigError, match=r"batch \(baseline 1, candidate 8\)"):
        select_labelled(store, "branch:main", key=other)


def test_baseline_selection_passes_over_invalid_runs_and_says_so(db_url: str) -> None:
    store = Store.open(db_url)
    good = [make_run(BASE, labels=["branch:main"], started_at=at(i)) for i in range(2)]
    bad = make_run(BASE, labels=["branch:main"], started_at=at(5), valid=False)
    save(store, *good, bad)
    got = select_labelled(store, "branch:main", limit=2, valid_only=True)
    assert [r.run_id for r in got.records] == [good[1].run_id, good[0].run_id]
    assert got.skipped_invalid == (bad.run_id,)
    assert "1 invalid run(s)" in got.notes("branch:main")[0]
    # the candidate side keeps invalid runs: the gate must see them and refuse
    assert select_labelled(store, "branch:main", limit=1).records[0].run_id == bad.run_id


def test_all_invalid_baseline_is_an_error_naming_the_reason(db_url: str) -> None:
    store = Store.open(db_url)
    save(store, make_run(BASE, labels=["branch:main"], valid=False))
    with pytest.raises(ConfigError, match=r"are invalid .*quality check failed"):
        select_labelled(store, "branch:main", valid_only=True)


def test_resolve_runs_mixes_files_and_selectors_and_excludes_the_candidate(
    db_url: str, tmp_path: Path
) -> None:
    store = Store.open(db_url)
    main = [make_run(BASE, labels=["branch:main"], started_at=at(i)) for i in range(3)]
    cand = make_run(BASE, labels=["branch:main", "git:feed"], started_at=at(9))
    save(store, *main, cand)
    got = resolve_runs("label:branch:main~2", "git:feed", db_url)
    assert [r.run_id for r in got.candidate] == [cand.run_id]
    assert [r.run_id for r in got.baseline] == [main[2].run_id, main[1].run_id]
    path = dump(cand, tmp_path / "run.json")
    from_file = resolve_runs("label:branch:main~1", str(path), db_url)
    assert [r.run_id for r in from_file.baseline] == [main[2].run_id]
    assert from_file.candidate[0].source == str(path)
    with pytest.raises(ConfigError, match="the only runs labelled 'git:feed' are the candidate"):
        resolve_runs("git:feed", str(path), db_url)

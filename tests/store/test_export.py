"""Export as CSV, JSON, Parquet and a pandas DataFrame, with filters, on both databases."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from wattbench.core.errors import ConfigError
from wattbench.results_db import export as exp
from wattbench.results_db.store import Store

TRICKY = ["x'); DROP TABLE runs; --", "ünïcødé ⚡", 'a,b;"c"', "100%_done", "back\\slash"]


@pytest.fixture
def filled(db_url: str, new_run: Callable[..., Any]) -> tuple[Store, list[Any]]:
    store = Store.open(db_url)
    base = new_run()
    runs = [
        new_run(labels=["git:abc", *TRICKY]),
        new_run(labels=["git:abc"]),
        new_run(labels=["git:def", "100%"]),
    ]
    # One older run, one of another suite.
    runs[1] = runs[1].model_copy(update={"started_at": base.started_at - timedelta(days=10)})
    runs[2] = runs[2].model_copy(update={"suite": "other"})
    for r in runs:
        store.save_run(r)
    return store, runs


def ids(rows: list[dict[str, Any]]) -> set[str]:
    return {r["run_id"] for r in rows}


def test_filters(filled: tuple[Store, list[Any]]) -> None:
    store, runs = filled
    a, old, other = runs
    assert ids(list(exp.iter_rows(store))) == {a.run_id, old.run_id, other.run_id}
    assert ids(list(exp.iter_rows(store, suite="fake"))) == {a.run_id, old.run_id}
    assert ids(list(exp.iter_rows(store, labels=["git:abc"]))) == {a.run_id, old.run_id}
    assert ids(list(exp.iter_rows(store, labels=["git:abc", TRICKY[0]]))) == {a.run_id}
    for label in TRICKY:  # exact match, metacharacters and all
        assert ids(list(exp.iter_rows(store, labels=[label]))) == {a.run_id}, label
    assert ids(list(exp.iter_rows(store, labels=["100%"]))) == {other.run_id}  # not "100%_done"
    assert list(exp.iter_rows(store, labels=["git"])) == []  # no substring matches
    since = (a.started_at - timedelta(days=1)).date().isoformat()
    assert ids(list(exp.iter_rows(store, since=since))) == {a.run_id, other.run_id}
    row = next(iter(exp.iter_rows(store, labels=[TRICKY[0]])))
    assert row["labels"] == ["git:abc", *TRICKY]
    assert row["started_at"].tzinfo is not None
    assert set(row) == set(exp.COLUMN_NAMES)


def test_csv_and_json_round_trip_labels_verbatim(filled: tuple[Store, list[Any]]) -> None:
    store, runs = filled
    buf = io.StringIO()
    assert exp.export(store, "csv", None, stdout=buf, suite="fake") == 2
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert list(rows[0]) == list(exp.COLUMN_NAMES)
    by_id = {r["run_id"]: r for r in rows}
    assert json.loads(by_id[runs[0].run_id]["labels"]) == ["git:abc", *TRICKY]
    assert float(by_id[runs[0].run_id]["inferences_per_joule"]) == pytest.approx(
        runs[0].energy[0].inferences_per_joule
    )
    buf = io.StringIO()
    assert exp.export(store, "json", None, stdout=buf) == 3
    data = json.loads(buf.getvalue())
    assert {d["run_id"] for d in data} == {r.run_id for r in runs}
    assert next(d for d in data if d["run_id"] == runs[0].run_id)["labels"][1:] == TRICKY
    empty = io.StringIO()
    assert exp.export(store, "json", None, stdout=empty, suite="none") == 0
    assert json.loads(empty.getvalue()) == []


def test_parquet_and_dataframe(
    filled: tuple[Store, list[Any]], db_url: str, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="needs the export extra")
    pytest.importorskip("pandas", reason="needs the export extra")
    store, runs = filled
    out = tmp_path / "runs.parquet"
    assert exp.export(store, "parquet", out) == 3
    table = pq.read_table(out)
    assert table.num_rows == 3 and table.column_names == list(exp.COLUMN_NAMES)
    labels = dict(zip(table["run_id"].to_pylist(), table["labels"].to_pylist(), strict=True))
    assert labels[runs[0].run_id] == ["git:abc", *TRICKY]
    df = exp.to_dataframe(db_url, suite="fake")
    assert set(df["run_id"]) == {runs[0].run_id, runs[1].run_id}
    assert str(df["started_at"].dtype).startswith("datetime64") and df["valid"].all()
    assert df["inferences_per_joule"].dtype.kind == "f"


def test_export_usage_errors(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'e.db'}")
    with pytest.raises(ConfigError, match="unknown --format"):
        exp.export(store, "xlsx", None)
    with pytest.raises(ConfigError, match="-o FILE"):
        exp.export(store, "parquet", None)
    with pytest.raises(ConfigError, match="invalid --since"):
        exp.parse_since("last tuesday")
    with pytest.raises(ConfigError, match="cannot write"):
        exp.export(store, "csv", tmp_path / "missing-dir" / "x.csv")

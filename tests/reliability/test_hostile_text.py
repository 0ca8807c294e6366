"""Hostile text: stored and served verbatim, or refused with a clear error — never mangled,
never executed, never a 503.

Device names, labels and model names with SQL metacharacters, HTML/JS, unicode and
format characters go through the ingest API into SQLite and PostgreSQL and come back
byte for byte (stored rows, rebuilt run, leaderboard API, CSV/JSON export). Control
characters, NUL and 10 kB strings are refused by name (core/validation.py) with nothing
written.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from wattbench.core.results import RunResult
from wattbench.results_db.export import iter_rows, write_csv, write_json
from wattbench.results_db.schema import Run
from wattbench.results_db.store import Store
from wattbench.results_db.tokens import create_token

#: Stored verbatim wherever they appear.
VERBATIM = [
    "x'); DROP TABLE runs; --",
    "Robert'); DELETE FROM devices WHERE ('1'='1",
    '<script>alert("pwned")</script>',
    "<img src=x onerror=alert(1)>",
    "{{7*7}} ${jndi:ldap://x} %s %n %x",
    'quo"te \\ back\\slash `tick`',
    "ünïcødé ⚡ 日本語 🚀",
    "rtl\u202eoverride zero\u200bwidth",  # format characters (Cf): allowed, shown as is
    "a,b;c",
    "%_",
    "NaN",
]

#: Refused, by field path (the error names it).
REFUSED = [
    ("ANSI escape", "\x1b[31mred\x1b[0m"),
    ("CR/LF injection", "name\r\nX-Injected: 1"),
    ("NUL", "nul\x00byte"),
    ("TAB", "tab\there"),
    ("DEL", "del\x7f"),
    ("C1 control", "c1\x85next-line"),
    ("10 kB", "k" * 10_240),
]


def _client(store: Store, device: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from wattbench.results_db.server import create_app

    client = TestClient(create_app(store))
    client.headers["Authorization"] = f"Bearer {create_token(store, device)}"
    return client


def _hostile(r: RunResult, text: str, device: str, i: int) -> RunResult:
    # a model is identified by its sha256 (one shared row): each hostile name gets its own
    model = r.model.model_copy(update={"name": text, "sha256": f"{i + 1:064x}"})
    return r.model_copy(
        update={
            "device": r.device | {"name": device, "location": text[:200]},
            "labels": [text, f"second {text}"],
            "model": model,
            "warnings": [f"warning about {text}"],
        }
    )


def test_hostile_text_round_trips_verbatim(db_url: str, new_run: Callable[..., RunResult]) -> None:
    store = Store.open(db_url)
    sent: dict[str, tuple[str, str]] = {}
    for i, text in enumerate(VERBATIM):
        device = f"{text[:150]} #{i}"  # the device name itself is hostile
        r = _hostile(new_run(), text, device, i)
        resp = _client(store, device).post("/api/v1/runs", content=r.model_dump_json())
        assert resp.status_code == 201, (text, resp.text)
        sent[r.run_id] = (text, device)
        back = store.load_result(r.run_id)
        assert back is not None
        assert back.labels == r.labels and back.model.name == text
        assert back.device["name"] == device and back.device["location"] == text[:200]
        assert back.warnings == r.warnings
    assert store.count_runs() == len(VERBATIM)  # the tables are all still there
    with store.engine.connect() as conn:
        from sqlalchemy import select

        stored = {u: labels for u, labels in conn.execute(select(Run.uuid, Run.labels))}
    assert {u: stored[u][0] for u in sent} == {u: t for u, (t, _) in sent.items()}
    board = _client(store, "reader").get("/api/v1/leaderboard", params={"limit": 1000}).json()
    assert {row["run_id"]: row["labels"][0] for row in board} == {
        u: t for u, (t, _) in sent.items()
    }
    assert {row["run_id"]: row["device"] for row in board} == {u: d for u, (_, d) in sent.items()}
    # Exports carry them verbatim too (CSV list columns are JSON arrays).
    buf = io.StringIO()
    write_csv(iter_rows(store), buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert {r["run_id"]: json.loads(r["labels"])[0] for r in rows} == {
        u: t for u, (t, _) in sent.items()
    }
    assert {r["run_id"]: r["model"] for r in rows} == {u: t for u, (t, _) in sent.items()}
    buf = io.StringIO()
    write_json(iter_rows(store), buf)
    assert {r["run_id"]: r["device"] for r in json.loads(buf.getvalue())} == {
        u: d for u, (_, d) in sent.items()
    }


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Any:
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'central.db'}")
    yield store
    store.close()


@pytest.mark.parametrize(("case", "text"), REFUSED, ids=[c for c, _ in REFUSED])
@pytest.mark.parametrize("field", ["labels[0]", "model.name", "device.name"])
def test_control_characters_and_huge_strings_are_refused_by_name(
    central: Store, new_run: Callable[..., RunResult], case: str, text: str, field: str
) -> None:
    r = new_run()
    device = "bench-01"
    if field == "labels[0]":
        r = r.model_copy(update={"labels": [text]})
    elif field == "model.name":
        r = r.model_copy(update={"model": r.model.model_copy(update={"name": text})})
    else:
        device = text if len(text) <= 200 else "bench-01"
        r = r.model_copy(update={"device": r.device | {"name": text}})
    client = _client(central, device.strip() or "x")
    resp = client.post("/api/v1/runs", content=r.model_dump_json())
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert field in {p["path"] for p in body["problems"]}, body
    assert "\n" not in body["detail"]
    assert central.count_runs() == 0

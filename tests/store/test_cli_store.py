"""The store commands in process, registered as cli.py registers them (see cli_store)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from wattbench.core.errors import ConfigError, WattbenchError
from wattbench.harness.cli import store as cli_store
from wattbench.results_db.errors import TokenError, UploadError
from wattbench.results_db.store import Store
from wattbench.results_db.tokens import check_token


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.command()(cli_store.serve)
    app.command()(cli_store.upload)
    app.command()(cli_store.export)
    app.add_typer(cli_store.token_app, name="token")
    return app


def invoke(*args: str) -> Any:
    return CliRunner().invoke(make_app(), list(args), catch_exceptions=True)


def test_token_create_list_revoke(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'central.db'}"
    created = invoke("token", "create", "--device", "jetson-07", "--db", db)
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("wbt_") and len(token) > 40 and "\n" not in token
    store = Store.open(db)
    assert check_token(store, token).device == "jetson-07"

    listed = invoke("token", "list", "--db", db, "--json")
    (info,) = json.loads(listed.stdout)
    assert info["device"] == "jetson-07" and info["revoked_at"] is None
    assert token not in listed.stdout and token[4:] not in listed.stdout
    table = invoke("token", "list", "--db", db)
    assert "jetson-07" in table.stdout and info["fingerprint"] in table.stdout

    assert invoke("token", "revoke", str(info["id"]), "--db", db).exit_code == 0
    assert check_token(store, token).reason == "token revoked"
    again = invoke("token", "revoke", str(info["id"]), "--db", db)
    assert isinstance(again.exception, TokenError) and "no active token" in str(again.exception)
    neither = invoke("token", "revoke", "--db", db)
    assert isinstance(neither.exception, TokenError)
    empty = invoke("token", "create", "--device", " ", "--db", db)
    assert isinstance(empty.exception, TokenError) and "invalid --device" in str(empty.exception)


def test_upload_with_the_server_down_is_one_error_naming_the_pending_count(
    tmp_path: Path, new_run: Callable[..., Any]
) -> None:
    db = f"sqlite:///{tmp_path / 'device.db'}"
    store = Store.open(db)
    for _ in range(2):
        store.save_run(new_run())
    res = invoke(
        "upload", "--to", "http://127.0.0.1:9", "--token", "wbt_x", "--db", db,
        "--max-attempts", "1", "--timeout", "2",
    )  # fmt: skip
    assert isinstance(res.exception, UploadError)
    message = str(res.exception)
    assert "2 run(s) still pending" in message and "run `wattbench upload` again" in message
    assert "\n" not in message
    assert store.count_pending() == 2


def test_upload_token_from_the_environment(
    tmp_path: Path, new_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = f"sqlite:///{tmp_path / 'device.db'}"
    Store.open(db).save_run(new_run())
    central = f"sqlite:///{tmp_path / 'central.db'}"
    monkeypatch.setenv("WATTBENCH_TOKEN", "unused-for-database-targets")
    res = invoke("upload", "--to", central, "--db", db)
    assert res.exit_code == 0, res.output
    assert Store.open(central).count_runs() == 1
    missing = invoke("upload", "--to", "http://127.0.0.1:9", "--db", db)
    assert missing.exit_code == 0  # nothing pending any more: nothing to send


def test_export_and_usage_errors(tmp_path: Path, new_run: Callable[..., Any]) -> None:
    db = f"sqlite:///{tmp_path / 'e.db'}"
    r = new_run(labels=["ü", "a,b"])
    Store.open(db).save_run(r)
    res = invoke("export", "--db", db, "--format", "json", "--label", "a,b")
    assert res.exit_code == 0, res.output
    assert [d["run_id"] for d in json.loads(res.stdout)] == [r.run_id]
    out = tmp_path / "x.csv"
    assert invoke("export", "--db", db, "-o", str(out)).exit_code == 0
    assert r.run_id in out.read_text()
    bad = invoke("export", "--db", db, "--format", "xml")
    assert isinstance(bad.exception, ConfigError) and "use csv, json or parquet" in str(
        bad.exception
    )
    since = invoke("export", "--db", db, "--since", "yesterday")
    assert isinstance(since.exception, ConfigError)
    port = invoke("serve", "--db", db, "--port", "0")
    assert isinstance(port.exception, WattbenchError) and "--port" in str(port.exception)

"""The fleet's ledger behind the ingest server, for workers without database access.

``wattbench worker --upload-to URL --token T`` keeps no database connection: it claims and
finishes cells through these token-authenticated routes of ``wattbench serve`` (the token's
device is the worker's device) and uploads each result to ``POST /api/v1/runs``.

* ``POST /api/v1/fleet/cells/{cell_id}/claim`` ``{"attempt": n}``: :func:`ledger.claim`
  for the token's device; answers ``{action, detail, campaign_id, cell_index, params,
  run_uuid, attempt}``. ``action`` is ``stored`` when the cell's run is already in the
  store (a redelivered cell is acknowledged, not run again).
* ``POST /api/v1/fleet/cells/{cell_id}/finish`` ``{"attempt", "status", "reason"}``.
* ``POST /api/v1/fleet/devices/{name}/heartbeat`` ``{"event": "register" | "beat" |
  "adapters" | "stopped", ...}``: the device registry (only the token's own device).
* ``GET /api/v1/fleet/campaigns/{campaign_id}/cancelled``: ``{"cancelled": bool}``.

:func:`wattbench.fleet.routes.mount` adds them to a server app (entry point group
``wattbench.server_routes``); :class:`DbLedger` and :class:`HttpLedger` are the worker's two
ledgers. This module imports neither FastAPI nor the server.
"""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any, Protocol
from urllib.parse import urlsplit

from wattbench.core.errors import ConfigError
from wattbench.fleet import ledger

PREFIX = "/api/v1/fleet"
TOKEN_HINT = "create one on the server with `wattbench token create --device NAME`"


class LedgerClient(Protocol):
    """What a worker needs of the campaign ledger."""

    def claim(self, cell_id: int, attempt: int, device: str) -> ledger.Claim: ...

    def finish(self, cell_id: int, attempt: int, status: str, reason: str | None) -> None: ...

    def is_cancelled(self, campaign_id: str) -> bool: ...

    def register(
        self, device: str, tags: list[str], hostname: str, metrics_port: int | None
    ) -> None: ...

    def set_adapters(self, device: str, adapters: dict[str, str | None]) -> None: ...

    def heartbeat(self, device: str, current_cell_id: int | None) -> None: ...

    def device_stopped(self, device: str) -> None: ...


class DbLedger:
    """The ledger in the central database (``wattbench worker --db``)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def claim(self, cell_id: int, attempt: int, device: str) -> ledger.Claim:
        return ledger.claim(self.engine, cell_id, attempt, device)

    def finish(self, cell_id: int, attempt: int, status: str, reason: str | None) -> None:
        ledger.finish(self.engine, cell_id, attempt, status, reason)

    def is_cancelled(self, campaign_id: str) -> bool:
        return ledger.is_cancelled(self.engine, campaign_id)

    def register(
        self, device: str, tags: list[str], hostname: str, metrics_port: int | None
    ) -> None:
        ledger.register_device(
            self.engine, device, tags, hostname=hostname, adapters=None, metrics_port=metrics_port
        )

    def set_adapters(self, device: str, adapters: dict[str, str | None]) -> None:
        ledger.set_adapters(self.engine, device, adapters)

    def heartbeat(self, device: str, current_cell_id: int | None) -> None:
        ledger.heartbeat(self.engine, device, current_cell_id)

    def device_stopped(self, device: str) -> None:
        ledger.device_stopped(self.engine, device)


class LedgerRefused(ConfigError):
    """The server refused the worker (bad token, token of another device)."""


class HttpLedger:
    """The ledger through the ingest server (``wattbench worker --upload-to URL``)."""

    def __init__(self, url: str, token: str, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--upload-to {url!r} is not an http(s):// URL of `wattbench serve`")
        self.url = url.rstrip("/")
        self._parts = parts
        self.token = token
        self.timeout_s = timeout_s

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        p = self._parts
        conn: http.client.HTTPConnection
        if p.scheme == "https":
            conn = http.client.HTTPSConnection(
                p.hostname or "",
                p.port,
                timeout=self.timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            conn = http.client.HTTPConnection(p.hostname or "", p.port, timeout=self.timeout_s)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        try:
            conn.request(method, p.path.rstrip("/") + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {"detail": raw[:200].decode(errors="replace")}
        if resp.status in (401, 403):
            raise LedgerRefused(
                f"{self.url} refused the token ({answer.get('detail', resp.status)})"
                if resp.status == 403
                else f"{self.url} refused the token: {TOKEN_HINT} and pass it with --token"
            )
        if resp.status >= 400:
            raise OSError(f"{method} {path}: HTTP {resp.status}: {answer.get('detail', '')}")
        return dict(answer)

    def claim(self, cell_id: int, attempt: int, device: str) -> ledger.Claim:
        a = self._request("POST", f"{PREFIX}/cells/{cell_id}/claim", {"attempt": attempt})
        return ledger.Claim(
            action=str(a["action"]),
            cell_id=cell_id,
            campaign_id=str(a.get("campaign_id") or ""),
            cell_index=int(a.get("cell_index") or 0),
            attempt=int(a.get("attempt") or 0),
            run_uuid=str(a.get("run_uuid") or ""),
            params=dict(a.get("params") or {}),
            campaign_name=str(a.get("campaign_name") or ""),
            detail=str(a.get("detail") or ""),
        )

    def finish(self, cell_id: int, attempt: int, status: str, reason: str | None) -> None:
        self._request(
            "POST",
            f"{PREFIX}/cells/{cell_id}/finish",
            {"attempt": attempt, "status": status, "reason": reason},
        )

    def is_cancelled(self, campaign_id: str) -> bool:
        a = self._request("GET", f"{PREFIX}/campaigns/{campaign_id}/cancelled", None)
        return bool(a.get("cancelled"))

    def _beat(self, device: str, body: dict[str, Any]) -> None:
        self._request("POST", f"{PREFIX}/devices/{device}/heartbeat", body)

    def register(
        self, device: str, tags: list[str], hostname: str, metrics_port: int | None
    ) -> None:
        self._beat(
            device,
            {"event": "register", "tags": tags, "hostname": hostname, "metrics_port": metrics_port},
        )

    def set_adapters(self, device: str, adapters: dict[str, str | None]) -> None:
        self._beat(device, {"event": "adapters", "adapters": adapters})

    def heartbeat(self, device: str, current_cell_id: int | None) -> None:
        self._beat(device, {"event": "beat", "current_cell_id": current_cell_id})

    def device_stopped(self, device: str) -> None:
        self._beat(device, {"event": "stopped"})

"""The fleet routes of the ingest server (see :mod:`wattbench.fleet.api` for the protocol).

Mounted by ``wattbench serve`` through the ``wattbench.server_routes`` entry point
(:data:`wattbench.results_db.server.ROUTES_GROUP`), so the store never imports the fleet.
No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations.
"""

import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import select

from wattbench.fleet import ledger
from wattbench.fleet.api import PREFIX
from wattbench.results_db.schema import CELL_STATES, CampaignCell


def _fail(status: int, code: str, detail: str) -> Any:
    return JSONResponse({"status": "error", "error": code, "detail": detail}, status_code=status)


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _not_yours(engine: Any, cell_id: int, device: str, finishing: bool) -> str | None:
    """Why ``device`` may not claim (or finish) the cell; None when it may.

    A device's cell is its own; an any-one-device cell (``tags:...``) is anyone's to claim
    and, once claimed, its claimer's to finish."""
    with engine.connect() as conn:
        row = conn.execute(
            select(CampaignCell.target, CampaignCell.device).where(CampaignCell.id == cell_id)
        ).first()
    if row is None:
        return None  # the ledger answers "no such cell"
    target, owner = row
    if not target.startswith("tags:"):
        return None if target == device else f"cell {cell_id} is for device {target!r}"
    if finishing and owner is not None and owner != device:
        return f"cell {cell_id} was claimed by device {owner!r}"
    return None


def mount(app: Any, store: Any, authorise: Callable[[str | None], str]) -> None:
    """Add the fleet routes (module doc) to the ingest server ``app`` serving ``store``."""
    engine = store.engine

    async def _device_and_body(request: Request) -> tuple[str, dict[str, Any] | None]:
        device = await run_in_threadpool(authorise, request.headers.get("authorization"))
        return device, _json(await request.body())

    @app.post(f"{PREFIX}/cells/{{cell_id}}/claim")
    async def claim_cell(cell_id: int, request: Request) -> Any:
        device, body = await _device_and_body(request)
        if body is None or not isinstance(body.get("attempt"), int):
            return _fail(400, "malformed", 'send {"attempt": <int>}')
        why = await run_in_threadpool(_not_yours, engine, cell_id, device, False)
        if why:
            return _fail(403, "forbidden", f"{why}, not {device!r}: use that device's token")
        c = await run_in_threadpool(ledger.claim, engine, cell_id, body["attempt"], device)
        return JSONResponse(
            {
                "action": c.action,
                "detail": c.detail,
                "campaign_id": c.campaign_id,
                "campaign_name": c.campaign_name,
                "cell_index": c.cell_index,
                "params": c.params,
                "run_uuid": c.run_uuid,
                "attempt": c.attempt,
            }
        )

    @app.post(f"{PREFIX}/cells/{{cell_id}}/finish")
    async def finish_cell(cell_id: int, request: Request) -> Any:
        device, body = await _device_and_body(request)
        if (
            body is None
            or not isinstance(body.get("attempt"), int)
            or body.get("status") not in CELL_STATES
            or not isinstance(body.get("reason"), (str, type(None)))
        ):
            return _fail(
                400,
                "malformed",
                f'send {{"attempt": <int>, "status": one of {", ".join(CELL_STATES)}, '
                f'"reason": <text or null>}}',
            )
        why = await run_in_threadpool(_not_yours, engine, cell_id, device, True)
        if why:
            return _fail(403, "forbidden", f"{why}, not {device!r}: use that device's token")
        await run_in_threadpool(
            ledger.finish, engine, cell_id, body["attempt"], body["status"], body["reason"]
        )
        return JSONResponse({"status": "ok"})

    @app.get(f"{PREFIX}/campaigns/{{campaign_id}}/cancelled")
    async def campaign_cancelled(campaign_id: str, request: Request) -> Any:
        await run_in_threadpool(authorise, request.headers.get("authorization"))
        cancelled = await run_in_threadpool(ledger.is_cancelled, engine, campaign_id)
        return JSONResponse({"cancelled": cancelled})

    @app.post(f"{PREFIX}/devices/{{name}}/heartbeat")
    async def device_heartbeat(name: str, request: Request) -> Any:
        device, body = await _device_and_body(request)
        if name != device:
            return _fail(
                403,
                "forbidden",
                f"this token is of device {device!r}, not {name[:100]!r}: use the token "
                f"created for {name[:100]!r}",
            )
        event = body.get("event") if body else None
        assert body is not None or event is None
        if event == "register" and body is not None:
            tags = body.get("tags") or []
            port = body.get("metrics_port")
            await run_in_threadpool(
                lambda: ledger.register_device(
                    engine,
                    device,
                    [str(t) for t in tags],
                    hostname=str(body.get("hostname") or "")[:200] or None,
                    adapters=None,
                    metrics_port=port if isinstance(port, int) else None,
                )
            )
        elif event == "adapters" and body is not None and isinstance(body.get("adapters"), dict):
            adapters = {
                str(k): (None if v is None else str(v)) for k, v in body["adapters"].items()
            }
            await run_in_threadpool(ledger.set_adapters, engine, device, adapters)
        elif event == "beat" and body is not None:
            cell = body.get("current_cell_id")
            await run_in_threadpool(
                ledger.heartbeat, engine, device, cell if isinstance(cell, int) else None
            )
        elif event == "stopped":
            await run_in_threadpool(ledger.device_stopped, engine, device)
        else:
            return _fail(400, "malformed", 'send {"event": "register|beat|adapters|stopped"}')
        return JSONResponse({"status": "ok"})

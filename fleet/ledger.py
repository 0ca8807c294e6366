"""Campaign bookkeeping in the results store: campaigns, cells and the device registry.

Every state change is one short transaction on the ``campaigns``, ``campaign_cells`` and
``fleet_devices`` tables (migration 0005), so many workers share one PostgreSQL store.

Exactly once. A cell's run uuid is ``uuid5(RUN_NAMESPACE, "<campaign>/<cell>/<target>/
<attempt>")`` where ``target`` is the device name (or ``tags:a+b`` for a cell that any one
device of a tag set may run) and ``attempt`` counts `campaign retry`s. A redelivered message
of a cell whose run is already stored is therefore recognised (the store holds that uuid)
and acknowledged without running again; a message of an older attempt is dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, and_, func, insert, select, update
from sqlalchemy.orm import Session

from wattbench.core.errors import ConfigError
from wattbench.fleet import broker
from wattbench.fleet.spec import CampaignSpec
from wattbench.results_db.schema import (
    CELL_CANCELLED,
    CELL_DONE,
    CELL_FAILED,
    CELL_PENDING,
    CELL_RUNNING,
    CELL_SKIPPED,
    CELL_STATES,
    Campaign,
    CampaignCell,
    FleetDevice,
    Run,
)

#: namespace of cells' run uuids (never change it: stored uuids depend on it)
RUN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://wattbench/fleet/cell-run")
#: seconds between a worker's heartbeats
HEARTBEAT_S = 10.0
#: a device whose last heartbeat is older than this is shown offline
OFFLINE_AFTER_S = 60.0


def now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(t: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes (stored as UTC)
    return t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t


def cell_run_uuid(campaign_id: str, cell_index: int, target: str, attempt: int) -> str:
    """The deterministic run uuid of one attempt of one cell (see the module doc)."""
    return str(uuid.uuid5(RUN_NAMESPACE, f"{campaign_id}/{cell_index}/{target}/{attempt}"))


# -- the device registry ------------------------------------------------------------------
def register_device(
    engine: Engine,
    name: str,
    tags: Sequence[str],
    *,
    hostname: str | None,
    adapters: dict[str, str | None] | None,
    metrics_port: int | None,
) -> None:
    t = now()
    with engine.begin() as conn:
        found = conn.scalar(select(FleetDevice.name).where(FleetDevice.name == name))
        values = {
            "tags": sorted(set(tags)),
            "hostname": hostname,
            "adapters": adapters,
            "metrics_port": metrics_port,
            "started_at": t,
            "last_heartbeat_at": t,
            "current_cell_id": None,
            "state": "up",
        }
        if found is None:
            conn.execute(insert(FleetDevice).values(name=name, **values))
        else:
            if adapters is None:  # keep what the last scan found until the next one
                del values["adapters"]
            conn.execute(update(FleetDevice).where(FleetDevice.name == name).values(**values))


def set_adapters(engine: Engine, name: str, adapters: dict[str, str | None]) -> None:
    with engine.begin() as conn:
        conn.execute(update(FleetDevice).where(FleetDevice.name == name).values(adapters=adapters))


def heartbeat(engine: Engine, name: str, current_cell_id: int | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(FleetDevice)
            .where(FleetDevice.name == name)
            .values(last_heartbeat_at=now(), current_cell_id=current_cell_id, state="up")
        )


def device_stopped(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(FleetDevice)
            .where(FleetDevice.name == name)
            .values(last_heartbeat_at=now(), current_cell_id=None, state="stopped")
        )


@dataclass(frozen=True)
class DeviceState:
    name: str
    tags: list[str]
    state: str  # up, stopped or offline
    last_heartbeat_at: datetime
    current_cell_id: int | None
    adapters: dict[str, Any]


def devices(engine: Engine, offline_after_s: float = OFFLINE_AFTER_S) -> list[DeviceState]:
    """Registered devices; ``up`` turns ``offline`` after ``offline_after_s`` of silence."""
    limit = now() - timedelta(seconds=offline_after_s)
    out = []
    with engine.connect() as conn:
        for row in conn.execute(select(FleetDevice).order_by(FleetDevice.name)):
            beat = _aware(row.last_heartbeat_at)
            assert beat is not None
            state = row.state
            if state == "up" and beat < limit:
                state = "offline"
            out.append(
                DeviceState(
                    name=row.name,
                    tags=list(row.tags or []),
                    state=state,
                    last_heartbeat_at=beat,
                    current_cell_id=row.current_cell_id,
                    adapters=dict(row.adapters or {}),
                )
            )
    return out


# -- submitting ---------------------------------------------------------------------------
@dataclass
class Submitted:
    campaign_id: str
    cells: int
    skipped: int
    #: (cell_id, campaign_id, queue, attempt) to send
    messages: list[tuple[int, str, str, int]] = field(default_factory=list)


def _skip_reason(registered: DeviceState | None, adapter: str | None) -> str | None:
    """Why a registered device cannot run ``adapter``, from what its worker reported."""
    if registered is None or adapter is None or not registered.adapters:
        return None
    if adapter not in registered.adapters:
        return f"adapter {adapter!r} is not installed on {registered.name}"
    reason = registered.adapters[adapter]
    return f"adapter {adapter!r} cannot run on {registered.name}: {reason}" if reason else None


def create_campaign(engine: Engine, spec: CampaignSpec, prefix: str) -> Submitted:
    """Record the campaign and its cells; cells a registered device is known not to run are
    ``skipped`` now (with the reason), the others are to be sent (``messages``)."""
    broker.check_name("queue prefix", prefix)
    target = spec.target
    for tag in target.tags:
        broker.check_name("tag", tag)
    for d in target.devices:
        broker.check_name("device", d)
    known = {d.name: d for d in devices(engine)}
    matching = list(target.devices)
    if target.tags:
        want = set(target.tags)
        matching += [n for n, d in known.items() if want <= set(d.tags) and n not in matching]
    # (target, device or None, queue)
    places: list[tuple[str, str | None, str]]
    if target.each_device:
        if not matching:
            raise ConfigError(
                f"no registered device has tags {', '.join(target.tags)} (start their workers "
                f"with --tag first, or name devices in [target] devices)"
            )
        places = [(d, d, broker.device_queue(prefix, d)) for d in matching]
    elif target.tags:
        places = [(broker.tags_target(target.tags), None, broker.tags_queue(prefix, target.tags))]
    else:
        places = [(d, d, broker.device_queue(prefix, d)) for d in target.devices]

    campaign_id = str(uuid.uuid4())
    t = now()
    rows: list[dict[str, Any]] = []
    for index, params in enumerate(spec.cells):
        chosen = places if target.each_device else [places[index % len(places)]]
        for tgt, device, qname in chosen:
            reason = _skip_reason(known.get(device) if device else None, params.get("adapter"))
            rows.append(
                {
                    "campaign_id": campaign_id,
                    "cell_index": index,
                    "target": tgt,
                    "device": device,
                    "queue": qname,
                    "params": params,
                    "status": CELL_SKIPPED if reason else CELL_PENDING,
                    "attempt": 0,
                    "run_uuid": cell_run_uuid(campaign_id, index, tgt, 0),
                    "reason": reason,
                    "enqueued_at": None if reason else t,
                    "finished_at": t if reason else None,
                }
            )
    out = Submitted(campaign_id, len(rows), sum(r["status"] == CELL_SKIPPED for r in rows))
    with engine.begin() as conn:
        conn.execute(
            insert(Campaign).values(
                id=campaign_id,
                name=spec.name,
                state="active",
                each_device=target.each_device,
                queue_prefix=prefix,
                spec=spec.as_json(),
                created_at=t,
            )
        )
        if rows:
            conn.execute(insert(CampaignCell), rows)
        for cell_id, qname in conn.execute(
            select(CampaignCell.id, CampaignCell.queue)
            .where(CampaignCell.campaign_id == campaign_id, CampaignCell.status == CELL_PENDING)
            .order_by(CampaignCell.id)
        ):
            out.messages.append((cell_id, campaign_id, qname, 0))
    return out


def campaign(engine: Engine, campaign_id: str) -> Campaign:
    """The campaign ``campaign_id`` (or the one whose id starts with it)."""
    with Session(engine, expire_on_commit=False) as session:
        found = session.get(Campaign, campaign_id)
        if found is None and len(campaign_id) >= 4:
            # a unique prefix is enough, as with git commits
            matches = session.scalars(
                select(Campaign).where(Campaign.id.startswith(campaign_id)).limit(2)
            ).all()
            found = matches[0] if len(matches) == 1 else None
    if found is None:
        raise ConfigError(
            f"no campaign {campaign_id!r} in this store (see `wattbench campaign list`)"
        )
    return found


# -- the worker's side --------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """What a worker does with a delivered cell message."""

    action: str  # run, drop (stale/cancelled/finished) or stored (its run is already stored)
    cell_id: int
    campaign_id: str
    cell_index: int = 0
    attempt: int = 0
    run_uuid: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    campaign_name: str = ""
    detail: str = ""


def claim(engine: Engine, cell_id: int, attempt: int, device: str) -> Claim:
    """Take a delivered cell for ``device``; decides run / drop / already stored."""
    with Session(engine) as conn, conn.begin():
        row = conn.execute(
            select(CampaignCell, Campaign.state, Campaign.name)
            .join(Campaign, Campaign.id == CampaignCell.campaign_id)
            .where(CampaignCell.id == cell_id)
        ).first()
        if row is None:
            return Claim("drop", cell_id, "", detail="no such cell (campaign deleted?)")
        cell, cstate, cname = row[0], row[1], row[2]
        cid = cell.campaign_id
        if attempt != cell.attempt:
            return Claim("drop", cell_id, cid, detail=f"stale message (attempt {attempt})")
        if cell.status in (CELL_DONE, CELL_FAILED, CELL_SKIPPED, CELL_CANCELLED):
            return Claim("drop", cell_id, cid, detail=f"cell already {cell.status}")
        if cstate == "cancelled":
            conn.execute(
                update(CampaignCell)
                .where(CampaignCell.id == cell_id)
                .values(status=CELL_CANCELLED, finished_at=now())
            )
            return Claim("drop", cell_id, cid, detail="campaign cancelled")
        stored = conn.scalar(select(Run.id).where(Run.uuid == cell.run_uuid))
        if stored is not None:
            # stored by a worker that died before acknowledging: done, not run twice
            conn.execute(
                update(CampaignCell)
                .where(CampaignCell.id == cell_id)
                .values(status=CELL_DONE, finished_at=now(), device=cell.device or device)
            )
            return Claim(
                "stored", cell_id, cid, run_uuid=cell.run_uuid or "", detail="run already stored"
            )
        conn.execute(
            update(CampaignCell)
            .where(CampaignCell.id == cell_id)
            .values(status=CELL_RUNNING, device=device, started_at=now(), reason=None)
        )
        return Claim(
            "run",
            cell_id,
            cid,
            cell_index=cell.cell_index,
            attempt=cell.attempt,
            run_uuid=cell.run_uuid or cell_run_uuid(cid, cell.cell_index, cell.target, attempt),
            params=dict(cell.params),
            campaign_name=cname,
        )


def finish(
    engine: Engine, cell_id: int, attempt: int, status: str, reason: str | None = None
) -> None:
    """Record a cell's end (done, failed, skipped, cancelled or back to pending)."""
    assert status in CELL_STATES
    values: dict[str, Any] = {"status": status, "reason": reason}
    values["finished_at"] = None if status == CELL_PENDING else now()
    if status == CELL_PENDING:
        values["started_at"] = None
    with engine.begin() as conn:
        conn.execute(
            update(CampaignCell)
            .where(CampaignCell.id == cell_id, CampaignCell.attempt == attempt)
            .values(**values)
        )
        if status == CELL_PENDING:  # an any-one-device cell is nobody's until taken again
            conn.execute(
                update(CampaignCell)
                .where(CampaignCell.id == cell_id, CampaignCell.target.startswith("tags:"))
                .values(device=None)
            )


def is_cancelled(engine: Engine, campaign_id: str) -> bool:
    with engine.connect() as conn:
        return conn.scalar(select(Campaign.state).where(Campaign.id == campaign_id)) == "cancelled"


# -- status, list, cancel, retry ----------------------------------------------------------
COUNTED = (CELL_DONE, CELL_RUNNING, CELL_FAILED, CELL_SKIPPED, CELL_PENDING, CELL_CANCELLED)


def _zero() -> dict[str, int]:
    return dict.fromkeys(COUNTED, 0)


def status(
    engine: Engine, campaign_id: str, offline_after_s: float = OFFLINE_AFTER_S
) -> dict[str, Any]:
    """Counts per device and overall, the devices' state and the failures' reasons."""
    c = campaign(engine, campaign_id)
    where = func.coalesce(CampaignCell.device, CampaignCell.target)
    per: dict[str, dict[str, int]] = {}
    total = _zero()
    with engine.connect() as conn:
        for place, st, n in conn.execute(
            select(where, CampaignCell.status, func.count())
            .where(CampaignCell.campaign_id == c.id)
            .group_by(where, CampaignCell.status)
        ):
            per.setdefault(place, _zero())[st] = n
            total[st] += n
        failures = [
            {"cell": i, "device": d or t, "attempt": a, "reason": r}
            for i, d, t, a, r in conn.execute(
                select(
                    CampaignCell.cell_index,
                    CampaignCell.device,
                    CampaignCell.target,
                    CampaignCell.attempt,
                    CampaignCell.reason,
                )
                .where(CampaignCell.campaign_id == c.id, CampaignCell.status == CELL_FAILED)
                .order_by(CampaignCell.cell_index)
                .limit(50)
            )
        ]
    states = {d.name: d for d in devices(engine, offline_after_s)}
    rows = []
    for place in sorted(per):
        d = states.get(place)
        rows.append(
            {
                "device": place,
                "state": d.state if d else ("queue" if place.startswith("tags:") else "unknown"),
                "last_heartbeat": d.last_heartbeat_at.isoformat() if d else None,
                **per[place],
                "total": sum(per[place].values()),
            }
        )
    finished = total[CELL_PENDING] == 0 and total[CELL_RUNNING] == 0
    return {
        "campaign_id": c.id,
        "name": c.name,
        "state": c.state if c.state == "cancelled" or not finished else "finished",
        "devices": rows,
        "overall": {**total, "total": sum(total.values())},
        "failures": failures,
    }


def list_campaigns(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        camps = conn.execute(
            select(Campaign.id, Campaign.name, Campaign.state, Campaign.created_at)
            .order_by(Campaign.created_at.desc())
            .limit(limit)
        ).all()
        counts: dict[str, dict[str, int]] = {}
        ids = [c.id for c in camps]
        if ids:
            for cid, st, k in conn.execute(
                select(CampaignCell.campaign_id, CampaignCell.status, func.count())
                .where(CampaignCell.campaign_id.in_(ids))
                .group_by(CampaignCell.campaign_id, CampaignCell.status)
            ):
                counts.setdefault(cid, _zero())[st] = k
    out = []
    for c in camps:
        n = counts.get(c.id, _zero())
        finished = n[CELL_PENDING] == 0 and n[CELL_RUNNING] == 0
        created = _aware(c.created_at)
        out.append(
            {
                "campaign_id": c.id,
                "name": c.name,
                "state": c.state if c.state == "cancelled" or not finished else "finished",
                "created_at": created.isoformat() if created else None,
                **n,
                "total": sum(n.values()),
            }
        )
    return out


def cancel(engine: Engine, campaign_id: str) -> int:
    """Cancel a campaign: its pending cells become ``cancelled`` (their messages are dropped
    when delivered); a running cell stops at its next phase. Returns the cells cancelled."""
    c = campaign(engine, campaign_id)
    with engine.begin() as conn:
        conn.execute(
            update(Campaign)
            .where(Campaign.id == c.id)
            .values(state="cancelled", cancelled_at=now())
        )
        res = conn.execute(
            update(CampaignCell)
            .where(CampaignCell.campaign_id == c.id, CampaignCell.status == CELL_PENDING)
            .values(status=CELL_CANCELLED, finished_at=now())
        )
        return int(res.rowcount or 0)


def retry(engine: Engine, campaign_id: str, *, failed_only: bool) -> Submitted:
    """Queue again the failed cells (``failed_only``), or every cell that is not done or
    running (failed, skipped, cancelled, pending). Each gets the next attempt, hence a new
    run uuid; messages of the older attempt are dropped when delivered."""
    c = campaign(engine, campaign_id)
    wanted = (
        (CELL_FAILED,) if failed_only else (CELL_FAILED, CELL_SKIPPED, CELL_CANCELLED, CELL_PENDING)
    )
    out = Submitted(c.id, 0, 0)
    with engine.begin() as conn:
        conn.execute(
            update(Campaign).where(Campaign.id == c.id).values(state="active", cancelled_at=None)
        )
        rows = conn.execute(
            select(
                CampaignCell.id,
                CampaignCell.cell_index,
                CampaignCell.target,
                CampaignCell.attempt,
                CampaignCell.queue,
            ).where(and_(CampaignCell.campaign_id == c.id, CampaignCell.status.in_(wanted)))
        ).all()
        t = now()
        for cell_id, index, target, attempt, qname in rows:
            nxt = attempt + 1
            conn.execute(
                update(CampaignCell)
                .where(CampaignCell.id == cell_id)
                .values(
                    status=CELL_PENDING,
                    attempt=nxt,
                    run_uuid=cell_run_uuid(c.id, index, target, nxt),
                    reason=None,
                    enqueued_at=t,
                    started_at=None,
                    finished_at=None,
                )
            )
            out.messages.append((cell_id, c.id, qname, nxt))
    out.cells = len(rows)
    return out

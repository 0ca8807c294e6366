"""Lab campaigns (``wattbench campaign``): the campaigns, one campaign's progress per device,
its failures with their one-line reason, and its results ranked among themselves.

Read with SQL from the ``campaigns``, ``campaign_cells`` and ``fleet_devices`` tables
(migration 0005). Only the runs of ``done`` cells rank: a cell's run is stored whole under
its run uuid, so nothing partial can reach the table.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from wattbench.dashboard.queries.common import energy_badge
from wattbench.results_db.readonly import Database
from wattbench.results_db.schema import (
    CELL_DONE,
    CELL_FAILED,
    CELL_SKIPPED,
    CELL_STATES,
    Campaign,
    CampaignCell,
    Device,
    FleetDevice,
    Run,
    SuiteRow,
)

if TYPE_CHECKING:
    import pandas as pd

#: a device silent for longer is offline (the default of `wattbench campaign status`)
OFFLINE_AFTER_S = 60.0
#: statuses in the order they are shown
STATUS_ORDER = ("done", "running", "failed", "skipped", "pending", "cancelled")
assert set(STATUS_ORDER) == set(CELL_STATES)


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t


def campaigns(db: Database, limit: int = 200) -> pd.DataFrame:
    """Campaigns, newest first: id, name, state, created, cells and cells per status."""
    import pandas as pd

    with db.engine.connect() as conn:
        camps = conn.execute(
            select(Campaign.id, Campaign.name, Campaign.state, Campaign.created_at)
            .order_by(Campaign.created_at.desc())
            .limit(limit)
        ).all()
        counts: dict[str, dict[str, int]] = {}
        if camps:
            for cid, status, k in conn.execute(
                select(CampaignCell.campaign_id, CampaignCell.status, func.count())
                .where(CampaignCell.campaign_id.in_([c.id for c in camps]))
                .group_by(CampaignCell.campaign_id, CampaignCell.status)
            ):
                counts.setdefault(cid, {})[status] = int(k)
    rows = []
    for c in camps:
        n = counts.get(c.id, {})
        open_cells = n.get("pending", 0) + n.get("running", 0)
        state = c.state if c.state == "cancelled" or open_cells else "finished"
        rows.append(
            {
                "campaign_id": c.id,
                "name": c.name,
                "state": state,
                "created_at": _aware(c.created_at),
                "cells": sum(n.values()),
                **{s: n.get(s, 0) for s in STATUS_ORDER},
            }
        )
    cols = ["campaign_id", "name", "state", "created_at", "cells", *STATUS_ORDER]
    return pd.DataFrame(rows, columns=cols)


def progress(
    db: Database, campaign_id: str, offline_after_s: float = OFFLINE_AFTER_S
) -> pd.DataFrame:
    """One row per device (or tag queue not taken yet): its state and cells per status."""
    import pandas as pd

    place = func.coalesce(CampaignCell.device, CampaignCell.target)
    with db.engine.connect() as conn:
        counts = conn.execute(
            select(place, CampaignCell.status, func.count())
            .where(CampaignCell.campaign_id == campaign_id)
            .group_by(place, CampaignCell.status)
        ).all()
        beats = {
            name: (_aware(beat), state)
            for name, beat, state in conn.execute(
                select(FleetDevice.name, FleetDevice.last_heartbeat_at, FleetDevice.state)
            )
        }
    per: dict[str, dict[str, int]] = {}
    for where, status, k in counts:
        per.setdefault(where, {})[status] = int(k)
    limit = datetime.now(timezone.utc) - timedelta(seconds=offline_after_s)
    rows = []
    for where in sorted(per):
        beat, state = beats.get(where, (None, None))
        if state == "up" and beat is not None and beat < limit:
            state = "offline"
        if state is None:
            state = "queue" if where.startswith("tags:") else "never seen"
        n = per[where]
        total = sum(n.values())
        finished = n.get("done", 0) + n.get("failed", 0) + n.get("skipped", 0)
        rows.append(
            {
                "device": where,
                "state": state,
                "last heartbeat": beat,
                **{s: n.get(s, 0) for s in STATUS_ORDER},
                "cells": total,
                "progress": finished / total if total else 0.0,
            }
        )
    cols = ["device", "state", "last heartbeat", *STATUS_ORDER, "cells", "progress"]
    return pd.DataFrame(rows, columns=cols)


def problems(db: Database, campaign_id: str) -> pd.DataFrame:
    """Failed and skipped cells with their one-line reason (failed first)."""
    import pandas as pd

    with db.engine.connect() as conn:
        rows = [
            tuple(r)
            for r in conn.execute(
                select(
                    CampaignCell.status,
                    CampaignCell.cell_index,
                    func.coalesce(CampaignCell.device, CampaignCell.target),
                    CampaignCell.attempt,
                    CampaignCell.params,
                    CampaignCell.reason,
                )
                .where(
                    CampaignCell.campaign_id == campaign_id,
                    CampaignCell.status.in_([CELL_FAILED, CELL_SKIPPED]),
                )
                .order_by(CampaignCell.status, CampaignCell.cell_index)
            )
        ]
    out = pd.DataFrame(rows, columns=["status", "cell", "device", "attempt", "params", "reason"])
    out["params"] = [
        ", ".join(f"{k}={v}" for k, v in sorted((p or {}).items())) for p in out["params"]
    ]
    return out


def results(db: Database, campaign_id: str) -> pd.DataFrame:
    """The campaign's valid runs ranked by inferences per joule within each rank group
    (suite · scenario · mode · energy scope · measured or estimated), best first."""
    import pandas as pd

    q = (
        select(
            CampaignCell.cell_index,
            Device.name,
            SuiteRow.name,
            Run.scenario,
            Run.mode,
            Run.adapter,
            Run.precision,
            Run.device_target,
            Run.batch,
            Run.inferences_per_joule,
            Run.joules_per_inference,
            Run.latency_p90_ms,
            Run.throughput_ips,
            Run.energy_method,
            Run.energy_scope,
            Run.uuid,
        )
        .join(Run, Run.uuid == CampaignCell.run_uuid)
        .join(Device, Run.device_id == Device.id)
        .join(SuiteRow, Run.suite_id == SuiteRow.id)
        .where(
            CampaignCell.campaign_id == campaign_id,
            CampaignCell.status == CELL_DONE,
            Run.valid.is_(True),
        )
    )
    cols = [
        "cell",
        "device",
        "suite",
        "scenario",
        "mode",
        "runtime",
        "precision",
        "target",
        "batch",
        "inf/J",
        "J/inf",
        "p90 ms",
        "inf/s",
        "method",
        "scope",
        "run_id",
    ]
    with db.engine.connect() as conn:
        df = pd.DataFrame([tuple(r) for r in conn.execute(q)], columns=cols)
    if df.empty:
        return df.assign(**{"#": [], "group": [], "energy": [], "detail": []})
    df["energy"] = [energy_badge(m, s) for m, s in zip(df["method"], df["scope"], strict=True)]
    df["group"] = [
        f"{su} · {sc} · {mo} · {scope or '?'} · {'estimated' if m == 'estimated' else 'measured'}"
        for su, sc, mo, scope, m in zip(
            df["suite"], df["scenario"], df["mode"], df["scope"], df["method"], strict=True
        )
    ]
    df = df.sort_values(["group", "inf/J"], ascending=[True, False], na_position="last")
    df["#"] = df.groupby("group").cumcount() + 1
    front = ["#", "group", "device", "runtime", "precision", "target", "batch", "inf/J"]
    df["detail"] = [f"run?run={u}" for u in df["run_id"]]
    rest = ["J/inf", "p90 ms", "inf/s", "energy", "cell", "run_id", "detail"]
    return df[front + rest].reset_index(drop=True)

"""Device profiles: what `wattbench doctor --save` found on a device (migration 0006).

A profile records the readers of one device name, their scope, idle noise floor and sample
rate, the doctor's outcome (``validated``, ``failed`` or ``estimate_only``), the date and the
wattbench version. A run stored afterwards points at the latest profile of its device name
(``runs.device_profile_id``), so the leaderboard and the dashboard can say whether, and when,
the device the run was measured on was validated.

The report itself is built by ``wattbench.harness.doctor``; this module takes it as plain
JSON (the store never imports the harness).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from wattbench.core.errors import ConfigError, StoreError
from wattbench.results_db.engine import display_url, one_line
from wattbench.results_db.schema import PROFILE_OUTCOMES, DeviceProfile, Run

#: Keys of one reader's summary in ``device_profiles.readers`` (a subset of the report's).
READER_SUMMARY_KEYS = (
    "name",
    "status",
    "verdict",
    "method",
    "scope",
    "component",
    "idle_mean_w",
    "idle_std_w",
    "requested_rate_hz",
    "achieved_rate_hz",
    "step_delta_w",
    "step_delay_s",
)


class ProfileInfo(BaseModel):
    """A stored profile, as the leaderboard and the dashboard show it."""

    id: int
    device_name: str
    created_at: datetime
    wattbench_version: str
    hostname: str | None
    outcome: str
    exit_code: int
    headline_reader: str | None
    headline_scope: str | None
    noise_floor_w: float | None
    noise_std_w: float | None
    sample_rate_hz: float | None
    readers: list[dict[str, Any]]

    @property
    def validated(self) -> bool:
        return self.outcome == "validated"


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


def profile_values(report: dict[str, Any]) -> dict[str, Any]:
    """The ``device_profiles`` row of a doctor report (``wattbench doctor --json``)."""
    outcome = report.get("outcome")
    if outcome not in PROFILE_OUTCOMES:
        raise ConfigError(
            f"not a doctor report: outcome {outcome!r} is not one of {', '.join(PROFILE_OUTCOMES)}"
        )
    device = report.get("device_name")
    if not device:
        raise ConfigError("not a doctor report: no device_name")
    readers = [
        {k: r.get(k) for k in READER_SUMMARY_KEYS}
        for r in report.get("readers", [])
        if r.get("status") != "absent"
    ]
    head: dict[str, Any] = next(
        (r for r in report.get("readers", []) if r.get("name") == report.get("headline_reader")),
        {},
    )
    created = report.get("created_at")
    created_at = (
        _utc(datetime.fromisoformat(created))
        if isinstance(created, str)
        else datetime.now(timezone.utc)
    )
    return {
        "device_name": str(device)[:200],
        "created_at": created_at,
        "wattbench_version": str(report.get("wattbench_version") or "unknown")[:50],
        "hostname": report.get("hostname"),
        "outcome": outcome,
        "exit_code": int(report.get("exit_code", 1)),
        "headline_reader": report.get("headline_reader"),
        "headline_scope": head.get("scope"),
        "noise_floor_w": head.get("idle_mean_w"),
        "noise_std_w": head.get("idle_std_w"),
        "sample_rate_hz": head.get("achieved_rate_hz"),
        "readers": readers,
        "report": report,
    }


def save_profile(engine: Engine, report: dict[str, Any]) -> int:
    """Store a doctor report as a profile of its device; its id."""
    values = profile_values(report)
    try:
        with engine.begin() as conn:
            pk = conn.execute(insert(DeviceProfile).values(**values)).inserted_primary_key
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot store the device profile in {display_url(engine)}: {one_line(exc)}"
        ) from exc
    assert pk is not None
    return int(pk[0])


class ProfileConflictError(StoreError):
    """A profile of the same device and time is stored with a different report."""


def save_profile_once(engine: Engine, report: dict[str, Any]) -> tuple[int, bool]:
    """Store a doctor report unless it is stored already: ``(profile id, created)``.

    A profile is identified by its device name and creation time (``created_at`` of the
    report): sending the same report again returns the stored profile's id with
    ``created=False`` (an upload whose acknowledgement was lost is simply acknowledged
    again). The same device and time with a different report raises
    :class:`ProfileConflictError`; the stored profile is kept. Validated as
    :func:`save_profile` (:class:`~wattbench.core.errors.ConfigError`).
    """
    values = profile_values(report)
    same = json.loads(json.dumps(report))  # as the JSON column gives it back
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(DeviceProfile.id, DeviceProfile.created_at, DeviceProfile.report).where(
                    DeviceProfile.device_name == values["device_name"]
                )
            ).all()
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot read the device profiles in {display_url(engine)}: {one_line(exc)}"
        ) from exc
    for pid, created_at, stored in rows:
        if _utc(created_at) != values["created_at"]:
            continue
        if stored == same:
            return int(pid), False
        raise ProfileConflictError(
            f"profile #{pid} of device {values['device_name']!r} made at "
            f"{values['created_at']:%Y-%m-%d %H:%M:%S} is stored with a different report; "
            f"the stored one is kept: run `wattbench doctor --save` again for a new profile"
        )
    return save_profile(engine, report), True


def _info(row: DeviceProfile) -> ProfileInfo:
    return ProfileInfo(
        id=row.id,
        device_name=row.device_name,
        created_at=_utc(row.created_at),
        wattbench_version=row.wattbench_version,
        hostname=row.hostname,
        outcome=row.outcome,
        exit_code=row.exit_code,
        headline_reader=row.headline_reader,
        headline_scope=row.headline_scope,
        noise_floor_w=row.noise_floor_w,
        noise_std_w=row.noise_std_w,
        sample_rate_hz=row.sample_rate_hz,
        readers=list(row.readers or []),
    )


def _latest_id_query(device_name: str) -> Any:
    return (
        select(DeviceProfile.id)
        .where(DeviceProfile.device_name == device_name)
        .order_by(DeviceProfile.created_at.desc(), DeviceProfile.id.desc())
        .limit(1)
    )


def latest_profile(engine: Engine, device_name: str) -> ProfileInfo | None:
    """The newest profile of ``device_name``, or None."""
    with engine.connect() as conn:
        pid = conn.scalar(_latest_id_query(device_name))
    return None if pid is None else get_profile(engine, pid)


def get_profile(engine: Engine, profile_id: int) -> ProfileInfo | None:
    with Session(engine) as s:
        row = s.get(DeviceProfile, profile_id)
        return None if row is None else _info(row)


def profile_report(engine: Engine, profile_id: int) -> dict[str, Any] | None:
    """The whole report a profile was saved from."""
    with engine.connect() as conn:
        return conn.scalar(select(DeviceProfile.report).where(DeviceProfile.id == profile_id))


def run_profile(engine: Engine, run_id: str) -> ProfileInfo | None:
    """The profile a stored run points at (None: not validated, or not stored)."""
    with engine.connect() as conn:
        pid = conn.scalar(select(Run.device_profile_id).where(Run.uuid == run_id))
    return None if pid is None else get_profile(engine, pid)


def link_run(engine: Engine, run_id: str, device_name: str) -> int | None:
    """Point a just-stored run at the latest profile of its device; the profile id or None.

    Nothing is written when the device has no profile.
    """
    try:
        with engine.begin() as conn:
            pid = conn.scalar(_latest_id_query(device_name))
            if pid is None:
                return None
            conn.execute(
                update(Run)
                .where(Run.uuid == run_id, Run.device_profile_id.is_(None))
                .values(device_profile_id=pid)
            )
    except SQLAlchemyError as exc:
        raise StoreError(
            f"run {run_id} is stored, but linking it to the device profile of {device_name!r} "
            f"failed in {display_url(engine)}: {one_line(exc)}"
        ) from exc
    return int(pid)

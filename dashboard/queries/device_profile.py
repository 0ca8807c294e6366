"""Whether the device of a run was validated by `wattbench doctor --save`, and when."""

from __future__ import annotations

from typing import Any

from wattbench.results_db.profiles import run_profile as _run_profile
from wattbench.results_db.readonly import Database


def run_profile(db: Database, run_id: str) -> dict[str, Any] | None:
    """The device profile a run points at, as plain data (None: not validated)."""
    info = _run_profile(db.engine, run_id)
    return None if info is None else info.model_dump(mode="json")


def validation_text(profile: dict[str, Any] | None, device: str | None) -> str:
    """One line for the run detail page."""
    if profile is None:
        return (
            f"Device {device or '?'} not validated: no `wattbench doctor --save` profile of it "
            "when this run was stored (docs/hardware-validation.md)."
        )
    date = str(profile["created_at"])[:10]
    outcome = profile["outcome"]
    head = ""
    if profile.get("headline_reader"):
        floor, std, rate = (
            profile.get("noise_floor_w"),
            profile.get("noise_std_w"),
            profile.get("sample_rate_hz"),
        )
        figures = [f"{profile['headline_reader']} ({profile.get('headline_scope') or '?'})"]
        if floor is not None and std is not None:
            figures.append(f"idle {floor:.3g} ± {std:.2g} W")
        if rate:
            figures.append(f"{rate:.3g} Hz")
        head = "; " + ", ".join(figures)
    version = f"wattbench {profile['wattbench_version']}"
    if outcome == "validated":
        return f"✓ Device validated by `wattbench doctor` on {date} ({version}{head})."
    if outcome == "estimate_only":
        return (
            f"Device profile of {date}: `wattbench doctor` found only the estimate there "
            f"(exit 3, {version}): no measured power reader."
        )
    return (
        f"⚠ Device profile of {date}: `wattbench doctor` FAILED (exit {profile['exit_code']}, "
        f"{version}{head}): its readers did not pass every check."
    )

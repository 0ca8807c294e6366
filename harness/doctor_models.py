"""What `wattbench doctor` reports: exit codes, checks, per-reader and cross-check reports,
settings. The method is in :mod:`wattbench.harness.doctor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from wattbench.core.errors import ConfigError

#: every measured reader passed its checks (warnings allowed)
EXIT_OK = 0
#: a reader (or a cross-check between two readers) failed a check
EXIT_FAILED = 1
#: no measured reader here: only the estimate (TDP x CPU utilisation) is available
EXIT_ESTIMATE_ONLY = 3
EXIT_CODES = {
    EXIT_OK: "every measured reader passed",
    EXIT_FAILED: "a reader failed a check",
    EXIT_ESTIMATE_ONLY: "only the estimate is available",
}
OUTCOMES = {EXIT_OK: "validated", EXIT_FAILED: "failed", EXIT_ESTIMATE_ONLY: "estimate_only"}

#: the group the remedies grant read access to
POWER_GROUP = "power"
#: scopes, narrowest first (they nest: chip < module < board < wall)
_SCOPES = ("chip", "module", "board", "wall")

Verdict = Literal["ok", "warn", "fail"]
_SEVERITY = {"ok": 0, "warn": 1, "fail": 2}


class Check(BaseModel):
    """One check of one reader: its verdict, what was found and, when not ok, the remedy."""

    name: str
    verdict: Verdict
    summary: str
    remedy: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class ReaderReport(BaseModel):
    """What the doctor found about one reader."""

    name: str
    #: measured (it took part in the window), estimate, unavailable (found or asked for, but
    #: not usable) or absent (nothing of its kind here)
    status: Literal["measured", "estimate", "unavailable", "absent"]
    #: asked for with --power, or configured with --power-opt NAME.…
    named: bool = False
    reason: str = ""
    method: str | None = None
    scope: str | None = None
    component: str | None = None
    update_period_s: float | None = None
    checks: list[Check] = Field(default_factory=list)
    energy_j: float | None = None
    uncertainty_j: float | None = None
    mean_power_w: float | None = None
    idle_mean_w: float | None = None
    idle_std_w: float | None = None
    idle_samples: int | None = None
    requested_rate_hz: float | None = None
    achieved_rate_hz: float | None = None
    step_delta_w: float | None = None
    step_delay_s: float | None = None
    recovered_w: float | None = None

    @property
    def verdict(self) -> Verdict | None:
        """The worst of its checks; None for an absent reader."""
        if not self.checks:
            return None
        return max((c.verdict for c in self.checks), key=lambda v: _SEVERITY[v])


class CrossCheck(BaseModel):
    """Two readers over the same window: the ratio of their energies (and of their steps)."""

    readers: tuple[str, str]
    scopes: tuple[str, str]
    energy_ratio: float | None
    step_ratio: float | None = None
    verdict: Verdict
    summary: str
    remedy: str | None = None


class DoctorReport(BaseModel):
    """``wattbench doctor --json``: the device, every reader, the cross-checks, the outcome."""

    device_name: str
    hostname: str
    wattbench_version: str
    created_at: datetime
    sysfs_root: str
    idle_s: float
    step_s: float
    recover_s: float
    sample_interval_s: float
    min_step_w: float
    sigmas: float
    load: str
    readers: list[ReaderReport]
    cross_checks: list[CrossCheck] = Field(default_factory=list)
    #: the first measured reader that passed (what a run's headline would be)
    headline_reader: str | None = None
    exit_code: int
    outcome: Literal["validated", "failed", "estimate_only"]
    summary: str
    exit_codes: dict[int, str] = Field(default_factory=lambda: dict(EXIT_CODES))

    def reader(self, name: str) -> ReaderReport:
        return next(r for r in self.readers if r.name == name)


@dataclass(frozen=True)
class DoctorSettings:
    """What ``wattbench doctor`` was asked to do."""

    #: readers to check, in order; empty: every reader installed
    power: tuple[str, ...] = ()
    idle_s: float = 5.0
    step_s: float = 5.0
    #: the recovery phase after the load; None: as long as the load
    recover_s: float | None = None
    sample_interval_s: float = 0.1
    #: the least rise the load must cause, whatever the noise
    min_step_w: float = 0.5
    #: ... and it must exceed this many standard deviations of the idle noise
    sigmas: float = 3.0
    device_name: str | None = None
    #: child processes of the CPU load; None: one per logical CPU
    load_workers: int | None = None

    def validate(self) -> None:
        for key in ("idle_s", "step_s", "sample_interval_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"--{key.replace('_', '-')} must be > 0")
        if self.recover_s is not None and not self.recover_s > 0:
            raise ConfigError("the recovery phase must be > 0 s")
        if self.min_step_w < 0 or self.sigmas < 0:
            raise ConfigError("--min-step-w and --sigmas must be >= 0")
        if self.load_workers is not None and self.load_workers < 1:
            raise ConfigError("--load-workers must be at least 1")

    @property
    def recovery_s(self) -> float:
        return self.recover_s if self.recover_s is not None else self.step_s

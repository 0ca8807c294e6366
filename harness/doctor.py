"""``wattbench doctor``: onboard a device and check its power readers before trusting them.

For each reader found here (or named with ``--power``) the doctor checks, with a verdict
(``ok``, ``warn`` or ``fail``) and a one-line remedy where something is wrong:

* **presence**: the reader's own availability probe (``wattbench power list``);
* **permissions**: every sysfs file it reads can be opened by this user (RAPL's
  ``energy_uj`` is root-only since Linux 5.10, CVE-2020-8694); the remedy is a udev rule
  and the ``chgrp``/``chmod`` lines that grant one group;
* **window**: one window over the phases below gives a valid reading;
* **sample rate**: requested (``--sample-interval-s``) against achieved;
* **resolution**: the counter's or sensor's step, and where it has one the counter's wrap
  period (RAPL ``max_energy_range_uj`` at the highest power seen; NVML's 64-bit counter);
* **noise floor**: mean and standard deviation of power over ``--idle-s`` of idle;
* **step**: a known load (a CPU busy loop in child processes for ``--step-s``) must lift
  the reading clearly above the noise floor (by more than ``--sigmas`` σ and at least
  ``--min-step-w``), within a stated delay (the 50 % rise), and the reading must come back
  in the recovery phase that follows.

All readers measure the same window, so where two of them cover the same device (one of
them at the wall, or both at the same scope) the ratio of their energies is a cross-check:
a chip or board figure above the wall figure (beyond both uncertainties) fails.

Exit codes (:data:`EXIT_OK`, :data:`EXIT_FAILED`, :data:`EXIT_ESTIMATE_ONLY`): 0 when every
measured reader passed (warnings allowed), 1 when a reader or cross-check failed (including
a reader named with ``--power`` that is not available, or a permission problem), 3 when no
measured reader is available and only the estimate remains; 2 stays the CLI's usage error.
The doctor never changes the machine; it prints what to run.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from wattbench.core.errors import ConfigError, WattbenchError
from wattbench.core.fingerprint import wattbench_version
from wattbench.core.power import (
    EnergyMethod,
    PowerReader,
    ReaderInfo,
    ReaderOptions,
)
from wattbench.harness.doctor_checks import _analyse, _cross_checks
from wattbench.harness.doctor_models import (  # noqa: F401 - the doctor's public names
    EXIT_CODES,
    EXIT_ESTIMATE_ONLY,
    EXIT_FAILED,
    EXIT_OK,
    OUTCOMES,
    Check,
    CrossCheck,
    DoctorReport,
    DoctorSettings,
    ReaderReport,
)
from wattbench.harness.doctor_probe import (
    CpuLoad,
    _Clock,
    _found,
    _Live,
    _measure,
    _needed_files,
    permission_remedy,
    read_sysfs,
)
from wattbench.harness.doctor_report import report_json, report_lines, report_markdown  # noqa: F401
from wattbench.power.select import METHOD_PREFERENCE, reader_classes


# -- the doctor -------------------------------------------------------------------------------
def _order(classes: dict[str, type[PowerReader]], power: Sequence[str]) -> list[str]:
    names = [n for n in dict.fromkeys(power) if n != "auto"]
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise ConfigError(
            f"unknown power reader {unknown[0]!r} in --power: use one of {', '.join(classes)}"
        )
    if names and "auto" not in power:
        return names
    # Every reader, most direct method first (as --power auto ranks them), the estimate last.
    rest = sorted(
        (n for n in classes if n not in names),
        key=lambda n: (
            METHOD_PREFERENCE.index(classes[n].method)
            if classes[n].method in METHOD_PREFERENCE
            else len(METHOD_PREFERENCE),
            n,
        ),
    )
    return names + rest


def _probe(
    name: str,
    cls: type[PowerReader],
    options: ReaderOptions,
    named: bool,
    read_file: Callable[[Path], bytes],
) -> tuple[ReaderReport, PowerReader | None]:
    """Presence and permissions of one reader; the reader when it can measure."""
    configured = named or any(k.startswith(f"{name}.") for k in options.params)
    rep = ReaderReport(name=name, status="absent", named=configured, method=cls.method.value)
    files = _needed_files(cls, options)
    denied: list[Path] = []
    for path in files:
        try:
            read_file(path)
        except PermissionError:
            denied.append(path)
        except OSError:
            pass  # not a permission problem: the availability probe names it
    try:
        ok, reason = cls.is_available(options)
    except WattbenchError as exc:
        ok, reason = False, str(exc)
    rep.reason = reason
    if denied:
        line, commands = permission_remedy(cls, denied)
        rep.status = "unavailable"
        rep.checks += [
            Check(name="presence", verdict="ok", summary=f"found {len(files)} sensor files"),
            Check(
                name="permissions",
                verdict="fail",
                summary=f"{len(denied)} of {len(files)} files unreadable by this user: "
                + ", ".join(str(p) for p in denied[:3])
                + (" …" if len(denied) > 3 else ""),
                remedy=line,
                data={"denied": [str(p) for p in denied], "commands": commands},
            ),
        ]
        return rep, None
    if not ok:
        if configured:
            rep.status = "unavailable"
            rep.checks.append(
                Check(name="presence", verdict="fail", summary="not available", remedy=reason)
            )
        elif _found(cls, options):
            rep.status = "unavailable"
            rep.checks.append(
                Check(
                    name="presence",
                    verdict="warn",
                    summary="found, but not usable as it is",
                    remedy=reason,
                )
            )
        return rep, None
    try:
        reader = cls(options)
        info = reader.info()
    except (WattbenchError, OSError, ValueError) as exc:
        rep.status = "unavailable"
        rep.checks.append(
            Check(name="presence", verdict="fail", summary="could not be set up", remedy=str(exc))
        )
        return rep, None
    rep.method, rep.scope = info.method.value, info.scope.value
    rep.component, rep.update_period_s = info.component, info.update_period_s
    rep.checks.append(Check(name="presence", verdict="ok", summary=reason or "available"))
    if files:
        rep.checks.append(
            Check(name="permissions", verdict="ok", summary=f"{len(files)} sensor files readable")
        )
    hook = getattr(reader, "setup_warnings", None)
    warnings = list(hook()) if callable(hook) else []
    if warnings:
        rep.checks.append(
            Check(
                name="setup",
                verdict="warn",
                summary="; ".join(warnings),
                remedy="see the reader's --power-opt settings in docs/measurement.md",
            )
        )
    if info.method is EnergyMethod.ESTIMATED:
        rep.status = "estimate"
        rep.checks.append(
            Check(
                name="method",
                verdict="warn",
                summary=f"an ESTIMATE (TDP x CPU utilisation, ±{_pct(info)}), not a "
                f"measurement; {info.details.get('tdp_source', '')}".rstrip("; "),
                remedy="measure instead: RAPL (x86), a Jetson's INA3221, NVML, an hwmon sensor "
                "or a wall plug (--power-opt shelly.url=http://PLUG_IP); "
                "docs/hardware-validation.md",
            )
        )
        reader.close()
        return rep, None
    rep.status = "measured"
    return rep, reader


def _pct(info: ReaderInfo) -> str:
    rel = info.details.get("relative_uncertainty")
    return f"{float(rel) * 100:.0f} %" if isinstance(rel, (int, float)) else "50 %"


def _outcome(readers: list[ReaderReport], cross: list[CrossCheck]) -> tuple[int, str, str | None]:
    failed = [r.name for r in readers if r.verdict == "fail"]
    failed += ["/".join(c.readers) for c in cross if c.verdict == "fail"]
    measured = [r for r in readers if r.status == "measured"]
    head = next((r.name for r in measured if r.verdict != "fail"), None)
    warned = [r.name for r in readers if r.verdict == "warn" and r.status == "measured"]
    if failed:
        return (
            EXIT_FAILED,
            f"FAILED: {', '.join(failed)} failed a check; apply the remedies above and run "
            "`wattbench doctor` again (or leave a reader out with --power)",
            head,
        )
    if not measured:
        tried = [r.name for r in readers if r.status != "estimate"]
        return (
            EXIT_ESTIMATE_ONLY,
            "only the ESTIMATE is available here: no measured power reader was found "
            f"(looked for {', '.join(tried) or 'none'}); runs on this device will be ranked "
            "as ESTIMATED (TDP x CPU utilisation). To measure, add a wall plug "
            "(--power-opt shelly.url=http://PLUG_IP) or run where RAPL, NVML, a Jetson's "
            "INA3221 or an hwmon power sensor is readable (docs/hardware-validation.md)",
            None,
        )
    names = ", ".join(r.name for r in measured)
    extra = f" (warnings: {', '.join(warned)})" if warned else ""
    return EXIT_OK, f"validated: {names} passed every check{extra}", head


def run_doctor(
    options: ReaderOptions,
    settings: DoctorSettings,
    *,
    classes: dict[str, type[PowerReader]] | None = None,
    load: Callable[[float], object] | None = None,
    read_file: Callable[[Path], bytes] = read_sysfs,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str, float], None] | None = None,
) -> DoctorReport:
    """Check every reader (or those in ``settings.power``) and return the report.

    ``load(seconds)`` is the known load (default :class:`CpuLoad`); ``read_file`` reads a
    sysfs file as this user (tests inject a permission error there); ``classes`` replaces
    the installed readers.
    """
    settings.validate()
    classes = reader_classes() if classes is None else classes
    options = options.model_copy(update={"sample_interval_s": settings.sample_interval_s})
    load_fn = load if load is not None else CpuLoad(settings.load_workers)
    order = _order(classes, settings.power)
    named = {n for n in settings.power if n != "auto"}
    reports: list[ReaderReport] = []
    live: list[_Live] = []
    for name in order:
        rep, reader = _probe(name, classes[name], options, name in named, read_file)
        reports.append(rep)
        if reader is not None:
            live.append(_Live(rep, reader, reader.info()))
    clock = _Clock(now, sleep, progress or (lambda _phase, _s: None))
    phases = _measure(live, settings, load_fn, clock) if live else {}
    for lv in live:
        _analyse(lv, phases.get(lv.report.name), settings)
    cross = _cross_checks(live)
    code, summary, head = _outcome(reports, cross)
    hostname = socket.gethostname()
    return DoctorReport(
        device_name=settings.device_name or hostname,
        hostname=hostname,
        wattbench_version=wattbench_version(),
        created_at=datetime.now(timezone.utc),
        sysfs_root=str(options.sysfs_root),
        idle_s=settings.idle_s,
        step_s=settings.step_s,
        recover_s=settings.recovery_s,
        sample_interval_s=settings.sample_interval_s,
        min_step_w=settings.min_step_w,
        sigmas=settings.sigmas,
        load=str(getattr(load_fn, "description", "injected load"))
        if live
        else "none (nothing to measure)",
        readers=reports,
        cross_checks=cross,
        headline_reader=head,
        exit_code=code,
        outcome=OUTCOMES[code],  # type: ignore[arg-type]
        summary=summary,
    )

"""`wattbench doctor`'s analysis of a window: validity, sample rate, resolution and wrap, idle
noise floor, the load step, and cross-checks between readers of one device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from wattbench.core.power import (
    ReaderInfo,
)
from wattbench.harness.doctor_models import (
    _SCOPES,
    Check,
    CrossCheck,
    DoctorSettings,
    Verdict,
)
from wattbench.harness.doctor_probe import _Live, _Phases


# -- analysis ---------------------------------------------------------------------------------
def _between(
    trace: Sequence[tuple[float, float]], lo: float, hi: float
) -> list[tuple[float, float]]:
    return [(t, p) for t, p in trace if lo <= t <= hi and math.isfinite(p)]


def _weights(points: Sequence[tuple[float, float]]) -> list[float]:
    """Each point's share of time: half the distance to each neighbour (the end points get
    their inner half twice). A counter's trace is uneven where a read was late, and a late
    read's power covers more time; weighting by time keeps the figures unbiased."""
    t = [x for x, _ in points]
    if len(t) < 2:
        return [1.0] * len(t)
    w = []
    for i in range(len(t)):
        left = t[i] - t[i - 1] if i > 0 else t[1] - t[0]
        right = t[i + 1] - t[i] if i < len(t) - 1 else t[-1] - t[-2]
        w.append(max((left + right) / 2, 0.0))
    return w if sum(w) > 0 else [1.0] * len(t)


def _mean_std(points: Sequence[tuple[float, float]]) -> tuple[float | None, float | None]:
    """Time-weighted mean and standard deviation of power over ``points``."""
    if not points:
        return None, None
    w = _weights(points)
    total = sum(w)
    mean = sum(wi * p for wi, (_, p) in zip(w, points, strict=True)) / total
    if len(points) < 2:
        return mean, 0.0
    var = sum(wi * (p - mean) ** 2 for wi, (_, p) in zip(w, points, strict=True)) / total
    # the unbiased (n - 1) correction, as statistics.stdev has for equal weights
    return mean, math.sqrt(var * len(points) / (len(points) - 1))


def _fmt_w(w: float | None) -> str:
    if w is None:
        return "n/a"
    return f"{w:.3g} W" if abs(w) >= 0.01 else f"{w * 1000:.3g} mW"


def _fmt_s(s: float) -> str:
    if s >= 120:
        return f"{s / 60:.3g} min" if s < 7200 else f"{s / 3600:.3g} h"
    return f"{s:.3g} s"


def _cpu_load_reaches(name: str, info: ReaderInfo) -> bool:
    """Whether a CPU load must show in this reader (not in a GPU board, nor in DRAM alone)."""
    if name == "nvml" or info.component.upper().startswith("GPU"):
        return False
    return info.details.get("domain") != "dram"


def _window_check(lv: _Live) -> Check:
    r = lv.reading
    if r is None:
        return Check(
            name="window",
            verdict="fail",
            summary=f"could not measure: {lv.error}",
            remedy="see the reader's section in docs/measurement.md ('Unavailable, and the fix')",
        )
    unc = f" ± {r.uncertainty_j:.3g} J" if r.uncertainty_j is not None else " (uncertainty unknown)"
    figures = (
        f"{r.energy_j:.4g} J{unc} over {r.duration_s:.3g} s, mean {_fmt_w(r.mean_power_w)}, "
        f"{r.samples} samples"
    )
    if not r.valid:
        return Check(
            name="window",
            verdict="fail",
            summary=f"invalid reading ({figures}): {'; '.join(r.invalid_reasons)}",
            remedy="each reason names its fix; see docs/measurement.md for the reader",
            data={"invalid_reasons": list(r.invalid_reasons)},
        )
    if r.uncertainty_j is None:
        return Check(
            name="window",
            verdict="warn",
            summary=figures,
            remedy=f"give the sensor's accuracy: --power-opt {lv.report.name}.accuracy_pct=…",
        )
    return Check(name="window", verdict="ok", summary=figures)


def _rate_check(lv: _Live, settings: DoctorSettings) -> Check:
    r = lv.reading
    assert r is not None
    requested = 1.0 / settings.sample_interval_s
    achieved = r.sample_rate_hz
    period = r.update_period_s or lv.info.update_period_s
    lv.report.requested_rate_hz, lv.report.achieved_rate_hz = requested, achieved
    # Two samples per sensor update are all a slow sensor can use.
    target = min(requested, 2.0 / period) if period else requested
    note = ""
    if period and 1.0 / period < requested:
        note = (
            f"; the sensor updates every {_fmt_s(period)}, so faster samples only see "
            "its changes sooner"
        )
    if achieved is None:
        return Check(
            name="sample rate",
            verdict="warn",
            summary=f"requested {requested:.3g} Hz; the reader did not report its achieved rate",
        )
    summary = f"requested {requested:.3g} Hz, achieved {achieved:.3g} Hz{note}"
    data = {"requested_hz": requested, "achieved_hz": achieved, "update_period_s": period}
    if achieved >= 0.8 * target:
        return Check(name="sample rate", verdict="ok", summary=summary, data=data)
    return Check(
        name="sample rate",
        verdict="warn",
        summary=summary + f" (< 80 % of the {target:.3g} Hz it could use)",
        remedy="the reads are slow (a busy bus, a slow network plug): raise "
        "--sample-interval-s, or check the sensor's link",
        data=data,
    )


def _smallest_step(trace: Sequence[tuple[float, float]]) -> float | None:
    steps = [abs(b - a) for (_, a), (_, b) in pairwise(trace) if abs(b - a) > 1e-12]
    return min(steps) if steps else None


def _resolution_check(lv: _Live) -> Check:
    r = lv.reading
    assert r is not None
    name, details = lv.report.name, r.details
    peak = max([p for _, p in r.trace] + [r.mean_power_w, r.peak_power_w or 0.0])
    parts: list[str] = []
    data: dict[str, Any] = {"peak_power_w": peak}
    verdict: Verdict = "ok"
    remedy = None
    if name == "rapl" or "energy_unit_uj" in details:
        unit_uj = float(details.get("energy_unit_uj") or 0.0)
        parts.append(f"energy unit {unit_uj:.3g} µJ (model-specific: rapl.energy_unit_uj)")
        ranges = [z.get("max_energy_range_uj") for z in details.get("zones", [])]
        data |= {"energy_unit_uj": unit_uj, "max_energy_range_uj": ranges}
        known = [float(x) for x in ranges if x]
        if len(known) < len(ranges) or not known:
            verdict = "warn"
            parts.append("max_energy_range_uj unreadable: a wrap would make the window invalid")
            remedy = "check the powercap driver (sudo modprobe intel_rapl_msr)"
        else:
            wrap_s = min(known) * 1e-6 / peak if peak > 0 else math.inf
            data["wrap_period_s"] = wrap_s
            parts.append(
                f"counter range {min(known) * 1e-6:.6g} J: wraps every {_fmt_s(wrap_s)} "
                f"at the {_fmt_w(peak)} peak seen"
            )
            if wrap_s < 10:
                verdict = "warn"
                remedy = (
                    "the counter wraps within seconds: keep the machine from suspending or "
                    "starving wattbench, or every window with a missed wrap is invalid"
                )
    elif name == "nvml":
        if details.get("mode") == "counter" or lv.info.details.get("has_counter"):
            parts.append(
                "energy counter in 1 mJ steps, 64-bit: never wraps (a driver reload resets it)"
            )
        else:
            field_name = details.get("power_field") or "power field"
            parts.append(f"power in mW ({field_name}), no counter")
    elif details.get("unit") == "uJ":
        rng = details.get("max_range_uj")
        parts.append(
            "µJ energy counter; "
            + (
                f"wraps at {float(rng):.6g} µJ"
                if rng
                else "range unknown (a decrease invalidates the window; hwmon.max_range_uj)"
            )
        )
    else:
        accuracy = details.get("sensor_accuracy") or {}
        res_w = accuracy.get("resolution_w")
        if res_w:
            parts.append(f"power in {_fmt_w(res_w)} steps")
        if details.get("counter_resolution_j"):
            parts.append(
                f"plug counter in {details['counter_resolution_j']:g} J steps "
                f"({details.get('counter_unit', 'its unit')})"
            )
        if name == "jetson":
            parts.append("INA3221 13-bit ADC: 40 µV shunt (÷ R) and 8 mV bus steps")
    step = _smallest_step(r.trace)
    data["smallest_step_w"] = step
    parts.append(f"smallest change seen {_fmt_w(step)}" if step else "the reading never changed")
    return Check(
        name="resolution", verdict=verdict, summary="; ".join(parts), remedy=remedy, data=data
    )


def _noise_check(
    lv: _Live, ph: _Phases, settings: DoctorSettings
) -> tuple[Check, float | None, float | None]:
    r = lv.reading
    assert r is not None
    # A guard before the load: a sample is stamped at the middle of its read, so a slow read
    # (a network plug) stamped just before the load may already hold its first watts.
    guard = min(ph.idle_end / 4, max(2 * settings.sample_interval_s, 0.1))
    idle = _between(r.trace, 0.0, ph.idle_end - guard)
    mean, std = _mean_std(idle)
    lv.report.idle_mean_w, lv.report.idle_std_w, lv.report.idle_samples = mean, std, len(idle)
    if mean is None or std is None or len(idle) < 3:
        return (
            Check(
                name="noise floor",
                verdict="fail",
                summary=f"only {len(idle)} samples in the idle phase",
                remedy="lengthen --idle-s or lower --sample-interval-s",
            ),
            None,
            None,
        )
    summary = f"idle {_fmt_w(mean)} ± {_fmt_w(std)} (σ over {len(idle)} samples)"
    data = {"mean_w": mean, "std_w": std, "samples": len(idle)}
    if mean <= 0:
        return (
            Check(
                name="noise floor",
                verdict="fail",
                summary=summary + ": a powered device never draws 0 W",
                remedy="the sensor reads nothing: check the channel or rail it is set to",
                data=data,
            ),
            mean,
            std,
        )
    if std > 0.2 * mean:
        return (
            Check(
                name="noise floor",
                verdict="warn",
                summary=summary + f" (σ is {std / mean:.0%} of the mean)",
                remedy="something else is busy: stop it, or lengthen --idle-s",
                data=data,
            ),
            mean,
            std,
        )
    return Check(name="noise floor", verdict="ok", summary=summary, data=data), mean, std


def _step_check(lv: _Live, ph: _Phases, settings: DoctorSettings, mean: float, std: float) -> Check:
    r = lv.reading
    assert r is not None
    trace = r.trace
    loaded = _between(trace, ph.load_start + (ph.load_end - ph.load_start) / 2, ph.load_end)
    loaded = loaded or _between(trace, ph.load_start, ph.load_end)
    after = _between(trace, ph.load_end + (ph.end - ph.load_end) / 2, ph.end)
    threshold = max(settings.sigmas * std, settings.min_step_w)
    data: dict[str, Any] = {"threshold_w": threshold, "noise_std_w": std}
    if not loaded or not after:
        return Check(
            name="step",
            verdict="fail",
            summary="too few samples in the load or recovery phase",
            remedy="lengthen --step-s or lower --sample-interval-s",
            data=data,
        )
    level = _mean_std(loaded)[0]
    back = _mean_std(after)[0]
    assert level is not None and back is not None
    delta = level - mean
    lv.report.step_delta_w, lv.report.recovered_w = delta, back
    data |= {"delta_w": delta, "load_level_w": level, "recovered_w": back}
    why = (
        f"{settings.sigmas:g}σ = {_fmt_w(settings.sigmas * std)}, "
        f"minimum {_fmt_w(settings.min_step_w)}"
    )
    if not delta > threshold:
        if not _cpu_load_reaches(lv.report.name, lv.info):
            return Check(
                name="step",
                verdict="warn",
                summary=f"{delta:+.3g} W under a CPU load ({why}): a CPU load need not reach "
                f"{lv.info.component}",
                remedy="check this reader with a load on its own device (e.g. a `wattbench run` "
                "on that accelerator)",
                data=data,
            )
        return Check(
            name="step",
            verdict="fail",
            summary=f"no clear rise under the load: {delta:+.3g} W "
            f"(needs > {_fmt_w(threshold)}: {why})",
            remedy="the reader does not see this machine's CPU: check that it measures this "
            "device (the plug feeds it, the right hwmon channel or Jetson rail), or load more "
            "cores (--load-workers)",
            data=data,
        )
    # The 50 % rise: the first sample past half the step (a slow sensor may cross after the
    # load ended; it is still found).
    half = mean + delta / 2
    crossing = next((t for t, p in trace if t >= ph.load_start and p >= half), None)
    delay = None if crossing is None else max(0.0, crossing - ph.load_start)
    lv.report.step_delay_s = delay
    data["delay_s"] = delay
    period = r.update_period_s or 0.0
    lag_limit = max(1.0, 3 * period, 3 * settings.sample_interval_s)
    summary = (
        f"{delta:+.3g} W under the load (> {_fmt_w(threshold)}: {why}), "
        f"50 % rise after {_fmt_s(delay) if delay is not None else 'n/a'}, back to {_fmt_w(back)}"
    )
    if back - mean >= max(threshold, delta / 2):
        return Check(
            name="step",
            verdict="warn",
            summary=summary + f": still {back - mean:+.3g} W above idle after the load",
            remedy="a fan or another load kept power up: lengthen --step-s (the recovery "
            "phase is as long) and run again",
            data=data,
        )
    if delay is not None and delay > lag_limit:
        return Check(
            name="step",
            verdict="warn",
            summary=summary + f" (more than {_fmt_s(lag_limit)})",
            remedy="the reading lags the load: use windows much longer than the lag "
            "(--duration), or a faster sensor",
            data=data,
        )
    return Check(name="step", verdict="ok", summary=summary, data=data)


def _analyse(lv: _Live, ph: _Phases | None, settings: DoctorSettings) -> None:
    rep = lv.report
    window = _window_check(lv)
    rep.checks.append(window)
    r = lv.reading
    if r is None or ph is None:
        return
    rep.energy_j, rep.uncertainty_j, rep.mean_power_w = r.energy_j, r.uncertainty_j, r.mean_power_w
    rep.checks.append(_rate_check(lv, settings))
    rep.checks.append(_resolution_check(lv))
    noise, mean, std = _noise_check(lv, ph, settings)
    rep.checks.append(noise)
    if mean is not None and std is not None:
        rep.checks.append(_step_check(lv, ph, settings, mean, std))


def _cross_checks(live: list[_Live]) -> list[CrossCheck]:
    ok = [lv for lv in live if lv.reading is not None and lv.reading.valid]
    out: list[CrossCheck] = []
    for i, a in enumerate(ok):
        for b in ok[i + 1 :]:
            assert a.reading is not None and b.reading is not None
            sa, sb = a.reading.scope.value, b.reading.scope.value
            if not (sa == sb or "wall" in (sa, sb)):
                continue  # e.g. a CPU chip and a GPU board: neither contains the other
            # narrow first
            n, w = (a, b) if _SCOPES.index(sa) <= _SCOPES.index(sb) else (b, a)
            assert n.reading is not None and w.reading is not None
            en, ew = n.reading.energy_j, w.reading.energy_j
            un, uw = n.reading.uncertainty_j or 0.0, w.reading.uncertainty_j or 0.0
            ratio = en / ew if ew > 0 else None
            dn, dw = n.report.step_delta_w, w.report.step_delta_w
            step_ratio = dn / dw if dn is not None and dw is not None and dw > 0 else None
            names = (n.report.name, w.report.name)
            scopes = (n.reading.scope.value, w.reading.scope.value)
            ratio_s = f"{ratio:.3g}" if ratio is not None else "n/a"
            step_s = f", step ratio {step_ratio:.3g}" if step_ratio is not None else ""
            if scopes[0] == scopes[1]:
                agree = abs(en - ew) <= un + uw
                out.append(
                    CrossCheck(
                        readers=names,
                        scopes=scopes,
                        energy_ratio=ratio,
                        step_ratio=step_ratio,
                        verdict="ok" if agree else "warn",
                        summary=f"{names[0]}/{names[1]} energy ratio {ratio_s}{step_s} "
                        f"(both {scopes[0]}: they should agree within ±{un + uw:.3g} J)",
                        remedy=None
                        if agree
                        else "two meters of one scope disagree beyond their uncertainties: "
                        "calibrate one against the other (NAME.accuracy_pct) or check that both "
                        "measure this device",
                    )
                )
                continue
            fits = en <= ew + un + uw
            out.append(
                CrossCheck(
                    readers=names,
                    scopes=scopes,
                    energy_ratio=ratio,
                    step_ratio=step_ratio,
                    verdict="ok" if fits else "fail",
                    summary=f"{names[0]}/{names[1]} energy ratio {ratio_s}{step_s} "
                    f"({scopes[0]} within {scopes[1]}: at most 1)",
                    remedy=None
                    if fits
                    else f"the {scopes[0]} figure exceeds the {scopes[1]} figure: the plug does "
                    "not feed this device, or a reader is misconfigured",
                )
            )
    return out

"""The table ``wattbench run`` prints after a run."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from wattbench.harness.cli.common import energy_label, fmt_num, out


def print_run_summary(result: Any, where: str) -> None:
    head = result.headline
    t = Table(
        title=f"{result.suite} {result.suite_version} — run {result.run_id}", show_header=False
    )
    t.add_column(style="bold")
    t.add_column()
    a = result.adapter
    t.add_row("model", f"{result.model.name} ({result.model.format}, {result.model.weights})")
    prov = getattr(result.model, "provenance", None)
    if prov is not None:
        line = f"{prov.kind}: {prov.source}" + (f" ({prov.license})" if prov.license else "")
        if prov.sha256:
            first = "" if prov.sha256_pinned else ", recorded on first download"
            line += f", sha256 {prov.sha256[:12]}{first}"
        t.add_row("weights", line)
    t.add_row("runtime", f"{a.runtime} {a.runtime_version} on {a.device} ({a.execution_provider})")
    t.add_row("inputs", result.inputs)
    t.add_row(
        "load / first inference", f"{result.load_ms:.1f} ms / {result.first_inference_ms:.2f} ms"
    )
    lat = result.latency
    t.add_row(
        "latency p50/p90/p99",
        f"{lat.p50_ms:.3f} / {lat.p90_ms:.3f} / {lat.p99_ms:.3f} ms (n={lat.count})",
    )
    t.add_row("scenario", f"{result.scenario} ({result.config.driver} driver)")
    for k, v in result.scenario_details.items():
        if not isinstance(v, (list, dict)):
            t.add_row(f"  {k}", str(v))
    t.add_row("throughput", f"{result.throughput_ips:.1f} inferences/s")
    if result.latency_e2e is not None:
        e = result.latency_e2e
        stages = " + ".join(f"{k} {v:.2f}" for k, v in result.e2e_breakdown_ms.items())
        t.add_row("end-to-end p50/p90", f"{e.p50_ms:.3f} / {e.p90_ms:.3f} ms ({stages} ms mean)")
    if result.generation is not None:
        g = result.generation
        t.add_row("time to first token p50", f"{g.ttft_ms.p50_ms:.2f} ms")
        t.add_row("time per output token p50", f"{g.tpot_ms.p50_ms:.3f} ms")
        t.add_row(
            "prefill / decode tokens/s",
            f"{g.prefill_tokens_per_s:.1f} / {g.decode_tokens_per_s:.1f}",
        )
        t.add_row(
            "J/token prefill / decode",
            f"{fmt_num(g.prefill_j_per_token, 5)} / {fmt_num(g.decode_j_per_token, 5)}",
        )
        t.add_row("tokens per joule", fmt_num(g.tokens_per_joule))
    if result.network is not None:
        n = result.network
        t.add_row(
            "network",
            f"{n.mode}: {n.escalated}/{n.queries} escalated ({n.escalation_failures} failed), "
            f"{n.bytes_per_inference:.0f} B/inference on the wire, "
            f"{fmt_num(n.network_j_per_inference, 5)} J/inference MODELLED ({n.link})",
        )
        t.add_row(
            "energy to solution",
            f"{fmt_num(n.energy_to_solution_j_per_inference, 5)} J/inference = edge "
            f"{fmt_num(n.edge_j_per_inference, 5)} ({n.edge_energy_method or '?'}) + network "
            f"{fmt_num(n.network_j_per_inference, 5)} (modelled) + cloud "
            f"{fmt_num(n.cloud_j_per_inference, 5)} ({n.cloud_energy})",
        )
        if n.agreement_with_cloud is not None:
            t.add_row("agreement with cloud", f"{n.agreement_with_cloud:.3f}")
    if head is not None:
        est = " (ESTIMATED)" if head.estimated else ""
        unc = (
            f" ± {head.uncertainty_j / head.gross_j * 100:.0f}%"
            if head.uncertainty_j is not None and head.gross_j > 0
            else ""
        )
        t.add_row(
            "energy",
            f"{energy_label(head.method.value, head.scope.value)}: "
            f"{head.component} via {head.reader}",
        )
        t.add_row("inferences per joule", f"{fmt_num(head.inferences_per_joule)}{unc}{est}")
        t.add_row("joules per inference", f"{fmt_num(head.joules_per_inference, 4)}{est}")
        t.add_row(
            "power mean/peak/idle",
            f"{head.mean_power_w:.2f} / {fmt_num(head.peak_power_w)} / {head.idle_w:.2f} W{est}",
        )
    if result.carbon is not None:
        c = result.carbon
        est = " (ESTIMATED energy)" if c.energy_method == "estimated" else ""
        t.add_row(
            "carbon",
            f"{c.g_co2e_per_1000_inferences:.4g} gCO2e per 1000 inferences at "
            f"{c.intensity_g_per_kwh:.0f} g/kWh ({c.intensity_source}){est}",
        )
    conf = getattr(result, "confidence", None)
    if conf is not None:
        t.add_row("95% CI of medians", confidence_line(conf))
    thermal = getattr(result, "thermal", None)
    if thermal is not None:
        t.add_row("thermal", thermal_line(result))
    t.add_row("quality", f"{'pass' if result.quality.passed else 'FAIL'}: {result.quality.detail}")
    t.add_row("valid", "yes" if result.valid else "NO: " + "; ".join(result.invalid_reasons))
    out.print(t)
    out.print(f"stored in {where}; see `wattbench leaderboard`")


def thermal_line(result: Any) -> str:
    """``max 71.0 C (x86_pkg_temp); no throttling`` or which trials throttled and why."""
    th = result.thermal
    hottest = max(th.sensors, key=th.sensors.get) if th.sensors else None
    temp = f"max {th.max_temp_c:.1f} C ({hottest})" if th.max_temp_c is not None else "no temp"
    throttled = [t for t in result.trials if t.throttled]
    if not throttled:
        return f"{temp}; no throttling"
    why = "; ".join(
        f"trial {t.index + 1}: {', '.join(t.throttle_reasons) or 'throttled'}" for t in throttled
    )
    return f"{temp}; THROTTLED in {len(throttled)}/{len(result.trials)} trials ({why})"


def confidence_line(conf: Any) -> str:
    """``inf/J 123.4 [121.9..124.6] ±1.2%, p90 ms 5.1 [5.0..5.2] ±0.8%; 9 trials in 5.4 s…``."""
    from wattbench.core.confidence import describe, interval_text

    return (
        f"inf/J {interval_text(conf.inferences_per_joule)}, "
        f"p90 ms {interval_text(conf.latency_p90_ms)}; {describe(conf)}"
    )

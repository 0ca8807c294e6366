"""Procurement ranks like with like: within one energy scope and measured-vs-estimated."""

from __future__ import annotations

import pytest

from wattbench.analysis.procurement import (
    BuyerInputs,
    Candidate,
    energy_basis,
    plan_all,
    plans_frame,
    ranks,
)


def _inputs() -> BuyerInputs:
    return BuyerInputs(
        required_ips=250.0,
        latency_bound_ms=20.0,
        electricity_price_per_kwh=0.25,
        lifetime_years=3.0,
        carbon_g_per_kwh=400.0,
    )


def _c(name: str, j: float, price: float, scope: str | None, estimated: bool = False) -> Candidate:
    how = "≈ ESTIMATED" if estimated else "measured: x"
    return Candidate(
        name,
        300.0,
        5.0,
        6.0,
        j,
        idle_w=1.0,
        device_price=price,
        energy=f"{how} · {scope or '?'}",
        estimated=estimated,
        scope=scope,
    )


def test_plans_rank_within_scope_and_method_groups_wall_and_board_first() -> None:
    # The chip-only figure of a device is far cheaper on paper than its wall-plug figure:
    # in one list it would be rank 1 above every wall figure.
    chip = _c("dev@chip", 0.005, 100.0, "chip")
    wall = _c("dev@wall", 0.05, 100.0, "wall")
    dear = _c("dear@wall", 0.02, 900.0, "wall")
    board = _c("b@board", 0.03, 400.0, "board")
    module = _c("m@module", 0.01, 200.0, "module")
    est = _c("e@chip", 0.001, 50.0, "chip", estimated=True)
    unscoped = _c("u", 0.02, 100.0, None)
    plans = plan_all([est, chip, unscoped, module, dear, board, wall], _inputs())
    assert [(p.group, p.config) for p in plans] == [
        ("wall · measured", "dev@wall"),
        ("wall · measured", "dear@wall"),
        ("board · measured", "b@board"),
        ("module · measured", "m@module"),
        ("chip · measured", "dev@chip"),
        ("chip · estimated", "e@chip"),
        ("no scope · measured", "u"),
    ]
    assert ranks(plans) == [1, 2, 1, 1, 1, 1, 1]
    by = {p.config: p for p in plans}
    assert by["dev@chip"].cost_per_million is not None
    assert by["dev@wall"].cost_per_million is not None
    assert by["dev@chip"].cost_per_million < by["dev@wall"].cost_per_million
    assert by["dev@wall"].cost_per_million < by["dear@wall"].cost_per_million  # (rank 1 < 2)

    frame = plans_frame(plans, "EUR")
    assert list(frame.columns[:3]) == ["rank", "group", "config"]
    assert frame["rank"].tolist() == [1, 2, 1, 1, 1, 1, 1]
    assert "scope" not in frame.columns
    basis = dict(zip(frame["config"], frame["energy basis"], strict=True))
    assert basis["dev@wall"] == "wall: as billed"
    assert "LOWER BOUND" not in basis["b@board"]
    for lower in ("m@module", "dev@chip", "e@chip"):
        assert "LOWER BOUND" in basis[lower], lower
    assert "LOWER BOUND" not in basis["u"]


def test_frame_csv_keeps_the_group() -> None:
    plans = plan_all([_c("a", 0.01, 100.0, "wall"), _c("b", 0.01, 100.0, "chip")], _inputs())
    csv = plans_frame(plans).to_csv(index=False)
    header, first, second = csv.splitlines()[:3]
    assert header.startswith("rank,group,config,")
    assert first.startswith("1,wall · measured,a,") and second.startswith("1,chip · measured,b,")


@pytest.mark.parametrize(
    ("scope", "lower"),
    [("wall", False), ("board", False), ("module", True), ("chip", True)],
)
def test_energy_basis(scope: str, lower: bool) -> None:
    assert ("LOWER BOUND" in energy_basis(scope)) == lower

"""RaplReader against fake powercap trees laid out with the kernel's exact names."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from wattbench.core.errors import ConfigError, MeasurementError, UnavailableError
from wattbench.core.power import EnergyMethod, EnergyScope, ReaderOptions
from wattbench.power.rapl import (
    ASSUMED_POWER_W,
    DEFAULT_ENERGY_UNIT_UJ,
    DEFAULT_REL_UNCERTAINTY,
    MAX_POLL_INTERVAL_S,
    MIN_POLL_INTERVAL_S,
    UPDATE_PERIOD_S,
    RaplReader,
    poll_interval_s,
)

#: A typical Intel ``max_energy_range_uj`` (2^32 units of 2^-14 J, as the kernel prints it).
BIG_RANGE_UJ = 262143328850


class FakeClock:
    """Monotonic seconds, moved by hand."""

    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakePowercap:
    """A ``sys/class/powercap`` tree whose counters the test moves (wrapping like RAPL)."""

    def __init__(self, root: Path, *, symlinked: bool = False) -> None:
        self.root = root
        self.base = root / "sys/class/powercap"
        self.base.mkdir(parents=True)
        self.symlinked = symlinked
        self.values: dict[str, int] = {}
        self.ranges: dict[str, int] = {}
        self.dirs: dict[str, Path] = {}
        # The control-type directory the kernel also puts here; not a zone.
        ctl = self.base / "intel-rapl"
        ctl.mkdir()
        (ctl / "enabled").write_text("1\n")

    def zone(
        self, zone_id: str, name: str, energy_uj: int = 0, range_uj: int = BIG_RANGE_UJ
    ) -> None:
        if self.symlinked:
            # Real layout: the class entries are links into devices/virtual/powercap.
            parts = zone_id.split(":")
            real = self.root / "sys/devices/virtual/powercap" / parts[0]
            if len(parts) == 3:
                real = real / ":".join(parts[:2])
            real = real / zone_id
            real.mkdir(parents=True)
            (self.base / zone_id).symlink_to(real)
            d = real
        else:
            d = self.base / zone_id
            d.mkdir()
        (d / "name").write_text(name + "\n")
        (d / "max_energy_range_uj").write_text(f"{range_uj}\n")
        self.dirs[zone_id] = d
        self.ranges[zone_id] = range_uj
        self.set(zone_id, energy_uj)

    def set(self, zone_id: str, energy_uj: int) -> None:
        self.values[zone_id] = energy_uj
        path = self.dirs[zone_id] / "energy_uj"
        tmp = path.with_name("energy_uj.tmp")
        tmp.write_text(f"{energy_uj}\n")
        os.replace(tmp, path)  # atomic, as a sysfs read never sees half a number

    def advance(self, zone_id: str, joules: float) -> None:
        value = self.values[zone_id] + round(joules * 1e6)
        self.set(zone_id, value % self.ranges[zone_id])

    def break_counter(self, zone_id: str) -> None:
        """Make the next reads of ``energy_uj`` fail (a directory where the file was)."""
        path = self.dirs[zone_id] / "energy_uj"
        path.unlink()
        path.mkdir()

    def repair_counter(self, zone_id: str) -> None:
        (self.dirs[zone_id] / "energy_uj").rmdir()
        self.set(zone_id, self.values[zone_id])


def laptop(tree: FakePowercap) -> None:
    """One socket with core/uncore/dram subzones, and psys as a second top zone."""
    tree.zone("intel-rapl:0", "package-0", 1_000_000)
    tree.zone("intel-rapl:0:0", "core", 2_000_000)
    tree.zone("intel-rapl:0:1", "dram", 3_000_000)
    tree.zone("intel-rapl:0:2", "uncore", 4_000_000)
    tree.zone("intel-rapl:1", "psys", 5_000_000)


def server(tree: FakePowercap) -> None:
    """Two sockets: intel-rapl:1 is package-1 here, not psys."""
    tree.zone("intel-rapl:0", "package-0", 7_000_000)
    tree.zone("intel-rapl:0:0", "dram", 100)
    tree.zone("intel-rapl:1", "package-1", 9_000_000)
    tree.zone("intel-rapl:1:0", "dram", 200)


def options(root: Path, **params: str) -> ReaderOptions:
    return ReaderOptions(sysfs_root=root, params={f"rapl.{k}": v for k, v in params.items()})


def manual(root: Path, clock: FakeClock, **params: str) -> RaplReader:
    return RaplReader(options(root, **params), clock=clock, background_poll=False)


@pytest.fixture
def tree(tmp_path: Path) -> FakePowercap:
    return FakePowercap(tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- energy from the counters ---------------------------------------------------


def test_package_energy_from_constant_counter_advance(tree: FakePowercap, clock: FakeClock) -> None:
    laptop(tree)
    r = manual(tree.root, clock)
    r.start()
    for _ in range(4):
        clock.now += 0.5
        tree.advance("intel-rapl:0", 12.5)  # 25 W
        tree.advance("intel-rapl:1", 40.0)  # psys moves too; it must not count
        r.poll()
    reading = r.stop()
    assert reading.energy_j == pytest.approx(50.0)
    assert reading.duration_s == pytest.approx(2.0)
    assert reading.mean_power_w == pytest.approx(25.0)
    assert reading.method is EnergyMethod.COUNTER
    assert reading.scope is EnergyScope.CHIP
    assert reading.valid, reading.invalid_reasons
    assert reading.component == "cpu package (package-0)"
    assert reading.samples == 6  # start edge, four polls, stop edge
    assert reading.update_period_s == pytest.approx(UPDATE_PERIOD_S)
    assert [p for _, p in reading.trace] == pytest.approx([25.0] * 4)
    assert reading.details["wraps"] == 0


def test_two_sockets_are_summed(tmp_path: Path, clock: FakeClock) -> None:
    tree = FakePowercap(tmp_path)
    server(tree)
    r = manual(tmp_path, clock)
    r.start()
    clock.now += 2.0
    tree.advance("intel-rapl:0", 100.0)
    tree.advance("intel-rapl:1", 60.0)
    reading = r.stop()
    assert reading.energy_j == pytest.approx(160.0)
    assert reading.component == "cpu package (package-0 + package-1)"
    per_zone = {z["name"]: z["energy_j"] for z in reading.details["zones"]}
    assert per_zone == pytest.approx({"package-0": 100.0, "package-1": 60.0})


def test_dram_is_summed_over_sockets_and_kept_apart_from_package(
    tmp_path: Path, clock: FakeClock
) -> None:
    tree = FakePowercap(tmp_path)
    server(tree)
    r = manual(tmp_path, clock, domain="dram")
    r.start()
    clock.now += 1.0
    tree.advance("intel-rapl:0", 100.0)
    tree.advance("intel-rapl:0:0", 7.0)
    tree.advance("intel-rapl:1:0", 5.0)
    reading = r.stop()
    assert reading.energy_j == pytest.approx(12.0)
    assert reading.scope is EnergyScope.CHIP
    assert reading.component == "cpu dram (package-0/dram + package-1/dram)"


@pytest.mark.parametrize(
    ("domain", "zone_id"), [("core", "intel-rapl:0:0"), ("uncore", "intel-rapl:0:2")]
)
def test_subzone_domains(tree: FakePowercap, clock: FakeClock, domain: str, zone_id: str) -> None:
    laptop(tree)
    r = manual(tree.root, clock, domain=domain)
    r.start()
    clock.now += 1.0
    tree.advance("intel-rapl:0", 30.0)
    tree.advance(zone_id, 11.0)
    assert r.stop().energy_j == pytest.approx(11.0)


def test_psys_is_never_summed_with_package(tree: FakePowercap, clock: FakeClock) -> None:
    laptop(tree)
    pkg = manual(tree.root, clock)
    psys = manual(tree.root, clock, domain="psys")
    pkg.start()
    psys.start()
    clock.now += 1.0
    tree.advance("intel-rapl:0", 20.0)
    tree.advance("intel-rapl:1", 35.0)  # psys contains the package: 35 J, not 55 J
    pkg_reading, psys_reading = pkg.stop(), psys.stop()
    assert pkg_reading.energy_j == pytest.approx(20.0)
    assert psys_reading.energy_j == pytest.approx(35.0)
    assert psys_reading.scope is EnergyScope.BOARD
    assert [z["zone"] for z in psys_reading.details["zones"]] == ["intel-rapl:1"]
    assert [z["zone"] for z in pkg_reading.details["zones"]] == ["intel-rapl:0"]


def test_kernel_layout_with_symlinks(tmp_path: Path, clock: FakeClock) -> None:
    tree = FakePowercap(tmp_path, symlinked=True)
    laptop(tree)
    assert RaplReader.is_available(options(tmp_path, domain="dram")).available
    r = manual(tmp_path, clock, domain="dram")
    r.start()
    clock.now += 1.0
    tree.advance("intel-rapl:0:1", 3.0)
    assert r.stop().energy_j == pytest.approx(3.0)


def test_mmio_duplicate_of_the_package_is_not_counted(tree: FakePowercap, clock: FakeClock) -> None:
    tree.zone("intel-rapl:0", "package-0", 0)
    mmio = tree.base / "intel-rapl-mmio:0"
    mmio.mkdir()
    (mmio / "name").write_text("package-0\n")
    (mmio / "energy_uj").write_text("0\n")
    r = manual(tree.root, clock)
    assert [z.zone_id for z in r.zones] == ["intel-rapl:0"]


def test_amd_rapl_names_are_read(tree: FakePowercap, clock: FakeClock) -> None:
    tree.zone("amd-rapl:0", "package-0", 0)
    r = manual(tree.root, clock)
    r.start()
    clock.now += 1.0
    tree.advance("amd-rapl:0", 9.0)
    assert r.stop().energy_j == pytest.approx(9.0)


# -- wraps ----------------------------------------------------------------------


def test_one_wrap_inside_the_window(tree: FakePowercap, clock: FakeClock) -> None:
    tree.zone("intel-rapl:0", "package-0", 990_000_000, range_uj=1_000_000_000)  # 1 kJ range
    r = manual(tree.root, clock)
    r.start()
    clock.now += 1.0
    tree.advance("intel-rapl:0", 30.0)  # 990 J -> 1020 J, read back as 20 J
    assert tree.values["intel-rapl:0"] == 20_000_000
    reading = r.stop()
    assert reading.energy_j == pytest.approx(30.0)
    assert reading.details["wraps"] == 1
    assert reading.valid, reading.invalid_reasons


def test_several_wraps_inside_the_window(tree: FakePowercap, clock: FakeClock) -> None:
    tree.zone("intel-rapl:0", "package-0", 70_000_000, range_uj=100_000_000)  # 100 J range
    r = manual(tree.root, clock)
    r.start()
    for _ in range(10):
        clock.now += 1.0
        tree.advance("intel-rapl:0", 40.0)  # 40 W: wraps every 2.5 s, read every 1 s
        r.poll()
    reading = r.stop()
    assert reading.energy_j == pytest.approx(400.0)
    assert reading.details["wraps"] == 4  # 70 J + 400 J crosses 100 J four times
    assert reading.valid, reading.invalid_reasons
    assert reading.details["zones"][0]["wraps"] == 4
    # one hardware unit per wrap joins the resolution term
    expected_res = DEFAULT_ENERGY_UNIT_UJ * 1e-6 * (1 + 4)
    assert reading.details["uncertainty_terms_j"]["resolution"] == pytest.approx(expected_res)


def test_reads_too_far_apart_for_the_wrap_period_are_flagged(
    tree: FakePowercap, clock: FakeClock
) -> None:
    tree.zone("intel-rapl:0", "package-0", 0, range_uj=100_000_000)
    r = manual(tree.root, clock)
    r.start()
    for _ in range(3):
        clock.now += 1.0
        tree.advance("intel-rapl:0", 60.0)  # wrap period 1.67 s, reads 1 s apart
        r.poll()
    reading = r.stop()
    assert not reading.valid
    # the wording is accounting.counter_energy's; the zone and the cause are ours to check
    assert any(m.startswith("package-0: ") and "wrap" in m for m in reading.invalid_reasons)


def test_wrap_with_unknown_range_is_invalid(tree: FakePowercap, clock: FakeClock) -> None:
    tree.zone("intel-rapl:0", "package-0", 90_000_000, range_uj=100_000_000)
    (tree.dirs["intel-rapl:0"] / "max_energy_range_uj").write_text("garbage\n")
    r = manual(tree.root, clock)
    r.start()
    clock.now += 1.0
    tree.advance("intel-rapl:0", 20.0)
    reading = r.stop()
    assert not reading.valid
    assert any("range" in m for m in reading.invalid_reasons)
    assert reading.energy_j == pytest.approx(0.0)  # the wrapped interval is missing, not guessed


def test_poll_interval_follows_the_wrap_period() -> None:
    assert poll_interval_s(BIG_RANGE_UJ, 100.0) == MAX_POLL_INTERVAL_S  # wraps after ~44 min
    assert poll_interval_s(1_000_000, 10.0) == pytest.approx(0.025)  # 1 J at 10 W: 0.1 s
    assert poll_interval_s(10_000_000, None) == pytest.approx(10.0 / ASSUMED_POWER_W / 4)
    assert poll_interval_s(1_000, 1000.0) == MIN_POLL_INTERVAL_S
    assert poll_interval_s(None, 10.0) == MAX_POLL_INTERVAL_S


def test_reader_shortens_its_poll_interval_and_never_lengthens_it_in_a_window(
    tree: FakePowercap, clock: FakeClock
) -> None:
    tree.zone("intel-rapl:0", "package-0", 0, range_uj=100_000_000)  # 100 J range
    r = manual(tree.root, clock)
    r.start()
    start_interval = 100.0 / ASSUMED_POWER_W / 4
    assert r.poll_interval == pytest.approx(start_interval)  # power not yet known
    clock.now += 0.01
    tree.advance("intel-rapl:0", 0.1)  # 10 W: a quiet stretch does not lengthen it,
    r.poll()  # as a burst may follow
    assert r.poll_interval == pytest.approx(start_interval)
    clock.now += 0.01
    tree.advance("intel-rapl:0", 40.0)  # 4 kW, above the assumed power: shortened
    r.poll()
    assert r.poll_interval == pytest.approx(100.0 / 4000.0 / 4)
    clock.now += 0.01
    tree.advance("intel-rapl:0", 0.1)  # quiet again: the peak still holds
    r.poll()
    assert r.poll_interval == pytest.approx(100.0 / 4000.0 / 4)
    r.stop()
    r.start()  # a new window starts from the assumed power again
    assert r.poll_interval == pytest.approx(start_interval)
    clock.now += 0.01
    r.stop()


def test_burst_too_fast_for_the_reads_is_invalid(tree: FakePowercap, clock: FakeClock) -> None:
    """The read-interval check uses the highest power seen, not the window's mean:
    a long quiet stretch must not hide a gap that a burst could have wrapped in."""
    tree.zone("intel-rapl:0", "package-0", 0, range_uj=100_000_000)  # 100 J range
    r = manual(tree.root, clock)
    r.start()
    for _ in range(10):
        clock.now += 0.025
        tree.advance("intel-rapl:0", 0.025 * 400.0)  # 400 W: wraps every 0.25 s
        r.poll()
    for _ in range(30):
        clock.now += 1.0  # the poll thread starved during a 1 W stretch
        tree.advance("intel-rapl:0", 1.0)
        r.poll()
    reading = r.stop()
    # mean power ~1.1 W allows reads 45 s apart; the 400 W peak allows 0.125 s
    assert reading.details["zones"][0]["peak_power_w"] == pytest.approx(400.0, rel=0.01)
    assert not reading.valid
    assert any("wrap" in m for m in reading.invalid_reasons)


def test_dynamic_counter_with_wraps_in_real_time(tree: FakePowercap) -> None:
    """A counter that advances (and wraps every 0.2 s) in real time, read by the real thread."""
    power_w, range_uj = 10.0, 2_000_000  # 2 J range at 10 W
    tree.zone("intel-rapl:0", "package-0", 0, range_uj=range_uj)
    t_begin = time.monotonic()
    #: (when, value) of every energy_uj read, as the hardware answered it
    served: list[tuple[float, int]] = []

    class LiveRapl(RaplReader):
        """energy_uj is computed when it is read, as the hardware's register is: no
        writer thread whose starvation under load would serve stale values."""

        @classmethod
        def _read_text(cls, path: Path) -> str:
            if path.name != "energy_uj":
                return super()._read_text(path)
            t = time.monotonic()
            energy_uj = int(power_w * 1e6 * (t - t_begin))
            served.append((t, energy_uj))
            return f"{energy_uj % range_uj}\n"

    r = LiveRapl(options(tree.root))
    try:
        r.start()
        time.sleep(0.5)
        reading = r.stop()
    finally:
        r.close()
    # All the energy between the first and the last read, every wrap included.
    truth_j = (served[-1][1] - served[0][1]) * 1e-6
    assert reading.energy_j == pytest.approx(truth_j, abs=1e-5)
    assert reading.details["wraps"] == served[-1][1] // range_uj - served[0][1] // range_uj >= 2
    # Wraps every 0.2 s: the reader must poll well inside that (at most a quarter of
    # it, never under one counter update), however the scheduler treated the thread.
    assert MIN_POLL_INTERVAL_S <= reading.details["poll_interval_s"] <= 0.05
    assert reading.details["zones"][0]["max_read_interval_s"] is not None
    assert reading.valid, reading.invalid_reasons


# -- failed reads -----------------------------------------------------------------


def test_failed_read_mid_window_is_missing_not_zero(tree: FakePowercap, clock: FakeClock) -> None:
    tree.zone("intel-rapl:0", "package-0", 0)
    r = manual(tree.root, clock)
    r.start()
    clock.now += 1.0
    tree.advance("intel-rapl:0", 10.0)
    tree.break_counter("intel-rapl:0")
    r.poll()
    tree.repair_counter("intel-rapl:0")
    clock.now += 1.0
    tree.advance("intel-rapl:0", 10.0)
    reading = r.stop()
    assert reading.energy_j == pytest.approx(20.0)
    assert reading.details["zones"][0]["missing_reads"] == 1
    assert reading.valid, reading.invalid_reasons


def test_failed_read_at_window_end_is_invalid_not_zero(
    tree: FakePowercap, clock: FakeClock
) -> None:
    tree.zone("intel-rapl:0", "package-0", 0)
    r = manual(tree.root, clock)
    r.start()
    clock.now += 1.0
    tree.advance("intel-rapl:0", 10.0)
    r.poll()
    clock.now += 1.0
    tree.advance("intel-rapl:0", 10.0)
    tree.break_counter("intel-rapl:0")
    reading = r.stop()
    assert not reading.valid
    assert any("end" in m for m in reading.invalid_reasons)
    assert reading.energy_j == pytest.approx(10.0)  # up to the last good read, labelled


def test_no_readable_counter_in_window_raises(tree: FakePowercap, clock: FakeClock) -> None:
    tree.zone("intel-rapl:0", "package-0", 0)
    r = manual(tree.root, clock)
    tree.break_counter("intel-rapl:0")
    r.start()
    clock.now += 1.0
    with pytest.raises(MeasurementError, match="could not be read"):
        r.stop()


# -- availability ---------------------------------------------------------------


def test_missing_tree_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    ok, reason = RaplReader.is_available(ReaderOptions(sysfs_root=tmp_path))
    assert not ok
    assert reason.startswith("no RAPL here (")
    assert str(tmp_path / "sys/class/powercap") in reason
    assert "Intel/AMD x86 Linux only; VMs rarely expose it" in reason
    with pytest.raises(UnavailableError, match="no RAPL here"):
        RaplReader(ReaderOptions(sysfs_root=tmp_path))


def test_empty_powercap_names_the_driver(tree: FakePowercap) -> None:
    ok, reason = RaplReader.is_available(options(tree.root))
    assert not ok
    assert "modprobe intel_rapl_msr" in reason


class DeniedRapl(RaplReader):
    """energy_uj readable by root only, as since Linux 5.10 (tests run as root,
    and root ignores file modes, so the denial is injected at the read seam)."""

    @classmethod
    def _read_text(cls, path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return super()._read_text(path)


def test_unreadable_energy_uj_names_the_fix(tree: FakePowercap) -> None:
    laptop(tree)
    ok, reason = DeniedRapl.is_available(options(tree.root))
    assert not ok
    energy = tree.base / "intel-rapl:0" / "energy_uj"
    assert reason.startswith(f"RAPL needs read access to {energy}: run as root")
    assert 'SUBSYSTEM=="powercap", ACTION=="add"' in reason
    assert 'RUN+="/bin/chmod a+r /sys/class/powercap/%k/energy_uj"' in reason
    assert f"sudo chmod a+r {tree.base}/intel-rapl:*/energy_uj" in reason
    assert RaplReader.is_available(options(tree.root)).available


def test_energy_uj_that_cannot_be_read_is_unavailable(tree: FakePowercap) -> None:
    tree.zone("intel-rapl:0", "package-0", 0)
    tree.break_counter("intel-rapl:0")
    ok, reason = RaplReader.is_available(options(tree.root))
    assert not ok
    assert reason.startswith("cannot read ")
    assert "energy_uj" in reason


def test_unknown_domain(tree: FakePowercap) -> None:
    laptop(tree)
    ok, reason = RaplReader.is_available(options(tree.root, domain="gpu"))
    assert not ok
    assert "package, core, uncore, dram, psys" in reason
    with pytest.raises(ConfigError, match=r"rapl\.domain"):
        RaplReader(options(tree.root, domain="gpu"))


def test_absent_domain_lists_what_is_there(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path)
    server(tree)
    ok, reason = RaplReader.is_available(options(tmp_path, domain="psys"))
    assert not ok
    assert "no RAPL 'psys' zone here" in reason
    assert "package-0, package-0/dram, package-1, package-1/dram" in reason
    assert "rapl.domain=dram|package" in reason


def test_available_names_the_zones(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path)
    server(tree)
    assert RaplReader.is_available(options(tmp_path)) == (True, "package: package-0, package-1")


# -- uncertainty and protocol -------------------------------------------------------


def test_uncertainty_terms(tree: FakePowercap, clock: FakeClock) -> None:
    tree.zone("intel-rapl:0", "package-0", 0)
    r = manual(tree.root, clock, rel_uncertainty="0.02", energy_unit_uj="61")
    r.start()
    clock.now += 2.0
    tree.advance("intel-rapl:0", 100.0)
    reading = r.stop()
    expected = 0.02 * 100.0 + 61e-6 + 50.0 * UPDATE_PERIOD_S
    assert reading.uncertainty_j == pytest.approx(expected)
    default = manual(tree.root, clock)
    assert default.rel_uncertainty == DEFAULT_REL_UNCERTAINTY


def test_bad_number_param(tree: FakePowercap) -> None:
    laptop(tree)
    with pytest.raises(ConfigError, match=r"rapl\.rel_uncertainty"):
        RaplReader(options(tree.root, rel_uncertainty="lots"))


def test_start_stop_protocol(tree: FakePowercap, clock: FakeClock) -> None:
    laptop(tree)
    r = manual(tree.root, clock)
    with pytest.raises(MeasurementError, match="without start"):
        r.stop()
    r.start()
    with pytest.raises(MeasurementError, match="twice"):
        r.start()
    clock.now += 1.0
    r.stop()
    r.close()


def test_zero_length_window_raises(tree: FakePowercap, clock: FakeClock) -> None:
    laptop(tree)
    r = manual(tree.root, clock)
    r.start()
    with pytest.raises(MeasurementError, match="no duration"):
        r.stop()


def test_background_thread_stops_on_close(tree: FakePowercap) -> None:
    laptop(tree)
    r = RaplReader(options(tree.root))
    r.start()
    assert any(t.name == "rapl-poll" for t in threading.enumerate())
    r.close()
    assert not any(t.name == "rapl-poll" for t in threading.enumerate())


def test_read_jitter_term_counts_how_long_the_edge_reads_took(tree: FakePowercap) -> None:
    """A read round is stamped before its zones are read: each edge can be off by as long
    as its round took, at the window's mean power."""
    tree.zone("intel-rapl:0", "package-0", 0)

    class SlowReads:
        """Every call moves time by 1 ms: a round's reads take 1 ms between its two calls."""

        now = 500.0

        def __call__(self) -> float:
            self.now += 0.001
            return self.now

    clock = SlowReads()
    r = RaplReader(options(tree.root), clock=clock, background_poll=False)
    r.start()
    clock.now += 2.0
    tree.advance("intel-rapl:0", 100.0)
    reading = r.stop()
    terms = reading.details["uncertainty_terms_j"]
    assert terms["read_jitter"] == pytest.approx(reading.mean_power_w * 2 * 0.001)
    assert reading.uncertainty_j == pytest.approx(sum(terms.values()))

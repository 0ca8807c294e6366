"""The Jetson tuner against a fake ``nvpmodel`` with the real output format."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from wattbench.core.errors import ConfigError
from wattbench.core.tuner import TunerPermissionError
from wattbench.tuners.jetson import JetsonPowerModeTuner, parse_modes, parse_query

# `nvpmodel -q` on an Orin: the mode's name, then its id on a line of its own
QUERY = "NV Fan Mode:quiet\nNV Power Mode: {name}\n{id}\n"
# `nvpmodel -p --verbose`
MODES = (
    "NVPM VERB: Config file: /etc/nvpmodel.conf\n"
    "NVPM VERB: parsing done for /etc/nvpmodel.conf\n"
    "NVPM VERB: POWER_MODEL: ID=0 NAME=MAXN\n"
    "NVPM VERB: POWER_MODEL: ID=1 NAME=10W\n"
    "NVPM VERB: POWER_MODEL: ID=2 NAME=15W\n"
    "NVPM VERB: POWER_MODEL: ID=3 NAME=25W\n"
)
NAMES = {0: "MAXN", 1: "10W", 2: "15W", 3: "25W"}


class FakeNvpmodel:
    def __init__(self) -> None:
        self.mode = 0
        self.calls: list[list[str]] = []

    def __call__(self, cmd: Sequence[str]) -> tuple[int, str]:
        args = list(cmd[1:])
        self.calls.append(args)
        if args == ["-q"]:
            return 0, QUERY.format(name=NAMES[self.mode], id=self.mode)
        if args == ["-p", "--verbose"]:
            return 0, MODES
        if args[:1] == ["-m"] and int(args[1]) in NAMES:
            self.mode = int(args[1])
            return 0, ""
        return 1, "NVPM ERROR: invalid mode"


def test_parsers_read_the_real_formats() -> None:
    assert parse_query(QUERY.format(name="15W", id=2)) == ("15W", 2)
    assert parse_modes(MODES) == NAMES
    assert parse_modes("< POWER_MODEL ID=0 NAME=MAXN >\n< POWER_MODEL ID=1 NAME=MODE_15W >\n") == {
        0: "MAXN",
        1: "MODE_15W",
    }


def test_reads_lists_sets_and_restores() -> None:
    fake = FakeNvpmodel()
    t = JetsonPowerModeTuner(fake, is_root=lambda: True)
    assert t.is_available() == (True, "")
    saved = t.read_current()
    assert saved == 0 and t.allowed_values() == [0, 1, 2, 3]
    t.set("15W")
    assert fake.mode == 2 and ["-m", "2"] in fake.calls
    t.restore(saved)
    assert fake.mode == 0
    with pytest.raises(ConfigError, match="unknown power-mode"):
        t.set("turbo")


def test_a_fake_nvpmodel_script_on_disk(tmp_path: Path) -> None:
    state = tmp_path / "mode"
    state.write_text("1")
    script = tmp_path / "nvpmodel"
    script.write_text(
        "#!/bin/sh\n"
        f'S="{state}"\n'
        'case "$1" in\n'
        '  -q) M=$(cat "$S"); [ "$M" = 1 ] && N=10W || N=MAXN;'
        ' printf "NV Fan Mode:quiet\\nNV Power Mode: %s\\n%s\\n" "$N" "$M";;\n'
        '  -m) echo "$2" > "$S";;\n'
        f"  -p) printf '{MODES.replace(chr(10), chr(92) + 'n')}';;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    t = JetsonPowerModeTuner(nvpmodel=str(script), is_root=lambda: True)
    assert t.read_current() == 1 and t.allowed_values() == [0, 1, 2, 3]
    t.set(0)
    assert t.read_current() == 0
    t.restore(1)
    assert subprocess.run([str(script), "-q"], capture_output=True, text=True).stdout.endswith(
        "1\n"
    )


def test_not_root_is_one_line_naming_sudo_and_the_sudoers_line() -> None:
    t = JetsonPowerModeTuner(FakeNvpmodel(), is_root=lambda: False)
    with pytest.raises(TunerPermissionError) as info:
        t.check_permission()
    msg = str(info.value)
    assert "\n" not in msg and "sudo" in msg and "NOPASSWD: /usr/sbin/nvpmodel" in msg


def test_missing_nvpmodel_says_so() -> None:
    t = JetsonPowerModeTuner(nvpmodel=os.devnull + "/nvpmodel")
    ok, reason = t.is_available()
    assert not ok and "nvpmodel not found" in reason


class FakeL4t(FakeNvpmodel):
    """nvpmodel and jetson_clocks: --store writes the clocks to a file, --restore reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.clocks = "default"
        self.log: list[str] = []

    def __call__(self, cmd: Sequence[str]) -> tuple[int, str]:
        if Path(cmd[0]).name != "jetson_clocks":
            if list(cmd[1:2]) == ["-m"]:
                self.log.append(f"nvpmodel -m {cmd[2]}")
                self.clocks = "default"  # a mode change resets the clocks
            return super().__call__(cmd)
        args = list(cmd[1:])
        self.log.append(" ".join(["jetson_clocks", *args]))
        if args == ["--show"]:
            return 0, "SOC family:tegra234\n"
        if args[:1] == ["--store"]:
            Path(args[1]).write_text(self.clocks)
        elif args[:1] == ["--restore"]:
            self.clocks = Path(args[1]).read_text()
        elif not args:
            self.clocks = f"pinned@{self.mode}"
        return 0, ""


def test_jetson_clocks_stored_pinned_and_restored(tmp_path: Path, journal: Path) -> None:
    from wattbench.core.tuning import TuneSession, read_journal

    fake = FakeL4t()
    fake.clocks = "user-tuned"
    t = JetsonPowerModeTuner(fake, is_root=lambda: True)
    t.configure(jetson_clocks=True)
    assert t.is_available() == (True, "")
    with TuneSession({"jetson": t}) as session:
        session.apply("jetson", "15W")
        data = read_journal(journal)
        assert data is not None
        saved = data["entries"]["jetson"]["saved"]
        store = journal.with_name("jetson-clocks.store")
        assert saved == {"mode": 0, "clocks_file": str(store)}  # the journal keeps the path
        assert store.read_text() == "user-tuned"
        assert fake.mode == 2 and fake.clocks == "pinned@2"
        session.apply("jetson", 3)
        assert fake.clocks == "pinned@3"
    assert fake.mode == 0 and fake.clocks == "user-tuned" and not store.exists()
    assert [x for x in fake.log if x != "jetson_clocks --show"] == [
        f"jetson_clocks --store {store}", "nvpmodel -m 2", "jetson_clocks",
        "nvpmodel -m 3", "jetson_clocks",
        "nvpmodel -m 0", f"jetson_clocks --restore {store}",
    ]  # fmt: skip


def test_jetson_clocks_restored_from_the_journal_after_a_kill(
    tmp_path: Path, journal: Path
) -> None:
    from wattbench.core.tuning import TuneSession, restore_from_journal

    fake = FakeL4t()
    fake.clocks = "user-tuned"
    t = JetsonPowerModeTuner(fake, is_root=lambda: True, clocks_file=tmp_path / "clocks")
    t.configure(jetson_clocks=True)
    session = TuneSession({"jetson": t})
    session.__enter__()
    session.apply("jetson", 1)  # then "killed": no __exit__
    session._old_handlers.clear()
    fresh = JetsonPowerModeTuner(fake, is_root=lambda: True)  # not configured: the journal says
    done = restore_from_journal(journal, factory=lambda _n, _r: fresh)
    assert done == [("jetson", {"mode": 0, "clocks_file": str(tmp_path / "clocks")})]
    assert fake.mode == 0 and fake.clocks == "user-tuned" and not journal.exists()


def test_jetson_clocks_options_and_availability() -> None:
    t = JetsonPowerModeTuner(FakeNvpmodel(), is_root=lambda: True)
    with pytest.raises(ConfigError, match=r"unknown option.*pin.*known: jetson_clocks"):
        t.configure(pin=True)
    t.configure(jetson_clocks=True)
    t.jetson_clocks = os.devnull + "/jetson_clocks"
    fake = FakeNvpmodel()

    def runner(cmd: Sequence[str]) -> tuple[int, str]:
        return (127, "not found") if "jetson_clocks" in cmd[0] else fake(cmd)

    t.runner = runner
    ok, reason = t.is_available()
    assert not ok and "jetson_clocks not found" in reason
    t2 = JetsonPowerModeTuner(FakeL4t(), is_root=lambda: False)
    t2.configure(jetson_clocks=True)
    assert "/usr/bin/jetson_clocks" in t2.is_available()[1]


def test_other_tuners_take_no_options(cpufreq_tree: Path) -> None:
    from wattbench.tuners.cpufreq import CpufreqTuner

    with pytest.raises(ConfigError, match="tuner 'cpufreq' takes no options"):
        CpufreqTuner(cpufreq_tree).configure(jetson_clocks=True)


def test_load_tuner_passes_the_sweep_options() -> None:
    from wattbench.core.tuning import load_tuner

    assert load_tuner("jetson", None, {"jetson_clocks": True}).pin_clocks  # type: ignore[attr-defined]
    assert not load_tuner("jetson").pin_clocks  # type: ignore[attr-defined]

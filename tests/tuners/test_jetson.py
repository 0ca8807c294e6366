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

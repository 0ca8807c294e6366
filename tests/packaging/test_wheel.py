"""The built wheel carries every subpackage, the migrations and the entry points.

The test suite itself runs against the editable install; this catches what
only a regular ``pip install .`` would miss (package-dir mapping, package data).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("wattbench-*.whl")
    return zipfile.ZipFile(whl)


def test_wheel_maps_top_level_folders_into_wattbench(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for sub in ("harness", "adapters", "suites", "results_db", "dashboard"):
        assert f"wattbench/{sub}/__init__.py" in names
        assert f"wattbench/{sub}/py.typed" in names
    assert "wattbench/results_db/migrations/env.py" in names
    assert "wattbench/results_db/migrations/script.py.mako" in names
    assert any(n.startswith("wattbench/results_db/migrations/versions/0001_") for n in names)
    assert "wattbench/power/estimated.py" in names
    # tests/, scripts/ and docs/ stay out of the package
    assert not any(n.startswith(("wattbench/tests", "tests/", "scripts/")) for n in names)


def test_wheel_declares_cli_and_plugins(wheel: zipfile.ZipFile) -> None:
    ep = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    text = wheel.read(ep).decode()
    assert "wattbench = wattbench.harness.cli:main" in text
    for group in ("[wattbench.adapters]", "[wattbench.power]", "[wattbench.suites]"):
        assert group in text
    assert "onnxruntime = wattbench.adapters.onnxruntime:OnnxRuntimeAdapter" in text

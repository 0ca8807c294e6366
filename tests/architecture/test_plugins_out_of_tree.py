"""A third-party package written against the contract modules (docs/plugins.md) is found and
used: its files are taken from the docs, built in a temporary folder and installed beside
wattbench, so the documented example cannot rot."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WATTBENCH = str(Path(sys.executable).with_name("wattbench"))


def _doc_files() -> dict[str, str]:
    text = (ROOT / "docs" / "plugins.md").read_text()
    found = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    return dict(found)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("plugin-src")
    for rel, body in _doc_files().items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(body)
    site = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site


def _wattbench(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([WATTBENCH, *args], capture_output=True, text=True, timeout=120, env=env)


def test_the_docs_hold_the_whole_example() -> None:
    assert set(_doc_files()) == {
        "pyproject.toml",
        "wattbench_example/__init__.py",
        "wattbench_example/adapter.py",
        "wattbench_example/reader.py",
    }


def test_the_example_imports_only_the_contract_modules() -> None:
    for rel, body in _doc_files().items():
        for module in re.findall(r"^from (wattbench\.\S+) import", body, flags=re.M):
            assert module.startswith("wattbench.core."), (rel, module)


def test_an_out_of_tree_adapter_is_listed_and_loads(plugin_site: Path, tmp_path: Path) -> None:
    proc = _wattbench(plugin_site, "adapters", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["example-numpy"]["available"] is True
    # and it runs a model through the contract, in a process that found it by entry point
    weights = tmp_path / "w.npy"
    code = (
        "import numpy as np; from pathlib import Path\n"
        "from wattbench.core import plugins\n"
        "from wattbench.core.adapter import AdapterOptions, ModelArtifact\n"
        "cls = plugins.load(plugins.ADAPTERS, 'example-numpy')\n"
        f"np.save({str(weights)!r}, np.eye(4, 3, dtype=np.float32))\n"
        f"art = ModelArtifact(path=Path({str(weights)!r}), sha256='0'*64, format='npy', "
        "weights='user', name='w')\n"
        "s = cls().load(art, AdapterOptions())\n"
        "(y,) = s.run(s.prepare({'x': np.ones((1, 4), np.float32)}))\n"
        "print(y.tolist(), s.describe().runtime)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(plugin_site)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[[1.0, 1.0, 1.0]] numpy"


def test_an_out_of_tree_reader_measures(plugin_site: Path, tmp_path: Path) -> None:
    counter = tmp_path / "meter.joules"
    counter.write_text("100.000\n")
    opt = f"example-counter.path={counter}"
    listed = _wattbench(plugin_site, "power", "list", "--json", "--power-opt", opt)
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "example-counter")
    assert row["available"] is True and row["scope"] == "wall" and row["method"] == "external"

    stop = threading.Event()

    def meter() -> None:  # a 5 W load, logged every 50 ms
        joules = 100.0
        while not stop.is_set():
            time.sleep(0.05)
            joules += 5 * 0.05
            counter.write_text(f"{joules:.3f}\n")

    t = threading.Thread(target=meter)
    t.start()
    try:
        proc = _wattbench(
            plugin_site,
            "power",
            "measure",
            "--reader",
            "example-counter",
            "--seconds",
            "1",
            "--power-opt",
            opt,
            "--json",
        )
    finally:
        stop.set()
        t.join()
    assert proc.returncode == 0, proc.stderr
    reading = json.loads(proc.stdout)
    assert reading["valid"] is True and reading["uncertainty_j"] == pytest.approx(0.002)
    assert 3.0 < reading["mean_power_w"] < 7.0  # ~5 W, within the logger's timing jitter


def test_a_reader_that_sees_nothing_says_so(plugin_site: Path, tmp_path: Path) -> None:
    counter = tmp_path / "stuck.joules"
    counter.write_text("7.0\n")
    proc = _wattbench(
        plugin_site,
        "power",
        "measure",
        "--reader",
        "example-counter",
        "--seconds",
        "0.3",
        "--power-opt",
        f"example-counter.path={counter}",
        "--json",
    )
    reading = json.loads(proc.stdout)
    assert proc.returncode == 1 and reading["valid"] is False
    assert "did not advance" in reading["invalid_reasons"][0]


def test_a_broken_plugin_package_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "broken_plugin").mkdir(parents=True)
    (src / "broken_plugin" / "__init__.py").write_text("import not_a_module_anywhere\n")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "broken-plugin"\nversion = "0"\n'
        '[project.entry-points."wattbench.adapters"]\nbroken = "broken_plugin:Adapter"\n'
    )
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    listed = _wattbench(site, "adapters", "--json")
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "broken")
    assert row["available"] is False and "failed to import" in row["reason"]
    run = _wattbench(site, "run", "--suite", "mobilenet_v2", "--adapter", "broken")
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert run.returncode == 2 and len(errors) == 1 and "Traceback" not in run.stderr
    assert "adapter 'broken' (broken_plugin:Adapter) failed to import" in errors[0]

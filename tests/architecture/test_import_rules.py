"""The parts import each other only as docs/architecture.md says."""

from __future__ import annotations

from pathlib import Path

import tomllib
from import_rules import ALLOWED, check_tree

ROOT = Path(__file__).resolve().parents[2]


def test_the_checkout_follows_the_import_rules() -> None:
    violations = check_tree(ROOT)
    assert not violations, "forbidden imports:\n" + "\n".join(map(str, violations))


def test_every_installed_part_has_a_rule() -> None:
    # a new top-level part must be given its rule here before it can land
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dirs = pyproject["tool"]["setuptools"]["package-dir"]
    parts = {name.split(".")[1] for name in dirs}
    assert parts <= set(ALLOWED), f"parts without an import rule: {sorted(parts - set(ALLOWED))}"


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_checker_finds_every_form_of_a_forbidden_import(tmp_path: Path) -> None:
    _write(tmp_path, "core/a.py", "from wattbench.harness.protocol import Runner\n")
    _write(tmp_path, "results_db/b.py", "def f():\n    import wattbench.adapters.onnxruntime\n")
    _write(tmp_path, "dashboard/c.py", "from wattbench import power\n")
    _write(
        tmp_path,
        "power/d.py",
        "import importlib\nm = importlib.import_module('wattbench.suites.slm')\n",
    )
    _write(tmp_path, "harness/e.py", "from wattbench.dashboard import app\n")
    _write(tmp_path, "analysis/ok.py", "from wattbench.results_db.store import Store\n")
    _write(tmp_path, "suites/ok.py", "from wattbench.core.suite import Suite\nfrom . import x\n")
    found = {(str(v.file), v.imported) for v in check_tree(tmp_path)}
    assert found == {
        ("core/a.py", "harness"),
        ("results_db/b.py", "adapters"),
        ("dashboard/c.py", "power"),
        ("power/d.py", "suites"),
        ("harness/e.py", "dashboard"),
    }


def test_a_violation_names_the_file_line_and_the_rule(tmp_path: Path) -> None:
    _write(tmp_path, "results_db/x.py", "\n\nfrom wattbench.harness import protocol\n")
    (v,) = check_tree(tmp_path)
    assert str(v) == (
        "results_db/x.py:3: results_db imports wattbench.harness (results_db may import core)"
    )

"""The import rules between wattbench's parts, and a checker that walks the source.

Every import is found from the syntax tree, wherever it stands (module level, inside a
function, under ``TYPE_CHECKING``) and in every form (``import wattbench.x``, ``from
wattbench.x import y``, ``from wattbench import x``, ``importlib.import_module("wattbench.x")``),
while ``importlib.util.find_spec`` (which locates a part without importing it, as the CLI
locates the Streamlit app) is not an import,
so a lazy import cannot slip past. docs/architecture.md shows the same rules as a picture.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: part -> the other parts it may import. A part not listed here is unknown and fails.
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "adapters": frozenset({"core"}),
    "suites": frozenset({"core"}),
    "power": frozenset({"core"}),
    # device-setting tuners (loaded by name through core.plugins, like the readers)
    "tuners": frozenset({"core"}),
    "results_db": frozenset({"core"}),
    "analysis": frozenset({"core", "results_db"}),
    "dashboard": frozenset({"core", "results_db", "analysis"}),
    # the runner composes the plug-ins and the store; it never imports the dashboard
    "harness": frozenset({"core", "adapters", "suites", "power", "results_db", "analysis"}),
    # lab campaigns drive the runner and the store; nothing imports them
    "fleet": frozenset(
        {"core", "adapters", "suites", "power", "harness", "results_db", "analysis"}
    ),
}


@dataclass(frozen=True)
class Violation:
    file: Path
    line: int
    part: str
    imported: str

    def __str__(self) -> str:
        allowed = ", ".join(sorted(ALLOWED.get(self.part, ()))) or "no other part"
        return (
            f"{self.file}:{self.line}: {self.part} imports wattbench.{self.imported} "
            f"({self.part} may import {allowed})"
        )


def _imported_parts(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, part) for each wattbench part a module imports."""
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "wattbench":
                names = [f"wattbench.{a.name}" for a in node.names]
            else:
                names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        for name in names:
            bits = name.split(".")
            if len(bits) >= 2 and bits[0] == "wattbench":
                yield node.lineno, bits[1]


def check_tree(root: Path, parts: dict[str, frozenset[str]] = ALLOWED) -> list[Violation]:
    """Violations of ``parts`` in the part folders under ``root`` (a checkout)."""
    found: list[Violation] = []
    for part in sorted(parts):
        folder = root / part
        if not folder.is_dir():
            continue
        for file in sorted(folder.rglob("*.py")):
            tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
            for line, imported in _imported_parts(tree):
                if imported != part and imported not in parts[part]:
                    found.append(Violation(file.relative_to(root), line, part, imported))
    return found

"""One device measured at chip and at wall scope is two configurations on every page.

Their labels used to be equal (the scope was not in the name), and the Compare page then
failed building its table on duplicate column names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from seed import seed_url


def _ok(at: Any) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_compare_keeps_chip_and_wall_apart_and_warns(
    tmp_path: Path, run_page: Callable[..., Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    seed_url(url, tmp_path, dual_scope=True)
    at = run_page(url, "compare")
    _ok(at)
    options = list(at.multiselect[0].options)
    dual = [o for o in options if "dual-scope" in o]
    assert len(dual) == 2 and len(set(dual)) == 2, dual
    assert {o.rsplit("@", 1)[-1].split()[0] for o in dual} == {"chip", "wall"}
    at.multiselect[0].set_value(dual).run()
    _ok(at)
    assert any("different scopes" in w.value for w in at.warning)

"""Plug-in discovery through entry points.

Three groups make the three plug-in axes: ``wattbench.adapters``,
``wattbench.power`` and ``wattbench.suites``. A third-party package adds a
runtime by declaring an entry point in one of them; nothing here needs editing.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from wattbench.core.errors import UnavailableError, UnknownPluginError

ADAPTERS = "wattbench.adapters"
POWER_READERS = "wattbench.power"
SUITES = "wattbench.suites"
TUNERS = "wattbench.tuners"

_KIND = {ADAPTERS: "adapter", POWER_READERS: "power reader", SUITES: "suite", TUNERS: "tuner"}
_LIST_CMD = {
    ADAPTERS: "wattbench adapters",
    POWER_READERS: "wattbench power list",
    SUITES: "wattbench suites",
    TUNERS: "wattbench tune list",
}


def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    """Registered plug-in names of a group, sorted."""
    return sorted(_entry_points(group))


def load(group: str, name: str) -> Any:
    """Import and return the class registered as ``name`` in ``group``."""
    eps = _entry_points(group)
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise UnknownPluginError(
            f"unknown {_KIND[group]} {name!r} (known: {known}); see `{_LIST_CMD[group]}`"
        )
    try:
        return eps[name].load()
    except (ImportError, AttributeError, SyntaxError) as exc:
        # a broken third-party package must not take every command down with a traceback
        raise UnavailableError(
            f"{_KIND[group]} {name!r} ({eps[name].value}) failed to import: "
            f"{type(exc).__name__}: {exc}; reinstall or remove the package that provides it"
        ) from None

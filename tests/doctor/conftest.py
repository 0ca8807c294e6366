"""Fixtures of the doctor tests: the readers' fake trees (from tests/power), sensors that a
thread moves while an injected load runs, and the plug emulators on loopback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The tree builders and plug emulators of the readers' own tests, and the store's fake run.
_HERE = Path(__file__).resolve().parent
for _d in (_HERE, _HERE.parent / "power", _HERE.parent / "store"):
    if str(_d) not in sys.path:
        sys.path.insert(0, str(_d))

from doctor_fakes import FakeLoad, Sensor  # noqa: E402
from test_smartplug import plug  # noqa: E402

__all__ = ["plug"]


@pytest.fixture
def load() -> FakeLoad:
    return FakeLoad()


@pytest.fixture
def sensors() -> Iterator[Callable[..., Sensor]]:
    """``sensors(write, load, idle_w, load_w)``: a started :class:`Sensor`, stopped after."""
    started: list[Sensor] = []

    def start(*args: object, **kw: object) -> Sensor:
        s = Sensor(*args, **kw)  # type: ignore[arg-type]
        s.__enter__()
        started.append(s)
        return s

    yield start
    for s in started:
        s.__exit__(None, None, None)

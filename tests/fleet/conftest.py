"""Fleet fixtures: the broker, and a :class:`fleetkit.Fleet` on a fresh PostgreSQL store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fleetkit import Fleet, broker_url_or_skip


@pytest.fixture(scope="session")
def broker_url() -> str:
    return broker_url_or_skip()


@pytest.fixture
def fleet(broker_url: str, pg_url: str, tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(broker_url, pg_url, tmp_path)
    # the schema first, so that workers starting together do not race to create it
    from wattbench.results_db.store import Store

    Store.open(pg_url).close()
    try:
        yield f
    finally:
        f.close()

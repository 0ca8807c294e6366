"""Helpers the test folders share by import (a conftest.py cannot be imported reliably:
every folder's is called ``conftest``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def require_pretrained(name: str) -> Path:
    """The local file of registry entry ``name`` (the cache, or ``.cache/pretrained`` where
    scripts/test.sh extracts the weights), else a visible skip; with
    ``WATTBENCH_REQUIRE_MODELS=1`` (CI) a missing file fails the test instead."""
    from wattbench.suites.models import pretrained_files

    path = pretrained_files.find(name)
    if path is None:
        reason = (
            f"pretrained file {name} not found (run scripts/test.sh, which extracts it into "
            f".cache/pretrained, or `wattbench models fetch {name}`)"
        )
        if os.environ.get("WATTBENCH_REQUIRE_MODELS") == "1":
            pytest.fail(f"WATTBENCH_REQUIRE_MODELS=1 but {reason}")
        pytest.skip(reason)
    return path

"""The availability probe result shared by adapters and power readers."""

from __future__ import annotations

from typing import NamedTuple


class Availability(NamedTuple):
    """``(available, reason)``: the reason says why not, or what was found."""

    available: bool
    reason: str

    @classmethod
    def yes(cls, reason: str = "") -> Availability:
        return cls(True, reason)

    @classmethod
    def no(cls, reason: str) -> Availability:
        return cls(False, reason)

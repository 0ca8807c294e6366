"""The tuner contract: a device setting a sweep may change and must put back.

A tuner reads, lists, sets and restores one setting (CPU max frequency, Jetson power mode,
GPU power limit). Implementations live in ``wattbench.tuners`` and register in the
``wattbench.tuners`` entry-point group; :mod:`wattbench.core.tuning` applies them under a
journal so the original values always come back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from wattbench.core.errors import ConfigError, WattbenchError


class TunerPermissionError(WattbenchError):
    """The setting cannot be changed by this user; the message names the remedy."""


class Tuner(ABC):
    """One device setting. ``value`` is what a sweep sets; ``saved`` is what
    :meth:`read_current` returned (it may be richer, e.g. one value per CPU policy) and
    must survive JSON (the journal stores it)."""

    #: registry name, also the journal key
    name: ClassVar[str] = ""
    #: unit of ``value`` (kHz, W, mode)
    unit: ClassVar[str] = ""
    #: the `sweep settings` key this tuner serves (cpu-max-freq, power-mode, ...)
    sweep_key: ClassVar[str] = ""

    @classmethod
    def create(cls, *, sysfs_root: Path | None = None) -> Tuner:
        """The tuner for this machine (or a recorded tree under ``sysfs_root``)."""
        return cls()

    @abstractmethod
    def is_available(self) -> tuple[bool, str]:
        """(True, "") when the setting can be read and changed here; else (False, one line
        naming the remedy: run as root, a sudoers line, a group)."""

    @abstractmethod
    def read_current(self) -> Any:
        """The current setting, JSON-serialisable; :meth:`restore` takes it back."""

    def configure(self, **options: Any) -> None:
        """Tuner options from the sweep file (e.g. the Jetson tuner's ``jetson_clocks``);
        the default knows none and refuses any with one line."""
        if options:
            raise ConfigError(f"tuner {self.name!r} takes no options (got {', '.join(options)})")

    def snapshot(self) -> Any:
        """What the journal saves before the first change (default: :meth:`read_current`).
        A tuner may save more here (the Jetson tuner stores its clocks to a file and keeps
        the file's path); :meth:`restore` gets it back."""
        return self.read_current()

    @abstractmethod
    def allowed_values(self) -> list[Any]:
        """The values :meth:`set` accepts, in ascending order where they have one."""

    @abstractmethod
    def set(self, value: Any) -> None:
        """Apply ``value`` (one of :meth:`allowed_values`, or within their range)."""

    @abstractmethod
    def restore(self, saved: Any) -> None:
        """Put back what :meth:`read_current` returned."""

    def parse_value(self, raw: Any) -> Any:
        """A sweep-file value as :meth:`set` takes it (default: unchanged)."""
        return raw

    def describe(self, value: Any) -> str:
        """``value`` for people and labels."""
        return str(value)

    def check_permission(self) -> None:
        """Raise :class:`TunerPermissionError` (one line with the remedy) unless usable."""
        ok, reason = self.is_available()
        if not ok:
            raise TunerPermissionError(f"tuner {self.name!r}: {reason}")

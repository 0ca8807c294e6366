"""One exception tree for wattbench.

Every error a user can cause or fix derives from :class:`WattbenchError`; its
message is one line that names the remedy. The CLI prints it as ``error: …``
and exits non-zero without a traceback. Anything else escaping is a bug.
"""

from __future__ import annotations


class WattbenchError(Exception):
    """Base class: a one-line message that tells the user what to do."""

    exit_code: int = 2


class ConfigError(WattbenchError):
    """An invalid option, option combination or configuration file."""


class UnknownPluginError(ConfigError):
    """A suite, adapter or power reader name that no entry point provides."""


class ModelError(WattbenchError):
    """A model file that is missing, corrupt or does not fit the suite."""


class ChecksumError(ModelError):
    """A downloaded or imported artifact whose sha256 does not match."""


class UnavailableError(WattbenchError):
    """A runtime or power reader that cannot work on this machine (the reason says why)."""


class MeasurementError(WattbenchError):
    """A power reader that could not produce a trustworthy reading."""


class StoreError(WattbenchError):
    """The results database is unreachable, read-only or at the wrong schema version."""


class SchemaVersionError(StoreError):
    """The database schema is older or newer than this wattbench expects."""


class ImplausibleResultError(WattbenchError):
    """A run that breaks a plausibility rule (:mod:`wattbench.core.validation`): not stored."""

"""Errors of the upload path; all are :class:`StoreError`\\ s, so the CLI prints one line."""

from __future__ import annotations

from wattbench.core.errors import StoreError


class UploadError(StoreError):
    """Runs could not be delivered; they stay pending and the message says what to do."""


class TokenError(StoreError):
    """An API token that does not exist, or a device name that cannot hold one."""

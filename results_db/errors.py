"""Errors of the upload path; all are :class:`StoreError`\\ s, so the CLI prints one line."""

from __future__ import annotations

from wattbench.core.errors import StoreError


class UploadError(StoreError):
    """Runs could not be delivered; they stay pending and the message says what to do."""


class TokenError(StoreError):
    """An API token that does not exist, or a device name that cannot hold one."""


class RunConflictError(StoreError):
    """A run id the store already holds, sent again with different content.

    The stored run is never overwritten; ``path`` is the first differing field (JSON
    path, see :func:`wattbench.core.canonical.first_difference`).
    """

    def __init__(self, run_id: str, path: str, store: str, stored_device: str | None) -> None:
        self.run_id = run_id
        self.path = path
        self.stored_device = stored_device
        super().__init__(
            f"run {run_id} is already stored in {store} with different content (first "
            f"difference: {path}); the stored run was kept: a run id names one run, so "
            f"record the run again instead of editing it"
        )

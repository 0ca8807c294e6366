"""What an upload attempt can come to: shared by the transports and the upload pass.

The outcome names passed to ``on_result``, the failure classes the transports
(:mod:`~wattbench.results_db.upload_http`, :mod:`~wattbench.results_db.upload_db`)
raise and :mod:`~wattbench.results_db.upload` acts on, and the backoff cap.
"""

from __future__ import annotations

#: Longest wait between two attempts, whatever the backoff base.
MAX_BACKOFF_S = 30.0

#: Outcomes passed to ``on_result``.
CREATED = "created"
DUPLICATE = "duplicate"
REJECTED = "rejected"
CONFLICT = "conflict"
FAILED = "failed"


class _Transient(Exception):
    """Worth retrying: the server or network is (perhaps briefly) unavailable."""


class _Fatal(Exception):
    """Stops the pass: nothing else will get through either (bad token, wrong URL)."""


class _Rejected(Exception):
    """This run will not be accepted as it is."""


class _Conflict(Exception):
    """The target holds this run id with different content; it keeps its own."""


class _NoBatch(Exception):
    """The server has no batch endpoint (an older one): send runs one by one."""


class _TooLarge(Exception):
    """The server refused the batch as too large: send smaller ones."""


class _BatchRefused(Exception):
    """The server could not read the batch as a whole: send its runs one by one."""


#: One run's answer in a batch: (outcome, the server's reason for a refusal or conflict).
_Answer = tuple[str, str]
#: Per-run statuses of a batch answer that acknowledge the run.
_ACKNOWLEDGED = {"created": CREATED, "duplicate": DUPLICATE}

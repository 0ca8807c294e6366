"""What a cloud or hybrid run records about the network (stored with the result)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from wattbench.core.stats import LatencyStats


class NetworkResult(BaseModel):
    """Bytes measured at the client socket; network energy *modelled* from them.

    Per-inference figures divide by ``queries`` (every answered query, local or
    escalated). ``energy_to_solution_j_per_inference`` = edge compute (measured by
    the run's headline reader) + network (modelled) + cloud compute (measured by
    the server's reader, or a configured per-request figure: ``cloud_energy`` says
    which).
    """

    mode: str = Field(description="edge, cloud or hybrid.")
    queries: int = Field(description="Queries of the measured windows.")
    escalated: int = Field(description="Queries sent to the cloud.")
    escalation_failures: int = Field(default=0, description="Escalations that got no answer.")
    bytes_sent: int = Field(description="Bytes written to the socket, protocol overhead included.")
    bytes_received: int = Field(description="Bytes read from the socket.")
    network_j_per_inference: float | None = Field(
        description="Modelled network energy per inference (bytes measured, energy modelled)."
    )
    details: dict[str, Any] = Field(default_factory=dict)
    # -- added with the hybrid mode ------------------------------------------------------
    cloud_url: str | None = None
    threshold: float | None = Field(default=None, description="Hybrid: --escalate-below.")
    escalation_rate: float = Field(default=0.0, description="escalated / queries.")
    payload: str = Field(default="", description="Wire encoding of escalated samples.")
    link: str = Field(default="wifi", description="Access link of the energy model.")
    bytes_method: str = Field(
        default="socket",
        description="tcp_info: the kernel's TCP payload counts of the client socket (TLS "
        "included); socket: bytes through the client's socket wrapper (HTTP headers + body).",
    )
    header_bytes: int = Field(
        default=0, description="TCP/IP header bytes of the counted segments (both directions)."
    )
    wire_bytes: int = Field(default=0, description="sent + received + header bytes.")
    bytes_per_inference: float = Field(default=0.0, description="wire_bytes / queries.")
    network_energy_label: str = Field(
        default="modelled", description="Always 'modelled': bytes measured, joules modelled."
    )
    network_j_low_per_inference: float | None = None
    network_j_high_per_inference: float | None = None
    edge_j_per_inference: float | None = Field(
        default=None, description="The run's headline energy per query (measured or estimated)."
    )
    edge_energy_method: str | None = None
    cloud_j_per_inference: float | None = None
    cloud_energy: str = Field(
        default="none",
        description="measured (server reader), estimated (server's estimate reader or a "
        "configured J/request), zero (no escalation answered) or none (unknown).",
    )
    cloud_energy_basis: str = ""
    energy_to_solution_j_per_inference: float | None = None
    energy_to_solution_low_j: float | None = None
    energy_to_solution_high_j: float | None = None
    edge_wait_j_per_inference: float | None = Field(
        default=None,
        description="Modelled: the edge's measured idle power x its time waiting on the "
        "cloud; reported apart, not in energy-to-solution.",
    )
    agreement_with_cloud: float | None = Field(
        default=None, description="Share of queries whose final answer equals the cloud's."
    )
    agreement_escalated: float | None = Field(
        default=None,
        description="Agreement over the escalated queries only (the cloud's own answer, so "
        "below 1 only when an escalation failed or the cloud answered differently).",
    )
    agreement_kept: float | None = Field(
        default=None,
        description="Agreement over the queries the edge answered itself: how often its "
        "confident answers match the cloud's.",
    )
    accuracy: float | None = Field(
        default=None,
        description="Top-1 accuracy of the final answers per query, where the suite has "
        "labels for its inputs (None otherwise).",
    )
    edge_accuracy: float | None = Field(
        default=None, description="The same for the edge's own answers (nothing escalated)."
    )
    cloud_accuracy: float | None = Field(
        default=None, description="The same for the cloud's answers (everything escalated)."
    )
    accuracy_basis: str | None = Field(default=None, description="What the labels are.")
    round_trip: LatencyStats | None = Field(
        default=None, description="Escalations' round trips (request sent to answer read)."
    )
    failures: dict[str, int] = Field(
        default_factory=dict, description="Failed escalations by cause."
    )
    energy_model: dict[str, Any] = Field(
        default_factory=dict, description="Model name, version, coefficients and sources."
    )
    interface_check: dict[str, Any] | None = Field(
        default=None, description="OS interface counters over the escalations: a cross-check."
    )
    cloud: dict[str, Any] = Field(default_factory=dict, description="What the endpoint serves.")
    per_sample: list[dict[str, Any]] = Field(default_factory=list)

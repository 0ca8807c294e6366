"""What a cloud or hybrid run records about the network (stored with the result)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class NetworkResult(BaseModel):
    """Bytes measured at the client socket; energy *modelled* from them."""

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

"""The PowerReader contract.

A reader measures the energy one component drew over a window. Every reading
says *how* it was obtained (:class:`EnergyMethod`), *what* it covers
(:class:`EnergyScope`) and how uncertain it is. A reader that cannot measure
raises :class:`~wattbench.core.errors.MeasurementError` or returns an
invalid reading with reasons; it never reports 0 J for "unknown".

Adding a reader is one module with a :class:`PowerReader` subclass plus an
entry point in the ``wattbench.power`` group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from wattbench.core.availability import Availability


class EnergyMethod(str, Enum):
    """How an energy figure was obtained, from most to least direct."""

    COUNTER = "counter"  # a cumulative hardware energy counter read at the window edges
    POLLED = "polled"  # instantaneous/averaged power sampled and integrated over time
    EXTERNAL = "external"  # a meter outside the device (wall plug, bench meter, trace)
    ESTIMATED = "estimated"  # a model (e.g. TDP x utilisation), not a measurement


class EnergyScope(str, Enum):
    """What part of the system the figure covers (they nest: chip < module < board < wall)."""

    CHIP = "chip"
    MODULE = "module"
    BOARD = "board"
    WALL = "wall"


class ReaderOptions(BaseModel):
    """Options every reader accepts; a reader ignores what does not apply to it."""

    model_config = ConfigDict(frozen=True)

    tdp_w: float | None = Field(
        default=None, gt=0, description="Package TDP in watts for the estimated reader."
    )
    sysfs_root: Path = Field(
        default=Path("/"), description="Filesystem root under which sysfs/procfs are read."
    )
    sample_interval_s: float = Field(
        default=0.1, gt=0, description="Background sampling interval of polled readers."
    )
    params: dict[str, str] = Field(
        default_factory=dict,
        description="Reader-specific settings as 'reader.key' -> value "
        "(CLI: --power-opt shelly.url=http://…).",
    )

    def param(self, reader: str, key: str, default: str | None = None) -> str | None:
        """The value of ``reader.key`` from :attr:`params`, else ``default``."""
        return self.params.get(f"{reader}.{key}", default)


class ReaderInfo(BaseModel):
    """Static description of a reader instance."""

    name: str
    method: EnergyMethod
    scope: EnergyScope
    component: str = Field(description="What is measured, e.g. 'cpu package 0' or 'VDD_IN'.")
    update_period_s: float | None = Field(
        default=None, description="How often the sensor's value changes, when known."
    )
    details: dict[str, Any] = Field(default_factory=dict)


class EnergyReading(BaseModel):
    """The energy of one window as one reader saw it."""

    reader: str
    method: EnergyMethod
    scope: EnergyScope
    component: str
    energy_j: float = Field(ge=0)
    duration_s: float = Field(gt=0)
    samples: int = Field(ge=0, description="Sensor samples taken inside the window.")
    sample_rate_hz: float | None = Field(default=None, description="Achieved, not requested.")
    update_period_s: float | None = None
    mean_power_w: float
    peak_power_w: float | None = None
    uncertainty_j: float | None = Field(
        default=None, description="Half-width of the uncertainty interval, in joules."
    )
    valid: bool = True
    invalid_reasons: list[str] = Field(default_factory=list)
    trace: list[tuple[float, float]] = Field(
        default_factory=list, description="(seconds since window start, watts), downsampled."
    )
    details: dict[str, Any] = Field(default_factory=dict)


class PowerReader(ABC):
    """Measures energy over windows delimited by :meth:`start` and :meth:`stop`.

    Construction must not touch hardware beyond what :meth:`is_available`
    checks; no probing happens at import time.
    """

    #: entry-point name, e.g. ``"rapl"``
    name: ClassVar[str]
    #: how this reader measures; used by ``--power auto`` to prefer measurements
    method: ClassVar[EnergyMethod]

    def __init__(self, options: ReaderOptions | None = None) -> None:
        self.options = options or ReaderOptions()

    @classmethod
    @abstractmethod
    def is_available(cls, options: ReaderOptions) -> Availability:
        """Whether this reader can measure here; the reason names the fix when not."""

    @abstractmethod
    def info(self) -> ReaderInfo:
        """Method, scope, component and sensor update period."""

    @abstractmethod
    def start(self) -> None:
        """Open a measurement window."""

    @abstractmethod
    def stop(self) -> EnergyReading:
        """Close the window opened by :meth:`start` and return its energy."""

    def close(self) -> None:  # noqa: B027 - optional hook, most readers hold nothing
        """Release files, threads or connections."""

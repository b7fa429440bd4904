"""The plan a controller pushes to a load pod (PUT to `protocol.PLAN_PATH`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from .model_base import WireModel
from .targets import Target, unique_names

MAX_PLAN_BYTES = 1024 * 1024


class Arrival(StrEnum):
    POISSON = "poisson"
    UNIFORM = "uniform"


class Plan(WireModel):
    """Rate and targets for one pod; valid until `leaseSeconds` after it arrives."""

    epoch: int = Field(ge=0, description="Monotonically increasing; lower epochs are refused.")
    rate: float = Field(ge=0, le=1_000_000, description="Requests per second for this pod.")
    lease_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="Stop sending when no plan renews it in time."
    )
    max_in_flight: int = Field(default=256, ge=1, le=100_000)
    arrival: Arrival = Field(default=Arrival.POISSON, description="Inter-arrival distribution.")
    seed: int | None = Field(default=None, description="Seed for arrivals and target choice.")
    targets: list[Target] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict, description="e.g. loadtest, pod names.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        dupes = unique_names(self.targets)
        if dupes:
            raise ValueError(f"targets: duplicate names {dupes}")
        if self.rate > 0 and not any(t.weight > 0 for t in self.targets):
            raise ValueError("targets: a positive rate needs at least one target with weight > 0")
        return self

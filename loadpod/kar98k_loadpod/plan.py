"""The plan a controller pushes to a load pod (PUT to `protocol.PLAN_PATH`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from .model_base import WireModel
from .targets import MAX_TARGETS, Target, unique_names

MAX_PLAN_BYTES = 1024 * 1024
MAX_LABELS = 32
MAX_LABEL_KEY = 128
MAX_LABEL_VALUE = 256
MAX_EPOCH = 2**63 - 1
SEED_BOUND = 2**64


class Arrival(StrEnum):
    POISSON = "poisson"
    UNIFORM = "uniform"


class Plan(WireModel):
    """Rate and targets for one pod; valid until `leaseSeconds` after it arrives.

    Numbers are strict (`true` is not 1) and finite; the target list is bounded before any
    target is validated, so an oversized list costs next to nothing to refuse.
    """

    epoch: int = Field(
        ge=0,
        le=MAX_EPOCH,
        strict=True,
        description="Monotonically increasing; lower epochs are refused.",
    )
    rate: float = Field(
        ge=0,
        le=1_000_000,
        strict=True,
        allow_inf_nan=False,
        description="Requests per second for this pod.",
    )
    lease_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        strict=True,
        allow_inf_nan=False,
        description="Stop sending when no plan renews it in time.",
    )
    max_in_flight: int = Field(default=256, ge=1, le=100_000, strict=True)
    arrival: Arrival = Field(default=Arrival.POISSON, description="Inter-arrival distribution.")
    seed: int | None = Field(
        default=None,
        gt=-SEED_BOUND,
        lt=SEED_BOUND,
        strict=True,
        description="Seed for arrivals and target choice.",
    )
    targets: list[Target] = Field(default_factory=list, max_length=MAX_TARGETS)
    labels: dict[str, str] = Field(default_factory=dict, description="e.g. loadtest, pod names.")

    @field_validator("targets", mode="before")
    @classmethod
    def _few_enough(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_TARGETS:
            raise ValueError(f"at most {MAX_TARGETS} targets, got {len(value)}")
        return value

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, targets: list[Target], info: ValidationInfo) -> list[Target]:
        dupes = unique_names(targets)
        if dupes:
            raise ValueError(f"duplicate names {dupes}")
        rate = info.data.get("rate")
        if rate is not None and rate > 0 and not any(t.weight > 0 for t in targets):
            raise ValueError("a positive rate needs at least one target with weight > 0")
        return targets

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} labels, got {len(value)}")
        for key, text in value.items():
            if len(key) > MAX_LABEL_KEY or len(text) > MAX_LABEL_VALUE:
                raise ValueError(
                    f"keys at most {MAX_LABEL_KEY} and values at most {MAX_LABEL_VALUE} characters"
                )
        return value

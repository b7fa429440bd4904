"""The LoadTest spec (kar98k.dev/v1alpha1): one model for the CLI, local runner and operator.

Field names are camelCase on the wire. Every field carries a description: the CRD schema in
`crds/` is generated from this model, so `kubectl explain` shows the same words.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from kar98k_loadpod.durations import Duration as WireDuration
from kar98k_loadpod.model_base import WireModel
from kar98k_loadpod.plan import Arrival
from kar98k_loadpod.targets import Target, unique_names
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

API_VERSION = "kar98k.dev/v1alpha1"
KIND = "LoadTest"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOUR_RANGE = re.compile(r"^(\d{1,2})-(\d{1,2})$")
FREE_FORM: JsonDict = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
MAX_TARGETS = 64
# A Kubernetes resource quantity ("250m", "1.5Gi", "2"), as the API server parses it.
QUANTITY = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$"
_QUANTITY = re.compile(QUANTITY)
QUANTITY_SCHEMA: JsonDict = {
    "type": "object",
    "additionalProperties": {"x-kubernetes-int-or-string": True, "pattern": QUANTITY},
}
# Written out for the CRD: pydantic would say `propertyNames`, which is not structural.
Resources = Annotated[
    dict[Literal["requests", "limits"], dict[str, int | str]],
    WithJsonSchema(
        {
            "type": "object",
            "properties": {
                "requests": {**QUANTITY_SCHEMA, "description": "Requested quantities."},
                "limits": {**QUANTITY_SCHEMA, "description": "Quantity limits."},
            },
        }
    ),
]


def cel(*rules: tuple[str, str, str]) -> ConfigDict:
    """Model config carrying CEL rules (rule, fieldPath, message) into the generated CRD.

    The API server checks them at `kubectl apply`; the model's validators check the same things
    for `kar98k validate` and the local runner. tests/operator/test_cel_rules.py proves, on the
    real API server, that each rule refuses what the model refuses, naming the same field.
    """
    return ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": rule, "fieldPath": field, "reason": "FieldValueInvalid", "message": msg}
                for rule, field, msg in rules
            ]
        }
    )


def positive_duration(field: str) -> tuple[str, str, str]:
    """CEL: an optional duration field, when given, is > 0."""
    rule = f"!has(self.{field}) || (self.{field} != '0' && duration(self.{field}) > duration('0s'))"
    return (rule, f".{field}", "must be > 0")


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"must be a finite duration, got {value}")
    return value


# YAML's `.inf` would otherwise pass as a number of seconds.
Duration = Annotated[WireDuration, AfterValidator(_finite)]


class ScheduleEntry(WireModel):
    """A multiplier for some hours of some days, in the pattern's time zone."""

    hours: list[int | str] = Field(
        default_factory=list,
        description="Hours 0-23 or inclusive ranges like '9-17'; empty means every hour.",
        json_schema_extra={"items": {"x-kubernetes-int-or-string": True}},
    )
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=list, description="Days (mon..sun); empty means every day."
    )
    multiplier: float = Field(
        ge=0, allow_inf_nan=False, description="Factor applied to baseTPS while this matches."
    )
    priority: int = Field(
        default=0, description="Highest priority wins among matches; ties go to the later entry."
    )

    @field_validator("hours", mode="before")
    @classmethod
    def _no_bools(cls, value: Any) -> Any:
        # YAML `yes`/`true` would otherwise slip through as hour 1.
        if isinstance(value, list) and any(isinstance(item, bool) for item in value):
            raise ValueError("hours items must be 0-23 or ranges like '9-17', got a boolean")
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: list[int | str]) -> list[int | str]:
        for item in value:
            hours_of(item)
        return value

    def hour_set(self) -> frozenset[int]:
        if not self.hours:
            return frozenset(range(24))
        out: set[int] = set()
        for item in self.hours:
            out.update(hours_of(item))
        return frozenset(out)

    def day_set(self) -> frozenset[int]:
        if not self.days:
            return frozenset(range(7))
        return frozenset(DAYS.index(d) for d in self.days)


def hours_of(item: int | str) -> range:
    """Expand one `hours` item (an hour or an inclusive 'a-b' range) to the hours it covers."""
    if isinstance(item, int):
        if not 0 <= item <= 23:
            raise ValueError(f"hour must be 0-23, got {item}")
        return range(item, item + 1)
    match = _HOUR_RANGE.match(item.strip())
    if not match:
        if item.strip().isdigit():
            return hours_of(int(item.strip()))
        raise ValueError(f"hours item must be 0-23 or a range like '9-17', got {item!r}")
    start, end = int(match.group(1)), int(match.group(2))
    if not (0 <= start <= 23 and 0 <= end <= 23 and start <= end):
        raise ValueError(f"hour range must be within 0-23 and ascending, got {item!r}")
    return range(start, end + 1)


class Spikes(WireModel):
    """Poisson-timed spikes: gaps drawn from an exponential, clamped, counted from a spike's end."""

    model_config = cel(
        (
            "!has(self.enabled) || !self.enabled || has(self.lambda) || has(self.meanInterval)",
            ".lambda",
            "give lambda or meanInterval when spikes are enabled",
        ),
        (
            "!(has(self.lambda) && has(self.meanInterval))",
            ".meanInterval",
            "give either lambda or meanInterval, not both",
        ),
        positive_duration("meanInterval"),
        (
            "!has(self.maxInterval) || !has(self.minInterval) "
            "|| duration(self.maxInterval) >= duration(self.minInterval)",
            ".maxInterval",
            "must be >= minInterval",
        ),
    )

    enabled: bool = Field(default=False, description="Generate random spikes.")
    lambda_: float | None = Field(
        default=None,
        alias="lambda",
        gt=0,
        allow_inf_nan=False,
        description="Expected spikes per second (mean gap 1/lambda). Give this or meanInterval.",
    )
    mean_interval: Duration | None = Field(
        default=None, description="Mean gap between spikes, e.g. '5m'. Give this or lambda."
    )
    factor: float = Field(
        default=2.0, ge=1, allow_inf_nan=False, description="Peak multiplier of a spike (>= 1)."
    )
    min_interval: Duration = Field(default=0.0, description="Shortest gap between spikes.")
    max_interval: Duration | None = Field(
        default=None, description="Longest gap between spikes; absent means unbounded."
    )
    ramp_up: Duration = Field(default=5.0, description="Rise from 1 to factor.")
    duration: Duration = Field(default=10.0, description="Time held at the peak factor.")
    ramp_down: Duration = Field(default=10.0, description="Decay from factor back to 1.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.enabled and self.lambda_ is None and self.mean_interval is None:
            raise ValueError("lambda: give lambda or meanInterval when spikes are enabled")
        if self.lambda_ is not None and self.mean_interval is not None:
            raise ValueError("meanInterval: give either lambda or meanInterval, not both")
        if self.mean_interval is not None and self.mean_interval <= 0:
            raise ValueError(f"meanInterval: must be > 0, got {self.mean_interval:g}s")
        if self.max_interval is not None and self.max_interval < self.min_interval:
            raise ValueError(
                f"maxInterval: must be >= minInterval ({self.min_interval:g}s), "
                f"got {self.max_interval:g}s"
            )
        return self

    @property
    def mean_gap(self) -> float:
        """Mean of the unclamped exponential gap in seconds."""
        if self.mean_interval is not None:
            return self.mean_interval
        if self.lambda_ is not None:
            return 1.0 / self.lambda_
        return math.inf


class NoiseType(StrEnum):
    SPRING = "spring"
    PERLIN = "perlin"


class Noise(WireModel):
    """Continuous small fluctuation around 1, bounded by ±amplitude."""

    enabled: bool = Field(default=False, description="Add noise.")
    type: NoiseType = Field(default=NoiseType.SPRING, description="spring (damped) or perlin.")
    amplitude: float = Field(
        default=0.1, ge=0, le=1, allow_inf_nan=False, description="Bound of the noise, 0..1."
    )


class Pattern(WireModel):
    """rate(t) = clamp(baseTPS · ramp(t) · schedule(t) · spikes(t) · noise(t), minTPS, maxTPS)."""

    model_config = cel(
        ("!has(self.maxTPS) || self.maxTPS >= self.baseTPS", ".maxTPS", "must be >= baseTPS"),
        ("!has(self.minTPS) || self.minTPS <= self.baseTPS", ".minTPS", "must be <= baseTPS"),
    )

    base_tps: float = Field(
        alias="baseTPS", gt=0, allow_inf_nan=False, description="Base requests per second (> 0)."
    )
    max_tps: float | None = Field(
        default=None,
        alias="maxTPS",
        allow_inf_nan=False,
        description="Hard ceiling (>= baseTPS); default 10×baseTPS.",
    )
    min_tps: float = Field(
        default=0.0, alias="minTPS", ge=0, allow_inf_nan=False, description="Floor after ramp-up."
    )
    ramp_up: Duration = Field(default=0.0, description="Start-up ramp from 0 to full rate.")
    time_zone: str = Field(default="UTC", description="IANA time zone for the schedule.")
    schedule: list[ScheduleEntry] = Field(default_factory=list, description="Time-of-day shape.")
    spikes: Spikes = Field(default_factory=Spikes, description="Poisson spikes.")
    noise: Noise = Field(default_factory=Noise, description="Continuous noise.")
    seed: int | None = Field(
        default=None, ge=0, description="Seed for spikes and noise; absent: chosen at start."
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.max_tps is not None and self.max_tps < self.base_tps:
            raise ValueError(
                f"maxTPS: must be >= baseTPS ({self.base_tps:g}), got {self.max_tps:g}"
            )
        if self.min_tps > self.base_tps:
            raise ValueError(
                f"minTPS: must be <= baseTPS ({self.base_tps:g}), got {self.min_tps:g}"
            )
        return self

    @property
    def ceiling(self) -> float:
        return self.max_tps if self.max_tps is not None else self.base_tps * 10


class LatencyThresholds(WireModel):
    p50: Duration | None = Field(default=None, description="Ceiling for p50 latency.")
    p95: Duration | None = Field(default=None, description="Ceiling for p95 latency.")
    p99: Duration | None = Field(default=None, description="Ceiling for p99 latency.")


class Thresholds(WireModel):
    """Pass/fail criteria judged over the whole run."""

    latency: LatencyThresholds = Field(
        default_factory=LatencyThresholds, description="Latency ceilings."
    )
    latency_basis: Literal["corrected", "raw"] = Field(
        default="corrected",
        description="Judge corrected latency (from intended send time) or raw latency.",
    )
    error_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Ceiling for errors/requests (0..1).",
    )
    min_achieved_ratio: float | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Floor for achieved/target requests (0..1).",
    )


class LoadPods(WireModel):
    """How many load pods and how they run."""

    model_config = cel(
        (
            "!has(self.minReady) || !has(self.replicas) || self.minReady <= self.replicas",
            ".minReady",
            "must be <= replicas",
        ),
        positive_duration("startTimeout"),
    )

    replicas: int | None = Field(default=None, ge=1, le=1000, description="Fixed pod count.")
    per_pod_max_tps: float | None = Field(
        default=None,
        alias="perPodMaxTPS",
        gt=0,
        allow_inf_nan=False,
        description="Size the fleet as ceil(maxTPS / perPodMaxTPS) when replicas is absent.",
    )
    max_in_flight: int = Field(default=256, ge=1, le=100_000, description="Per pod.")
    arrival: Arrival = Field(default=Arrival.POISSON, description="poisson or uniform arrivals.")
    min_ready: int | None = Field(
        default=None, ge=1, description="Pods that must be ready to start; default all."
    )
    start_timeout: Duration = Field(default=120.0, description="Wait this long for minReady.")
    image: str | None = Field(default=None, description="Override the operator's load-pod image.")
    resources: Resources = Field(
        default_factory=dict,
        description="Container resources: requests and limits, resource name to quantity.",
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="Pod nodeSelector.")
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Pod tolerations.",
        json_schema_extra={"items": FREE_FORM},
    )
    affinity: dict[str, Any] = Field(
        default_factory=dict, description="Pod affinity.", json_schema_extra=FREE_FORM
    )
    separate: bool = Field(
        default=False, description="Spread load pods over distinct nodes (anti-affinity)."
    )
    env: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Container env (EnvVar, valueFrom allowed); headers expand '${NAME}'.",
        json_schema_extra={"items": FREE_FORM},
    )

    @field_validator("resources")
    @classmethod
    def _quantities(cls, value: dict[str, dict[str, int | str]]) -> dict[str, dict[str, int | str]]:
        for kind, quantities in value.items():
            for name, quantity in quantities.items():
                if isinstance(quantity, bool) or not _QUANTITY.match(str(quantity)):
                    raise ValueError(
                        f"{kind}.{name}: must be a quantity such as '250m' or '1Gi', "
                        f"got {quantity!r}"
                    )
        return value

    @model_validator(mode="after")
    def _min_ready(self) -> Self:
        ready, replicas = self.min_ready, self.replicas
        if ready is not None and replicas is not None and ready > replicas:
            raise ValueError(f"minReady: must be <= replicas ({replicas}), got {ready}")
        if self.start_timeout <= 0:
            raise ValueError(f"startTimeout: must be > 0, got {self.start_timeout:g}s")
        return self

    def desired(self, max_tps: float) -> int:
        if self.replicas is not None:
            return self.replicas
        if self.per_pod_max_tps is not None:
            return max(1, math.ceil(max_tps / self.per_pod_max_tps))
        return 1


class CleanupAction(StrEnum):
    NONE = "none"
    PODS = "pods"
    ALL = "all"


class Cleanup(WireModel):
    """What happens after the run ends (load pods are always scaled to zero)."""

    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Wait this long before applying the action."
    )
    on_success: CleanupAction = Field(
        default=CleanupAction.PODS,
        description="none: keep children; pods: delete Deployment and Secret; all: the LoadTest.",
    )
    on_failure: CleanupAction = Field(
        default=CleanupAction.NONE, description="As onSuccess, after a failed run."
    )


class Search(WireModel):
    """Capacity search: raise the base rate step by step to the highest rate that still passes.

    The whole curve (schedule, spikes, noise) scales with the base rate. Each step holds its
    rate for `settle`, then is judged over `window` by this LoadTest's thresholds (computed on
    that window only). Steps grow by `growth` until one fails, then bisect between the last
    passing and the first failing rate until they are within `resolution` of each other; the
    best passing rate is held once more for `confirmWindow`. Never above pattern.maxTPS.
    """

    model_config = cel(
        positive_duration("window"),
        positive_duration("confirmWindow"),
    )

    start_tps: float | None = Field(
        default=None,
        alias="startTPS",
        gt=0,
        allow_inf_nan=False,
        description="Base rate of the first step; default pattern.baseTPS.",
    )
    growth: float = Field(
        default=2.0,
        gt=1,
        le=10,
        allow_inf_nan=False,
        description="Factor between steps while no step has failed (> 1, <= 10).",
    )
    resolution: float = Field(
        default=0.05,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Stop bisecting when firstFailing - lastPassing <= resolution x lastPassing.",
    )
    settle: Duration = Field(
        default=5.0, description="Time at a step's rate before its window opens."
    )
    window: Duration = Field(default=10.0, description="Judging window of each step (> 0).")
    confirm_window: Duration = Field(
        default=30.0, description="Judging window of the final confirmation step (> 0)."
    )
    cooldown: Duration = Field(
        default=5.0, description="Rate 0 after a failing step, so the target recovers."
    )
    max_steps: int = Field(
        default=20, ge=2, le=100, description="Steps at most, the confirmation included."
    )
    abort_error_rate: float = Field(
        default=0.5,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="End the search at once when a second's error rate reaches this.",
    )
    min_achieved_ratio: float = Field(
        default=0.9,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="A step fails when the pods sent less than this share of what was asked; "
        "with latency and errors fine, the load generator is the limit.",
    )

    @model_validator(mode="after")
    def _windows(self) -> Self:
        for name, value in (("window", self.window), ("confirmWindow", self.confirm_window)):
            if value <= 0:
                raise ValueError(f"{name}: must be > 0, got {value:g}s")
        return self


class LoadTestSpec(WireModel):
    """What to load, how hard, for how long, and what counts as passing."""

    model_config = cel(
        (
            "self.targets.exists(t, !has(t.weight) || t.weight > 0)",
            ".targets",
            "at least one target needs weight > 0",
        ),
        positive_duration("duration"),
    )

    run_id: str | None = Field(
        default=None, max_length=63, description="Change it to re-run a finished LoadTest."
    )
    targets: list[Target] = Field(
        min_length=1,
        max_length=MAX_TARGETS,
        description=f"Endpoints under load (1 to {MAX_TARGETS}, names unique).",
        json_schema_extra={
            # Unique names, checked by the API server; also lets server-side apply merge by name.
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    pattern: Pattern = Field(description="Shape of the rate over time.")
    duration: Duration | None = Field(
        default=None, description="Run length, e.g. '30m'; absent runs until stopped."
    )
    paused: bool = Field(default=False, description="Stop traffic while true.")
    thresholds: Thresholds = Field(default_factory=Thresholds, description="Verdict criteria.")
    load_pods: LoadPods = Field(default_factory=LoadPods, description="Load-pod fleet.")
    cleanup: Cleanup = Field(default_factory=Cleanup, description="After the run.")
    search: Search | None = Field(
        default=None,
        description="Find the highest sustainable rate instead of running the curve as given.",
    )

    @model_validator(mode="after")
    def _targets(self) -> Self:
        dupes = unique_names(self.targets)
        if dupes:
            raise ValueError(f"targets: names must be unique, repeated: {', '.join(dupes)}")
        if not any(t.weight > 0 for t in self.targets):
            raise ValueError("targets: at least one target needs weight > 0")
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"duration: must be > 0, got {self.duration:g}s")
        return self


class Metadata(WireModel):
    model_config = WireModel.model_config | {"extra": "allow"}

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class LoadTest(WireModel):
    """A whole manifest: apiVersion, kind, metadata, spec (status is ignored on input)."""

    api_version: Literal["kar98k.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["LoadTest"]
    metadata: Metadata
    spec: LoadTestSpec
    status: dict[str, Any] | None = Field(default=None, exclude=True)

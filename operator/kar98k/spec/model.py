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
from kar98k_loadpod.targets import MAX_TARGETS, Target
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import InitErrorDetails, PydanticCustomError

# The API coordinates, said once: the operator's names, the CRD and the CLI take them from here.
GROUP = "kar98k.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "LoadTest"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOUR_RANGE = re.compile(r"^(\d{1,2})-(\d{1,2})$")
FREE_FORM: JsonDict = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
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


MAX_TIME_ZONE = 64  # the longest IANA name has 32 characters
MAX_SCHEDULE = 256
MAX_FACTOR = 1000.0
MAX_TPS = 10_000_000.0
# JSON numbers are exact only up to 2**53 in most clients, and the API server reads a schema's
# `maximum` as a float: 2**63 - 1 there rounded to 2**63 and overflowed to -2**63, refusing every
# seed (found on the real kube-apiserver).
MAX_SEED = 2**53 - 1


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
        max_length=48,
        description="Hours 0-23 or inclusive ranges like '9-17'; empty means every hour.",
        json_schema_extra={"items": {"x-kubernetes-int-or-string": True}},
    )
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=list, description="Days (mon..sun); empty means every day."
    )
    multiplier: float = Field(
        ge=0,
        le=MAX_FACTOR,
        strict=True,
        allow_inf_nan=False,
        description="Factor applied to baseTPS while this matches (0..1000).",
    )
    priority: int = Field(
        default=0,
        ge=-1_000_000,
        le=1_000_000,
        strict=True,
        description="Highest priority wins among matches; ties go to the later entry.",
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

    enabled: bool = Field(default=False, strict=True, description="Generate random spikes.")
    lambda_: float | None = Field(
        default=None,
        alias="lambda",
        gt=0,
        le=1000,
        strict=True,
        allow_inf_nan=False,
        description="Expected spikes per second (mean gap 1/lambda). Give this or meanInterval.",
    )
    mean_interval: Duration | None = Field(
        default=None, description="Mean gap between spikes, e.g. '5m'. Give this or lambda."
    )
    factor: float = Field(
        default=2.0,
        ge=1,
        le=MAX_FACTOR,
        strict=True,
        allow_inf_nan=False,
        description="Peak multiplier of a spike (1..1000).",
    )
    min_interval: Duration = Field(default=0.0, description="Shortest gap between spikes.")
    max_interval: Duration | None = Field(
        default=None, description="Longest gap between spikes; absent means unbounded."
    )
    ramp_up: Duration = Field(default=5.0, description="Rise from 1 to factor.")
    duration: Duration = Field(default=10.0, description="Time held at the peak factor.")
    ramp_down: Duration = Field(default=10.0, description="Decay from factor back to 1.")

    @field_validator("mean_interval")
    @classmethod
    def _mean(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(f"must be > 0, got {value:g}s")
        if value is not None and info.data.get("lambda_") is not None:
            raise ValueError("give either lambda or meanInterval, not both")
        return value

    @field_validator("max_interval")
    @classmethod
    def _max(cls, value: float | None, info: ValidationInfo) -> float | None:
        least = info.data.get("min_interval")
        if value is not None and least is not None and value < least:
            raise ValueError(f"must be >= minInterval ({least:g}s), got {value:g}s")
        return value

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.enabled and self.lambda_ is None and self.mean_interval is None:
            raise ValueError("lambda: give lambda or meanInterval when spikes are enabled")
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

    enabled: bool = Field(default=False, strict=True, description="Add noise.")
    type: NoiseType = Field(default=NoiseType.SPRING, description="spring (damped) or perlin.")
    amplitude: float = Field(
        default=0.1,
        ge=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="Bound of the noise, 0..1.",
    )


class Pattern(WireModel):
    """rate(t) = clamp(baseTPS · ramp(t) · schedule(t) · spikes(t) · noise(t), minTPS, maxTPS)."""

    model_config = cel(
        ("!has(self.maxTPS) || self.maxTPS >= self.baseTPS", ".maxTPS", "must be >= baseTPS"),
        ("!has(self.minTPS) || self.minTPS <= self.baseTPS", ".minTPS", "must be <= baseTPS"),
    )

    base_tps: float = Field(
        alias="baseTPS",
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="Base requests per second (> 0, at most 10,000,000).",
    )
    max_tps: float | None = Field(
        default=None,
        alias="maxTPS",
        le=MAX_TPS,
        strict=True,
        allow_inf_nan=False,
        description="Hard ceiling (>= baseTPS); default 10×baseTPS.",
    )
    min_tps: float = Field(
        default=0.0,
        alias="minTPS",
        ge=0,
        strict=True,
        allow_inf_nan=False,
        description="Floor after ramp-up.",
    )
    ramp_up: Duration = Field(default=0.0, description="Start-up ramp from 0 to full rate.")
    time_zone: str = Field(
        default="UTC",
        max_length=MAX_TIME_ZONE,
        description="IANA time zone of the time-of-day rate multipliers.",
    )
    schedule: list[ScheduleEntry] = Field(
        default_factory=list,
        max_length=MAX_SCHEDULE,
        description=(
            "Time-of-day rate multipliers within a run (not when runs start: that is a "
            "LoadTestSchedule's cron schedule of runs)."
        ),
    )
    spikes: Spikes = Field(default_factory=Spikes, description="Poisson spikes.")
    noise: Noise = Field(default_factory=Noise, description="Continuous noise.")
    seed: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEED,
        strict=True,
        description="Seed for spikes and noise; absent: chosen at start.",
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
            # OSError: 'America' is a directory of tzdata, not a zone; odd names may be
            # refused by the file system itself.
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("base_tps")
    @classmethod
    def _base(cls, value: float) -> float:
        # Checked here rather than as a schema maximum: the CRD keeps baseTPS's schema minimal.
        if value > MAX_TPS:
            raise ValueError(f"must be <= {MAX_TPS:g}, got {value:g}")
        return value

    @field_validator("max_tps")
    @classmethod
    def _ceiling(cls, value: float | None, info: ValidationInfo) -> float | None:
        base = info.data.get("base_tps")
        if value is not None and base is not None and value < base:
            raise ValueError(f"must be >= baseTPS ({base:g}), got {value:g}")
        return value

    @field_validator("min_tps")
    @classmethod
    def _floor(cls, value: float, info: ValidationInfo) -> float:
        base = info.data.get("base_tps")
        if base is not None and value > base:
            raise ValueError(f"must be <= baseTPS ({base:g}), got {value:g}")
        return value

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
        strict=True,
        allow_inf_nan=False,
        description="Ceiling for errors/requests (0..1).",
    )
    min_achieved_ratio: float | None = Field(
        default=None,
        ge=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="Floor for achieved/target requests (0..1).",
    )


# Label keys the operator sets on load pods (its selector and bookkeeping): an overlay may not.
RESERVED_LABEL_PREFIXES = ("kar98k.dev/",)
RESERVED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
)
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_reserved_cel = " || ".join(
    [f"k.startsWith('{p}')" for p in RESERVED_LABEL_PREFIXES]
    + [f"k == '{k}'" for k in RESERVED_LABELS]
)


class PodTemplateMetadata(WireModel):
    """Labels and annotations added to every load pod."""

    model_config = cel(
        (
            f"!has(self.labels) || self.labels.all(k, !({_reserved_cel}))",
            ".labels",
            "kar98k.dev/* and app.kubernetes.io/{name,instance,managed-by,part-of} are the "
            "operator's",
        )
    )

    labels: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict,
        max_length=64,
        description="Extra pod labels (the operator's own keys are reserved).",
    )
    annotations: dict[str, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict,
        max_length=64,
        description=(
            "Pod annotations, e.g. sidecar.istio.io/inject: 'false' or linkerd.io/inject: "
            "disabled to keep a service-mesh sidecar out of the control path."
        ),
    )

    @field_validator("labels")
    @classmethod
    def _not_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(
            k for k in value if k in RESERVED_LABELS or k.startswith(RESERVED_LABEL_PREFIXES)
        )
        if taken:
            raise ValueError(f"{', '.join(taken)}: label keys the operator sets on load pods")
        return value


class LocalObjectReference(WireModel):
    """A Secret in the LoadTest's namespace, by name."""

    name: str = Field(
        min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN, description="The Secret's name."
    )


class TopologySpreadConstraint(WireModel):
    """How load pods spread over a topology domain (Kubernetes TopologySpreadConstraint)."""

    max_skew: int = Field(ge=1, description="Largest allowed difference of pod counts.")
    topology_key: str = Field(
        min_length=1, description="Node label of the domain, e.g. topology.kubernetes.io/zone."
    )
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = Field(
        description="DoNotSchedule or ScheduleAnyway."
    )
    label_selector: dict[str, Any] | None = Field(
        default=None,
        description="Pods counted; default: this LoadTest's load pods.",
        json_schema_extra=FREE_FORM,
    )
    min_domains: int | None = Field(default=None, ge=1, description="Minimum eligible domains.")
    node_affinity_policy: Literal["Honor", "Ignore"] | None = Field(
        default=None, description="Honor or Ignore the pod's node affinity when counting."
    )
    node_taints_policy: Literal["Honor", "Ignore"] | None = Field(
        default=None, description="Honor or Ignore node taints when counting."
    )
    match_label_keys: list[str] | None = Field(
        default=None, description="Pod label keys whose values narrow the selector."
    )


# Explicit null unsets the operator's default (a platform such as OpenShift then assigns it).
_NULLABLE: JsonDict = {"nullable": True}


class PodSecurityOverlay(WireModel):
    """Pod securityContext overrides. runAsNonRoot stays true; `null` unsets an ID."""

    run_as_user: int | None = Field(
        default=None,
        ge=1,
        description="UID; null unsets the operator's default so the platform assigns one.",
        json_schema_extra=_NULLABLE,
    )
    run_as_group: int | None = Field(
        default=None,
        ge=0,
        description="GID; null unsets the operator's default so the platform assigns one.",
        json_schema_extra=_NULLABLE,
    )
    fs_group: int | None = Field(default=None, ge=0, description="Group of mounted volumes.")
    fs_group_change_policy: Literal["OnRootMismatch", "Always"] | None = Field(
        default=None, description="OnRootMismatch or Always."
    )
    supplemental_groups: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=list, description="Extra GIDs of the container process."
    )
    se_linux_options: dict[str, str] | None = Field(
        default=None, description="SELinux context (user, role, type, level)."
    )
    seccomp_profile: dict[str, str] | None = Field(
        default=None, description="Seccomp profile (type, localhostProfile); RuntimeDefault."
    )
    sysctls: list[dict[str, str]] = Field(
        default_factory=list,
        description="Namespaced sysctls (name, value).",
        json_schema_extra={"items": {"type": "object", "additionalProperties": {"type": "string"}}},
    )

    def applied_to(self, base: dict[str, Any]) -> dict[str, Any]:
        """`base` with these overrides: given fields replace, explicit nulls remove."""
        out = dict(base)
        for attr in self.model_fields_set:
            alias = type(self).model_fields[attr].alias or attr
            value = getattr(self, attr)
            if value is None:
                out.pop(alias, None)
            elif value != []:
                out[alias] = value
        return out


class LoadPodTemplateSpec(WireModel):
    """Pod spec fields a cluster may need; the operator's container, probes and env are not here."""

    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, description="Secrets to pull the load-pod image with."
    )
    service_account_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=_DNS_SUBDOMAIN,
        description="ServiceAccount the pods run as (default: the namespace's default).",
    )
    automount_service_account_token: bool | None = Field(
        default=None, description="Mount its token (default false: load pods never call the API)."
    )
    priority_class_name: str | None = Field(
        default=None, max_length=253, pattern=_DNS_SUBDOMAIN, description="PriorityClass."
    )
    runtime_class_name: str | None = Field(
        default=None, max_length=253, pattern=_DNS_SUBDOMAIN, description="RuntimeClass."
    )
    scheduler_name: str | None = Field(default=None, description="Scheduler to place the pods.")
    topology_spread_constraints: list[TopologySpreadConstraint] = Field(
        default_factory=list, description="Spread of load pods over zones or nodes."
    )
    security_context: PodSecurityOverlay = Field(
        default_factory=PodSecurityOverlay, description="Pod securityContext overrides."
    )


class LoadPodTemplate(WireModel):
    """An overlay merged into the load pods' template (labels, annotations, pod spec fields)."""

    metadata: PodTemplateMetadata = Field(
        default_factory=PodTemplateMetadata, description="Pod labels and annotations."
    )
    spec: LoadPodTemplateSpec = Field(
        default_factory=LoadPodTemplateSpec, description="Pod spec fields."
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

    replicas: int | None = Field(
        default=None, ge=1, le=1000, strict=True, description="Fixed pod count."
    )
    per_pod_max_tps: float | None = Field(
        default=None,
        alias="perPodMaxTPS",
        gt=0,
        le=MAX_TPS,
        strict=True,
        allow_inf_nan=False,
        description="Size the fleet as ceil(maxTPS / perPodMaxTPS) when replicas is absent.",
    )
    max_in_flight: int = Field(default=256, ge=1, le=100_000, strict=True, description="Per pod.")
    arrival: Arrival = Field(default=Arrival.POISSON, description="poisson or uniform arrivals.")
    min_ready: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        strict=True,
        description="Pods that must be ready to start; default all.",
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
        default=False,
        strict=True,
        description="Spread load pods over distinct nodes (anti-affinity).",
    )
    env: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Container env (EnvVar, valueFrom allowed); headers expand '${NAME}'.",
        json_schema_extra={"items": FREE_FORM},
    )
    template: LoadPodTemplate | None = Field(
        default=None,
        description=(
            "Overlay for the load pods' template: labels, annotations, imagePullSecrets, "
            "serviceAccountName, priorityClassName, runtimeClassName, topologySpreadConstraints, "
            "securityContext. The container, its env, port and probes stay the operator's."
        ),
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
        default=None,
        ge=0,
        le=31_622_400,
        strict=True,
        description="Wait this long before applying the action (at most 366 days).",
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


class SafetyAction(StrEnum):
    PAUSE = "pause"
    SCALE = "scale"
    ABORT = "abort"


class Safety(WireModel):
    """A circuit breaker on the target's health: stop hurting a target that is going down.

    Judged on a rolling `window` of the run's merged figures: when the error rate stays above
    `errorRateAbove` or the p95 latency of answered requests (the thresholds' latency basis)
    stays above `p95Above` for `sustainedFor`, the breaker trips and takes `action`. With
    `resumeAfter` it closes on its own once the condition has been clear that long; without,
    it stays tripped until a human resumes (spec.paused true, then false).
    """

    model_config = cel(
        (
            "has(self.errorRateAbove) || has(self.p95Above)",
            ".errorRateAbove",
            "give errorRateAbove or p95Above",
        ),
        (
            "!has(self.action) || self.action != 'scale' || has(self.scaleTo)",
            ".scaleTo",
            "required when action is scale",
        ),
        (
            "!has(self.scaleTo) || (has(self.action) && self.action == 'scale')",
            ".scaleTo",
            "only allowed when action is scale",
        ),
        positive_duration("p95Above"),
        positive_duration("sustainedFor"),
        positive_duration("window"),
        positive_duration("resumeAfter"),
    )

    error_rate_above: float | None = Field(
        default=None,
        ge=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="Trip when errors/requests over the window stays above this (0..1).",
    )
    p95_above: Duration | None = Field(
        default=None,
        alias="p95Above",
        description="Trip when the window's p95 latency of answered requests stays above this.",
    )
    sustained_for: Duration = Field(
        default=10.0, description="How long a rule must hold before the breaker trips (> 0)."
    )
    window: Duration = Field(
        default=10.0, description="Length of the rolling window the rules are judged on (> 0)."
    )
    resume_after: Duration | None = Field(
        default=None,
        description="Close on its own after the rules have been clear this long; "
        "absent: stay tripped until a human resumes.",
    )
    action: SafetyAction = Field(
        default=SafetyAction.PAUSE,
        description="pause: rate 0; scale: rate x scaleTo; abort: end the run, Failed.",
    )
    scale_to: float | None = Field(
        default=None,
        ge=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="Share of the curve's rate kept while tripped (0..1); action scale only.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.error_rate_above is None and self.p95_above is None:
            raise ValueError("errorRateAbove: give errorRateAbove or p95Above")
        if self.action is SafetyAction.SCALE and self.scale_to is None:
            raise ValueError("scaleTo: required when action is scale")
        if self.action is not SafetyAction.SCALE and self.scale_to is not None:
            raise ValueError("scaleTo: only allowed when action is scale")
        for name, value in (
            ("p95Above", self.p95_above),
            ("sustainedFor", self.sustained_for),
            ("window", self.window),
            ("resumeAfter", self.resume_after),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"{name}: must be > 0, got {value:g}s")
        return self

    @property
    def tripped_factor(self) -> float:
        """The share of the curve's rate sent while tripped (abort ends the run instead)."""
        if self.action is SafetyAction.SCALE and self.scale_to is not None:
            return self.scale_to
        return 0.0


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
        description=f"Endpoints under load: 1 to {MAX_TARGETS}, names unique.",
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
    paused: bool = Field(default=False, strict=True, description="Stop traffic while true.")
    thresholds: Thresholds = Field(default_factory=Thresholds, description="Verdict criteria.")
    load_pods: LoadPods = Field(default_factory=LoadPods, description="Load-pod fleet.")
    cleanup: Cleanup = Field(default_factory=Cleanup, description="After the run.")
    search: Search | None = Field(
        default=None,
        description="Find the highest sustainable rate instead of running the curve as given.",
    )
    safety: Safety | None = Field(
        default=None,
        description="Circuit breaker: pause, scale down or abort when the target is hurting.",
    )

    @field_validator("targets", mode="wrap")
    @classmethod
    def _targets(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> list[Target]:
        if isinstance(value, list) and len(value) > MAX_TARGETS:
            # Refused before any target is validated: a huge list costs next to nothing.
            raise ValueError(f"at most {MAX_TARGETS} targets, got {len(value)}")
        try:
            targets: list[Target] = handler(value)
        except ValidationError as exc:
            # Name and weight mistakes are reported with the targets' own ones, in one pass.
            raise _with_problems(exc, _raw_target_problems(value), value) from None
        problems = _target_problems([t.name for t in targets], any(t.weight > 0 for t in targets))
        if problems:
            raise _with_problems(None, problems, value)
        return targets

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(f"must be > 0, got {value:g}s")
        return value


def _target_problems(names: list[str], any_positive_weight: bool) -> list[str]:
    problems: list[str] = []
    dupes = [n for i, n in enumerate(names) if n in names[:i]]
    if dupes:
        problems.append(f"names must be unique, repeated: {', '.join(dict.fromkeys(dupes))}")
    if not any_positive_weight:
        problems.append("at least one target needs weight > 0")
    return problems


def _raw_target_problems(value: Any) -> list[str]:
    """The same checks on targets not all valid, judging only what can be read."""
    if not isinstance(value, list):
        return []
    items = [item for item in value if isinstance(item, dict)]
    names = [item["name"] for item in items if isinstance(item.get("name"), str)]
    weights = [item.get("weight", 1.0) for item in items]
    readable = [w for w in weights if isinstance(w, int | float) and not isinstance(w, bool)]
    # An unreadable weight might be positive once fixed: claim "no positive weight" only when
    # every weight could be read.
    positive = len(readable) < len(weights) or any(w > 0 for w in readable) or not items
    return _target_problems(names, positive)


def _with_problems(exc: ValidationError | None, problems: list[str], value: Any) -> ValidationError:
    details: list[InitErrorDetails] = []
    if exc is not None:
        for err in exc.errors():
            detail: InitErrorDetails = {
                "type": err["type"],
                "loc": err["loc"],
                "input": err["input"],
            }
            if "ctx" in err:
                detail["ctx"] = err["ctx"]
            details.append(detail)
    for problem in problems:
        details.append(
            {"type": PydanticCustomError("value_error", problem), "loc": (), "input": value}
        )
    return ValidationError.from_exception_data("targets", details)


class Metadata(WireModel):
    model_config = WireModel.model_config | {"extra": "allow"}

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class LoadTest(WireModel):
    """A whole manifest: apiVersion, kind, metadata, spec (status is ignored on input)."""

    # A Literal needs the text itself; tests/spec checks it equals API_VERSION.
    api_version: Literal["kar98k.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["LoadTest"]
    metadata: Metadata
    spec: LoadTestSpec
    status: dict[str, Any] | None = Field(default=None, exclude=True)

"""The LoadTest status model: what the operator reports (the CRD's status schema is generated
from it), beside the spec it describes. Pure data: the throttled writer lives in the adapter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Phase(StrEnum):
    PENDING = "Pending"
    STARTING = "Starting"
    RUNNING = "Running"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


ACTIVE_PHASES = frozenset({Phase.STARTING, Phase.RUNNING, Phase.PAUSED})
FINISHED_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED})


class ConditionType(StrEnum):
    PODS_READY = "PodsReady"
    TARGETS_HEALTHY = "TargetsHealthy"
    THRESHOLDS_MET = "ThresholdsMet"
    COMPLETED = "Completed"
    SPEC_APPLIED = "SpecApplied"
    SAFETY_TRIPPED = "SafetyTripped"  # spec.safety's breaker: True while it holds the rate down
    # kstatus (Flux wait, kubectl wait, Argo CD): Ready=True only when Succeeded; Reconciling
    # while the run is under way; Stalled when it failed. Set with every phase change.
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class StatusModel(BaseModel):
    """camelCase on the wire; unknown keys ignored so an older operator can read newer status."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    """One aspect of the LoadTest, Kubernetes style."""

    type: str = Field(
        description=(
            "PodsReady, TargetsHealthy, ThresholdsMet, Completed, SpecApplied; Ready, "
            "Reconciling and Stalled (kstatus)."
        )
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason for the last transition.")
    message: str = Field(default="", description="Human-readable details.")
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, description="metadata.generation this condition was judged for."
    )


class LatencyStatus(StatusModel):
    """Merged latency percentiles in milliseconds (basis per spec.thresholds.latencyBasis)."""

    p50: float = Field(default=0.0, description="Median latency, ms.")
    p95: float = Field(default=0.0, description="95th percentile latency, ms.")
    p99: float = Field(default=0.0, description="99th percentile latency, ms.")


class TargetStatus(StatusModel):
    """Per-target figures of the run so far."""

    name: str = Field(description="Target name from spec.targets.")
    healthy: bool = Field(default=True, description="Last health verdict of the load pods.")
    requests: int = Field(default=0, description="Requests sent to this target.")
    errors: int = Field(default=0, description="Requests that failed.")
    error_rate: float = Field(default=0.0, description="errors / requests.")


class CheckStatus(StatusModel):
    """One threshold judged at the end of the run."""

    name: str = Field(description="Threshold, e.g. 'latency.p99'.")
    threshold: float = Field(description="Configured limit.")
    observed: float = Field(description="Measured value.")
    passed: bool = Field(description="Whether the limit held.")
    message: str = Field(default="", description="Human-readable verdict.")


class SearchStepStatus(StatusModel):
    """One step of a capacity search, judged over its own window."""

    rate: float = Field(description="Base rate of the step, req/s.")
    phase: str = Field(description="bracket, bisect or confirm.")
    passed: bool = Field(description="Whether the thresholds held over the step's window.")
    p50_ms: float = Field(default=0.0, description="p50 latency of the window, ms.")
    p99_ms: float = Field(default=0.0, description="p99 latency of the window, ms.")
    error_rate: float = Field(default=0.0, description="errors / requests of the window.")
    achieved_tps: float = Field(default=0.0, alias="achievedTPS", description="Req/s achieved.")
    reason: str = Field(default="", description="Why it passed or failed.")


class SearchStatus(StatusModel):
    """The answer of a capacity search (spec.search), once it has ended."""

    found: bool = Field(description="A rate passed.")
    max_sustainable_tps: float | None = Field(
        default=None, alias="maxSustainableTPS", description="Highest passing base rate, req/s."
    )
    last_passing_tps: float | None = Field(
        default=None, alias="lastPassingTPS", description="The margin's lower end, req/s."
    )
    first_failing_tps: float | None = Field(
        default=None, alias="firstFailingTPS", description="The margin's upper end, req/s."
    )
    limited_by: str | None = Field(
        default=None, description="target, generator (add load pods) or ceiling (maxTPS)."
    )
    ended: str = Field(
        default="resolved",
        description="resolved, ceiling, maxSteps, nothingPassed, aborted or interrupted.",
    )
    confirmed: bool = Field(default=False, description="The longer window confirmed it.")
    first_failure: str | None = Field(
        default=None, description="Which check failed first at the first failing rate."
    )
    message: str = Field(default="", description="The answer in one line.")
    steps: list[SearchStepStatus] = Field(default_factory=list, description="Every step.")


class SpikeStatus(StatusModel):
    """The last manual spike taken from the kar98k.dev/spike annotation."""

    acknowledged: str = Field(description="The annotation value that was acted on.")
    at: str = Field(description="When it was injected (RFC 3339).")
    factor: float | None = Field(default=None, description="Parsed factor, if it was valid.")
    duration_seconds: float | None = Field(
        default=None, description="Parsed duration in seconds, if it was valid."
    )
    error: str | None = Field(default=None, description="Why the value was rejected, if it was.")


class SafetyResetStatus(StatusModel):
    """The last kar98k.dev/safety-reset annotation value acted on (a human closing the breaker)."""

    acknowledged: str = Field(description="The annotation value that was acted on.")
    at: str = Field(description="When it was acted on (RFC 3339).")
    closed: bool = Field(description="Whether it closed a tripped breaker (false: none was).")


class LoadTestStatus(StatusModel):
    """Observed state of a LoadTest, patched by the operator at most every 2 s."""

    phase: Phase = Field(
        default=Phase.PENDING,
        description="Pending, Starting, Running, Paused, Succeeded or Failed.",
    )
    message: str = Field(default="", description="One-line summary of the current state.")
    run_id: str | None = Field(default=None, description="spec.runId this status belongs to.")
    observed_generation: int = Field(
        default=0, description="Last metadata.generation the operator acted on."
    )
    seed: int | None = Field(default=None, description="Seed of spikes and noise for this run.")
    epoch: int = Field(
        default=0, description="Last plan epoch pushed; a restarted operator continues above it."
    )
    start_time: str | None = Field(
        default=None, description="t = 0 of the rate curve (RFC 3339); kept across restarts."
    )
    completion_time: str | None = Field(default=None, description="When the run ended (RFC 3339).")
    elapsed_seconds: float = Field(default=0.0, description="Seconds since startTime.")
    target_tps: float = Field(
        default=0.0, alias="targetTPS", description="Rate the curve asks for now, req/s."
    )
    achieved_tps: float = Field(
        default=0.0, alias="achievedTPS", description="Rate the load pods achieved (~1 s), req/s."
    )
    spike_active: bool = Field(default=False, description="A spike is shaping the rate now.")
    ready_pods: int = Field(default=0, description="Load pods ready and receiving plans.")
    desired_pods: int = Field(default=0, description="Load pods the run asks for.")
    pods: str = Field(default="0/0", description="readyPods/desiredPods, for kubectl get.")
    requests: int = Field(default=0, description="Requests sent in this run.")
    errors: int = Field(default=0, description="Requests that failed in this run.")
    unaccounted_max: int | None = Field(
        default=None,
        description=(
            "Set when a load pod died between two stats pulls: requests and errors are then a "
            "lower bound, short by at most this many."
        ),
    )
    error_rate: float = Field(default=0.0, description="errors / requests.")
    latency_ms: LatencyStatus = Field(
        default_factory=LatencyStatus, description="Latency percentiles, ms."
    )
    targets: list[TargetStatus] = Field(default_factory=list, description="Per-target figures.")
    verdict: Literal["pass", "fail", "none"] | None = Field(
        default=None, description="pass, fail or none (no thresholds), once finished."
    )
    checks: list[CheckStatus] = Field(default_factory=list, description="Thresholds judged.")
    spike: SpikeStatus | None = Field(
        default=None, description="Acknowledgement of the kar98k.dev/spike annotation."
    )
    safety_reset: SafetyResetStatus | None = Field(
        default=None, description="Acknowledgement of the kar98k.dev/safety-reset annotation."
    )
    search: SearchStatus | None = Field(
        default=None, description="The capacity search's answer (spec.search), once ended."
    )
    result: str | None = Field(
        default=None,
        description=(
            "ConfigMap holding this run's full result (the JSON report, gzipped); "
            "`kar98k report NAMESPACE/NAME` renders it."
        ),
    )
    cleaned_up: bool = Field(
        default=False, description="spec.cleanup was applied after the run finished."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Conditions.")

    @property
    def start(self) -> datetime | None:
        return parse_time(self.start_time) if self.start_time else None


def now_rfc3339() -> str:
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)

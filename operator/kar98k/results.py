"""Results of a run, below the controller and the verdict: live status and the final summary.

The JSON report of `kar98k run` is `RunSummary.model_dump(mode="json")` (snake_case, documented
in docs/report-schema.md); the operator copies the same figures into LoadTest status.
"""

from __future__ import annotations

from typing import Literal

from kar98k_loadpod.stats import is_answered
from pydantic import BaseModel, ConfigDict, Field


class LatencySummary(BaseModel):
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    mean: float = 0.0


class FailureTimeSummary(LatencySummary):
    """Milliseconds from the actual send until an unanswered attempt failed (never latency)."""

    count: int = 0


class LatencyPair(BaseModel):
    """Milliseconds: raw (from actual send) and corrected (from intended send time)."""

    raw: LatencySummary = Field(default_factory=LatencySummary)
    corrected: LatencySummary = Field(default_factory=LatencySummary)


class TargetSummary(BaseModel):
    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0
    outcomes: dict[str, int] = Field(default_factory=dict)
    healthy: bool = True
    health_checked: bool | None = None  # None: not reported (older pods or reports)
    skipped_unhealthy: int = 0
    latency_ms: LatencyPair = Field(default_factory=LatencyPair)
    time_to_failure_ms: dict[str, FailureTimeSummary] = Field(
        default_factory=dict,
        description="Per unanswered outcome: how long those attempts took to fail.",
    )

    @property
    def answered(self) -> int:
        """Requests the target answered (any status): the ones latency is measured on."""
        return sum(n for outcome, n in self.outcomes.items() if is_answered(outcome))


class PodSummary(BaseModel):
    name: str
    ready: bool = True
    share_tps: float = 0.0
    achieved_tps: float = 0.0
    requests: int = 0
    errors: int = 0
    push_failures: int = 0
    epoch: int = 0


class TargetPoint(BaseModel):
    """One target in one second: the stats window covering it (as the point's own figures)."""

    p95_ms: float | None = Field(default=None, description="Corrected p95; None: no answer.")
    error_rate: float | None = Field(default=None, description="None: no request completed.")


class SeriesPoint(BaseModel):
    """One second of the run: what the curve asked for and what the pods started."""

    t: float
    unix_s: int | None = Field(
        default=None, description="The unix second of this bin (pods and servers count by it)."
    )
    target_tps: float
    achieved_tps: float
    spike_active: bool = False
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    error_rate: float | None = None
    targets: dict[str, TargetPoint] = Field(
        default_factory=dict, description="Per target (bounded by the spec's target limit)."
    )


class Check(BaseModel):
    """One threshold judged: e.g. name 'latency.p99', threshold 250.0, observed 180.3 (ms)."""

    name: str
    threshold: float
    observed: float
    passed: bool
    message: str


class ControllerFigures(BaseModel):
    """How well the controller kept time and reached its pods (for diagnosing a run)."""

    ticks: int = 0
    ticks_skipped: int = Field(default=0, description="Ticks dropped because the loop ran late.")
    tick_lag_ms_max: float = 0.0
    tick_lag_ms_p99: float = 0.0
    pushes: int = 0
    push_failures: int = 0
    pushes_skipped: int = Field(
        default=0, description="Pushes not sent because the pod's previous push was pending."
    )
    stats_failures: int = 0
    first_epoch: int = 0
    last_epoch: int = 0


class Delivered(BaseModel):
    """Requests sent against the requests the curve asked for, and how far chance moves it.

    Asked is the curve integrated from t = 0 to the last tick; the pods send from the first
    plan's arrival to the drain's, a window of the same length but for the difference of the
    two deliveries (milliseconds; uniform arrivals measure it: asked and sent agree to a request
    or two). With Poisson arrivals the sent count is itself random around the asked one
    (σ = √asked), so the ratio is only known to ±2σ; uniform arrivals are exact up to one send
    per pod at each end of its window.
    """

    ratio: float = Field(description="requests_total / target_requests.")
    bound: float = Field(description="± on the ratio from the arrivals alone (see arrival).")
    arrival: Literal["poisson", "uniform"]


class SearchStep(BaseModel):
    """One step of a capacity search, judged over its own window only."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    index: int = Field(description="1 for the first step.")
    phase: Literal["bracket", "bisect", "confirm"]
    rate: float = Field(description="Base rate of the step (the curve scaled to it), req/s.")
    target_tps: float = Field(
        default=0.0, alias="targetTPS", description="What the curve asked over the window."
    )
    achieved_tps: float = Field(
        default=0.0, alias="achievedTPS", description="Requests completed over the window / s."
    )
    window_s: float = Field(default=0.0, alias="windowSeconds")
    requests: int = 0
    errors: int = 0
    error_rate: float = Field(default=0.0, alias="errorRate")
    p50_ms: float = Field(default=0.0, alias="p50Ms", description="Thresholds' latency basis.")
    p99_ms: float = Field(default=0.0, alias="p99Ms", description="Thresholds' latency basis.")
    raw_p99_ms: float = Field(
        default=0.0, alias="rawP99Ms", description="From the actual send: the target's share."
    )
    late_sends: int = Field(default=0, alias="lateSends")
    dropped: int = 0
    passed: bool
    limited_by: Literal["target", "generator"] | None = Field(
        default=None, alias="limitedBy", description="Whose limit a failing step hit."
    )
    reason: str = Field(description="Why it passed or failed, for a human.")
    checks: list[Check] = Field(default_factory=list)


class FirstFailure(BaseModel):
    """The check that failed first at the first failing rate, and by how much."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    rate: float
    check: str = Field(description="Check name, e.g. 'latency.p99', 'error_rate', 'aborted'.")
    threshold: float
    observed: float
    excess: float = Field(
        description="observed / threshold - 1 for ceilings; 1 - observed / floor for floors."
    )
    message: str


class SearchSummary(BaseModel):
    """The answer of a capacity search (`kar98k find-max`, `spec.search`)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    found: bool = Field(description="A rate passed (and its confirmation, when it ran).")
    max_sustainable_tps: float | None = Field(
        default=None, alias="maxSustainableTPS", description="Highest confirmed passing rate."
    )
    last_passing_tps: float | None = Field(default=None, alias="lastPassingTPS")
    first_failing_tps: float | None = Field(default=None, alias="firstFailingTPS")
    limited_by: Literal["target", "generator", "ceiling"] | None = Field(
        default=None,
        alias="limitedBy",
        description="Whose limit the first failing rate hit: the target's, or the load "
        "generator's (add pods); 'ceiling' when pattern.maxTPS itself passed.",
    )
    ended: Literal["resolved", "ceiling", "maxSteps", "nothingPassed", "aborted", "interrupted"] = (
        Field(
            default="resolved",
            description="resolved: bracketed within the resolution and confirmed; ceiling: "
            "maxTPS passed; maxSteps: the step budget ran out; nothingPassed: the first step "
            "failed; aborted: error-rate explosion or unhealthy target; interrupted: stopped.",
        )
    )
    first_failure: FirstFailure | None = Field(default=None, alias="firstFailure")
    confirmed: bool = False
    aborted: str | None = Field(default=None, description="Why the search stopped early.")
    ceiling_tps: float = Field(default=0.0, alias="ceilingTPS", description="pattern.maxTPS.")
    resolution: float = 0.0
    message: str = ""
    advice: str | None = None
    steps: list[SearchStep] = Field(default_factory=list)


class SafetyTrip(BaseModel):
    """One trip of the safety breaker (spec.safety): the rule, the figure, when it closed."""

    rule: str = Field(description="ErrorRateAbove or P95Above.")
    action: str = Field(description="pause, scale or abort.")
    measured: float = Field(description="The window's figure (fraction, or ms for p95).")
    limit: float = Field(description="The rule's limit, in the same unit.")
    message: str
    at_s: float = Field(description="Run time of the trip, seconds.")
    at_unix: float
    closed_at_s: float | None = Field(default=None, description="Run time it closed; None: not.")
    closed_by: Literal["clear", "human"] | None = None


class RunSummary(BaseModel):
    """Merged figures over the whole run (or so far, while running)."""

    name: str
    seed: int
    started_at: str = Field(description="ISO 8601 UTC wall time of t = 0.")
    ended_at: str | None = None
    duration_s: float = 0.0
    verdict: Literal["pass", "fail", "none", "running"] = "running"
    interrupted: bool = False
    requests_total: int = 0
    errors_total: int = 0
    error_rate: float = 0.0
    late_sends: int = 0
    dropped: int = 0
    achieved_tps: float = Field(default=0.0, description="requests_total / duration_s.")
    target_tps_mean: float = Field(default=0.0, description="Mean of the curve over the run.")
    target_requests: float = Field(default=0.0, description="Integral of the curve over the run.")
    delivered: Delivered | None = Field(
        default=None, description="Sent / asked and its bound; None when nothing was asked."
    )
    unaccounted_max: int = Field(
        default=0,
        description="Requests pods that died after their last stats pull may have sent: the "
        "totals are a lower bound, short by at most this.",
    )
    unaccounted_pods: list[str] = Field(
        default_factory=list, description="The pods whose last sends were not reported."
    )
    latency_ms: LatencyPair = Field(default_factory=LatencyPair)
    outcomes: dict[str, int] = Field(default_factory=dict)
    time_to_failure_ms: dict[str, FailureTimeSummary] = Field(
        default_factory=dict,
        description="Per unanswered outcome, all targets: how long those attempts took to fail.",
    )
    targets: dict[str, TargetSummary] = Field(default_factory=dict)
    pods: list[PodSummary] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    series: list[SeriesPoint] = Field(default_factory=list)
    controller: ControllerFigures = Field(default_factory=ControllerFigures)
    search: SearchSummary | None = Field(
        default=None, description="The capacity search's answer, when the run was a search."
    )
    safety_trips: list[SafetyTrip] = Field(
        default_factory=list, description="Trips of the safety breaker, oldest first."
    )

    @property
    def answered_total(self) -> int | None:
        """Requests answered (any status): the latency percentiles describe these only.
        None when the summary carries no outcome counts to tell."""
        if not self.outcomes:
            return None
        return sum(n for outcome, n in self.outcomes.items() if is_answered(outcome))


class LiveStatus(BaseModel):
    """A snapshot for live views and the operator's status patches."""

    elapsed_s: float
    target_tps: float
    achieved_tps: float = Field(description="Merged achieved rate over the last ~1 s.")
    spike_active: bool
    paused: bool
    ready_pods: int
    desired_pods: int
    tick_lag_ms: float = Field(description="How late the last tick ran (max over last 10 s).")
    push_errors: int
    rolling_p99_ms: float | None = Field(
        default=None, description="p99 latency (thresholds' basis) over the last ~10 s."
    )
    rolling_error_rate: float | None = Field(
        default=None, description="errors/requests over the last ~10 s; None before any."
    )
    summary: RunSummary

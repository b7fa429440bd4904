"""Stats a load pod reports on `GET /v1/stats`: cumulative counters plus encoded histograms."""

from __future__ import annotations

from pydantic import Field

from .model_base import WireModel

# Outcome keys: "1xx".."5xx" for HTTP status classes, "timeout", "connect_error",
# "error" (any other transport failure), and "grpc_<CODE>" (e.g. "grpc_OK",
# "grpc_UNAVAILABLE") for gRPC. Success is 2xx/3xx for HTTP and grpc_OK for gRPC.
SUCCESS_OUTCOMES = frozenset({"1xx", "2xx", "3xx", "grpc_OK"})
# Failures that got no answer from the target: there is no response time to speak of, only a
# time to failure. Latency histograms hold answered requests only (any status, 5xx included), so a
# run whose every request failed to connect cannot show a fast p99 and pass its latency checks.
UNANSWERED_OUTCOMES = frozenset(
    {"timeout", "connect_error", "error", "grpc_UNAVAILABLE", "grpc_DEADLINE_EXCEEDED",
     "grpc_CANCELLED"}
)  # fmt: skip


def is_answered(outcome: str) -> bool:
    return outcome not in UNANSWERED_OUTCOMES


def is_error(outcome: str) -> bool:
    return outcome not in SUCCESS_OUTCOMES


class TargetStats(WireModel):
    requests: int = 0
    errors: int = 0
    outcomes: dict[str, int] = Field(default_factory=dict)
    healthy: bool = True
    health_checked: bool = Field(
        default=False, description="The plan gives this target a health check (healthy means it)."
    )
    skipped_unhealthy: int = Field(default=0, description="Sends not made: target unhealthy.")
    latency_raw: str = Field(default="", description="Encoded HDR histogram, microseconds.")
    latency_corrected: str = Field(default="", description="Encoded HDR histogram, microseconds.")
    time_to_failure: dict[str, str] = Field(
        default_factory=dict,
        description="Unanswered outcome -> encoded HDR histogram (microseconds, 2 significant "
        "digits) of how long those attempts took to fail; see failures.py.",
    )


class PodStats(WireModel):
    pod: str = ""
    epoch: int = -1
    rate: float = 0.0
    lease_expired: bool = False
    draining: bool = False
    started_at: float = Field(default=0.0, description="Unix time the pod process started.")
    uptime_seconds: float = 0.0
    requests: int = 0
    errors: int = 0
    in_flight: int = 0
    late_sends: int = Field(default=0, description="Sends that could not start on time.")
    dropped: int = Field(default=0, description="Sends abandoned: maxInFlight reached.")
    achieved_rate_1s: float = 0.0
    achieved_rate_10s: float = 0.0
    sent_per_second: list[tuple[int, int]] = Field(
        default_factory=list,
        description="[unix second, sends started] for the last 60 whole seconds, oldest first.",
    )
    targets: dict[str, TargetStats] = Field(default_factory=dict)
    latency_raw: str = ""
    latency_corrected: str = ""

"""LoadTest status: its model (the CRD's status schema is generated from it) and a throttled writer.

The controller ticks every 100 ms; the API server must not see that. The writer collects changes
and patches `/status` at most once every 2 s per LoadTest. Phase changes wait for the next slot too,
so the rule has no exceptions.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from kar98k.results import LiveStatus, RunSummary
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .kube import Kube, KubeError
from .names import API_VERSION, PLURAL

log = logging.getLogger(__name__)

MIN_PATCH_INTERVAL = 2.0


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


class StatusModel(BaseModel):
    """camelCase on the wire; unknown keys ignored so an older operator can read newer status."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    """One aspect of the LoadTest, Kubernetes style."""

    type: str = Field(
        description="PodsReady, TargetsHealthy, ThresholdsMet, Completed or SpecApplied."
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
    search: SearchStatus | None = Field(
        default=None, description="The capacity search's answer (spec.search), once ended."
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


def read_status(raw: Any) -> LoadTestStatus:
    """The status of a body; a garbled status reads as empty rather than failing the operator."""
    try:
        return LoadTestStatus.model_validate(dict(raw or {}))
    except ValueError:
        log.warning("ignoring an unreadable LoadTest status")
        return LoadTestStatus()


def live_figures(live: LiveStatus, *, basis: str = "corrected") -> dict[str, Any]:
    """The status fields a live snapshot of the controller fills in."""
    out = summary_figures(live.summary, basis=basis)
    out.update(
        {
            "elapsedSeconds": round(live.elapsed_s, 1),
            "targetTPS": round(live.target_tps, 1),
            "achievedTPS": round(live.achieved_tps, 1),
            "spikeActive": live.spike_active,
            "readyPods": live.ready_pods,
            "desiredPods": live.desired_pods,
            "pods": f"{live.ready_pods}/{live.desired_pods}",
        }
    )
    return out


def summary_figures(summary: RunSummary, *, basis: str = "corrected") -> dict[str, Any]:
    """Counters, error rate, latency and per-target figures of a (partial or final) summary."""
    lat = summary.latency_ms.raw if basis == "raw" else summary.latency_ms.corrected
    targets = []
    for name, tgt in sorted(summary.targets.items()):
        targets.append(
            {
                "name": name,
                "healthy": tgt.healthy,
                "requests": tgt.requests,
                "errors": tgt.errors,
                "errorRate": round(tgt.error_rate, 6),
            }
        )
    return {
        "requests": summary.requests_total,
        "errors": summary.errors_total,
        "errorRate": round(summary.error_rate, 6),
        "latencyMs": {
            "p50": round(lat.p50, 3),
            "p95": round(lat.p95, 3),
            "p99": round(lat.p99, 3),
        },
        "targets": targets,
    }


def search_figures(summary: RunSummary) -> dict[str, Any] | None:
    """The `search` status of a finished capacity search (None for a plain run)."""
    search = summary.search
    if search is None:
        return None
    failure = search.first_failure
    status = SearchStatus(
        found=search.found,
        max_sustainable_tps=_round(search.max_sustainable_tps),
        last_passing_tps=_round(search.last_passing_tps),
        first_failing_tps=_round(search.first_failing_tps),
        limited_by=search.limited_by,
        ended=search.ended,
        confirmed=search.confirmed,
        first_failure=f"{failure.check}: {failure.message}" if failure is not None else None,
        message=search.message,
        steps=[
            SearchStepStatus(
                rate=round(step.rate, 1),
                phase=step.phase,
                passed=step.passed,
                p50_ms=round(step.p50_ms, 3),
                p99_ms=round(step.p99_ms, 3),
                error_rate=round(step.error_rate, 6),
                achieved_tps=round(step.achieved_tps, 1),
                reason=step.reason,
            )
            for step in search.steps
        ],
    )
    out: dict[str, Any] = status.model_dump(mode="json", by_alias=True)
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def verdict_figures(summary: RunSummary) -> dict[str, Any]:
    """Verdict and checks of a finished run."""
    verdict = summary.verdict if summary.verdict != "running" else "none"
    return {
        "verdict": verdict,
        "checks": [
            {
                "name": c.name,
                "threshold": c.threshold,
                "observed": round(c.observed, 6),
                "passed": c.passed,
                "message": c.message,
            }
            for c in summary.checks
        ],
    }


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


class StatusWriter:
    """Collects status changes and merge-patches `/status` no more than every `min_interval`."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        name: str,
        current: LoadTestStatus,
        min_interval: float = MIN_PATCH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._path = f"/apis/{API_VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        self._pending: dict[str, Any] = {}
        self._conditions: dict[str, dict[str, Any]] = {
            c.type: c.model_dump(by_alias=True, exclude_none=True) for c in current.conditions
        }
        self._conditions_dirty = False
        self._min_interval = min_interval
        self._clock = clock
        self._last_patch = -min_interval
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()
        self.view: dict[str, Any] = current.model_dump(by_alias=True, exclude_none=True)
        self.gone = False

    @property
    def phase(self) -> Phase:
        return Phase(self.view.get("phase", Phase.PENDING))

    def set(self, patch: dict[str, Any]) -> None:
        """Queue fields (camelCase); None deletes a field, as in a JSON merge patch."""
        _merge(self._pending, patch)
        _merge(self.view, patch)
        self._dirty.set()

    def condition(
        self,
        ctype: ConditionType,
        status: bool | None,
        reason: str,
        message: str = "",
        *,
        generation: int | None = None,
    ) -> bool:
        """Set a condition; lastTransitionTime moves only when status flips. True if it flipped."""
        text = "Unknown" if status is None else ("True" if status else "False")
        old = self._conditions.get(ctype.value)
        flipped = old is None or old.get("status") != text
        new = {
            "type": ctype.value,
            "status": text,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now_rfc3339()
            if flipped or old is None
            else old.get("lastTransitionTime", now_rfc3339()),
        }
        if generation is not None:
            new["observedGeneration"] = generation
        if old != new:
            self._conditions[ctype.value] = new
            self._conditions_dirty = True
            self.view["conditions"] = list(self._conditions.values())
            self._dirty.set()
        return flipped

    def condition_status(self, ctype: ConditionType) -> str | None:
        found = self._conditions.get(ctype.value)
        return None if found is None else str(found.get("status"))

    async def flush(self) -> None:
        """Patch what is pending as soon as the rate limit allows (no-op when nothing changed)."""
        async with self._lock:
            wait = self._last_patch + self._min_interval - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            patch = self._pending
            self._pending = {}
            if self._conditions_dirty:
                patch["conditions"] = list(self._conditions.values())
                self._conditions_dirty = False
            self._dirty.clear()
            if not patch or self.gone:
                return
            self._last_patch = self._clock()
            try:
                await self._kube.merge_patch(self._path, {"status": patch})
            except KubeError as exc:
                if exc.status == 404:
                    self.gone = True
                    return
                log.warning("status patch failed (%s); will retry", exc)
                _merge(patch, self._pending)
                self._pending = patch
                self._dirty.set()
            except (OSError, TimeoutError) as exc:
                log.warning("status patch failed (%s); will retry", exc)
                _merge(patch, self._pending)
                self._pending = patch
                self._dirty.set()

    async def run(self) -> None:
        """Flush whenever something is pending, forever (cancel to stop)."""
        while True:
            await self._dirty.wait()
            await self.flush()

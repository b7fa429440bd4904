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
from typing import Any

from kar98k.results import LiveStatus, RunSummary
from kar98k.spec.status import (
    FINISHED_PHASES,
    CheckStatus,
    ConditionType,
    LatencyStatus,
    LoadTestStatus,
    Phase,
    SearchStatus,
    SearchStepStatus,
    TargetStatus,
    now_rfc3339,
)

from .kube import Kube, KubeError
from .names import API_VERSION, PLURAL

log = logging.getLogger(__name__)

MIN_PATCH_INTERVAL = 2.0


def read_status(raw: Any) -> LoadTestStatus:
    """The status of a body; a garbled status reads as empty rather than failing the operator."""
    try:
        return LoadTestStatus.model_validate(dict(raw or {}))
    except ValueError:
        log.warning("ignoring an unreadable LoadTest status")
        return LoadTestStatus()


def live_figures(live: LiveStatus) -> LoadTestStatus:
    """The status fields a live snapshot of the controller fills in (besides its summary's)."""
    return LoadTestStatus(
        elapsed_seconds=round(live.elapsed_s, 1),
        target_tps=round(live.target_tps, 1),
        achieved_tps=round(live.achieved_tps, 1),
        spike_active=live.spike_active,
        ready_pods=live.ready_pods,
        desired_pods=live.desired_pods,
        pods=f"{live.ready_pods}/{live.desired_pods}",
    )


def summary_figures(summary: RunSummary, *, basis: str = "corrected") -> LoadTestStatus:
    """Counters, error rate, latency and per-target figures of a (partial or final) summary."""
    lat = summary.latency_ms.raw if basis == "raw" else summary.latency_ms.corrected
    figures = LoadTestStatus(
        requests=summary.requests_total,
        errors=summary.errors_total,
        error_rate=round(summary.error_rate, 6),
        latency_ms=LatencyStatus(p50=round(lat.p50, 3), p95=round(lat.p95, 3),
                                 p99=round(lat.p99, 3)),
        targets=[
            TargetStatus(name=name, healthy=tgt.healthy, requests=tgt.requests,
                         errors=tgt.errors, error_rate=round(tgt.error_rate, 6))
            for name, tgt in sorted(summary.targets.items())
        ],
    )  # fmt: skip
    if summary.unaccounted_max:
        figures.unaccounted_max = summary.unaccounted_max
    return figures


def search_figures(summary: RunSummary) -> LoadTestStatus | None:
    """The `search` status of a finished capacity search (None for a plain run)."""
    search = summary.search
    if search is None:
        return None
    failure = search.first_failure
    answer = SearchStatus(
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
    return LoadTestStatus(search=answer)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def verdict_figures(summary: RunSummary) -> LoadTestStatus:
    """Verdict and checks of a finished run."""
    return LoadTestStatus(
        verdict="none" if summary.verdict == "running" else summary.verdict,
        checks=[
            CheckStatus(name=c.name, threshold=c.threshold, observed=round(c.observed, 6),
                        passed=c.passed, message=c.message)
            for c in summary.checks
        ],
    )  # fmt: skip


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

    def set(self, fields: LoadTestStatus) -> None:
        """Queue the fields the caller set on `fields` (a partial status); a field set to None
        is deleted, as in a JSON merge patch. Fields left unset are not sent."""
        patch = fields.model_dump(mode="json", by_alias=True, exclude_unset=True)
        _merge(self._pending, patch)
        _merge(self.view, patch)
        self._dirty.set()
        if patch.get("phase") is not None:
            self._readiness(Phase(patch["phase"]))

    def _readiness(self, phase: Phase) -> None:
        """kstatus conditions of a phase: Ready only when Succeeded, Reconciling while under way
        (Pending to Paused), Stalled when Failed; all at the observed generation."""
        generation = self.view.get("observedGeneration")
        done = phase in FINISHED_PHASES
        message = str(self.view.get("message") or phase.value)
        for ctype, value in (
            (ConditionType.READY, phase is Phase.SUCCEEDED),
            (ConditionType.RECONCILING, not done),
            (ConditionType.STALLED, phase is Phase.FAILED),
        ):
            self.condition(ctype, value, phase.value, message, generation=generation)

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

"""The end of a run: final figures, the verdict, the Completed condition, pods scaled to zero.

The controller has already drained the pods and merged their final histograms into the summary;
this phase only judges and records it. A run cut short by a new runId is recorded but keeps its
pods, because the next run starts on them at once.
"""

from __future__ import annotations

import logging

from kar98k.controller import RunSummary
from kar98k.spec.status import (
    ConditionType,
    LoadTestStatus,
    Phase,
    format_time,
    now_rfc3339,
    parse_time,
)

from ..results_store import store
from ..status import search_figures, summary_figures, verdict_figures
from .context import API_ERRORS, RunContext
from .live_status import threshold_condition
from .running import RunEnd

log = logging.getLogger(__name__)


def outcome(summary: RunSummary, *, superseded: bool) -> tuple[Phase, str, str]:
    """(phase, Completed reason, message) of a finished run."""
    failed = summary.verdict == "fail"
    phase = Phase.FAILED if failed else Phase.SUCCEEDED
    if superseded:
        return phase, "Superseded", "ended early: spec.runId changed"
    if summary.search is not None:
        reasons = {"aborted": "SearchAborted", "interrupted": "Stopped"}
        reason = reasons.get(summary.search.ended)
        if reason is None:
            reason = "CapacityFound" if summary.search.found else "NothingPassed"
        return phase, reason, summary.search.message
    aborted = [t for t in summary.safety_trips if t.action == "abort"]
    if aborted:
        return phase, "SafetyAborted", f"safety breaker ({aborted[-1].rule}): {aborted[-1].message}"
    if failed:
        return (
            phase,
            "ThresholdsFailed",
            "; ".join(c.message for c in summary.checks if not c.passed),
        )
    if summary.interrupted:
        return phase, "Stopped", "ended before spec.duration"
    message = (
        f"{summary.requests_total} requests, {summary.achieved_tps:.1f} req/s, "
        f"verdict {summary.verdict}"
    )
    return phase, "Succeeded", message


async def finish(ctx: RunContext, end: RunEnd) -> None:
    summary = end.summary
    phase, reason, message = outcome(summary, superseded=end.superseded)
    ctx.writer.set(summary_figures(summary, basis=end.spec.thresholds.latency_basis))
    ctx.writer.set(verdict_figures(summary))
    search = search_figures(summary)
    if search is not None:
        ctx.writer.set(search)
    ctx.writer.set(
        LoadTestStatus(
            completion_time=format_time(parse_time(summary.ended_at))
            if summary.ended_at
            else now_rfc3339(),
            achieved_tps=round(summary.achieved_tps, 1),
            target_tps=0.0,
            spike_active=False,
            elapsed_seconds=round(summary.duration_s, 1),
            ready_pods=0,
            desired_pods=0,
            pods="0/0",
            phase=phase,
            message=f"{phase.value}: {message}" if message else phase.value,
        )
    )
    ctx.writer.condition(ConditionType.COMPLETED, True, reason, message)
    threshold_condition(ctx.writer, summary, final=True)
    ctx.writer.condition(ConditionType.PODS_READY, False, "Finished", "load pods scaled to 0")
    ctx.event("Verdict", f"{phase.value}: {message}", warning=phase is Phase.FAILED)
    try:
        stored = await store(ctx.kube, ctx.snapshot(), summary)
        ctx.writer.set(LoadTestStatus(result=stored))
    except API_ERRORS as exc:
        log.warning("%s/%s: could not store the result: %s", ctx.namespace, ctx.name, exc)
        ctx.event("ResultNotStored", str(exc), warning=True)
    ctx.publish()
    if end.superseded:
        return
    try:
        await ctx.children.scale(ctx.snapshot(), 0)
    except API_ERRORS as exc:
        log.warning("%s/%s: could not scale to 0: %s", ctx.namespace, ctx.name, exc)

"""The controller's live figures, copied into status (throttled by the writer) and metrics.

Called after every supervision step; the writer merges the changes and patches at most every
2 s, so this may run as often as it likes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kar98k.controller import Controller, RunSummary
from kar98k.controller.safety import Breach
from kar98k.spec.status import ConditionType, LoadTestStatus, Phase

from ..status import StatusWriter, live_figures, summary_figures
from .context import RunContext


def observe(ctx: RunContext, controller: Controller) -> None:
    """Figures, phase (Running or Paused), conditions and the metrics snapshot of now."""
    live = controller.live()
    basis = controller.spec.thresholds.latency_basis
    ctx.writer.set(summary_figures(live.summary, basis=basis))
    ctx.writer.set(live_figures(live))
    ctx.writer.set(
        LoadTestStatus(
            epoch=controller.epoch,
            phase=Phase.PAUSED if live.paused else Phase.RUNNING,
            message=_message(controller, live.paused, live.target_tps, live.achieved_tps),
        )
    )
    ready, desired = live.ready_pods, live.desired_pods
    ctx.writer.condition(
        ConditionType.PODS_READY,
        ready >= desired,
        "Ready" if ready >= desired else "Degraded",
        f"{ready}/{desired} load pods ready",
    )
    unhealthy = sorted(n for n, t in live.summary.targets.items() if not t.healthy)
    ctx.writer.condition(
        ConditionType.TARGETS_HEALTHY,
        not unhealthy,
        "Healthy" if not unhealthy else "Unhealthy",
        "" if not unhealthy else f"unhealthy: {', '.join(unhealthy)}",
    )
    threshold_condition(ctx.writer, live.summary, final=False)
    safety_condition(ctx.writer, controller)
    ctx.publish(live)


def _message(controller: Controller, paused: bool, target: float, achieved: float) -> str:
    """status.message: paused by spec, held down by the safety breaker, or running."""
    if paused:
        return "paused: no traffic until spec.paused is false"
    guard = controller.safety
    if guard is not None and guard.breaker.tripped:
        action = guard.rules.action.value
        return f"safety breaker tripped ({action}): {target:.1f} req/s asked, see SafetyTripped"
    return f"running: {target:.1f} req/s asked, {achieved:.1f} achieved"


def restore_safety(view: Mapping[str, Any], controller: Controller) -> bool:
    """A run resumed by a restarted operator keeps a tripped breaker tripped: the condition in
    status is the breaker's memory (without it, a pause with no resumeAfter would end with the
    operator). True when it restored one."""
    guard = controller.safety
    cond = next(
        (c for c in view.get("conditions") or [] if c.get("type") == ConditionType.SAFETY_TRIPPED),
        None,
    )
    if guard is None or cond is None or cond.get("status") != "True":
        return False
    rule = cond.get("reason")
    if rule not in ("ErrorRateAbove", "P95Above"):
        return False
    message = str(cond.get("message") or "").removeprefix(f"{guard.rules.action.value}: ")
    guard.breaker.hold(Breach(rule, math.nan, math.nan, message))
    return True


def safety_condition(writer: StatusWriter, controller: Controller) -> None:
    """SafetyTripped (spec.safety only): True with the rule as reason and the measured figure
    while the breaker holds the rate down; False once it closed (or never tripped)."""
    guard = controller.safety
    if guard is None:
        return
    breach = guard.breaker.last_breach
    if guard.breaker.tripped and breach is not None:
        action = guard.rules.action.value
        writer.condition(
            ConditionType.SAFETY_TRIPPED, True, breach.rule, f"{action}: {breach.message}"
        )
    elif guard.trips:
        last = guard.trips[-1]
        how = "by hand" if last.closed_by == "human" else "clear for resumeAfter"
        writer.condition(
            ConditionType.SAFETY_TRIPPED, False, "Closed", f"closed {how}: was {last.message}"
        )
    else:
        writer.condition(ConditionType.SAFETY_TRIPPED, False, "Clear", "")


def threshold_condition(writer: StatusWriter, summary: RunSummary, *, final: bool) -> None:
    """ThresholdsMet: WithinLimits/Breached while running, Met/Failed once judged at the end."""
    if not summary.checks:
        writer.condition(ConditionType.THRESHOLDS_MET, None, "NoThresholds", "")
        return
    failed = [c for c in summary.checks if not c.passed]
    if failed:
        reason = "Failed" if final else "Breached"
        message = "; ".join(c.message for c in failed)
    else:
        reason = "Met" if final else "WithinLimits"
        message = "; ".join(c.message for c in summary.checks)
    writer.condition(ConditionType.THRESHOLDS_MET, not failed, reason, message)

"""Mid-run control: spec edits (by generation), replica changes and the manual-spike annotation.

What the controller can take applies at the next tick without restarting the run; what it cannot
(the pod template, pattern.seed) and invalid edits leave the run as it is and say so in
SpecApplied. A runId change ends the run so the next one can start. A spike annotation value
fires once: it is acknowledged by value in status, which survives resyncs and restarts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kar98k.controller import Controller
from kar98k.spec import LoadTestSpec, SpecError, parse_spec
from kar98k.spec.status import (
    ConditionType,
    LoadTestStatus,
    SafetyResetStatus,
    SpikeStatus,
    now_rfc3339,
)
from kar98k_loadpod.durations import format_duration

from .. import names
from ..children import replicas_for
from ..spike_annotation import parse_spike
from .bad_input import INVALID_SPEC, guardrail_refusals, spec_problems
from .context import API_ERRORS, RunContext, generation_of

log = logging.getLogger(__name__)


# The load-pod fields that shape the Deployment's pod template: its pods are made once per run,
# so a change to any of them waits for a new run (spec.runId).
TEMPLATE_FIELDS = ("image", "resources", "node_selector", "tolerations", "affinity", "separate",
                   "env", "template")  # fmt: skip


def template_changes(old: LoadTestSpec, new: LoadTestSpec) -> list[str]:
    """Paths of the pod-template fields an edit changed (they cannot apply mid-run)."""
    fields = type(new.load_pods).model_fields
    return [
        f"spec.loadPods.{fields[attr].alias or attr}"
        for attr in TEMPLATE_FIELDS
        if getattr(new.load_pods, attr) != getattr(old.load_pods, attr)
    ]


class MidRunControl:
    """Applies what changed on the LoadTest since the last supervision step."""

    def __init__(self, ctx: RunContext, *, spec: LoadTestSpec, generation: int) -> None:
        self._ctx = ctx
        self.spec = spec  # the spec the run goes by (the last edit that applied)
        self._generation = generation
        self._pending_scale: int | None = None
        self._background: set[asyncio.Future[None]] = set()

    def apply(self, controller: Controller) -> bool:
        """Spec edits (by generation) and the spike annotation; True when runId changed."""
        ctx = self._ctx
        body = ctx.snapshot()
        generation = generation_of(body)
        if generation != self._generation:
            self._generation = generation
            try:
                new_spec = parse_spec(body.get("spec"))
            except SpecError as exc:
                self._reject_edit(exc, generation)
                return False
            refused = guardrail_refusals(ctx, new_spec)
            if refused:
                self._refuse_edit("; ".join(r.message for r in refused), refused[0].reason,
                                  generation)  # fmt: skip
                return False
            if new_spec.run_id != self.spec.run_id:
                ctx.event("NewRun", f"spec.runId changed to {new_spec.run_id!r}; restarting")
                controller.stop()
                return True
            self._take_edit(controller, new_spec, generation)
        if self._pending_scale is not None:
            replicas = self._pending_scale
            self._pending_scale = None
            task = asyncio.ensure_future(self._scale_quietly(replicas))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        spike(ctx, controller, body)
        safety_reset(ctx, controller, body)
        return False

    def _reject_edit(self, exc: SpecError, generation: int) -> None:
        """An invalid edit: the run goes on with the spec it has, and SpecApplied says why."""
        self._refuse_edit(spec_problems(exc), INVALID_SPEC, generation)

    def _refuse_edit(self, message: str, reason: str, generation: int) -> None:
        """An edit not taken (invalid, or refused by the guardrails): SpecApplied says why."""
        self._ctx.writer.condition(
            ConditionType.SPEC_APPLIED,
            False,
            reason,
            f"edit not applied, the run continues with the previous spec: {message}",
            generation=generation,
        )
        self._ctx.event("SpecRejected", message, warning=True)

    def _take_edit(self, controller: Controller, new_spec: LoadTestSpec, generation: int) -> None:
        """Hand the edit to the controller; rescale later; say what could not change mid-run."""
        ctx = self._ctx
        ignored = [f for f in controller.update_spec(new_spec) if f != "spec.runId"]
        ignored += template_changes(self.spec, new_spec)
        old_replicas = replicas_for(self.spec)
        new_replicas = replicas_for(new_spec)
        self.spec = new_spec
        if new_replicas != old_replicas:
            self._pending_scale = new_replicas
        if ignored:
            message = (
                f"{', '.join(ignored)} cannot change mid-run; the run keeps the old values "
                "(change spec.runId to start a new run with them)"
            )
            ctx.writer.condition(
                ConditionType.SPEC_APPLIED,
                False,
                "RequiresNewRun",
                message,
                generation=generation,
            )
            ctx.event("SpecPartiallyApplied", message, warning=True)
        else:
            ctx.writer.condition(
                ConditionType.SPEC_APPLIED, True, "Applied", "", generation=generation
            )
        ctx.writer.set(LoadTestStatus(observed_generation=generation))

    async def _scale_quietly(self, replicas: int) -> None:
        ctx = self._ctx
        try:
            await ctx.children.scale(ctx.snapshot(), replicas)
        except API_ERRORS as exc:
            log.warning("%s/%s: could not scale to %d: %s", ctx.namespace, ctx.name, replicas, exc)


def spike(ctx: RunContext, controller: Controller, body: dict[str, Any]) -> None:
    """Inject the spike the annotation asks for, unless status already acknowledges its value."""
    value = (body["metadata"].get("annotations") or {}).get(names.ANNOTATION_SPIKE)
    if not value:
        return
    acked = (ctx.writer.view.get("spike") or {}).get("acknowledged")
    if acked == value:
        return
    at = now_rfc3339()
    try:
        request = parse_spike(value)
    except ValueError as exc:
        rejected = SpikeStatus(acknowledged=value, at=at, error=str(exc), factor=None,
                               duration_seconds=None)  # fmt: skip
        ctx.writer.set(LoadTestStatus(spike=rejected))
        ctx.event("SpikeRejected", f"{names.ANNOTATION_SPIKE}={value!r}: {exc}", warning=True)
        return
    controller.inject_spike(request.factor, request.duration)
    accepted = SpikeStatus(acknowledged=value, at=at, factor=request.factor,
                           duration_seconds=request.duration, error=None)  # fmt: skip
    ctx.writer.set(LoadTestStatus(spike=accepted))
    ctx.event(
        "SpikeInjected",
        f"manual spike x{request.factor:g} for {format_duration(request.duration)}",
    )


def safety_reset(ctx: RunContext, controller: Controller, body: dict[str, Any]) -> None:
    """Close a tripped safety breaker when the annotation carries a value not yet acknowledged.

    Acknowledged by value in status like the spike, so a resync or a restarted operator never
    resets again; spec.paused is left alone (a user's pause is not the breaker's)."""
    value = (body["metadata"].get("annotations") or {}).get(names.ANNOTATION_SAFETY_RESET)
    if not value or (ctx.writer.view.get("safetyReset") or {}).get("acknowledged") == value:
        return
    guard = controller.safety
    was_tripped = guard is not None and guard.breaker.tripped
    controller.reset_safety()
    closed = was_tripped and guard is not None and not guard.breaker.tripped
    ack = SafetyResetStatus(acknowledged=value, at=now_rfc3339(), closed=closed)
    ctx.writer.set(LoadTestStatus(safety_reset=ack))
    if not closed:
        ctx.event(
            "SafetyResetIgnored",
            f"{names.ANNOTATION_SAFETY_RESET}: no tripped breaker to close"
            + (" (an aborted run stays aborted)" if was_tripped else ""),
        )

"""The start of a run: fresh status for a new run, then the barrier that sets t = 0 for all pods.

The curve starts when loadPods.minReady pods (default all) are ready, so no pod joins a curve
already under way. A run whose pods never get there fails after startTimeout, naming each
unready pod and why (image pull, crash loop, unschedulable, never created), so the user can fix
the cause without reading the operator's logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from kar98k.spec import LoadTestSpec
from kar98k.spec.status import ConditionType, LatencyStatus, LoadTestStatus, Phase, format_time
from kar98k_loadpod.durations import format_duration

from ..pool import PodPool
from .cleanup import gitops_conflict
from .context import API_ERRORS, IDLE_POLL, RunContext

START_TIMEOUT = "StartTimeout"


def new_seed(spec: LoadTestSpec) -> int:
    """pattern.seed when given (a reproducible curve), else a fresh one for this run."""
    return spec.pattern.seed if spec.pattern.seed is not None else random.randrange(2**31)


def reset_for_new_run(
    ctx: RunContext, spec: LoadTestSpec, seed: int, generation: int, replicas: int
) -> None:
    """Status of a run that has not started: the previous run's figures and verdict go."""
    conflict = gitops_conflict(ctx.snapshot().get("metadata") or {}, spec)
    if conflict:
        ctx.event("GitOpsCleanupConflict", conflict, warning=True)
    ctx.writer.set(
        LoadTestStatus(
            phase=Phase.PENDING,
            message="creating load pods",
            run_id=spec.run_id,
            observed_generation=generation,
            seed=seed,
            start_time=None,
            completion_time=None,
            elapsed_seconds=0.0,
            target_tps=0.0,
            achieved_tps=0.0,
            spike_active=False,
            ready_pods=0,
            desired_pods=replicas,
            pods=f"0/{replicas}",
            requests=0,
            errors=0,
            error_rate=0.0,
            latency_ms=LatencyStatus(p50=0.0, p95=0.0, p99=0.0),
            targets=[],
            verdict=None,
            result=None,
            checks=[],
            cleaned_up=False,
        )
    )
    ctx.writer.condition(ConditionType.COMPLETED, False, "NotFinished", "", generation=generation)
    ctx.writer.condition(
        ConditionType.PODS_READY, False, "Creating", f"0/{replicas} load pods ready"
    )
    ctx.writer.condition(ConditionType.SPEC_APPLIED, True, "Applied", "", generation=generation)
    if spec.safety is not None or ctx.writer.condition_status(ConditionType.SAFETY_TRIPPED):
        # A new run starts with its breaker closed: the last run's trip must not be restored.
        why = "" if spec.safety is not None else "no spec.safety"
        ctx.writer.condition(ConditionType.SAFETY_TRIPPED, False, "Clear", why)
    ctx.rejected_generation = None


async def start_barrier(
    ctx: RunContext, body: dict[str, Any], spec: LoadTestSpec, pool: PodPool, replicas: int
) -> datetime | None:
    """Wait for minReady pods (default all): t = 0 of the curve; None when startTimeout passed."""
    need = min(spec.load_pods.min_ready or replicas, replicas)
    timeout = spec.load_pods.start_timeout
    ctx.writer.set(
        LoadTestStatus(
            phase=Phase.STARTING, message=f"waiting for {need}/{replicas} load pods to be ready"
        )
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        ready = pool.ready_count()
        ctx.writer.set(LoadTestStatus(ready_pods=ready, pods=f"{ready}/{replicas}"))
        ctx.publish()
        if ready >= need:
            break
        if loop.time() >= deadline:
            message = start_timeout_message(
                pool.unready(),
                known=pool.total(),
                ready=ready,
                need=need,
                replicas=replicas,
                waited=timeout,
            )
            await _fail_start(ctx, body, message)
            return None
        await ctx.wait_any(pool.changed, min(IDLE_POLL, deadline - loop.time()))
    start = datetime.now(UTC)
    ctx.writer.set(
        LoadTestStatus(
            phase=Phase.PAUSED if spec.paused else Phase.RUNNING,
            message=f"running with {pool.ready_count()} load pods",
            start_time=format_time(start),
        )
    )
    ctx.writer.condition(
        ConditionType.PODS_READY, True, "Ready", f"{pool.ready_count()}/{replicas} ready"
    )
    return start


def start_timeout_message(
    unready: Sequence[tuple[str, str]],
    *,
    known: int,
    ready: int,
    need: int,
    replicas: int,
    waited: float,
) -> str:
    """Why the barrier did not open: each unready pod with its reason, and pods never created."""
    reasons = [f"{name}: {why}" for name, why in unready]
    missing = replicas - known
    if missing > 0:
        reasons.append(f"{missing} pod(s) not created (check the Deployment's events)")
    detail = "; ".join(reasons) or "no pods"
    return (
        f"{ready}/{need} load pods ready after {format_duration(waited)} (startTimeout): {detail}"
    )


async def _fail_start(ctx: RunContext, body: dict[str, Any], message: str) -> None:
    ctx.writer.condition(ConditionType.PODS_READY, False, START_TIMEOUT, message)
    ctx.fail(START_TIMEOUT, message, fields=LoadTestStatus(verdict="fail"))
    with contextlib.suppress(*API_ERRORS):
        await ctx.children.scale(body, 0)

"""The running phase: the controller core under supervision until the run ends or is left.

Every SUPERVISE_INTERVAL, or at once on a wake-up, the loop applies mid-run changes and copies
the live figures into status and metrics. It returns the controller's summary for the finish
phase, or leaves the run when the daemon must stop: a deleted LoadTest drains its pods, an
exiting operator leaves them to their lease end so the next operator resumes the same curve.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime

from kar98k.controller import Controller, RunSummary
from kar98k.search.engine import SearchEngine
from kar98k.spec import LoadTestSpec
from kar98k.spec.status import LoadTestStatus

from .. import events
from ..pool import PodPool
from .context import RunContext, Stopped
from .live_status import observe, restore_safety
from .mid_run import MidRunControl

SUPERVISE_INTERVAL = 0.5
DELETE_DRAIN = 3.0


@dataclass(frozen=True)
class RunEnd:
    """How a run ended: its summary, the spec it ended under, and whether a new runId cut it."""

    summary: RunSummary
    spec: LoadTestSpec
    superseded: bool


async def supervise(
    ctx: RunContext,
    spec: LoadTestSpec,
    pool: PodPool,
    *,
    seed: int,
    start: datetime,
    generation: int,
    epoch: int,
) -> RunEnd:
    """Run the controller core; apply edits, spikes and pauses; raise Stopped to hand over."""
    body_at_start = ctx.snapshot()
    budget_key = f"{ctx.namespace}/{ctx.name}"
    controller = Controller(
        spec,
        pool,
        name=ctx.name,
        seed=seed,
        start=start,
        epoch_base=epoch,
        on_event=lambda event: events.from_controller(body_at_start, event),
        rate_limit=ctx.budget.for_run(budget_key),
    )
    if restore_safety(ctx.writer.view, controller):
        ctx.event("SafetyHeld", "resumed with the safety breaker still tripped", warning=True)
    # spec.search: the same engine as `kar98k find-max`, around the same controller core. It
    # owns the rate, so mid-run edits are not applied to a search (a new runId starts over).
    search = spec.search
    work = SearchEngine(controller, search).run() if search is not None else controller.run()
    run_task = asyncio.create_task(work, name=f"{ctx.name}-controller")
    control = MidRunControl(ctx, spec=spec, generation=generation)
    superseded = False
    try:
        while not run_task.done():
            await ctx.woken_or({run_task}, SUPERVISE_INTERVAL)
            if ctx.stop_requested():
                await _leave(ctx, controller, run_task)
                raise Stopped
            if not superseded and search is None:
                superseded = control.apply(controller)
            observe(ctx, controller)
        summary = run_task.result()
    except BaseException:
        await _cancel(run_task)
        raise
    finally:
        ctx.budget.release(budget_key)
    ctx.writer.set(LoadTestStatus(epoch=controller.epoch))
    return RunEnd(summary, control.spec, superseded)


async def _leave(
    ctx: RunContext, controller: Controller, run_task: asyncio.Task[RunSummary]
) -> None:
    """The daemon must exit: the LoadTest was deleted, or the operator is exiting."""
    ctx.writer.set(LoadTestStatus(epoch=controller.epoch))
    if ctx.deleted():
        ctx.writer.gone = True  # status writes would only race kopf's finalizer removal
        # Drain, so traffic stops now rather than at lease end, but do not hold up the
        # deletion for long: the pods go with the LoadTest anyway.
        controller.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(run_task), DELETE_DRAIN)
    # Operator exiting: no drain. The pods stop at their lease end; status stays Running
    # with startTime, seed and epoch, so the next operator resumes the same curve.
    await _cancel(run_task)


async def _cancel(run_task: asyncio.Task[RunSummary]) -> None:
    """Cancel the controller unless it has ended, and wait for it; its outcome no longer counts."""
    if not run_task.done():
        run_task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await run_task

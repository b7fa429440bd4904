"""The body of a LoadTest's kopf daemon: validate, start, supervise, finish, clean up, repeat.

Level-triggered: every step reads the live object (kopf keeps `body` fresh) and the writer's view
of status, decides where the LoadTest stands (resume.next_step) and hands over to that phase, so a
restarted operator lands in the right place: a finished run stays finished, a running one resumes
its curve, children are ensured, never duplicated. Kopf's update handler only wakes it early. Bad
input ends in phase Failed with a condition naming the field; no exception escapes into kopf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from kar98k.spec import LoadTestSpec, SpecError, parse_spec

from ..children import replicas_for
from ..kube import KubeError
from ..pool import PodPool
from .bad_input import REFUSALS, guardrail_refusals, refuse_children, refuse_spec, reject_spec
from .cleanup import after_finish
from .context import API_ERRORS, IDLE_POLL, RunContext, Stopped, generation_of
from .finishing import finish
from .resume import Finished, NewRun, Resume, next_step
from .running import supervise
from .starting import new_seed, reset_for_new_run, start_barrier

log = logging.getLogger(__name__)

ERROR_BACKOFF = 2.0


class LoadTestRunner:
    """See module docstring."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def wake(self) -> None:
        """Called by kopf handlers when the spec or annotations changed."""
        self.ctx.wake()

    async def serve(self) -> None:
        """Until the daemon is stopped: one step after another, never raising."""
        ctx = self.ctx
        writer_task = asyncio.create_task(ctx.writer.run(), name=f"{ctx.name}-status")
        try:
            while True:
                try:
                    await self._step()
                except Stopped:
                    break
                except Exception:
                    log.exception("%s/%s: unexpected error; retrying", ctx.namespace, ctx.name)
                    try:
                        await ctx.sleep(ERROR_BACKOFF)
                    except Stopped:
                        break
        finally:
            ctx.book.forget(ctx.namespace, ctx.name)
            if not ctx.deleted():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ctx.writer.flush(), ctx.config.status_interval + 3)
            writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer_task

    async def _step(self) -> None:
        ctx = self.ctx
        body = ctx.snapshot()
        ctx.check_stop()
        generation = generation_of(body)
        status = ctx.status
        ctx.publish()
        try:
            spec = parse_spec(body.get("spec"))
        except SpecError as exc:
            reject_spec(ctx, exc, generation)
            await ctx.sleep(IDLE_POLL)
            return
        step = next_step(
            spec, status, generation=generation, completed_reason=ctx.completed_reason()
        )
        if isinstance(step, Finished):
            await after_finish(ctx, spec, status)
            return
        refused = guardrail_refusals(ctx, spec)
        if refused:
            # Before any child: no pod exists to send what the guardrails refuse. A resumed
            # run (a tighter operator restarted under it) loses its pods too.
            refuse_spec(ctx, refused, generation)
            if isinstance(step, Resume):
                with contextlib.suppress(*API_ERRORS):
                    await ctx.children.scale(body, 0)
            await ctx.sleep(IDLE_POLL)
            return
        await self._run(body, spec, step, generation)

    async def _run(
        self, body: dict[str, Any], spec: LoadTestSpec, step: Resume | NewRun, generation: int
    ) -> None:
        """One run: children, then the barrier (new runs) or status's t = 0 (resumed ones)."""
        ctx = self.ctx
        replicas = replicas_for(spec)
        if isinstance(step, Resume):
            seed = step.seed
            log.info("%s/%s: resuming the run started %s", ctx.namespace, ctx.name, step.start_time)
        else:
            seed = new_seed(spec)
            reset_for_new_run(ctx, spec, seed, generation, replicas)
        pool = PodPool(
            ctx.kube,
            namespace=ctx.namespace,
            loadtest=ctx.name,
            default_port=ctx.config.control_port,
        )
        pool_task = asyncio.create_task(pool.run(), name=f"{ctx.name}-pods")
        try:
            try:
                token = await ctx.children.ensure_secret(body)
                pool.set_token(token)
                await ctx.children.ensure_deployment(body, spec, replicas)
            except KubeError as exc:
                if exc.status not in REFUSALS:
                    raise  # transient: the serve loop retries
                refuse_children(ctx, exc, generation)
                return
            if isinstance(step, Resume):
                start = step.start
            else:
                started = await start_barrier(ctx, body, spec, pool, replicas)
                if started is None:
                    return
                start = started
            end = await supervise(
                ctx, spec, pool, seed=seed, start=start, generation=generation, epoch=step.epoch
            )
            await finish(ctx, end)
        finally:
            pool_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pool_task

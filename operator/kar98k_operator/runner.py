"""One LoadTest's life, as the body of its kopf daemon: validate, start, supervise, finish, clean.

The runner is level-triggered: every decision reads the live object (kopf keeps `body` fresh) and
the runner's own view of status, so a restarted operator lands in the right place — a finished run
stays finished, a running one resumes its curve from `status.startTime` and `status.seed` with
epochs above the last one, and children are ensured, never duplicated. Kopf's update handler only
wakes it up early. Bad input ends in phase Failed with a condition naming the field; nothing here
lets an exception escape into kopf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from kar98k.controller import Controller, ControllerEvent, LiveStatus, RunSummary
from kar98k.spec import LoadTestSpec, SpecError, parse_spec
from kar98k.spec.model import CleanupAction
from kar98k_loadpod.durations import format_duration

from . import events, names
from .children import Children, replicas_for
from .config import OperatorConfig
from .kube import Kube, KubeError, path
from .metrics import Book, Snapshot
from .pool import PodPool
from .spike_annotation import parse_spike
from .status import (
    ACTIVE_PHASES,
    FINISHED_PHASES,
    ConditionType,
    LoadTestStatus,
    Phase,
    StatusWriter,
    format_time,
    live_figures,
    now_rfc3339,
    parse_time,
    read_status,
    summary_figures,
    verdict_figures,
)

log = logging.getLogger(__name__)

SUPERVISE_INTERVAL = 0.5
IDLE_POLL = 1.0
ERROR_BACKOFF = 2.0
DELETE_DRAIN = 3.0
INVALID_SPEC = "InvalidSpec"
REJECTED = "ChildrenRejected"
# Failures the spec caused: an edit of the spec (a new generation) tries again, no runId needed.
SPEC_FAILURES = frozenset({INVALID_SPEC, REJECTED})
API_ERRORS = (KubeError, OSError, TimeoutError, aiohttp.ClientError)


def plain(value: Any) -> Any:
    """A deep, plain-dict copy of a kopf body view (views change under us)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class Stopped(Exception):
    """The daemon was asked to stop (LoadTest deleted or operator exiting)."""


class LoadTestRunner:
    """See module docstring."""

    def __init__(
        self,
        *,
        body: Mapping[str, Any],
        kube: Kube,
        config: OperatorConfig,
        book: Book,
        is_stopped: Callable[[], bool],
        is_deleted: Callable[[], bool],
    ) -> None:
        self._body = body
        self.kube = kube
        self.config = config
        self.book = book
        self.children = Children(kube, config)
        self._is_stopped = is_stopped
        self._is_deleted = is_deleted
        first = self.snapshot()
        meta = first["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.writer = StatusWriter(
            kube,
            namespace=self.namespace,
            name=self.name,
            current=read_status(first.get("status")),
            min_interval=config.status_interval,
        )
        self._wake = asyncio.Event()
        self._rejected_generation: int | None = None

    # ------------------------------------------------------------------ plumbing

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(self._body)
        return out

    def wake(self) -> None:
        """Called by kopf handlers when the spec or annotations changed."""
        self._wake.set()

    @property
    def status(self) -> LoadTestStatus:
        return read_status(self.writer.view)

    def _check_stop(self) -> None:
        if self._is_stopped():
            raise Stopped

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake early on a change signal; raise Stopped when asked to stop."""
        self._check_stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()
        self._check_stop()

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        events.post(self.snapshot(), reason, message, warning=warning)

    def _publish(self, live: LiveStatus | None = None) -> None:
        view = self.writer.view
        if live is None:
            snap = Snapshot(
                phase=str(view.get("phase", Phase.PENDING)),
                ready_pods=int(view.get("readyPods", 0)),
                desired_pods=int(view.get("desiredPods", 0)),
                requests=int(view.get("requests", 0)),
                errors=int(view.get("errors", 0)),
            )
        else:
            snap = Snapshot(
                phase=str(view.get("phase", Phase.PENDING)),
                target_tps=live.target_tps,
                achieved_tps=live.achieved_tps,
                spike_active=live.spike_active,
                ready_pods=live.ready_pods,
                desired_pods=live.desired_pods,
                push_errors=live.push_errors,
                tick_lag_seconds=live.tick_lag_ms / 1000.0,
                requests=live.summary.requests_total,
                errors=live.summary.errors_total,
            )
        self.book.publish(self.namespace, self.name, snap)

    # ------------------------------------------------------------------ main loop

    async def serve(self) -> None:
        """Until the daemon is stopped: one state-machine step after another, never raising."""
        writer_task = asyncio.create_task(self.writer.run(), name=f"{self.name}-status")
        try:
            while True:
                try:
                    await self._step()
                except Stopped:
                    break
                except Exception:
                    log.exception("%s/%s: unexpected error; retrying", self.namespace, self.name)
                    try:
                        await self._sleep(ERROR_BACKOFF)
                    except Stopped:
                        break
        finally:
            self.book.forget(self.namespace, self.name)
            if not self._is_deleted():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.writer.flush(), self.config.status_interval + 3)
            writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer_task

    async def _step(self) -> None:
        body = self.snapshot()
        self._check_stop()
        generation = int(body["metadata"].get("generation") or 0)
        status = self.status
        self._publish()
        try:
            spec = parse_spec(body.get("spec"))
        except SpecError as exc:
            self._reject(exc, generation)
            await self._sleep(IDLE_POLL)
            return
        spec_failed = self._completed_reason() in SPEC_FAILURES
        retry = spec_failed and generation != status.observed_generation
        if status.phase in FINISHED_PHASES and status.run_id == spec.run_id and not retry:
            await self._after_finish(spec, status)
            return
        resume = (
            status.phase in ACTIVE_PHASES
            and status.run_id == spec.run_id
            and status.start_time is not None
            and status.seed is not None
        )
        await self._run(body, spec, status, resume=resume)

    def _completed_reason(self) -> str | None:
        for cond in self.writer.view.get("conditions", []):
            if cond.get("type") == ConditionType.COMPLETED:
                return str(cond.get("reason"))
        return None

    def _reject(self, exc: SpecError, generation: int) -> None:
        """Phase Failed with the offending fields named (once per generation)."""
        if self._rejected_generation == generation:
            return
        self._rejected_generation = generation
        message = "; ".join(str(e) for e in exc.errors) or str(exc)
        self.writer.set(
            {
                "phase": Phase.FAILED,
                "message": f"invalid spec: {message}",
                "observedGeneration": generation,
                "completionTime": now_rfc3339(),
            }
        )
        self.writer.condition(
            ConditionType.COMPLETED,
            True,
            INVALID_SPEC,
            message,
            generation=generation,
        )
        self.writer.condition(
            ConditionType.SPEC_APPLIED, False, INVALID_SPEC, message, generation=generation
        )
        self.event(INVALID_SPEC, message, warning=True)
        log.warning("%s/%s: invalid spec: %s", self.namespace, self.name, message)

    def _rejected(self, exc: KubeError, generation: int) -> None:
        """The API server refused a child (bad resources, RBAC...): Failed, and say why."""
        message = (
            f"the API server refused a load-pod child: {exc.status} {exc.reason}: {exc.message}"
        )
        self.writer.set(
            {
                "phase": Phase.FAILED,
                "message": message,
                "observedGeneration": generation,
                "completionTime": now_rfc3339(),
            }
        )
        self.writer.condition(
            ConditionType.COMPLETED, True, REJECTED, message, generation=generation
        )
        self.event(REJECTED, message, warning=True)
        log.warning("%s/%s: %s", self.namespace, self.name, message)

    # ------------------------------------------------------------------ a run

    async def _run(
        self, body: dict[str, Any], spec: LoadTestSpec, status: LoadTestStatus, *, resume: bool
    ) -> None:
        generation = int(body["metadata"].get("generation") or 0)
        replicas = replicas_for(spec)
        if resume:
            seed = int(status.seed or 0)
            log.info(
                "%s/%s: resuming the run started %s", self.namespace, self.name, status.start_time
            )
        else:
            seed = spec.pattern.seed if spec.pattern.seed is not None else random.randrange(2**31)
            self._reset_for_new_run(spec, seed, generation, replicas)
        pool = PodPool(
            self.kube,
            namespace=self.namespace,
            loadtest=self.name,
            default_port=self.config.control_port,
        )
        pool_task = asyncio.create_task(pool.run(), name=f"{self.name}-pods")
        try:
            try:
                token = await self.children.ensure_secret(body)
                pool.set_token(token)
                await self.children.ensure_deployment(body, spec, replicas)
            except KubeError as exc:
                if exc.status not in (400, 403, 422):
                    raise  # transient: the serve loop retries
                self._rejected(exc, generation)
                return
            if resume:
                start = parse_time(str(status.start_time))
            else:
                started = await self._barrier(body, spec, pool, replicas)
                if started is None:
                    return
                start = started
            await self._drive(
                spec, pool, seed=seed, start=start, generation=generation, epoch=status.epoch
            )
        finally:
            pool_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pool_task

    def _reset_for_new_run(
        self, spec: LoadTestSpec, seed: int, generation: int, replicas: int
    ) -> None:
        self.writer.set(
            {
                "phase": Phase.PENDING,
                "message": "creating load pods",
                "runId": spec.run_id,
                "observedGeneration": generation,
                "seed": seed,
                "startTime": None,
                "completionTime": None,
                "elapsedSeconds": 0.0,
                "targetTPS": 0.0,
                "achievedTPS": 0.0,
                "spikeActive": False,
                "readyPods": 0,
                "desiredPods": replicas,
                "pods": f"0/{replicas}",
                "requests": 0,
                "errors": 0,
                "errorRate": 0.0,
                "latencyMs": {"p50": 0.0, "p95": 0.0, "p99": 0.0},
                "targets": [],
                "verdict": None,
                "checks": [],
                "cleanedUp": False,
            }
        )
        self.writer.condition(
            ConditionType.COMPLETED, False, "NotFinished", "", generation=generation
        )
        self.writer.condition(
            ConditionType.PODS_READY, False, "Creating", f"0/{replicas} load pods ready"
        )
        self.writer.condition(
            ConditionType.SPEC_APPLIED, True, "Applied", "", generation=generation
        )
        self._rejected_generation = None

    async def _barrier(
        self, body: dict[str, Any], spec: LoadTestSpec, pool: PodPool, replicas: int
    ) -> datetime | None:
        """Wait for minReady pods (default all); on startTimeout fail, naming pods and why."""
        need = min(spec.load_pods.min_ready or replicas, replicas)
        timeout = spec.load_pods.start_timeout
        self.writer.set(
            {
                "phase": Phase.STARTING,
                "message": f"waiting for {need}/{replicas} load pods to be ready",
            }
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ready = pool.ready_count()
            self.writer.set({"readyPods": ready, "pods": f"{ready}/{replicas}"})
            self._publish()
            if ready >= need:
                break
            if loop.time() >= deadline:
                await self._fail_start(
                    body, pool, ready=ready, need=need, replicas=replicas, waited=timeout
                )
                return None
            await self._wait_any(pool.changed, min(IDLE_POLL, deadline - loop.time()))
        start = datetime.now(UTC)
        self.writer.set(
            {
                "phase": Phase.PAUSED if spec.paused else Phase.RUNNING,
                "message": f"running with {pool.ready_count()} load pods",
                "startTime": format_time(start),
            }
        )
        self.writer.condition(
            ConditionType.PODS_READY, True, "Ready", f"{pool.ready_count()}/{replicas} ready"
        )
        return start

    async def _wait_any(self, other: asyncio.Event, seconds: float) -> None:
        """Until `other` or a wake-up, at most `seconds`; raise Stopped when asked to stop."""
        self._check_stop()
        waiters: set[asyncio.Future[bool]] = {
            asyncio.ensure_future(other.wait()),
            asyncio.ensure_future(self._wake.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=max(seconds, 0.0), return_when="FIRST_COMPLETED")
        finally:
            for waiter in waiters:
                waiter.cancel()
        other.clear()
        self._wake.clear()
        self._check_stop()

    async def _fail_start(
        self,
        body: dict[str, Any],
        pool: PodPool,
        *,
        ready: int,
        need: int,
        replicas: int,
        waited: float,
    ) -> None:
        reasons = [f"{name}: {why}" for name, why in pool.unready()]
        missing = replicas - pool.total()
        if missing > 0:
            reasons.append(f"{missing} pod(s) not created (check the Deployment's events)")
        detail = "; ".join(reasons) or "no pods"
        message = (
            f"{ready}/{need} load pods ready after {format_duration(waited)} "
            f"(startTimeout): {detail}"
        )
        self.writer.set(
            {
                "phase": Phase.FAILED,
                "message": message,
                "completionTime": now_rfc3339(),
                "verdict": "fail",
            }
        )
        self.writer.condition(ConditionType.PODS_READY, False, "StartTimeout", message)
        self.writer.condition(ConditionType.COMPLETED, True, "StartTimeout", message)
        self.event("StartTimeout", message, warning=True)
        log.warning("%s/%s: %s", self.namespace, self.name, message)
        with contextlib.suppress(*API_ERRORS):
            await self.children.scale(body, 0)

    async def _drive(
        self,
        spec: LoadTestSpec,
        pool: PodPool,
        *,
        seed: int,
        start: datetime,
        generation: int,
        epoch: int,
    ) -> None:
        """Run the controller core; apply edits, spikes and pauses; finish or hand over."""
        body_at_start = self.snapshot()
        controller = Controller(
            spec,
            pool,
            name=self.name,
            seed=seed,
            start=start,
            epoch_base=epoch,
            on_event=lambda ev: self._on_controller_event(body_at_start, ev),
        )
        run_task = asyncio.create_task(controller.run(), name=f"{self.name}-controller")
        state = _DriveState(spec=spec, generation=generation)
        new_run = False
        try:
            while not run_task.done():
                wake = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait(
                        {run_task, wake}, timeout=SUPERVISE_INTERVAL, return_when="FIRST_COMPLETED"
                    )
                finally:
                    wake.cancel()
                self._wake.clear()
                if self._is_stopped():
                    await self._leave(controller, run_task)
                    raise Stopped
                if not new_run:
                    new_run = self._apply_changes(controller, state)
                self._observe(controller)
            summary = run_task.result()
        except BaseException:
            if not run_task.done():
                run_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run_task
            raise
        self.writer.set({"epoch": controller.epoch})
        await self._finish(summary, spec=state.spec, superseded=new_run)

    async def _leave(self, controller: Controller, run_task: asyncio.Task[RunSummary]) -> None:
        """The daemon must exit: the LoadTest was deleted, or the operator is exiting."""
        self.writer.set({"epoch": controller.epoch})
        if self._is_deleted():
            self.writer.gone = True  # status writes would only race kopf's finalizer removal
            # Drain, so traffic stops now rather than at lease end, but do not hold up the
            # deletion for long: the pods go with the LoadTest anyway.
            controller.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(run_task), DELETE_DRAIN)
        # Operator exiting: no drain. The pods stop at their lease end; status stays Running
        # with startTime, seed and epoch, so the next operator resumes the same curve.
        if not run_task.done():
            run_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await run_task

    def _on_controller_event(self, body: dict[str, Any], event: ControllerEvent) -> None:
        events.from_controller(body, event)

    # ------------------------------------------------------------------ mid-run control

    def _apply_changes(self, controller: Controller, state: _DriveState) -> bool:
        """Spec edits (by generation) and the spike annotation; True when runId changed."""
        body = self.snapshot()
        generation = int(body["metadata"].get("generation") or 0)
        if generation != state.generation:
            state.generation = generation
            try:
                new_spec = parse_spec(body.get("spec"))
            except SpecError as exc:
                message = "; ".join(str(e) for e in exc.errors)
                self.writer.condition(
                    ConditionType.SPEC_APPLIED,
                    False,
                    INVALID_SPEC,
                    f"edit not applied, the run continues with the previous spec: {message}",
                    generation=generation,
                )
                self.event("SpecRejected", message, warning=True)
                return False
            if new_spec.run_id != state.spec.run_id:
                self.event("NewRun", f"spec.runId changed to {new_spec.run_id!r}; restarting")
                controller.stop()
                return True
            ignored = [f for f in controller.update_spec(new_spec) if f != "spec.runId"]
            old_replicas = replicas_for(state.spec)
            new_replicas = replicas_for(new_spec)
            state.spec = new_spec
            if new_replicas != old_replicas:
                state.pending_scale = new_replicas
            if ignored:
                message = (
                    f"{', '.join(ignored)} cannot change mid-run; the run keeps the old values "
                    "(change spec.runId to start a new run with them)"
                )
                self.writer.condition(
                    ConditionType.SPEC_APPLIED,
                    False,
                    "RequiresNewRun",
                    message,
                    generation=generation,
                )
                self.event("SpecPartiallyApplied", message, warning=True)
            else:
                self.writer.condition(
                    ConditionType.SPEC_APPLIED, True, "Applied", "", generation=generation
                )
            self.writer.set({"observedGeneration": generation})
        if state.pending_scale is not None:
            replicas = state.pending_scale
            state.pending_scale = None
            task = asyncio.ensure_future(self._scale_quietly(replicas))
            state.background.add(task)
            task.add_done_callback(state.background.discard)
        self._maybe_spike(controller, body)
        return False

    async def _scale_quietly(self, replicas: int) -> None:
        try:
            await self.children.scale(self.snapshot(), replicas)
        except API_ERRORS as exc:
            log.warning(
                "%s/%s: could not scale to %d: %s", self.namespace, self.name, replicas, exc
            )

    def _maybe_spike(self, controller: Controller, body: dict[str, Any]) -> None:
        value = (body["metadata"].get("annotations") or {}).get(names.ANNOTATION_SPIKE)
        if not value:
            return
        acked = (self.writer.view.get("spike") or {}).get("acknowledged")
        if acked == value:
            return
        at = now_rfc3339()
        try:
            request = parse_spike(value)
        except ValueError as exc:
            self.writer.set({"spike": {"acknowledged": value, "at": at, "error": str(exc),
                                       "factor": None, "durationSeconds": None}})  # fmt: skip
            self.event("SpikeRejected", f"{names.ANNOTATION_SPIKE}={value!r}: {exc}", warning=True)
            return
        controller.inject_spike(request.factor, request.duration)
        self.writer.set(
            {
                "spike": {
                    "acknowledged": value,
                    "at": at,
                    "factor": request.factor,
                    "durationSeconds": request.duration,
                    "error": None,
                }
            }
        )
        self.event(
            "SpikeInjected",
            f"manual spike x{request.factor:g} for {format_duration(request.duration)}",
        )

    def _observe(self, controller: Controller) -> None:
        """Copy the controller's live figures into the (throttled) status and metrics."""
        live = controller.live()
        basis = controller.spec.thresholds.latency_basis
        figures = live_figures(live, basis=basis)
        figures["epoch"] = controller.epoch
        phase = Phase.PAUSED if live.paused else Phase.RUNNING
        figures["phase"] = phase
        figures["message"] = (
            "paused: no traffic until spec.paused is false"
            if live.paused
            else f"running: {live.target_tps:.1f} req/s asked, {live.achieved_tps:.1f} achieved"
        )
        self.writer.set(figures)
        ready, desired = live.ready_pods, live.desired_pods
        self.writer.condition(
            ConditionType.PODS_READY,
            ready >= desired,
            "Ready" if ready >= desired else "Degraded",
            f"{ready}/{desired} load pods ready",
        )
        unhealthy = sorted(n for n, t in live.summary.targets.items() if not t.healthy)
        self.writer.condition(
            ConditionType.TARGETS_HEALTHY,
            not unhealthy,
            "Healthy" if not unhealthy else "Unhealthy",
            "" if not unhealthy else f"unhealthy: {', '.join(unhealthy)}",
        )
        self._threshold_condition(live.summary, final=False)
        self._publish(live)

    def _threshold_condition(self, summary: RunSummary, *, final: bool) -> None:
        if not summary.checks:
            self.writer.condition(ConditionType.THRESHOLDS_MET, None, "NoThresholds", "")
            return
        failed = [c for c in summary.checks if not c.passed]
        if failed:
            reason = "Failed" if final else "Breached"
            message = "; ".join(c.message for c in failed)
        else:
            reason = "Met" if final else "WithinLimits"
            message = "; ".join(c.message for c in summary.checks)
        self.writer.condition(ConditionType.THRESHOLDS_MET, not failed, reason, message)

    # ------------------------------------------------------------------ the end

    async def _finish(self, summary: RunSummary, *, spec: LoadTestSpec, superseded: bool) -> None:
        figures = summary_figures(summary, basis=spec.thresholds.latency_basis)
        figures.update(verdict_figures(summary))
        figures.update(
            {
                "completionTime": format_time(parse_time(summary.ended_at))
                if summary.ended_at
                else now_rfc3339(),
                "achievedTPS": round(summary.achieved_tps, 1),
                "targetTPS": 0.0,
                "spikeActive": False,
                "elapsedSeconds": round(summary.duration_s, 1),
                "readyPods": 0,
                "desiredPods": 0,
                "pods": "0/0",
            }
        )
        failed = summary.verdict == "fail"
        phase = Phase.FAILED if failed else Phase.SUCCEEDED
        checks_failed = [c.message for c in summary.checks if not c.passed]
        if superseded:
            reason, message = "Superseded", "ended early: spec.runId changed"
        elif failed:
            reason, message = "ThresholdsFailed", "; ".join(checks_failed)
        elif summary.interrupted:
            reason, message = "Stopped", "ended before spec.duration"
        else:
            reason, message = (
                "Succeeded",
                (
                    f"{summary.requests_total} requests, {summary.achieved_tps:.1f} req/s, "
                    f"verdict {summary.verdict}"
                ),
            )
        figures["phase"] = phase
        figures["message"] = f"{phase.value}: {message}" if message else phase.value
        self.writer.set(figures)
        self.writer.condition(ConditionType.COMPLETED, True, reason, message)
        self._threshold_condition(summary, final=True)
        self.writer.condition(ConditionType.PODS_READY, False, "Finished", "load pods scaled to 0")
        self.event("Verdict", f"{phase.value}: {message}", warning=failed)
        self._publish()
        if superseded:
            return
        try:
            await self.children.scale(self.snapshot(), 0)
        except API_ERRORS as exc:
            log.warning("%s/%s: could not scale to 0: %s", self.namespace, self.name, exc)

    async def _after_finish(self, spec: LoadTestSpec, status: LoadTestStatus) -> None:
        """spec.cleanup once the TTL has passed; then wait for a new runId."""
        if status.cleaned_up or self._completed_reason() in SPEC_FAILURES:
            await self._sleep(IDLE_POLL * 5)
            return
        cleanup = spec.cleanup
        action = cleanup.on_success if status.phase == Phase.SUCCEEDED else cleanup.on_failure
        ttl = float(cleanup.ttl_seconds_after_finished or 0)
        finished = parse_time(status.completion_time) if status.completion_time else None
        due = (finished or datetime.now(UTC)) + timedelta(seconds=ttl)
        remaining = (due - datetime.now(UTC)).total_seconds()
        if remaining > 0:
            await self._sleep(min(remaining, IDLE_POLL * 5))
            return
        body = self.snapshot()
        if action is CleanupAction.PODS:
            await self.children.delete_all(body)
            self.event("CleanedUp", "deleted the load-pod Deployment and Secret (spec.cleanup)")
        elif action is CleanupAction.ALL:
            self.event("CleanedUp", "deleting the LoadTest (spec.cleanup)")
            # No status writes from here on: they would only race kopf's finalizer removal.
            self.writer.gone = True
            await self.kube.delete(
                path(names.API_VERSION, names.PLURAL, namespace=self.namespace, name=self.name)
            )
            return
        self.writer.set({"cleanedUp": True})


class _DriveState:
    """What the supervision loop remembers between steps."""

    def __init__(self, *, spec: LoadTestSpec, generation: int) -> None:
        self.spec = spec
        self.generation = generation
        self.pending_scale: int | None = None
        self.background: set[asyncio.Future[None]] = set()

"""The controller's pods: who is in the pool, who answers, what each accepted; plan pushes.

Pushes are fire-and-track: one task per push, never awaited by the tick, and a pod whose
previous push is still pending is skipped for this tick. Which pods a tick pushes at all is the
`PushPolicy`'s call (share moved, plan changed, or lease due for renewal); a pod whose last push
failed is due again on the next tick. UNREADY_AFTER failed pushes in a row
mark a pod unready (its share moves to the rest); an unready pod still in the pool is offered
a zero plan every PROBE_INTERVAL and gets a share again once one lands.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from kar98k_loadpod.plan import Plan

from .plan import PlanShape, PushPolicy, TickPlan
from .pods import PUSH_TIMEOUT, PodApi, PodCallError, PodEndpoint, PodSource
from .split import split_rate

log = logging.getLogger(__name__)

UNREADY_AFTER = 3  # consecutive failed pushes (~300 ms when a pod refuses connections)
PROBE_INTERVAL = 1.0  # how often an unready pod still in the pool is offered a zero plan

Emit = Callable[[str, str], None]  # (event kind, message)


@dataclass
class PodState:
    endpoint: PodEndpoint
    ready: bool = True
    in_source: bool = True
    failures: int = 0  # consecutive
    push_failures: int = 0  # total
    pending: asyncio.Task[None] | None = field(default=None, repr=False)
    share: float = 0.0  # last share the pod accepted
    epoch: int = 0  # last epoch the pod accepted
    accepted: bool = False  # the pod accepted a plan of this run, so `share` is in force
    renewed_at: float = -math.inf  # loop time the last accepted push was sent (lease start)
    shape: PlanShape | None = None  # the rest of the last accepted plan
    last_probe: float = -math.inf
    last_error: str = ""
    accepted_at: float = -math.inf  # loop time the last plan was acknowledged (lease runs)

    @property
    def serving(self) -> bool:
        """In the pool and answering: the pod gets a share of the rate."""
        return self.ready and self.in_source


class PodFleet:
    """Pod bookkeeping and push state; `client` is set while the controller runs."""

    def __init__(
        self,
        source: PodSource,
        *,
        name: str,
        emit: Emit,
        policy: PushPolicy | None = None,
        tick_interval: float = 0.1,
    ) -> None:
        self.pods: dict[str, PodState] = {}
        self.policy = policy or PushPolicy()
        self.tick_interval = tick_interval
        self.client: PodApi | None = None
        self.unready_after = UNREADY_AFTER
        self.pushes = 0
        self.push_failures = 0
        self.pushes_skipped = 0
        self._shape: PlanShape | None = None
        self._source = source
        self._name = name
        self._emit = emit

    def in_pool(self) -> list[PodState]:
        return [p for p in self.pods.values() if p.in_source]

    def serving_count(self) -> int:
        return sum(1 for p in self.pods.values() if p.serving)

    def sync(self, *, initial: bool) -> None:
        """Take the pool's current pods: new ones join, vanished ones are lost at once."""
        try:
            endpoints = self._source.endpoints()
        except Exception:  # a broken source must not stop the ticks
            log.exception("%s: pod source failed; keeping the previous pods", self._name)
            return
        seen: set[str] = set()
        for endpoint in endpoints:
            seen.add(endpoint.name)
            pod = self.pods.get(endpoint.name)
            if pod is None or pod.endpoint != endpoint:
                self.pods[endpoint.name] = PodState(endpoint)
                if not initial:
                    self._emit("pod-joined", f"{endpoint.name} joined at {endpoint.base_url}")
            elif not pod.in_source:
                pod.in_source, pod.ready, pod.failures = True, True, 0
                self._emit("pod-joined", f"{endpoint.name} is back in the pool")
        for name, pod in self.pods.items():
            if pod.in_source and name not in seen:
                was_ready = pod.ready
                pod.in_source, pod.ready = False, False
                if was_ready:
                    self._emit("pod-lost", f"{name} left the pod pool; its share moves to the rest")

    def push(self, tick: TickPlan, now: float) -> None:
        """Split the tick's rate exactly over the serving pods; probe the unready ones due."""
        serving = sorted(n for n, p in self.pods.items() if p.serving)
        shape = tick.shape()
        if shape == self._shape:  # one comparison per tick; pods then compare by identity
            shape = self._shape
        self._shape = shape
        slots = self.policy.slots(shape.lease_seconds, self.tick_interval)
        for index, (name, share) in enumerate(split_rate(tick.rate, serving).items()):
            pod = self.pods[name]
            if self._due(pod, share, shape, now, on_slot=(tick.epoch - index) % slots == 0):
                self._push(pod, tick, share, shape, now)
        for pod in self.pods.values():
            if pod.in_source and not pod.ready and now - pod.last_probe >= PROBE_INTERVAL:
                pod.last_probe = now
                self._push(pod, tick, 0.0, shape, now)

    def _due(
        self, pod: PodState, share: float, shape: PlanShape, now: float, *, on_slot: bool
    ) -> bool:
        policy = self.policy
        return (
            not pod.accepted
            or pod.failures > 0
            or pod.shape is not shape
            or policy.share_moved(pod.share, share)
            or policy.renew_due(
                now - pod.renewed_at, shape.lease_seconds, on_slot, self.tick_interval
            )
        )

    def _push(
        self, pod: PodState, tick: TickPlan, share: float, shape: PlanShape, now: float
    ) -> None:
        if pod.pending is not None and not pod.pending.done():
            self.pushes_skipped += 1
            return
        self.pushes += 1
        try:
            plan = tick.for_pod(pod.endpoint.name, share)
        except ValueError as exc:  # e.g. a share above what one pod accepts: as if refused
            self._failed(pod, PodCallError(pod.endpoint.name, "push plan", f"invalid plan: {exc}"))
            return
        pod.pending = asyncio.create_task(self._send_plan(pod, plan, shape, now))

    async def _send_plan(self, pod: PodState, plan: Plan, shape: PlanShape, sent: float) -> None:
        assert self.client is not None
        try:
            await self.client.push_plan(pod.endpoint, plan, within=PUSH_TIMEOUT)
        except PodCallError as exc:
            self._failed(pod, exc)
            return
        pod.failures, pod.epoch, pod.share = 0, plan.epoch, plan.rate
        pod.accepted_at = asyncio.get_running_loop().time()
        pod.accepted, pod.renewed_at, pod.shape = True, sent, shape
        if not pod.ready and pod.in_source:
            pod.ready = True
            self._emit("pod-joined", f"{pod.endpoint.name} answers again; it gets a share")

    def _failed(self, pod: PodState, exc: PodCallError) -> None:
        pod.failures += 1
        pod.push_failures += 1
        self.push_failures += 1
        pod.last_error = str(exc)
        if pod.ready and pod.failures >= self.unready_after:
            pod.ready = False
            pod.last_probe = asyncio.get_running_loop().time()
            self._emit(
                "pod-lost",
                f"{exc} ({pod.failures} pushes failed in a row); "
                "marked unready, its share moves to the rest",
            )

    async def finish_pushes(self) -> None:
        """Let pushes in flight land before draining, so no plan arrives after the drain."""
        pending = [p.pending for p in self.pods.values() if p.pending and not p.pending.done()]
        if pending:
            await asyncio.wait(pending, timeout=PUSH_TIMEOUT + 0.5)

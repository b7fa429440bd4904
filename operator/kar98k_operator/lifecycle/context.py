"""What every phase of a LoadTest's life shares: the live body, the status writer, wake-ups and
stop requests, Events and the metrics snapshot.

The phases are functions of this context, so each reads alone; decisions come from the live
body (kopf keeps it fresh) and the writer's view of status, never from a phase's memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from kar98k.controller import LiveStatus
from kar98k.spec.status import ConditionType, LoadTestStatus, Phase, now_rfc3339

from .. import events
from ..budget import TpsBudget
from ..children import Children
from ..config import OperatorConfig
from ..kube import Kube, KubeError
from ..metrics import Book, Snapshot
from ..status import StatusWriter, read_status

log = logging.getLogger(__name__)

IDLE_POLL = 1.0
# What a call to the API server may raise when the server or the network has a bad moment.
API_ERRORS = (KubeError, OSError, TimeoutError, aiohttp.ClientError)


def plain(value: Any) -> Any:
    """A deep, plain-dict copy of a kopf body view (views change under us)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def generation_of(body: Mapping[str, Any]) -> int:
    return int(body["metadata"].get("generation") or 0)


class Stopped(Exception):
    """The daemon was asked to stop (LoadTest deleted or operator exiting)."""


class RunContext:
    """One LoadTest as its phases see it (see module docstring)."""

    def __init__(
        self,
        *,
        body: Mapping[str, Any],
        kube: Kube,
        config: OperatorConfig,
        book: Book,
        is_stopped: Callable[[], bool],
        is_deleted: Callable[[], bool],
        budget: TpsBudget | None = None,
    ) -> None:
        self._body = body
        self.kube = kube
        self.config = config
        self.book = book
        self.budget = budget or TpsBudget(config.max_total_tps)
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
        # The generation whose invalid spec was already reported (reported once per generation).
        self.rejected_generation: int | None = None

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(self._body)
        return out

    @property
    def status(self) -> LoadTestStatus:
        return read_status(self.writer.view)

    # ------------------------------------------------------------------ waking and stopping

    def wake(self) -> None:
        """Called by kopf handlers when the spec or annotations changed."""
        self._wake.set()

    def stop_requested(self) -> bool:
        return self._is_stopped()

    def deleted(self) -> bool:
        return self._is_deleted()

    def check_stop(self) -> None:
        if self._is_stopped():
            raise Stopped

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake early on a change signal; raise Stopped when asked to stop."""
        self.check_stop()
        await self.woken_or(set(), seconds)
        self.check_stop()

    async def wait_any(self, other: asyncio.Event, seconds: float) -> None:
        """Until `other` or a wake-up, at most `seconds`; raise Stopped when asked to stop."""
        self.check_stop()
        waiter = asyncio.ensure_future(other.wait())
        try:
            await self.woken_or({waiter}, seconds)
        finally:
            waiter.cancel()
        other.clear()
        self.check_stop()

    async def woken_or(self, others: set[asyncio.Future[Any]], seconds: float) -> None:
        """Until a wake-up or one of `others` completes, at most `seconds` (others run on)."""
        wake = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait(
                {wake, *others}, timeout=max(seconds, 0.0), return_when="FIRST_COMPLETED"
            )
        finally:
            wake.cancel()
        self._wake.clear()

    # ------------------------------------------------------------------ telling the world

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        events.post(self.snapshot(), reason, message, warning=warning)

    def publish(self, live: LiveStatus | None = None) -> None:
        """The metrics snapshot: live controller figures while running, else what status says."""
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

    def completed_reason(self) -> str | None:
        for cond in self.writer.view.get("conditions", []):
            if cond.get("type") == ConditionType.COMPLETED:
                return str(cond.get("reason"))
        return None

    def fail(
        self,
        reason: str,
        message: str,
        *,
        headline: str | None = None,
        generation: int | None = None,
        fields: LoadTestStatus | None = None,
    ) -> None:
        """Phase Failed before any traffic: status, Completed condition, warning Event, log.

        `headline` is status.message when it should say more than the condition's message.
        """
        summary = headline or message
        self.writer.set(
            LoadTestStatus(phase=Phase.FAILED, message=summary, completion_time=now_rfc3339())
        )
        if generation is not None:
            self.writer.set(LoadTestStatus(observed_generation=generation))
        if fields is not None:
            self.writer.set(fields)
        self.writer.condition(ConditionType.COMPLETED, True, reason, message, generation=generation)
        self.event(reason, message, warning=True)
        log.warning("%s/%s: %s", self.namespace, self.name, summary)

"""The kopf glue: settings, one daemon per LoadTest, and an update handler that wakes it.

Everything with a decision in it lives in lifecycle/; these handlers only wire kopf to it. The
daemon never raises (kopf would retry it with back-off), and the update handler cannot fail, so
a bad LoadTest can never crash-loop the operator or hold up the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import kopf

from . import names
from .budget import TpsBudget
from .config import OperatorConfig
from .kube import Kube, connection_from_environment
from .lifecycle import LoadTestRunner, RunContext
from .metrics import Book
from .schedules import ScheduleSupervisor

log = logging.getLogger(__name__)

# On deletion the daemon drains the pods and exits, normally well under a second. kopf waits
# INSTANT_EXIT for that (so the finalizer goes at once), then BACKOFF more before cancelling.
INSTANT_EXIT = 4.0
CANCELLATION_BACKOFF = 10.0
CANCELLATION_TIMEOUT = 5.0
PEERING_LIFETIME = 10
# With peering, replicas that start together each see only themselves for a moment; no run is
# started before the peers had this long to see each other (and all but one to pause).
PEERING_GRACE = 3.0


@dataclass
class OperatorState:
    """What the handlers share (kopf's memo): configuration, API client, live runners."""

    config: OperatorConfig = field(default_factory=OperatorConfig.from_env)
    book: Book = field(default_factory=Book)
    runners: dict[str, LoadTestRunner] = field(default_factory=dict)
    supervisors: dict[str, ScheduleSupervisor] = field(default_factory=dict)
    kube: Kube | None = None
    peering: bool = False
    started: float = field(default_factory=time.monotonic)
    _budget: TpsBudget | None = field(default=None, repr=False)

    def budget(self) -> TpsBudget:
        """The one maxTotalTPS budget every run of this operator shares."""
        if self._budget is None:
            self._budget = TpsBudget(self.config.max_total_tps)
        return self._budget

    def client(self) -> Kube:
        if self.kube is None:
            self.kube = Kube(connection_from_environment)
        return self.kube


class Worker(Protocol):
    """What a daemon keeps alive: a LoadTestRunner or a ScheduleSupervisor."""

    def wake(self) -> None: ...

    async def serve(self) -> None: ...


async def _peer_grace(state: OperatorState, stopped: kopf.DaemonStopped) -> bool:
    """With peering, give the peers time to see each other; False if paused meanwhile."""
    if state.peering:
        await stopped.wait(max(0.0, PEERING_GRACE - (time.monotonic() - state.started)))
    return not stopped


async def _serve(
    worker: Worker, uid: str, registry: dict[str, Any], stopped: kopf.DaemonStopped
) -> None:
    """Serve `worker` until it returns; registered under `uid` so update handlers can wake it,
    and woken when kopf stops the daemon."""
    registry[uid] = worker

    async def wake_when_stopped() -> None:
        await stopped.wait()
        worker.wake()

    waker = asyncio.create_task(wake_when_stopped())
    try:
        await worker.serve()
    finally:
        waker.cancel()
        if registry.get(uid) is worker:
            del registry[uid]


def _state(memo: Any) -> OperatorState:
    state = memo.get("state") if isinstance(memo, dict) else getattr(memo, "state", None)
    if not isinstance(state, OperatorState):
        raise kopf.PermanentError("the operator was started without its state (use main())")
    return state


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Keep kopf's bookkeeping in our own annotations and its chatter out of Events."""
    settings.persistence.finalizer = f"{names.GROUP}/operator"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=names.KOPF_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.KOPF_PREFIX, key="last-handled-configuration"
    )
    # kopf.event() (our Events) ignores this level; kopf's per-handler log lines do not.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.background.instant_exit_timeout = INSTANT_EXIT
    # A SIGKILLed leader is presumed dead this long after its last keep-alive; then a standby
    # replica takes over (its daemons resume every run from status). kopf's default is 60 s.
    settings.peering.lifetime = PEERING_LIFETIME


@kopf.on.cleanup()
async def close_client(memo: Any, **_: Any) -> None:
    state = _state(memo)
    if state.kube is not None:
        await state.kube.close()


@kopf.daemon(
    names.GROUP,
    names.VERSION,
    names.PLURAL,
    cancellation_backoff=CANCELLATION_BACKOFF,
    cancellation_timeout=CANCELLATION_TIMEOUT,
)
async def loadtest_daemon(
    body: kopf.Body, uid: str, stopped: kopf.DaemonStopped, memo: Any, **_: Any
) -> None:
    """One per LoadTest for as long as it exists: runs, supervises and finishes its runs."""
    state = _state(memo)
    if not await _peer_grace(state, stopped):
        return  # paused in favour of a peer before acting

    def deleted() -> bool:
        reason = stopped.reason
        flagged = reason is not None and bool(reason & kopf.DaemonStoppingReason.RESOURCE_DELETED)
        return flagged or bool(body.get("metadata", {}).get("deletionTimestamp"))

    runner = LoadTestRunner(
        RunContext(
            body=body,
            kube=state.client(),
            config=state.config,
            book=state.book,
            budget=state.budget(),
            is_stopped=lambda: bool(stopped) or deleted(),
            is_deleted=deleted,
        )
    )
    await _serve(runner, uid, state.runners, stopped)


@kopf.on.update(names.GROUP, names.VERSION, names.PLURAL)
async def wake_on_change(uid: str, memo: Any, **_: Any) -> None:
    """Spec or annotation edits: wake the daemon now instead of at its next poll.

    Async on purpose: kopf runs sync handlers in threads, and asyncio events are not thread-safe.
    """
    runner = _state(memo).runners.get(uid)
    if runner is not None:
        runner.wake()


@kopf.daemon(
    names.GROUP,
    names.VERSION,
    names.SCHEDULE_PLURAL,
    cancellation_backoff=CANCELLATION_BACKOFF,
    cancellation_timeout=CANCELLATION_TIMEOUT,
)
async def schedule_daemon(
    body: kopf.Body, uid: str, stopped: kopf.DaemonStopped, memo: Any, **_: Any
) -> None:
    """One per LoadTestSchedule: creates its runs at their slots, prunes its history."""
    state = _state(memo)
    if not await _peer_grace(state, stopped):
        return
    supervisor = ScheduleSupervisor(body, state.client(), is_stopped=lambda: bool(stopped))
    await _serve(supervisor, uid, state.supervisors, stopped)


@kopf.on.update(names.GROUP, names.VERSION, names.SCHEDULE_PLURAL)
async def wake_schedule_on_change(uid: str, memo: Any, **_: Any) -> None:
    """A spec edit (suspend, schedule, policy): re-evaluate now."""
    supervisor = _state(memo).supervisors.get(uid)
    if supervisor is not None:
        supervisor.wake()

"""The pod's state: current plan, epoch, lease, executors, health and stats, in one place.

The API only translates HTTP into calls on `PodRuntime`; everything that decides what the
pod does (epoch ordering, lease, drain, executor reuse) lives here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .executors import Executor, make_executor
from .health import HealthMonitor
from .pacer import Pacer, Slot
from .plan import Plan
from .recorder import Recorder
from .stats import PodStats
from .targets import Target

log = logging.getLogger(__name__)

ExecutorFactory = Callable[[Target, int], Executor]

BUILD_SLICE_S = 0.001
"""Building a plan's new executors yields to the event loop after this much work, so sends due
meanwhile go out on time however many targets a plan brings."""


class StaleEpoch(Exception):
    """The plan's epoch is below the current one (or not above a drained one): 409."""

    def __init__(self, epoch: int, current: int, drained: bool) -> None:
        self.epoch = epoch
        self.current = current
        self.drained = drained
        need = f"> {current} after drain" if drained else f">= {current}"
        super().__init__(f"epoch {epoch} is stale: need {need}")


class PlanRejected(Exception):
    """The plan is valid JSON but cannot be run (an executor could not be built): 400."""

    def __init__(self, details: list[str]) -> None:
        self.details = details
        super().__init__("; ".join(details))


class Draining(Exception):
    """A drain is in progress; plans are refused until it ends: 503."""


@dataclass(frozen=True)
class Applied:
    epoch: int
    rate: float
    lease_seconds: float
    renewed: bool
    """True when the epoch was already current (a renewal), False for a new epoch."""


@dataclass
class _Entry:
    target: Target
    max_in_flight: int
    executor: Executor
    slot: Slot


class PodRuntime:
    """Owns plan, epoch, lease, executors (through the pacer), health monitor and recorder."""

    def __init__(
        self,
        name: str,
        *,
        executor_factory: ExecutorFactory = make_executor,
    ) -> None:
        self.name = name
        self.started_at = time.time()
        self._started_mono = time.monotonic()
        self.recorder = Recorder()
        self.pacer = Pacer(self.recorder, on_lease_expired=self._lease_expired)
        self.health = HealthMonitor(on_change=self._health_changed)
        self._make_executor = executor_factory
        self._entries: dict[str, _Entry] = {}
        self._plan: Plan | None = None
        self._epoch = -1
        self._drained_epoch: int | None = None
        self._lease_expired_flag = False
        self._draining = False
        self._closed = False
        self._drain_lock = asyncio.Lock()
        self._apply_lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.pacer.start()

    async def close(self) -> None:
        """Stop everything: pacing, sends, probes, executors."""
        self._closed = True
        await self.health.close()
        await self.pacer.close()
        self._entries.clear()

    # --- state -------------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def plan(self) -> Plan | None:
        return self._plan

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def lease_expired(self) -> bool:
        return self._lease_expired_flag

    @property
    def ready(self) -> bool:
        return not self._draining and not self._closed

    @property
    def labels(self) -> dict[str, str]:
        return dict(self._plan.labels) if self._plan is not None else {}

    def target_health(self) -> dict[str, bool]:
        """Health of the targets in the current plan."""
        return {name: e.slot.healthy for name, e in self._entries.items()}

    # --- plans -------------------------------------------------------------------------------

    def apply(self, plan: Plan) -> Applied:
        """Apply at once; same epoch renews (and may change the rate), lower epoch is refused."""
        self._admissible(plan)
        return self._install(plan, self._build_entries(plan))

    async def apply_plan(self, plan: Plan) -> Applied:
        """As `apply`, but new executors are built in slices between which the loop runs.

        Plans are applied one at a time in arrival order; admissibility (epoch, drain) is
        checked again once the build is done, since a drain or a newer plan may have come in.
        """
        async with self._apply_lock:
            self._admissible(plan)
            current = self._entries
            builder = await self._build_entries_async(plan)
            try:
                self._admissible(plan)
            except (Draining, StaleEpoch):
                builder.abandon()  # e.g. a drain came in meanwhile
                raise
            if self._entries is not current:
                # A drain ran to its end meanwhile and retired what the builder meant to
                # reuse: build again from what is current now, in one go.
                builder.abandon()
                return self._install(plan, self._build_entries(plan))
            return self._install(plan, builder.finish())

    def _admissible(self, plan: Plan) -> None:
        if self._draining or self._closed:
            raise Draining("draining: plans are refused until the drain ends")
        if self._drained_epoch is not None and plan.epoch <= self._drained_epoch:
            raise StaleEpoch(plan.epoch, self._drained_epoch, drained=True)
        if plan.epoch < self._epoch:
            raise StaleEpoch(plan.epoch, self._epoch, drained=False)

    def _install(self, plan: Plan, entries: dict[str, _Entry]) -> Applied:
        renewed = plan.epoch == self._epoch
        targets_changed = [e.slot for e in entries.values()] != [
            e.slot for e in self._entries.values()
        ]
        self.pacer.configure(
            rate=plan.rate,
            arrival=plan.arrival,
            seed=plan.seed,
            max_in_flight=plan.max_in_flight,
            slots=[e.slot for e in entries.values()],
            lease_seconds=plan.lease_seconds,
        )
        self._entries = entries
        self.health.update({n: (e.target, e.executor) for n, e in entries.items()})
        self.pacer.set_healths({name: self.health.is_healthy(name) for name in entries})
        for entry in entries.values():
            entry.slot.stats.healthy = entry.slot.healthy
            check = entry.target.health_check
            entry.slot.stats.health_checked = check is not None and check.enabled
        # Controllers push every ~100 ms with a new epoch: log only what changes the picture.
        if self._lease_expired_flag:
            log.info("plan received after lease expiry; sending again", extra=self._kv(plan))
        elif self._plan is None or self._drained_epoch is not None or targets_changed:
            log.info("plan applied", extra=self._kv(plan))
        else:
            log.debug("plan applied", extra=self._kv(plan))
        self._lease_expired_flag = False
        self._drained_epoch = None
        self._plan = plan
        self._epoch = plan.epoch
        return Applied(plan.epoch, plan.rate, plan.lease_seconds, renewed)

    def _build_entries(self, plan: Plan) -> dict[str, _Entry]:
        """Reuse executors of unchanged targets, build the rest; all or nothing."""
        builder = _Builder(self, plan)
        for target in plan.targets:
            builder.add(target)
        return builder.finish()

    async def _build_entries_async(self, plan: Plan) -> _Builder:
        builder = _Builder(self, plan)
        loop = asyncio.get_running_loop()
        since = loop.time()
        for target in plan.targets:
            if builder.add(target) and loop.time() - since > BUILD_SLICE_S:
                await asyncio.sleep(0)
                since = loop.time()
        return builder

    def _close_later(self, executors: list[Executor]) -> None:
        for executor in executors:
            task = asyncio.get_running_loop().create_task(executor.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _kv(self, plan: Plan) -> dict[str, object]:
        return {
            "kv": {
                "epoch": plan.epoch,
                "rate": plan.rate,
                "lease_seconds": plan.lease_seconds,
                "targets": [t.name for t in plan.targets],
            }
        }

    def _lease_expired(self) -> None:
        self._lease_expired_flag = True
        lease = self._plan.lease_seconds if self._plan is not None else 0.0
        log.warning(
            "lease expired: no plan within %gs; rate dropped to 0",
            lease,
            extra={"kv": {"epoch": self._epoch}},
        )
        # No orphaned load: health probes stop too until a controller speaks again.
        self.health.update({})

    def _health_changed(self, name: str, healthy: bool) -> None:
        self.pacer.set_health(name, healthy)

    # --- drain -------------------------------------------------------------------------------

    async def drain(self, grace: float) -> PodStats:
        """Stop new sends, wait for in-flight up to `grace` seconds, return the final stats.

        Afterwards the pod is idle and accepts only plans with an epoch above the drained one.
        """
        async with self._drain_lock:
            self._draining = True
            try:
                self.pacer.halt()
                if not await self.pacer.wait_idle(grace):
                    cancelled = await self.pacer.cancel_in_flight()
                    log.warning(
                        "drain timeout after %gs: cancelled %d in-flight sends", grace, cancelled
                    )
                final = self.stats()
                self.health.update({})
                self.pacer.clear_slots()
                self._entries = {}
                if self._epoch >= 0:
                    self._drained_epoch = self._epoch
                log.info("drained", extra={"kv": {"epoch": self._epoch}})
                return final
            finally:
                self._draining = False

    # --- stats -------------------------------------------------------------------------------

    def stats(self) -> PodStats:
        rec = self.recorder
        rec.sent.roll()
        raw, corrected = rec.merged()
        return PodStats(
            pod=self.name,
            epoch=self._epoch,
            rate=self.pacer.rate,
            lease_expired=self._lease_expired_flag,
            draining=self._draining,
            started_at=self.started_at,
            uptime_seconds=time.monotonic() - self._started_mono,
            requests=rec.requests,
            errors=rec.errors,
            in_flight=self.pacer.in_flight,
            late_sends=rec.late,
            dropped=rec.dropped,
            achieved_rate_1s=rec.sent.rate(1),
            achieved_rate_10s=rec.sent.rate(10),
            sent_per_second=rec.sent.history(),
            targets={name: t.to_stats() for name, t in rec.targets.items()},
            latency_raw=raw.encode(),
            latency_corrected=corrected.encode(),
        )


class _Builder:
    """Entries for one plan: unchanged targets keep theirs, the rest get new executors."""

    def __init__(self, runtime: PodRuntime, plan: Plan) -> None:
        self._runtime = runtime
        self._plan = plan
        self.entries: dict[str, _Entry] = {}
        self._reused: list[tuple[_Entry, Target]] = []
        self.built: list[Executor] = []

    def add(self, target: Target) -> bool:
        """Add one target; True when an executor had to be built (the costly case)."""
        runtime, max_in_flight = self._runtime, self._plan.max_in_flight
        old = runtime._entries.get(target.name)
        if (
            old is not None
            and old.max_in_flight == max_in_flight
            and _same_but_weight(old.target, target)
        ):
            self._reused.append((old, target))
            self.entries[target.name] = old
            return False
        try:
            executor = runtime._make_executor(target, max_in_flight)
        except Exception as exc:
            self.abandon()
            raise PlanRejected([f"targets: cannot build an executor: {exc}"]) from exc
        self.built.append(executor)
        slot = Slot(target.name, executor, target.weight, runtime.recorder.target(target.name))
        self.entries[target.name] = _Entry(target, max_in_flight, executor, slot)
        return True

    def abandon(self) -> None:
        """The plan is not installed: close what was built, let go of counters never used."""
        runtime = self._runtime
        runtime._close_later(self.built)
        for name, entry in self.entries.items():
            if entry.executor in self.built and name not in runtime._entries:
                runtime.recorder.retire(name)

    def finish(self) -> dict[str, _Entry]:
        for entry, target in self._reused:
            entry.slot.weight = target.weight  # a weight change keeps the connections
            entry.target = target
        return self.entries


def _same_but_weight(old: Target, new: Target) -> bool:
    """Equal definitions apart from the weight, which only the pacer's choice uses."""
    if old == new:
        return True
    return old.model_copy(update={"weight": new.weight}) == new

"""The controller core: one tick loop per LoadTest, shared by the local runner and the operator.

Every `tick_interval` it asks the pattern engine for rate(t), splits it over the ready pods and
pushes its plan to each pod whose share moved or whose lease is due (`plan.PushPolicy`), fire-
and-track: one task per push, never awaited by the tick, and a pod whose previous push is still
pending is skipped for this tick. Every `stats_interval` it pulls the pods' cumulative stats and
merges them. At `spec.duration` (or `stop()`) it stops pushing, drains every pod and returns
the final RunSummary. No kopf, no kubernetes here.

The parts: `clock` (elapsed and unix time of the run), `events` (what the listener is told),
`fleet` (pod bookkeeping and plan pushes), `plan` (what a tick pushes), `collector` (stats
pulls, drains and merges), `summarize` (the RunSummary of it all); this module runs the ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kar98k.pattern import PatternEngine, PatternPoint
from kar98k.results import ControllerFigures, LiveStatus, RunSummary
from kar98k.spec.model import LoadTestSpec

from .clock import RunClock, WallClock
from .collector import StatsCollector
from .events import ControllerEvent, Events
from .fleet import PodFleet
from .merge import Mark, Merged, Window, window_between
from .plan import PushPolicy, TickPlan
from .pods import PodApi, PodClient, PodSource
from .safety import SafetyGuard
from .series import SeriesBook
from .summarize import build_summary
from .ticks import LagRecorder

__all__ = ["Controller", "ControllerEvent", "StepMark", "StepWindow"]

log = logging.getLogger(__name__)

LEASE_SECONDS = 2.0  # 20 ticks: a pod the controller cannot reach for 2 s stops by itself
LIVE_SERIES_SECONDS = 120  # live() carries the newest points only; the final summary has all
BREACH_GRACE_SECONDS = 5.0  # no threshold-breach events before this much of the run


@dataclass(frozen=True)
class StepMark:
    """Merged cumulative stats at an instant, and the requests asked for up to it."""

    stats: Mark
    asked: float


@dataclass(frozen=True)
class StepWindow:
    """What the pods did between two marks, and what the curve asked of them meanwhile."""

    stats: Window
    asked: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.stats.unix_to - self.stats.unix_from)


class Controller:
    """Drives one LoadTest's pods; see module docstring. Not thread-safe: use from one loop."""

    def __init__(
        self,
        spec: LoadTestSpec,
        source: PodSource,
        *,
        name: str,
        seed: int,
        start: datetime,
        epoch_base: int = 0,
        on_event: Callable[[ControllerEvent], None] | None = None,
        tick_interval: float = 0.1,
        stats_interval: float = 2.0,
        clock: WallClock = time.time,
        client: PodApi | None = None,
        rate_limit: Callable[[float], float] | None = None,
        push_policy: PushPolicy | None = None,
    ) -> None:
        """`clock` is the wall clock (unix seconds); the monotonic clock is the event loop's.
        `client` talks to the pods (default: a `PodClient` opened for the run). `rate_limit`
        maps each tick's rate to the rate pushed (the operator's cluster-wide TPS budget).
        `push_policy` says which pods a tick pushes (default: those whose share moved, or
        whose lease is due)."""
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.name = name
        self.seed = seed
        self.tick_interval = tick_interval
        self.stats_interval = stats_interval
        self.lease_seconds = max(LEASE_SECONDS, 5 * tick_interval)
        self._spec = spec
        self._clock = RunClock(start.astimezone(UTC), clock)
        self._client = client
        self._events = Events(name, self._clock, on_event)
        self._fleet = PodFleet(
            source,
            name=name,
            emit=self._events.emit,
            policy=push_policy,
            tick_interval=tick_interval,
        )
        self._stats = StatsCollector(self._fleet, self._clock)
        self._engine = PatternEngine(spec.pattern, seed=seed, start=self._clock.start)
        self._manual: list[tuple[float, float, float]] = []
        self._paused = spec.paused
        self._guard = _guard_of(spec)
        self._rate_limit = rate_limit
        # Epochs must rise across controller restarts too: wall-clock milliseconds grow 100x
        # faster than ticks add, so a later controller always starts above an earlier one's
        # last epoch; `epoch_base` (the persisted last epoch) covers a clock set backwards.
        self._epoch_base = max(epoch_base, int(clock() * 1000))
        self._epoch = self._epoch_base
        self._series: SeriesBook | None = None  # None until run() begins
        self._lag = LagRecorder()
        self._stopping = False
        self._complete = False
        self._interrupted = False
        self._finished: RunSummary | None = None
        self._failing: set[str] = set()
        self._end_mono: float | None = None
        self._last_mono = 0.0
        self._rate = 0.0
        self._spike = False
        self._ticks = 0
        self._ticks_skipped = 0

    # ----------------------------------------------------------------- public API

    @property
    def epoch(self) -> int:
        """The last epoch handed out (persist it; pass it as epoch_base after a restart)."""
        return self._epoch

    @property
    def spec(self) -> LoadTestSpec:
        return self._spec

    @property
    def tick_lags(self) -> LagRecorder:
        """How late the ticks ran (read-only use: benchmarks want percentiles beyond p99)."""
        return self._lag

    @property
    def unready_after(self) -> int:
        """Consecutive failed pushes after which a pod is marked unready."""
        return self._fleet.unready_after

    @unready_after.setter
    def unready_after(self, value: int) -> None:
        self._fleet.unready_after = value

    def stop(self, *, complete: bool = False) -> None:
        """End the run early but gracefully: stop pushing, drain, summarize (interrupted,
        unless `complete`: the run's owner decided it was done, as a finished search does)."""
        if complete:
            self._complete = True
        if not self._stopping:
            self._stopping = True
            log.info("%s: stop requested", self.name)

    def pause(self) -> None:
        """Rate 0 at the next tick; pods keep their lease so they resume at once."""
        if not self._paused:
            self._paused = True
            self._events.emit("paused", "paused: rate 0 until resumed")

    def resume(self) -> None:
        """Follow the curve again; a human resume also closes a tripped safety breaker."""
        if self._paused:
            self._paused = False
            self._events.emit("resumed", "resumed: following the curve again")
        self.reset_safety()

    def reset_safety(self) -> None:
        """A human closes a tripped safety breaker (an abort stays aborted); a pause by the
        user stays in force: only the breaker's factor is lifted."""
        if self._guard is not None:
            change = self._guard.reset(self._clock.elapsed_now(), self._clock.wall())
            if change is not None:
                self._events.emit("safety-closed", self._guard.message(change))

    @property
    def safety(self) -> SafetyGuard | None:
        """The safety breaker (spec.safety) with its trips; None when the spec has none."""
        return self._guard

    def inject_spike(self, factor: float, duration: float) -> None:
        """A manual spike starting now (engine time), on top of the pattern."""
        at = self._clock.elapsed_now()
        self._manual.append((at, factor, duration))
        self._engine.add_manual_spike(at, factor, duration)
        log.info("%s: manual spike x%g for %gs at t=%.1fs", self.name, factor, duration, at)

    def update_spec(self, spec: LoadTestSpec) -> list[str]:
        """Apply pattern, targets, paused, duration, thresholds and plan options at once.

        Returns the paths of changed fields this run cannot apply: `spec.runId` (a new run) and
        `spec.pattern.seed` (the run keeps its seed so its curve stays reproducible). What the
        pods are made of is the caller's business (the operator's pod template, the local
        runner's processes): the core neither reads nor reports it.
        """
        old = self._spec
        ignored: list[str] = []
        if spec.run_id != old.run_id:
            ignored.append("spec.runId")
        if spec.pattern.seed != old.pattern.seed:
            ignored.append("spec.pattern.seed")
        if spec.pattern != old.pattern:
            self._engine = PatternEngine(spec.pattern, seed=self.seed, start=self._clock.start)
            for at, factor, duration in self._manual:
                self._engine.add_manual_spike(at, factor, duration)
        self._spec = spec
        if (
            spec.safety != old.safety
            or spec.thresholds.latency_basis != old.thresholds.latency_basis
        ):
            self._guard = _guard_of(spec)  # new rules start closed, on a fresh window
        if spec.paused != old.paused:
            if spec.paused:
                self.pause()
            else:
                self.resume()
        return ignored

    async def mark(self) -> StepMark:
        """Pull every pod's stats now and merge them: the cumulative figures at this instant,
        with the requests the curve has asked for so far. Two marks make a window."""
        await self._stats.pull_all()
        merged = await self._stats.merge()
        self._add_window(merged)
        self._advance(asyncio.get_running_loop().time())
        assert merged.mark is not None
        asked = self._series.target_total() if self._series is not None else 0.0
        return StepMark(merged.mark, asked)

    @staticmethod
    def window(old: StepMark, new: StepMark) -> StepWindow:
        """The figures of what happened between two marks."""
        return StepWindow(window_between(old.stats, new.stats), new.asked - old.asked)

    def emit(self, kind: str, message: str) -> None:
        """Tell the listener something about this run (e.g. a search step's outcome)."""
        self._events.emit(kind, message)

    def now_unix(self) -> float:
        """Wall time now, on the run's clock (what merges stamp their windows with)."""
        return self._clock.unix(asyncio.get_running_loop().time())

    def last_interval(self) -> Window | None:
        """The window between the two latest merges (about one stats interval)."""
        return self._stats.merged.interval

    def live(self) -> LiveStatus:
        """A cheap snapshot for live views and status patches (series: newest points only)."""
        summary = self._summary(final=False, series_last=LIVE_SERIES_SECONDS)
        rolling = self._stats.merged.rolling
        basis = self._spec.thresholds.latency_basis
        rolling_p99 = None
        if rolling is not None and rolling.requests:
            rolling_p99 = rolling.corrected.p99 if basis == "corrected" else rolling.raw.p99
        return LiveStatus(
            elapsed_s=self._clock.elapsed_now(),
            target_tps=self._rate,
            achieved_tps=self._stats.achieved_rate_1s(),
            spike_active=self._spike,
            paused=self._paused,
            ready_pods=self._fleet.serving_count(),
            desired_pods=self._spec.load_pods.desired(self._spec.pattern.ceiling),
            tick_lag_ms=self._lag.recent_max_ms(),
            push_errors=self._fleet.push_failures,
            rolling_p99_ms=rolling_p99,
            rolling_error_rate=rolling.error_rate if rolling is not None else None,
            summary=summary,
        )

    async def run(self) -> RunSummary:
        """Drive the pods until spec.duration or stop(); then drain them and summarize."""
        clock = self._clock
        if clock.running or self._finished is not None:
            raise RuntimeError("Controller.run() may be called once")
        clock.begin(asyncio.get_running_loop().time())
        self._last_mono = clock.mono0
        self._series = SeriesBook(clock.start.timestamp())
        async with contextlib.AsyncExitStack() as stack:
            client = self._client or await stack.enter_async_context(PodClient())
            self._fleet.client = client
            self._fleet.sync(initial=True)
            self._events.emit(
                "started",
                f"started with {len(self._fleet.pods)} pod(s), seed {self.seed}, "
                f"t={clock.elapsed0:.1f}s",
            )
            stats_task = asyncio.create_task(self._stats_loop(), name=f"{self.name}-stats")
            try:
                await self._tick_loop()
            finally:
                stats_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stats_task
            await self._fleet.finish_pushes()
            grace = min(10.0, max((t.timeout for t in self._spec.targets), default=5.0))
            await self._stats.drain_all(grace)
            self._add_window(await self._stats.final_merge())
        self._fleet.client = None
        summary = self._summary(final=True, series_last=None)
        self._finished = summary
        how = "interrupted" if summary.interrupted else "finished"
        self._events.emit(
            "finished",
            f"{how}: {summary.requests_total} requests, verdict {summary.verdict}",
        )
        clock.running = False
        return summary

    # ----------------------------------------------------------------- tick loop

    async def _tick_loop(self) -> None:
        """Ticks on slots `mono0 + k * interval`; a late loop skips missed slots, never bursts."""
        loop = asyncio.get_running_loop()
        mono0 = self._clock.mono0
        interval = self.tick_interval
        k = 0
        while True:
            slot = mono0 + k * interval
            end = self._clock.end_at(self._spec.duration)
            delay = min(slot, end) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            if self._stopping:
                self._interrupted = not self._complete and now < end - 1e-3
                break
            if now >= end - 1e-3:
                break
            self._lag.record(now, now - slot)
            try:
                self._tick(now)
            except Exception:  # a bug in one tick must not end the run and orphan the pods
                log.exception("%s: tick failed", self.name)
            nxt = k + 1
            due = math.floor((loop.time() - mono0) / interval)
            if due > nxt:
                self._ticks_skipped += due - nxt
                nxt = due
            k = nxt
        ended = loop.time()
        self._advance(ended)
        self._end_mono = ended

    def _tick(self, now: float) -> None:
        self._ticks += 1
        self._fleet.sync(initial=False)
        point = self._point(self._clock.elapsed(now))
        self._advance(now)
        rate = 0.0 if self._paused else point.rate
        if self._guard is not None:
            rate *= self._guard.breaker.factor
        if self._rate_limit is not None:
            rate = self._rate_limit(rate)
        if point.spike_active != self._spike:
            if point.spike_active:
                self._events.emit("spike-begin", f"spike begins (rate {rate:.0f}/s and rising)")
            else:
                self._events.emit("spike-end", f"spike over (rate {rate:.0f}/s)")
        self._rate, self._spike = rate, point.spike_active
        self._epoch = self._epoch_base + self._ticks
        self._fleet.push(self._tick_plan(), now)

    def _point(self, elapsed: float) -> PatternPoint:
        return self._engine.at(max(0.0, elapsed))

    def _advance(self, now: float) -> None:
        """Account the rate in force since the last tick (what the pods were asked to send)."""
        if self._series is not None and now > self._last_mono:
            self._series.add_target(
                self._clock.unix(self._last_mono), self._clock.unix(now), self._rate, self._spike
            )
        self._last_mono = max(self._last_mono, now)

    def _tick_plan(self) -> TickPlan:
        load_pods = self._spec.load_pods
        return TickPlan(
            loadtest=self.name,
            seed=self.seed,
            epoch=self._epoch,
            rate=self._rate,
            lease_seconds=self.lease_seconds,
            max_in_flight=load_pods.max_in_flight,
            arrival=load_pods.arrival,
            targets=self._spec.targets,
            spike_active=self._spike,
        )

    # ----------------------------------------------------------------- stats

    async def _stats_loop(self) -> None:
        loop = asyncio.get_running_loop()
        mono0 = self._clock.mono0
        k = 1
        while True:
            await asyncio.sleep(max(0.0, mono0 + k * self.stats_interval - loop.time()))
            try:
                await self._stats.pull_all()
                merged = await self._stats.merge()
                self._add_window(merged)
                self._check_breaches()
                self._check_safety(merged)
            except Exception:  # keep pulling; the final merge still runs at the end
                log.exception("%s: stats pull or merge failed", self.name)
            due = math.floor((loop.time() - mono0) / self.stats_interval)
            k = max(k + 1, due + 1)

    def _add_window(self, merged: Merged) -> None:
        if merged.interval is not None and self._series is not None:
            self._series.add_window(merged.interval)

    def _check_breaches(self) -> None:
        if self._clock.elapsed_now() - self._clock.elapsed0 < BREACH_GRACE_SECONDS:
            return
        summary = self._summary(final=False, series_last=0)
        for check in summary.checks:
            if not check.passed and check.name not in self._failing:
                self._failing.add(check.name)
                self._events.emit("threshold-breach", check.message)
            elif check.passed:
                self._failing.discard(check.name)

    def _check_safety(self, merged: Merged) -> None:
        """Feed the breaker this merge; act on a trip or close (events, abort)."""
        guard = self._guard
        if guard is None or merged.mark is None:
            return
        now = asyncio.get_running_loop().time()
        change = guard.observe(now, self._clock.elapsed(now), merged.mark)
        if change is None:
            return
        kind = "safety-tripped" if change.kind == "trip" else "safety-closed"
        self._events.emit(kind, guard.message(change))
        if guard.aborted:
            self.stop(complete=True)

    # ----------------------------------------------------------------- summary

    def _summary(self, *, final: bool, series_last: int | None) -> RunSummary:
        summary = self._build_summary(final=final, series_last=series_last)
        if self._guard is not None:
            summary.safety_trips = [trip.model_copy() for trip in self._guard.trips]
            if final and self._guard.aborted:
                summary.verdict = "fail"  # the breaker ended the run: never a pass
        return summary

    def _build_summary(self, *, final: bool, series_last: int | None) -> RunSummary:
        return build_summary(
            name=self.name,
            seed=self.seed,
            clock=self._clock,
            series=self._series,
            last_mono=self._last_mono,
            end_mono=self._end_mono,
            interrupted=self._interrupted,
            stats=self._stats,
            fleet=self._fleet,
            figures=self._figures(),
            thresholds=self._spec.thresholds,
            final=final,
            series_last=series_last,
            arrival=self._spec.load_pods.arrival,
            lease_s=self.lease_seconds,
        )

    def _figures(self) -> ControllerFigures:
        fleet = self._fleet
        return ControllerFigures(
            ticks=self._ticks,
            ticks_skipped=self._ticks_skipped,
            tick_lag_ms_max=self._lag.max_ms(),
            tick_lag_ms_p99=self._lag.percentile_ms(99.0),
            pushes=fleet.pushes,
            push_failures=fleet.push_failures,
            pushes_skipped=fleet.pushes_skipped,
            stats_failures=self._stats.failures,
            first_epoch=self._epoch_base + 1 if self._ticks else 0,
            last_epoch=self._epoch if self._ticks else 0,
        )


def _guard_of(spec: LoadTestSpec) -> SafetyGuard | None:
    if spec.safety is None:
        return None
    return SafetyGuard(spec.safety, spec.thresholds.latency_basis)

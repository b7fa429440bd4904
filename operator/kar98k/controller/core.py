"""The controller core: one tick loop per LoadTest, shared by the local runner and the operator.

Every `tick_interval` it asks the pattern engine for rate(t), splits it over the ready pods and
pushes each pod its plan (fire-and-track: one task per push, never awaited by the tick, and a
pod whose previous push is still pending is skipped for this tick). Every `stats_interval` it
pulls the pods' cumulative stats and merges them. At `spec.duration` (or `stop()`) it stops
pushing, drains every pod and returns the final RunSummary. No kopf, no kubernetes here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kar98k import verdict
from kar98k.pattern import PatternEngine, PatternPoint
from kar98k.spec.model import LoadTestSpec

from .merge import Merged, Merger, StatsBook
from .pods import PUSH_TIMEOUT, PodCallError, PodClient, PodEndpoint, PodSource
from .series import SeriesBook
from .split import split_rate
from .summary import (
    ControllerFigures,
    LatencyPair,
    LiveStatus,
    PodSummary,
    RunSummary,
)
from .ticks import LagRecorder

log = logging.getLogger(__name__)

LEASE_SECONDS = 2.0  # 20 ticks: a pod the controller cannot reach for 2 s stops by itself
UNREADY_AFTER = 3  # consecutive failed pushes (~300 ms when a pod refuses connections)
PROBE_INTERVAL = 1.0  # how often an unready pod still in the pool is offered a zero plan
LIVE_SERIES_SECONDS = 120  # live() carries the newest points only; the final summary has all
BREACH_GRACE_SECONDS = 5.0  # no threshold-breach events before this much of the run


@dataclass(frozen=True)
class ControllerEvent:
    """Something a live view, a log or Kubernetes events should tell the user.

    kinds: started, spike-begin, spike-end, pod-lost, pod-joined, threshold-breach, paused,
    resumed, finished.
    """

    kind: str
    message: str
    elapsed_s: float = 0.0


@dataclass
class _Pod:
    endpoint: PodEndpoint
    ready: bool = True
    in_source: bool = True
    failures: int = 0  # consecutive
    push_failures: int = 0  # total
    pending: asyncio.Task[None] | None = field(default=None, repr=False)
    share: float = 0.0  # last share the pod accepted
    epoch: int = 0  # last epoch the pod accepted
    last_probe: float = -math.inf
    last_error: str = ""


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
    ) -> None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.name = name
        self.seed = seed
        self.tick_interval = tick_interval
        self.stats_interval = stats_interval
        self.lease_seconds = max(LEASE_SECONDS, 5 * tick_interval)
        self.unready_after = UNREADY_AFTER
        self._spec = spec
        self._source = source
        self._start = start.astimezone(UTC)
        self._on_event = on_event
        self._engine = PatternEngine(spec.pattern, seed=seed, start=self._start)
        self._manual: list[tuple[float, float, float]] = []
        self._targets_wire = [t.to_wire() for t in spec.targets]
        self._paused = spec.paused
        # Epochs must rise across controller restarts too: wall-clock milliseconds grow 100x
        # faster than ticks add, so a later controller always starts above an earlier one's
        # last epoch; `epoch_base` (the persisted last epoch) covers a clock set backwards.
        self._epoch_base = max(epoch_base, int(time.time() * 1000))
        self._epoch = self._epoch_base
        self._pods: dict[str, _Pod] = {}
        self._book = StatsBook()
        self._merger = Merger()
        self._merged = Merged()
        self._merging: asyncio.Future[Merged] | None = None
        self._series: SeriesBook | None = None
        self._lag = LagRecorder()
        self._client: PodClient | None = None
        self._stopping = False
        self._interrupted = False
        self._running = False
        self._finished: RunSummary | None = None
        self._failing: set[str] = set()
        # Clock: elapsed/unix time derive from the loop's monotonic clock after run() starts.
        self._mono0 = 0.0
        self._elapsed0 = 0.0
        self._unix0 = 0.0
        self._end_mono: float | None = None
        self._last_mono = 0.0
        self._rate = 0.0
        self._spike = False
        self._ticks = 0
        self._ticks_skipped = 0
        self._pushes = 0
        self._push_failures = 0
        self._pushes_skipped = 0
        self._stats_failures = 0

    # ----------------------------------------------------------------- public API

    @property
    def epoch(self) -> int:
        """The last epoch handed out (persist it; pass it as epoch_base after a restart)."""
        return self._epoch

    @property
    def spec(self) -> LoadTestSpec:
        return self._spec

    def stop(self) -> None:
        """End the run early but gracefully: stop pushing, drain, summarize (interrupted)."""
        if not self._stopping:
            self._stopping = True
            log.info("%s: stop requested", self.name)

    def pause(self) -> None:
        """Rate 0 at the next tick; pods keep their lease so they resume at once."""
        if not self._paused:
            self._paused = True
            self._emit("paused", "paused: rate 0 until resumed")

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._emit("resumed", "resumed: following the curve again")

    def inject_spike(self, factor: float, duration: float) -> None:
        """A manual spike starting now (engine time), on top of the pattern."""
        at = self._elapsed_now()
        self._manual.append((at, factor, duration))
        self._engine.add_manual_spike(at, factor, duration)
        log.info("%s: manual spike x%g for %gs at t=%.1fs", self.name, factor, duration, at)

    def update_spec(self, spec: LoadTestSpec) -> list[str]:
        """Apply pattern, targets, paused, duration, thresholds and plan options at once.

        Returns the paths of changed fields this run cannot apply: `spec.runId` (a new run),
        `spec.pattern.seed` (the run keeps its seed so its curve stays reproducible) and the
        load-pod template fields (pods are created by the caller, not the core).
        """
        old = self._spec
        ignored: list[str] = []
        if spec.run_id != old.run_id:
            ignored.append("spec.runId")
        if spec.pattern.seed != old.pattern.seed:
            ignored.append("spec.pattern.seed")
        for attr in ("image", "resources", "node_selector", "tolerations", "affinity"):
            if getattr(spec.load_pods, attr) != getattr(old.load_pods, attr):
                alias = type(spec.load_pods).model_fields[attr].alias or attr
                ignored.append(f"spec.loadPods.{alias}")
        for attr in ("separate", "env"):
            if getattr(spec.load_pods, attr) != getattr(old.load_pods, attr):
                ignored.append(f"spec.loadPods.{attr}")
        if spec.pattern != old.pattern:
            self._engine = PatternEngine(spec.pattern, seed=self.seed, start=self._start)
            for at, factor, duration in self._manual:
                self._engine.add_manual_spike(at, factor, duration)
        if spec.targets != old.targets:
            self._targets_wire = [t.to_wire() for t in spec.targets]
        self._spec = spec
        if spec.paused != old.paused:
            if spec.paused:
                self.pause()
            else:
                self.resume()
        return ignored

    def live(self) -> LiveStatus:
        """A cheap snapshot for live views and status patches (series: newest points only)."""
        summary = self._summary(final=False, series_last=LIVE_SERIES_SECONDS)
        achieved = 0.0
        for name, pod in self._pods.items():
            stats = self._book.latest(name)
            if pod.in_source and stats is not None:
                achieved += stats.achieved_rate_1s
        rolling = self._merged.rolling
        basis = self._spec.thresholds.latency_basis
        rolling_p99 = None
        if rolling is not None and rolling.requests:
            rolling_p99 = rolling.corrected.p99 if basis == "corrected" else rolling.raw.p99
        return LiveStatus(
            elapsed_s=self._elapsed_now(),
            target_tps=self._rate,
            achieved_tps=achieved,
            spike_active=self._spike,
            paused=self._paused,
            ready_pods=sum(1 for p in self._pods.values() if p.ready and p.in_source),
            desired_pods=self._spec.load_pods.desired(self._spec.pattern.ceiling),
            tick_lag_ms=self._lag.recent_max_ms(),
            push_errors=self._push_failures,
            rolling_p99_ms=rolling_p99,
            rolling_error_rate=rolling.error_rate if rolling is not None else None,
            summary=summary,
        )

    async def run(self) -> RunSummary:
        """Drive the pods until spec.duration or stop(); then drain them and summarize."""
        if self._running or self._finished is not None:
            raise RuntimeError("Controller.run() may be called once")
        self._running = True
        loop = asyncio.get_running_loop()
        self._mono0 = self._last_mono = loop.time()
        self._unix0 = time.time()
        self._elapsed0 = self._unix0 - self._start.timestamp()
        self._series = SeriesBook(self._start.timestamp())
        async with PodClient() as client:
            self._client = client
            self._sync_pods(initial=True)
            self._emit(
                "started",
                f"started with {len(self._pods)} pod(s), seed {self.seed}, t={self._elapsed0:.1f}s",
            )
            stats_task = asyncio.create_task(self._stats_loop(), name=f"{self.name}-stats")
            try:
                await self._tick_loop()
            finally:
                stats_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stats_task
            await self._finish_pushes()
            await self._drain_all()
            await self._final_merge()
        self._client = None
        summary = self._summary(final=True, series_last=None)
        self._finished = summary
        how = "interrupted" if summary.interrupted else "finished"
        self._emit(
            "finished",
            f"{how}: {summary.requests_total} requests, verdict {summary.verdict}",
        )
        self._running = False
        return summary

    # ----------------------------------------------------------------- tick loop

    async def _tick_loop(self) -> None:
        """Ticks on slots `mono0 + k * interval`; a late loop skips missed slots, never bursts."""
        loop = asyncio.get_running_loop()
        interval = self.tick_interval
        k = 0
        while True:
            slot = self._mono0 + k * interval
            end = self._end_at()
            delay = min(slot, end) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            if self._stopping:
                self._interrupted = now < end - 1e-3
                break
            if now >= end - 1e-3:
                break
            self._lag.record(now, now - slot)
            try:
                self._tick(now)
            except Exception:  # a bug in one tick must not end the run and orphan the pods
                log.exception("%s: tick failed", self.name)
            nxt = k + 1
            due = math.floor((loop.time() - self._mono0) / interval)
            if due > nxt:
                self._ticks_skipped += due - nxt
                nxt = due
            k = nxt
        ended = loop.time()
        self._advance(ended)
        self._end_mono = ended

    def _end_at(self) -> float:
        duration = self._spec.duration
        if duration is None:
            return math.inf
        return self._mono0 + (duration - self._elapsed0)

    def _tick(self, now: float) -> None:
        self._ticks += 1
        self._sync_pods(initial=False)
        point = self._point(self._elapsed0 + (now - self._mono0))
        self._advance(now)
        rate = 0.0 if self._paused else point.rate
        if point.spike_active != self._spike:
            if point.spike_active:
                self._emit("spike-begin", f"spike begins (rate {rate:.0f}/s and rising)")
            else:
                self._emit("spike-end", f"spike over (rate {rate:.0f}/s)")
        self._rate, self._spike = rate, point.spike_active
        self._epoch = self._epoch_base + self._ticks
        ready = sorted(n for n, p in self._pods.items() if p.ready and p.in_source)
        for name, share in split_rate(rate, ready).items():
            self._push(self._pods[name], share)
        for pod in self._pods.values():
            if pod.in_source and not pod.ready and now - pod.last_probe >= PROBE_INTERVAL:
                pod.last_probe = now
                self._push(pod, 0.0)

    def _point(self, elapsed: float) -> PatternPoint:
        return self._engine.at(max(0.0, elapsed))

    def _advance(self, now: float) -> None:
        """Account the rate in force since the last tick (what the pods were asked to send)."""
        if self._series is not None and now > self._last_mono:
            self._series.add_target(
                self._unix(self._last_mono), self._unix(now), self._rate, self._spike
            )
        self._last_mono = max(self._last_mono, now)

    # ----------------------------------------------------------------- pods and pushes

    def _sync_pods(self, *, initial: bool) -> None:
        """Take the pool's current pods: new ones join, vanished ones are lost at once."""
        try:
            endpoints = self._source.endpoints()
        except Exception:  # a broken source must not stop the ticks
            log.exception("%s: pod source failed; keeping the previous pods", self.name)
            return
        seen: set[str] = set()
        for endpoint in endpoints:
            seen.add(endpoint.name)
            pod = self._pods.get(endpoint.name)
            if pod is None or pod.endpoint != endpoint:
                self._pods[endpoint.name] = _Pod(endpoint)
                if not initial:
                    self._emit("pod-joined", f"{endpoint.name} joined at {endpoint.base_url}")
            elif not pod.in_source:
                pod.in_source, pod.ready, pod.failures = True, True, 0
                self._emit("pod-joined", f"{endpoint.name} is back in the pool")
        for name, pod in self._pods.items():
            if pod.in_source and name not in seen:
                was_ready = pod.ready
                pod.in_source, pod.ready = False, False
                if was_ready:
                    self._emit("pod-lost", f"{name} left the pod pool; its share moves to the rest")

    def _push(self, pod: _Pod, share: float) -> None:
        if pod.pending is not None and not pod.pending.done():
            self._pushes_skipped += 1
            return
        self._pushes += 1
        body = self._plan_body(pod.endpoint.name, share)
        pod.pending = asyncio.create_task(self._send_plan(pod, body, self._epoch, share))

    def _plan_body(self, pod_name: str, share: float) -> bytes:
        load = self._spec.load_pods
        plan: dict[str, Any] = {
            "epoch": self._epoch,
            "rate": share,
            "leaseSeconds": self.lease_seconds,
            "maxInFlight": load.max_in_flight,
            "arrival": load.arrival.value,
            "seed": _pod_seed(self.seed, pod_name),
            "targets": self._targets_wire,
            "labels": {
                "loadtest": self.name,
                "pod": pod_name,
                "spikeActive": "true" if self._spike else "false",
            },
        }
        return json.dumps(plan, separators=(",", ":")).encode()

    async def _send_plan(self, pod: _Pod, body: bytes, epoch: int, share: float) -> None:
        assert self._client is not None
        try:
            await self._client.push_plan(pod.endpoint, body, within=PUSH_TIMEOUT)
        except PodCallError as exc:
            pod.failures += 1
            pod.push_failures += 1
            self._push_failures += 1
            pod.last_error = str(exc)
            if pod.ready and pod.failures >= self.unready_after:
                pod.ready = False
                pod.last_probe = asyncio.get_running_loop().time()
                self._emit(
                    "pod-lost",
                    f"{exc} ({pod.failures} pushes failed in a row); "
                    "marked unready, its share moves to the rest",
                )
            return
        pod.failures, pod.epoch, pod.share = 0, epoch, share
        if not pod.ready and pod.in_source:
            pod.ready = True
            self._emit("pod-joined", f"{pod.endpoint.name} answers again; it gets a share")

    async def _finish_pushes(self) -> None:
        """Let pushes in flight land before draining, so no plan arrives after the drain."""
        pending = [p.pending for p in self._pods.values() if p.pending and not p.pending.done()]
        if pending:
            await asyncio.wait(pending, timeout=PUSH_TIMEOUT + 0.5)

    # ----------------------------------------------------------------- stats

    async def _stats_loop(self) -> None:
        loop = asyncio.get_running_loop()
        k = 1
        while True:
            await asyncio.sleep(max(0.0, self._mono0 + k * self.stats_interval - loop.time()))
            try:
                await self._pull_all()
                await self._merge()
                self._check_breaches()
            except Exception:  # keep pulling; the final merge still runs at the end
                log.exception("%s: stats pull or merge failed", self.name)
            due = math.floor((loop.time() - self._mono0) / self.stats_interval)
            k = max(k + 1, due + 1)

    async def _pull_all(self) -> None:
        pods = [p for p in self._pods.values() if p.in_source]
        await asyncio.gather(*(self._pull(p) for p in pods))

    async def _pull(self, pod: _Pod) -> None:
        assert self._client is not None
        try:
            stats = await self._client.stats(pod.endpoint)
        except PodCallError as exc:
            self._stats_failures += 1
            log.debug("%s", exc)
            return
        self._book.update(pod.endpoint.name, stats)

    async def _merge(self) -> None:
        """Merge in a worker thread (histogram read-outs cost milliseconds) and adopt it."""
        if self._merging is not None and not self._merging.done():
            await asyncio.wait([self._merging])
        records = self._book.records()
        now_unix = self._unix(asyncio.get_running_loop().time())
        fut = asyncio.ensure_future(asyncio.to_thread(self._merger.merge, records, now_unix))
        self._merging = fut
        merged = await asyncio.shield(fut)
        self._adopt(merged)

    def _adopt(self, merged: Merged) -> None:
        self._merged = merged
        if merged.interval is not None and self._series is not None:
            self._series.add_window(merged.interval)

    def _check_breaches(self) -> None:
        if self._elapsed_now() - self._elapsed0 < BREACH_GRACE_SECONDS:
            return
        summary = self._summary(final=False, series_last=0)
        for check in summary.checks:
            if not check.passed and check.name not in self._failing:
                self._failing.add(check.name)
                self._emit("threshold-breach", check.message)
            elif check.passed:
                self._failing.discard(check.name)

    async def _drain_all(self) -> None:
        pods = [p for p in self._pods.values() if p.in_source]
        grace = min(10.0, max((t.timeout for t in self._spec.targets), default=5.0))
        await asyncio.gather(*(self._drain(p, grace) for p in pods))

    async def _drain(self, pod: _Pod, grace: float) -> None:
        assert self._client is not None
        try:
            stats = await self._client.drain(pod.endpoint, grace)
        except PodCallError as exc:
            log.warning("%s; keeping its last stats", exc)
            with contextlib.suppress(PodCallError):
                stats = await self._client.stats(pod.endpoint)
                self._book.update(pod.endpoint.name, stats)
            return
        self._book.update(pod.endpoint.name, stats, final=True)

    async def _final_merge(self) -> None:
        if self._merging is not None and not self._merging.done():
            await asyncio.wait([self._merging])
        records = self._book.records()
        now_unix = self._unix(asyncio.get_running_loop().time())
        self._adopt(await asyncio.to_thread(self._merger.merge, records, now_unix))

    # ----------------------------------------------------------------- summary

    def _summary(self, *, final: bool, series_last: int | None) -> RunSummary:
        merged = self._merged
        series = self._series  # None until run() began
        end_mono = self._end_mono if self._end_mono is not None else self._last_mono
        active = max(0.0, end_mono - self._mono0) if series else 0.0
        duration = max(0.0, self._elapsed0 + active) if series else 0.0
        target_requests = series.target_total() if series else 0.0
        requests = merged.requests
        summary = RunSummary(
            name=self.name,
            seed=self.seed,
            started_at=_iso(self._start),
            ended_at=_iso(datetime.fromtimestamp(self._unix(end_mono), UTC))
            if self._end_mono is not None
            else None,
            duration_s=duration,
            interrupted=self._interrupted,
            requests_total=requests,
            errors_total=merged.errors,
            error_rate=merged.errors / requests if requests else 0.0,
            late_sends=merged.late_sends,
            dropped=merged.dropped,
            achieved_tps=requests / duration if duration > 0 else 0.0,
            target_tps_mean=target_requests / active if active > 0 else 0.0,
            target_requests=target_requests,
            latency_ms=merged.latency.model_copy(deep=True) if merged.requests else LatencyPair(),
            outcomes=dict(merged.outcomes),
            targets={k: v.model_copy(deep=True) for k, v in merged.targets.items()},
            pods=self._pod_summaries(final, active),
            controller=self._figures(),
        )
        if series is not None and series_last != 0:
            summary.series = series.points(merged.per_second, last=series_last)
        summary.checks = verdict.judge(self._spec.thresholds, summary)
        summary.verdict = verdict.verdict_of(summary.checks) if final else "running"
        return summary

    def _pod_summaries(self, final: bool, active: float) -> list[PodSummary]:
        out: list[PodSummary] = []
        for name in sorted(self._pods):
            pod = self._pods[name]
            requests, errors = self._book.totals(name)
            stats = self._book.latest(name)
            if final:
                achieved = requests / active if active > 0 else 0.0
            else:
                achieved = stats.achieved_rate_1s if stats is not None and pod.in_source else 0.0
            out.append(
                PodSummary(
                    name=name,
                    ready=pod.ready and pod.in_source,
                    share_tps=pod.share,
                    achieved_tps=achieved,
                    requests=requests,
                    errors=errors,
                    push_failures=pod.push_failures,
                    epoch=pod.epoch,
                )
            )
        return out

    def _figures(self) -> ControllerFigures:
        return ControllerFigures(
            ticks=self._ticks,
            ticks_skipped=self._ticks_skipped,
            tick_lag_ms_max=self._lag.max_ms(),
            tick_lag_ms_p99=self._lag.percentile_ms(99.0),
            pushes=self._pushes,
            push_failures=self._push_failures,
            pushes_skipped=self._pushes_skipped,
            stats_failures=self._stats_failures,
            first_epoch=self._epoch_base + 1 if self._ticks else 0,
            last_epoch=self._epoch if self._ticks else 0,
        )

    # ----------------------------------------------------------------- helpers

    def _unix(self, mono: float) -> float:
        return self._unix0 + (mono - self._mono0)

    def _elapsed_now(self) -> float:
        if not self._running:
            return (datetime.now(UTC) - self._start).total_seconds()
        return self._elapsed0 + (asyncio.get_running_loop().time() - self._mono0)

    def _emit(self, kind: str, message: str) -> None:
        elapsed = self._elapsed_now() if self._running else 0.0
        event = ControllerEvent(kind, message, elapsed)
        log.info("%s: %s", self.name, message)
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # a broken listener must not break the run
            log.exception("%s: event listener failed on %s", self.name, kind)


def _pod_seed(seed: int, pod: str) -> int:
    """A stable per-pod seed, so pods never share one arrival sequence."""
    digest = hashlib.blake2b(f"{seed}/{pod}".encode(), digest_size=6).digest()
    return int.from_bytes(digest, "big")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

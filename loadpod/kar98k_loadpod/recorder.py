"""Cumulative counters and latency histograms of one load pod, cheap enough for the hot path.

The pacer records every completed request here; stats and /metrics read from here at
request time, so the hot path never touches Prometheus label lookups or JSON.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque

from .failures import FailureTimes
from .histogram import LatencyHistogram
from .stats import SUCCESS_OUTCOMES, UNANSWERED_OUTCOMES, TargetStats

# Upper bounds (seconds) of the Prometheus request-duration buckets; +Inf is implicit.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
HISTORY_SECONDS = 60
RETIRED = "_retired"
"""Stats key holding the counters of targets folded away (never a valid target name)."""
MAX_RETIRED_KEPT = 32
"""Targets no longer in the plan whose counters are kept by name; older ones are folded."""


_NO_LATENCY = LatencyHistogram()
"""Shared stand-in until a target records its first request: a histogram costs ~190 KB and
~0.5 ms to build, and a plan may bring MAX_TARGETS targets, many never or rarely chosen.
Only read, never recorded into."""


class TargetRecorder:
    """Everything recorded for one target name (kept after the target leaves the plan)."""

    __slots__ = (
        "buckets",
        "corrected",
        "errors",
        "failures",
        "health_checked",
        "healthy",
        "outcomes",
        "raw",
        "raw_sum",
        "requests",
        "skipped_unhealthy",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.outcomes: dict[str, int] = {}
        self.skipped_unhealthy = 0
        self.healthy = True
        self.health_checked = False
        self.raw = self.corrected = _NO_LATENCY  # allocated at the first request
        self.raw_sum = 0.0
        self.failures: FailureTimes | None = None  # allocated at the first unanswered request
        # Non-cumulative counts per DURATION_BUCKETS slot, last one is +Inf.
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)

    def record(self, outcome: str, raw: float, corrected: float) -> None:
        """One completed request: raw = since actual start, corrected = since intended time."""
        self.requests += 1
        outcomes = self.outcomes
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome not in SUCCESS_OUTCOMES:
            self.errors += 1
            if outcome in UNANSWERED_OUTCOMES:
                self._failed(outcome, raw)  # no answer, no latency: a time to failure
                return
        if self.raw is _NO_LATENCY:
            self._allocate()
        self.raw.record_seconds(raw)
        self.corrected.record_seconds(corrected)
        self.raw_sum += raw
        self.buckets[bisect_left(DURATION_BUCKETS, raw)] += 1

    def _failed(self, outcome: str, seconds: float) -> None:
        if self.failures is None:
            self.failures = FailureTimes()
        self.failures.record(outcome, seconds)

    def _allocate(self) -> None:
        self.raw = LatencyHistogram()
        self.corrected = LatencyHistogram()

    def release(self) -> None:
        """Free the histograms (the recorder is no longer reported)."""
        self.raw = self.corrected = _NO_LATENCY
        self.failures = None

    def absorb(self, other: TargetRecorder) -> None:
        """Add another recorder's counts and histograms to this one."""
        if self.raw is _NO_LATENCY:
            self._allocate()
        self.requests += other.requests
        self.errors += other.errors
        for outcome, count in other.outcomes.items():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + count
        self.skipped_unhealthy += other.skipped_unhealthy
        self.raw.merge(other.raw)
        self.corrected.merge(other.corrected)
        self.raw_sum += other.raw_sum
        if other.failures is not None:
            if self.failures is None:
                self.failures = FailureTimes()
            self.failures.absorb(other.failures)
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]

    def cumulative_buckets(self) -> list[int]:
        """Prometheus-style cumulative counts, one per bound plus +Inf."""
        out: list[int] = []
        total = 0
        for count in self.buckets:
            total += count
            out.append(total)
        return out

    def to_stats(self) -> TargetStats:
        return TargetStats(
            requests=self.requests,
            errors=self.errors,
            outcomes=dict(self.outcomes),
            healthy=self.healthy,
            health_checked=self.health_checked,
            skipped_unhealthy=self.skipped_unhealthy,
            latency_raw=self.raw.encode(),
            latency_corrected=self.corrected.encode(),
            time_to_failure=self.failures.encode() if self.failures is not None else {},
        )


class SendCounter:
    """Sends started per unix second, for `sentPerSecond` and the achieved rate.

    `count` is bumped inline by the pacer; `roll` must run before counting whenever the
    wall-clock second may have changed (the pacer calls it every tick).
    """

    __slots__ = ("_history", "count", "second")

    def __init__(self, now: float | None = None) -> None:
        self.second = int(time.time() if now is None else now)
        self.count = 0
        self._history: deque[tuple[int, int]] = deque(maxlen=HISTORY_SECONDS)

    def roll(self, now: float | None = None) -> None:
        sec = int(time.time() if now is None else now)
        if sec <= self.second:  # same second, or the wall clock stepped back
            return
        self._history.append((self.second, self.count))
        for empty in range(max(self.second + 1, sec - HISTORY_SECONDS), sec):
            self._history.append((empty, 0))
        self.second = sec
        self.count = 0

    def history(self) -> list[tuple[int, int]]:
        """[(unix second, sends started)] for the last whole seconds, oldest first."""
        return list(self._history)

    def rate(self, seconds: int) -> float:
        """Mean sends/s over the last `seconds` whole seconds (fewer right after start)."""
        if not self._history:
            return 0.0
        window = list(self._history)[-seconds:]
        return sum(count for _, count in window) / len(window)


class Recorder:
    """All counters of the pod; cumulative since the process started.

    Memory is bounded however plans churn: counters of targets that left the plan are kept by
    name for the last MAX_RETIRED_KEPT of them, older ones are folded into one RETIRED entry,
    so totals (and merged histograms) never go backwards while per-name detail is dropped.
    """

    def __init__(self) -> None:
        self.targets: dict[str, TargetRecorder] = {}
        self.sent = SendCounter()
        self.late = 0
        self.dropped = 0
        self._retired: dict[str, None] = {}  # names no longer in use, oldest first

    def target(self, name: str) -> TargetRecorder:
        """The recorder for `name`, created on first use; a retired name is in use again."""
        self._retired.pop(name, None)
        rec = self.targets.get(name)
        if rec is None:
            rec = self.targets[name] = TargetRecorder()
        return rec

    def retire(self, name: str) -> None:
        """`name` left the plan and nothing records into it any more."""
        if name == RETIRED or name not in self.targets:
            return
        self._retired.pop(name, None)
        self._retired[name] = None
        while len(self._retired) > MAX_RETIRED_KEPT:
            oldest = next(iter(self._retired))
            del self._retired[oldest]
            folded = self.targets.pop(oldest)
            if folded.requests or folded.skipped_unhealthy:
                self.target(RETIRED).absorb(folded)
            # Its histograms are the bulk (~190 KB each): free them now, even if a stale
            # reference to the recorder lingers until the cycle collector runs.
            folded.release()

    @property
    def requests(self) -> int:
        return sum(t.requests for t in self.targets.values())

    @property
    def errors(self) -> int:
        return sum(t.errors for t in self.targets.values())

    def merged(self) -> tuple[LatencyHistogram, LatencyHistogram]:
        """(raw, corrected) over all targets, merged, never averaged."""
        raw = LatencyHistogram()
        corrected = LatencyHistogram()
        for rec in self.targets.values():
            if rec.requests:
                raw.merge(rec.raw)
                corrected.merge(rec.corrected)
        return raw, corrected

"""Tick-lag bookkeeping: how late each tick ran against its slot on the monotonic clock.

A fixed-bucket histogram (0.1 ms buckets up to 2 s) keeps memory flat for runs of any length;
a short deque answers "worst lag over the last 10 s" for live views.
"""

from __future__ import annotations

from collections import deque

BUCKET_MS = 0.1
TOP_MS = 2000.0
RECENT_SECONDS = 10.0


class LagRecorder:
    def __init__(self) -> None:
        self._buckets = [0] * (int(TOP_MS / BUCKET_MS) + 1)
        self._count = 0
        self._max_ms = 0.0
        self._recent: deque[tuple[float, float]] = deque()

    def record(self, now: float, lag_seconds: float) -> None:
        lag_ms = max(0.0, lag_seconds * 1000.0)
        self._count += 1
        self._max_ms = max(self._max_ms, lag_ms)
        self._buckets[min(len(self._buckets) - 1, int(lag_ms / BUCKET_MS))] += 1
        self._recent.append((now, lag_ms))
        while self._recent and now - self._recent[0][0] > RECENT_SECONDS:
            self._recent.popleft()

    @property
    def count(self) -> int:
        return self._count

    def max_ms(self) -> float:
        return self._max_ms

    def recent_max_ms(self) -> float:
        return max((lag for _, lag in self._recent), default=0.0)

    def percentile_ms(self, percentile: float) -> float:
        """Upper edge of the bucket holding the percentile (0 when nothing was recorded)."""
        if not self._count:
            return 0.0
        rank = max(1, round(percentile / 100.0 * self._count))
        seen = 0
        for index, count in enumerate(self._buckets):
            seen += count
            if seen >= rank:
                return min(self._max_ms, (index + 1) * BUCKET_MS)
        return self._max_ms

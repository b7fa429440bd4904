"""S(t): the time-of-day multiplier, read in the pattern's IANA time zone.

The wall clock is the local time of the real instant `start + elapsed` (zoneinfo), so a DST
change moves the schedule with the clock on the wall: on a spring-forward day the skipped hour
never matches, on a fall-back day the repeated hour matches twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from ..spec.model import ScheduleEntry

HOURS_PER_WEEK = 7 * 24
_BUCKET = 900.0  # seconds; every current UTC offset and transition is a multiple of 15 min
_MIXED = -1.0  # cache marker: the local hour changes inside this bucket, compute per call
_CACHE_LIMIT = 50_000


def weekly_table(entries: Sequence[ScheduleEntry]) -> tuple[float, ...]:
    """The winning multiplier for each (weekday, hour), index weekday * 24 + hour (Monday = 0).

    Highest priority wins; on a tie the later entry wins; an hour nothing matches gets 1.0.
    """
    table = [1.0] * HOURS_PER_WEEK
    best: list[int | None] = [None] * HOURS_PER_WEEK
    for entry in entries:
        hours = entry.hour_set()
        for day in entry.day_set():
            for hour in hours:
                slot = day * 24 + hour
                current = best[slot]
                if current is None or entry.priority >= current:
                    best[slot] = entry.priority
                    table[slot] = entry.multiplier
    return tuple(table)


class Schedule:
    """Multiplier at a POSIX timestamp; a small cache keeps a week of 1 s lookups cheap."""

    def __init__(self, entries: Sequence[ScheduleEntry], zone: ZoneInfo) -> None:
        self.zone = zone
        self._table = weekly_table(entries)
        self._flat = all(m == 1.0 for m in self._table)
        self._cache: dict[int, float] = {}

    def local_slot(self, timestamp: float) -> int:
        """weekday * 24 + hour of the wall clock in the schedule's zone at this instant."""
        local = datetime.fromtimestamp(timestamp, self.zone)
        return local.weekday() * 24 + local.hour

    def multiplier(self, timestamp: float) -> float:
        if self._flat:
            return 1.0
        bucket = math.floor(timestamp / _BUCKET)
        cached = self._cache.get(bucket)
        if cached is None:
            cached = self._bucket_value(bucket)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[bucket] = cached
        if cached != _MIXED:
            return cached
        return self._table[self.local_slot(timestamp)]

    def _bucket_value(self, bucket: int) -> float:
        # The answer is constant over the bucket when both of its ends share a local hour
        # (an offset change inside 15 minutes and back again does not happen).
        first = bucket * _BUCKET
        head = self.local_slot(first)
        tail = self.local_slot(first + _BUCKET - 1e-3)
        return self._table[head] if head == tail else _MIXED

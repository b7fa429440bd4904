"""Request counters the demo servers keep, so tests and the demo can count load at the server."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable

# Per-second bins kept; older ones are dropped so a long demo run stays small.
KEEP_SECONDS = 600


class RequestCounter:
    """Totals by key (path or gRPC method) and by protocol, plus per-second arrival bins."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.total = 0
        self.by_key: Counter[str] = Counter()
        self.by_protocol: Counter[str] = Counter()
        self._bins: dict[int, int] = {}
        self._key_bins: dict[tuple[str, int], int] = {}
        self._order: deque[int] = deque()

    def hit(self, key: str, protocol: str = "") -> None:
        """Count one request arriving now."""
        second = int(self._clock())
        self.total += 1
        self.by_key[key] += 1
        if protocol:
            self.by_protocol[protocol] += 1
        bins = self._bins
        if second in bins:
            bins[second] += 1
        else:
            bins[second] = 1
            self._order.append(second)
            self._prune(second)
        k = (key, second)
        self._key_bins[k] = self._key_bins.get(k, 0) + 1

    def _prune(self, now: int) -> None:
        while self._order and self._order[0] < now - KEEP_SECONDS:
            old = self._order.popleft()
            self._bins.pop(old, None)
        if len(self._key_bins) > 4 * KEEP_SECONDS:
            self._key_bins = {k: v for k, v in self._key_bins.items() if k[1] >= now - KEEP_SECONDS}

    def count(self, key: str | None = None) -> int:
        """All requests, or those for one key."""
        return self.total if key is None else self.by_key.get(key, 0)

    def per_second(self, key: str | None = None) -> dict[int, int]:
        """{unix second: arrivals} for the retained window, oldest first."""
        if key is None:
            return dict(sorted(self._bins.items()))
        return dict(sorted((s, n) for (k, s), n in self._key_bins.items() if k == key))

    def reset(self) -> None:
        self.total = 0
        self.by_key.clear()
        self.by_protocol.clear()
        self._bins.clear()
        self._key_bins.clear()
        self._order.clear()

    def snapshot(self) -> dict[str, object]:
        """JSON-ready view (served on the demo servers' /stats)."""
        return {
            "total": self.total,
            "byKey": dict(self.by_key),
            "byProtocol": dict(self.by_protocol),
            "perSecond": {str(s): n for s, n in self.per_second().items()},
        }

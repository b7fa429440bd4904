"""The operator's total TPS budget (`maxTotalTPS`) shared by every run it drives.

Each running LoadTest's controller hands its tick's rate (the curve's, after pause and safety)
to `limit` and pushes what comes back. When the latest asks of all runs sum above the ceiling,
every run gets the same share of its ask: `ask x ceiling / sum`. No run is starved and none
is favoured by arriving first, and a run alone under the ceiling is untouched. The sum uses
each other run's latest ask, at most one tick (100 ms) old: a run that rises between two ticks
of another can overshoot the ceiling for that one tick, never longer.

Lives on the operator's event loop (kopf's daemons share it); not thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable


class TpsBudget:
    """Proportional shares of `ceiling` (None: no ceiling, every ask passes)."""

    def __init__(self, ceiling: float | None) -> None:
        self.ceiling = ceiling
        self._asks: dict[str, float] = {}

    def limit(self, key: str, asked: float) -> float:
        """Record `key`'s ask and return the rate it may push now."""
        self._asks[key] = max(0.0, asked)
        return asked * self.factor()

    def factor(self) -> float:
        """The share every run gets now (1.0 while the asks fit)."""
        total = sum(self._asks.values())
        if self.ceiling is None or total <= self.ceiling:
            return 1.0
        return self.ceiling / total

    def release(self, key: str) -> None:
        """The run ended or left: its ask no longer counts."""
        self._asks.pop(key, None)

    def for_run(self, key: str) -> Callable[[float], float]:
        """The controller's `rate_limit` hook for one run."""
        return lambda asked: self.limit(key, asked)

"""The per-second story of a run: what the curve asked for and what the pods started.

Bins are whole unix seconds, because that is how the pods report their sends
(`sentPerSecond`) and how a target server or Prometheus counts; a point's `t` is the start of
its second relative to t = 0 (the first bin may start before t = 0 and is then clipped to it, so
the first and last bins can be partial). Both `target_tps` and `achieved_tps` are requests in
the bin, which equals the rate for a whole second.
"""

from __future__ import annotations

import math

from kar98k.results import SeriesPoint, TargetPoint

from .merge import Window


class SeriesBook:
    """Accumulates the commanded rate per second; latency/error figures per stats interval."""

    def __init__(self, start_unix: float) -> None:
        self.start_unix = start_unix
        self._target: dict[int, float] = {}
        self._spike: set[int] = set()
        self._windows: dict[int, Window] = {}

    def add_target(self, unix_from: float, unix_to: float, rate: float, spike: bool) -> None:
        """The rate held over [unix_from, unix_to), spread over the seconds it touches."""
        if unix_to <= unix_from:
            return
        second = math.floor(unix_from)
        while second < unix_to:
            overlap = min(unix_to, second + 1) - max(unix_from, second)
            if overlap > 0:
                self._target[second] = self._target.get(second, 0.0) + rate * overlap
                if spike:
                    self._spike.add(second)
            second += 1

    def add_window(self, window: Window) -> None:
        """Latency and error figures of one stats interval, for the seconds it covers."""
        for second in range(math.floor(window.unix_from), math.floor(window.unix_to) + 1):
            self._windows[second] = window

    def target_total(self) -> float:
        return math.fsum(self._target.values())

    def points(self, achieved: dict[int, int], last: int | None = None) -> list[SeriesPoint]:
        """Points from the first commanded second on; `last` keeps only the newest ones."""
        if not self._target:
            return []
        first = min(self._target)
        end = max(self._target)
        after = [s for s in achieved if s > end]
        if after:
            end = max(after)  # sends finishing during the drain
        seconds = range(first, end + 1)
        if last is not None:
            seconds = seconds[-last:]
        out: list[SeriesPoint] = []
        for second in seconds:
            window = self._windows.get(second)
            out.append(
                SeriesPoint(
                    t=max(0.0, second - self.start_unix),
                    unix_s=second,
                    target_tps=self._target.get(second, 0.0),
                    achieved_tps=float(achieved.get(second, 0)),
                    spike_active=second in self._spike,
                    p50_ms=window.corrected.p50 if window and window.requests else None,
                    p95_ms=window.corrected.p95 if window and window.requests else None,
                    p99_ms=window.corrected.p99 if window and window.requests else None,
                    error_rate=window.error_rate if window else None,
                    targets=_target_points(window),
                )
            )
        return out


def _target_points(window: Window | None) -> dict[str, TargetPoint]:
    if window is None:
        return {}
    return {
        name: TargetPoint(p95_ms=t.p95_ms, error_rate=t.error_rate)
        for name, t in window.targets.items()
    }

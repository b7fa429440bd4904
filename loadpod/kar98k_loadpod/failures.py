"""Time to failure of unanswered requests, per outcome: how long a refused, reset or timed-out
attempt took before it failed.

Latency histograms hold answered requests only (stats.UNANSWERED_OUTCOMES), so a failure's
duration has its own histogram: a 2 ms refusal and a 5 s timeout tell different stories, and
neither is a response time. Recorded on failure only, so the answered hot path pays nothing.
Memory is bounded: outcomes are a fixed set and each histogram is small (2 significant digits,
~26 KB of counts instead of the ~190 KB of a latency histogram), allocated at its first failure.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

from .histogram import HIGHEST_US, LOWEST_US, LatencyHistogram

FAILURE_DIGITS = 2
"""1 % resolution: plenty to tell a refusal from a timeout, at an eighth of the memory."""


def failure_histogram() -> LatencyHistogram:
    """An empty histogram of the time-to-failure shape (µs, 1 µs to 1 h, 2 digits)."""
    return LatencyHistogram(HdrHistogram(LOWEST_US, HIGHEST_US, FAILURE_DIGITS))


def decode_failures(encoded: str) -> LatencyHistogram:
    """A histogram from its wire form (empty text: an empty histogram)."""
    if not encoded:
        return failure_histogram()
    return LatencyHistogram(HdrHistogram.decode(encoded.encode("ascii")))


class FailureTimes:
    """Per outcome, the durations of attempts that failed without an answer."""

    __slots__ = ("by_outcome",)

    def __init__(self) -> None:
        self.by_outcome: dict[str, HdrHistogram] = {}

    def record(self, outcome: str, seconds: float) -> None:
        """One failed attempt that lasted `seconds` (clamped to the histogram's range)."""
        hist = self.by_outcome.get(outcome)
        if hist is None:
            hist = self.by_outcome[outcome] = HdrHistogram(LOWEST_US, HIGHEST_US, FAILURE_DIGITS)
        hist.record_value(min(max(int(seconds * 1_000_000), LOWEST_US), HIGHEST_US))

    def absorb(self, other: FailureTimes) -> None:
        for outcome, hist in other.by_outcome.items():
            mine = self.by_outcome.get(outcome)
            if mine is None:
                mine = self.by_outcome[outcome] = HdrHistogram(
                    LOWEST_US, HIGHEST_US, FAILURE_DIGITS
                )
            mine.add(hist)

    def encode(self) -> dict[str, str]:
        """Outcome -> compressed base64 HdrHistogram V2, as `TargetStats.time_to_failure`."""
        return {o: h.encode().decode("ascii") for o, h in sorted(self.by_outcome.items())}

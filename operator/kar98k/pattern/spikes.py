"""P(t): Poisson-timed spikes (random and manual), each a rise, a hold and a decay.

Random spike k starts `gap_k` after the end of spike k-1 (the first gap counts from t = 0).
`gap_k = clamp(-mean · ln(u_k), minInterval, maxInterval)` with `u_k` a counter-based uniform
draw, so spike k depends only on (seed, k) and on the spikes before it. Spikes are generated
lazily, in order, and kept: finding the spike that covers t is a bisect.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

from ..spec.model import Spikes
from .streams import uniform

_STREAM = "spike-gap"


@dataclass(frozen=True, slots=True)
class SpikeShape:
    """Linear rise 1 -> factor over `rise`, `hold` at factor, linear decay to 1 over `fall`."""

    rise: float
    hold: float
    fall: float

    @property
    def length(self) -> float:
        return self.rise + self.hold + self.fall

    def multiplier(self, offset: float, factor: float) -> float:
        """P at `offset` seconds after the spike started (1.0 outside the spike)."""
        if offset < 0 or offset >= self.length:
            return 1.0
        if offset < self.rise:
            return 1.0 + (factor - 1.0) * offset / self.rise
        offset -= self.rise
        if offset < self.hold:
            return factor
        offset -= self.hold
        if self.fall <= 0:
            return 1.0
        # max(): rounding in `offset - rise - hold` must never dip below 1.
        return max(1.0, factor - (factor - 1.0) * offset / self.fall)


@dataclass(frozen=True, slots=True)
class SpikeHit:
    """What the spikes contribute at one instant."""

    multiplier: float
    active: bool


NO_SPIKE = SpikeHit(1.0, False)


class RandomSpikes:
    """The seeded spike train of a pattern; `at(t)` is pure in t."""

    def __init__(self, spikes: Spikes, seed: int) -> None:
        self.shape = SpikeShape(spikes.ramp_up, spikes.duration, spikes.ramp_down)
        self.factor = spikes.factor
        self._seed = seed
        self._mean = spikes.mean_gap
        self._min = spikes.min_interval
        self._max = math.inf if spikes.max_interval is None else spikes.max_interval
        # A spike of zero length never covers any instant: nothing to generate.
        self.enabled = spikes.enabled and math.isfinite(self._mean) and self.shape.length > 0
        self._starts: list[float] = []
        self._next_from = 0.0  # where the next gap is counted from (end of the last spike)

    def gap(self, index: int) -> float:
        """The gap before spike `index`: clamped exponential, a function of (seed, index)."""
        drawn = -self._mean * math.log(uniform(self._seed, _STREAM, index))
        return min(max(drawn, self._min), self._max)

    def starts_until(self, elapsed: float) -> list[float]:
        """Start times of every spike starting at or before `elapsed` (plus possibly one more)."""
        starts = self._starts
        length = self.shape.length
        while not starts or starts[-1] <= elapsed:
            start = self._next_from + self.gap(len(starts))
            starts.append(start)
            self._next_from = start + length
        return starts

    def at(self, elapsed: float) -> SpikeHit:
        if not self.enabled or elapsed < 0:
            return NO_SPIKE
        starts = self._starts
        if not starts or starts[-1] <= elapsed:
            starts = self.starts_until(elapsed)
        index = bisect_right(starts, elapsed) - 1
        if index < 0:
            return NO_SPIKE
        offset = elapsed - starts[index]
        if offset >= self.shape.length:
            return NO_SPIKE
        return SpikeHit(self.shape.multiplier(offset, self.factor), True)


@dataclass(frozen=True, slots=True)
class ManualSpike:
    """A spike injected by an operator (CLI key, API call) at a fixed elapsed time."""

    start: float
    factor: float
    shape: SpikeShape

    def at(self, elapsed: float) -> SpikeHit:
        offset = elapsed - self.start
        if offset < 0 or offset >= self.shape.length:
            return NO_SPIKE
        return SpikeHit(self.shape.multiplier(offset, self.factor), True)


def combine(first: SpikeHit, second: SpikeHit) -> SpikeHit:
    """Overlapping spikes do not multiply: the larger multiplier wins."""
    if not second.active:
        return first
    if not first.active:
        return second
    return SpikeHit(max(first.multiplier, second.multiplier), True)

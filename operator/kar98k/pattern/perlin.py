"""Perlin-style noise: smooth, deterministic 1-D gradient noise from the seed.

Each octave puts a random gradient g_i in [-1, 1] at lattice points i (every `period` s) and
blends the two neighbouring ramps g_i·f and g_(i+1)·(f-1) with the quintic fade
6f⁵ - 15f⁴ + 10f³, which is C2-smooth and zero at every lattice point. Three octaves (periods
30 s, 15 s, 7.5 s; weights 1, 1/2, 1/4) are summed. Gradients are counter-based draws of
(seed, octave, i), so the value at any t is a pure function of (seed, t), with no stepping.
"""

from __future__ import annotations

import math

from .streams import uniform

BASE_PERIOD = 30.0
WEIGHTS = (1.0, 0.5, 0.25)  # octave o has period BASE_PERIOD / 2**o
OCTAVES = len(WEIGHTS)
# |one octave| <= 1/2, so the weighted sum is within ±(1 + 1/2 + 1/4)/2 = ±0.875. Dividing by
# it maps onto [-1, 1]; GAIN then stretches the typical value before tanh so the spread is
# close to the spring noise's (measured: the sum's standard deviation is about 0.18).
_PEAK = sum(WEIGHTS) / 2
GAIN = 2.8
_CACHE_LIMIT = 4096


def fade(f: float) -> float:
    return f * f * f * (f * (f * 6.0 - 15.0) + 10.0)


class PerlinNoise:
    """N(t) = 1 + amplitude · tanh(GAIN · fbm(t)); |N - 1| < amplitude always."""

    def __init__(self, seed: int, amplitude: float) -> None:
        self._seed = seed
        self._amplitude = amplitude
        self._gradients: list[dict[int, float]] = [{} for _ in range(OCTAVES)]

    def gradient(self, octave: int, index: int) -> float:
        cache = self._gradients[octave]
        value = cache.get(index)
        if value is None:
            value = 2.0 * uniform(self._seed, f"perlin-{octave}", index) - 1.0
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[index] = value
        return value

    def octave(self, octave: int, elapsed: float) -> float:
        """One octave in [-1/2, 1/2]."""
        position = elapsed * (1 << octave) / BASE_PERIOD
        index = math.floor(position)
        f = position - index
        left = self.gradient(octave, index) * f
        right = self.gradient(octave, index + 1) * (f - 1.0)
        return left + fade(f) * (right - left)

    def fbm(self, elapsed: float) -> float:
        """Weighted octave sum, scaled onto [-1, 1]."""
        total = 0.0
        for octave, weight in enumerate(WEIGHTS):
            total += weight * self.octave(octave, elapsed)
        return total / _PEAK

    def at(self, elapsed: float) -> float:
        return 1.0 + self._amplitude * math.tanh(GAIN * self.fbm(max(0.0, elapsed)))

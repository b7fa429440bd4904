"""N(t): pick the noise source a pattern asks for (none, spring or perlin)."""

from __future__ import annotations

from typing import Protocol

from ..spec.model import Noise, NoiseType
from .perlin import PerlinNoise
from .spring import SpringNoise


class NoiseSource(Protocol):
    def at(self, elapsed: float) -> float:
        """Multiplier around 1, within [1 - amplitude, 1 + amplitude]; pure in `elapsed`."""
        ...


class NoNoise:
    def at(self, elapsed: float) -> float:
        return 1.0


def noise_source(noise: Noise, seed: int) -> NoiseSource:
    if not noise.enabled or noise.amplitude == 0:
        return NoNoise()
    if noise.type is NoiseType.PERLIN:
        return PerlinNoise(seed, noise.amplitude)
    return SpringNoise(seed, noise.amplitude)

"""The pattern engine: rate(t) = clamp(baseTPS · R · S · P · N, minTPS, maxTPS).

`at(elapsed)` is a pure function of (pattern, seed, start, manual spikes, elapsed): the
controller's 100 ms tick, `kar98k simulate` and a restarted operator all read the same curve.
Internal caches only memoise; nothing advances on a read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ..spec.model import Pattern
from .noise import noise_source
from .ramp import ramp
from .schedule import Schedule
from .spikes import ManualSpike, RandomSpikes, SpikeShape, combine


@dataclass(frozen=True, slots=True)
class PatternPoint:
    """The target rate at one instant and the factors it is made of."""

    elapsed: float  # seconds since t = 0
    rate: float  # clamped target rate, req/s
    ramp: float  # R(t) in [0, 1]
    schedule: float  # S(t)
    spike: float  # P(t) >= 1
    noise: float  # N(t) in [1 - amplitude, 1 + amplitude]
    spike_active: bool


def row_count(duration: float, step: float) -> int:
    """Steps in [0, duration): one per `step`, tolerant of float rounding (1h / 1s -> 3600)."""
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    if not duration > 0:
        raise ValueError(f"duration must be > 0, got {duration}")
    return int(duration / step + 1e-9)


class PatternEngine:
    """Target rate over elapsed time for one pattern, seed and start instant."""

    def __init__(self, pattern: Pattern, *, seed: int, start: datetime) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        self.pattern = pattern
        self.seed = seed
        self.start = start.astimezone(UTC)
        self.zone = ZoneInfo(pattern.time_zone)
        self._start_ts = self.start.timestamp()
        self._base = pattern.base_tps
        self._floor = pattern.min_tps
        self._ceiling = pattern.ceiling
        self._ramp_up = pattern.ramp_up
        self._schedule = Schedule(pattern.schedule, self.zone)
        self._spikes = RandomSpikes(pattern.spikes, seed)
        self._manual: list[ManualSpike] = []
        self._noise = noise_source(pattern.noise, seed)

    def add_manual_spike(self, at: float, factor: float, duration: float) -> None:
        """Inject a spike starting at elapsed `at`: the pattern's rise, `duration` at `factor`,
        the pattern's decay. It combines with random spikes by max() and does not move them."""
        if at < 0 or factor < 1 or duration < 0:
            raise ValueError(
                f"manual spike needs at >= 0, factor >= 1, duration >= 0; got {at}, {factor}, "
                f"{duration}"
            )
        spikes = self.pattern.spikes
        shape = SpikeShape(spikes.ramp_up, duration, spikes.ramp_down)
        self._manual.append(ManualSpike(at, factor, shape))

    def wall_time(self, elapsed: float) -> datetime:
        """The instant `start + elapsed` on the pattern's time zone's wall clock."""
        return datetime.fromtimestamp(self._start_ts + elapsed, self.zone)

    def at(self, elapsed: float) -> PatternPoint:
        """The point at `elapsed` seconds after start (negative times read as 0)."""
        elapsed = float(elapsed) if elapsed > 0 else 0.0
        r = ramp(elapsed, self._ramp_up)
        s = self._schedule.multiplier(self._start_ts + elapsed)
        hit = self._spikes.at(elapsed)
        for manual in self._manual:
            hit = combine(hit, manual.at(elapsed))
        n = self._noise.at(elapsed)
        rate = self._base * r * s * hit.multiplier * n
        if r >= 1.0 and rate < self._floor:
            rate = self._floor  # the floor only once the ramp is over: the ramp starts at 0
        rate = min(rate, self._ceiling)
        return PatternPoint(elapsed, rate, r, s, hit.multiplier, n, hit.active)

    def series(self, duration: float, step: float) -> Iterator[PatternPoint]:
        """Points at 0, step, 2·step, … : exactly duration/step of them."""
        for index in range(row_count(duration, step)):
            yield self.at(index * step)

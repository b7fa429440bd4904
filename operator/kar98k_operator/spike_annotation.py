"""The `kar98k.dev/spike` annotation: `factor=3,duration=30s` asks for one manual spike.

The operator records the value it acted on in `status.spike.acknowledged`; only a different value
fires again (add e.g. `id=2` to repeat the same spike), so a restart or a re-sync never repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kar98k_loadpod.durations import parse_duration

MAX_FACTOR = 100.0
MAX_DURATION = 24 * 3600.0


@dataclass(frozen=True)
class SpikeRequest:
    factor: float
    duration: float


def parse_spike(value: str) -> SpikeRequest:
    """Parse the annotation; ValueError says what is wrong in user terms."""
    fields: dict[str, str] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        key, sep, raw = part.partition("=")
        key = key.strip().lower()
        if not sep or not raw.strip():
            raise ValueError(f"expected key=value pairs like 'factor=3,duration=30s', got {part!r}")
        if key not in ("factor", "duration", "id"):
            raise ValueError(f"unknown key {key!r} (known: factor, duration, id)")
        fields[key] = raw.strip()
    if "factor" not in fields:
        raise ValueError("factor is required, e.g. 'factor=3,duration=30s'")
    try:
        factor = float(fields["factor"])
    except ValueError:
        raise ValueError(f"factor must be a number, got {fields['factor']!r}") from None
    if not 1 <= factor <= MAX_FACTOR:
        raise ValueError(f"factor must be >= 1 and <= {MAX_FACTOR:g}, got {factor:g}")
    duration = parse_duration(fields.get("duration", "30s"))
    if not 0 < duration <= MAX_DURATION:
        raise ValueError(f"duration must be > 0 and <= 24h, got {fields.get('duration')!r}")
    return SpikeRequest(factor, duration)

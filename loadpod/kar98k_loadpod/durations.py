"""Go-style duration strings ("250ms", "90s", "1h30m") used throughout the spec and plans."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = r"(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h)"
DURATION_PATTERN = rf"^(?:{_PART})+$"
MAX_DURATION_S = 366 * 24 * 3600.0
"""No duration anywhere may exceed a year: far beyond any real use, far inside float and timers."""
_MAX_TEXT = 64
_WHOLE = re.compile(DURATION_PATTERN)
_PARTS = re.compile(_PART)


def parse_duration(text: str) -> float:
    """Return seconds for a Go-style duration; "0" alone is accepted as zero."""
    value = text.strip()
    if value == "0":
        return 0.0
    if len(value) > _MAX_TEXT or not _WHOLE.match(value):
        shown = text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."
        raise ValueError(f"must be a duration such as '250ms', '90s' or '1h30m', got {shown!r}")
    return _bounded(sum(float(num) * _UNITS[unit] for num, unit in _PARTS.findall(value)))


def _bounded(seconds: float) -> float:
    if not math.isfinite(seconds) or seconds > MAX_DURATION_S:
        raise ValueError(f"must be a finite duration of at most {MAX_DURATION_S / 86400:g} days")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds back as the shortest readable Go-style string."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        millis = seconds * 1000
        return f"{millis:g}ms"
    whole = int(seconds)
    frac = seconds - whole
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs or frac or not out:
        out += f"{secs + frac:g}s"
    return out


def _coerce(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"must be a duration string such as '90s', got {value!r}")
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float):
        # Python callers may pass seconds directly; YAML/JSON users write strings.
        if isinstance(value, float) and math.isnan(value):
            raise ValueError("must be a finite duration, got NaN")
        if value < 0:
            raise ValueError("must be >= 0")
        if value > MAX_DURATION_S:  # also huge ints, which float() could not even convert
            return _bounded(math.inf)
        return float(value)
    raise ValueError(f"must be a duration string such as '90s', got {value!r}")


Duration = Annotated[
    float,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 64,
            "pattern": r"^(0|((\d+(\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h))+)$",
        }
    ),
]
"""Seconds as float in Python; a Go-style string on the wire and in the schema."""

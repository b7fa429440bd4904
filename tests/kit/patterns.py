"""Small builders shared by the pattern tests (plain module, imported by name)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kar98k.pattern import PatternEngine
from kar98k.spec.model import Pattern

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)


def make_pattern(**fields: Any) -> Pattern:
    """A Pattern from camelCase wire fields; baseTPS defaults to 100."""
    data: dict[str, Any] = {"baseTPS": 100}
    data.update(fields)
    return Pattern.model_validate(data)


def make_engine(seed: int = 7, start: datetime = MONDAY, **fields: Any) -> PatternEngine:
    return PatternEngine(make_pattern(**fields), seed=seed, start=start)

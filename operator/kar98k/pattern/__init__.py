"""The pattern engine: a deterministic target-rate curve from a LoadTest's `spec.pattern`."""

from .engine import PatternEngine, PatternPoint, row_count
from .integrate import expected_requests

__all__ = ["PatternEngine", "PatternPoint", "expected_requests", "row_count"]

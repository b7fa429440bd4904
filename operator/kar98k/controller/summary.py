"""Moved to `kar98k.results`; kept only while tests/operator still import it from here."""

from kar98k.results import (
    Check,
    ControllerFigures,
    LatencyPair,
    LatencySummary,
    LiveStatus,
    PodSummary,
    RunSummary,
    SeriesPoint,
    TargetSummary,
)

__all__ = [
    "Check",
    "ControllerFigures",
    "LatencyPair",
    "LatencySummary",
    "LiveStatus",
    "PodSummary",
    "RunSummary",
    "SeriesPoint",
    "TargetSummary",
]

"""The simulated curve as records (CSV and JSON) and as a summary (table and PNG)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ..pattern import PatternEngine, PatternPoint

COLUMNS = (
    "elapsed_s",
    "timestamp",
    "target_tps",
    "spike_active",
    "schedule_multiplier",
    "spike_multiplier",
    "noise_multiplier",
    "ramp",
)


def _elapsed(value: float) -> int | float:
    rounded = round(value, 6)
    return int(rounded) if rounded.is_integer() else rounded


def records(
    engine: PatternEngine, points: Iterable[PatternPoint], step: float
) -> Iterator[dict[str, Any]]:
    """One dict per point, rounded so output is stable and readable.

    Timestamps are the wall clock of the pattern's time zone (ISO 8601 with offset), the clock
    the schedule is read in; milliseconds appear only when the step is not whole seconds.
    """
    timespec = "seconds" if float(step).is_integer() else "milliseconds"
    for point in points:
        yield {
            "elapsed_s": _elapsed(point.elapsed),
            "timestamp": engine.wall_time(point.elapsed).isoformat(timespec=timespec),
            "target_tps": round(point.rate, 4),
            "spike_active": point.spike_active,
            "schedule_multiplier": round(point.schedule, 6),
            "spike_multiplier": round(point.spike, 6),
            "noise_multiplier": round(point.noise, 6),
            "ramp": round(point.ramp, 6),
        }


def write_csv(rows: Iterable[dict[str, Any]], stream: TextIO) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            [
                ("true" if v else "false") if isinstance(v, bool) else v
                for v in (row[c] for c in COLUMNS)
            ]
        )


def write_json(rows: Iterable[dict[str, Any]], stream: TextIO) -> None:
    """A JSON list of objects, one per line, so diffs and `head` stay readable."""
    stream.write("[")
    separator = "\n"
    for row in rows:
        stream.write(separator + json.dumps(row))
        separator = ",\n"
    stream.write("\n]\n")


@dataclass(frozen=True)
class CurveSummary:
    rows: int
    mean: float
    minimum: float
    maximum: float
    peak_at: float  # elapsed seconds of the first maximum
    spikes: int  # spike periods seen (one in progress at t = 0 counts)
    requests: float  # ∑ rate · step: what the controller would ask for


def spike_periods(points: Sequence[PatternPoint]) -> list[tuple[float, float]]:
    """(first, last) elapsed of each run of consecutive spike-active points."""
    periods: list[tuple[float, float]] = []
    first: float | None = None
    last = 0.0
    for point in points:
        if point.spike_active:
            if first is None:
                first = point.elapsed
            last = point.elapsed
        elif first is not None:
            periods.append((first, last))
            first = None
    if first is not None:
        periods.append((first, last))
    return periods


def summarize(points: Sequence[PatternPoint], step: float) -> CurveSummary:
    if not points:
        return CurveSummary(0, 0.0, 0.0, 0.0, 0.0, 0, 0.0)
    rates = [p.rate for p in points]
    peak = max(range(len(rates)), key=rates.__getitem__)
    return CurveSummary(
        rows=len(points),
        mean=math.fsum(rates) / len(rates),
        minimum=min(rates),
        maximum=rates[peak],
        peak_at=points[peak].elapsed,
        spikes=len(spike_periods(points)),
        requests=math.fsum(rates) * step,
    )


@dataclass(frozen=True)
class Simulation:
    """Everything the table and the plot need."""

    engine: PatternEngine
    points: Sequence[PatternPoint]
    step: float
    summary: CurveSummary
    title: str

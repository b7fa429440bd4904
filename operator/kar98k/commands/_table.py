"""`--format table`: a compact, bucketed view of the curve and a summary, for people."""

from __future__ import annotations

import math
from typing import TextIO

from kar98k_loadpod.durations import format_duration
from rich.console import Console
from rich.table import Table

from ._curve import Simulation

MAX_ROWS = 24
_NICE = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
_BAR = 24


def bucket_size(count: int, step: float) -> int:
    """Points per table row: a 'nice' width (1m, 5m, 1h…) giving at most MAX_ROWS rows."""
    needed = math.ceil(count / MAX_ROWS)
    for seconds in (*_NICE, *(86400 * d for d in (1, 2, 7))):
        per = seconds / step
        if per >= needed and abs(per - round(per)) < 1e-9:
            return round(per)
    return needed


def render_table(sim: Simulation, stream: TextIO) -> None:
    engine, points, step, summary = sim.engine, sim.points, sim.step, sim.summary
    console = Console(file=stream, width=110, highlight=False, soft_wrap=False)
    size = bucket_size(len(points), step)
    span_days = points[-1].elapsed - points[0].elapsed >= 86400 if points else False
    table = Table(title=sim.title, title_justify="left", show_edge=False, pad_edge=False)
    for name, justify in (
        ("time", "left"),
        ("elapsed", "right"),
        ("mean req/s", "right"),
        ("min", "right"),
        ("max", "right"),
        ("schedule", "right"),
        ("spike", "right"),
        ("", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    top = summary.maximum or 1.0
    for first in range(0, len(points), size):
        chunk = points[first : first + size]
        rates = [p.rate for p in chunk]
        mean = math.fsum(rates) / len(rates)
        wall = engine.wall_time(chunk[0].elapsed)
        spike = max(p.spike for p in chunk)
        table.add_row(
            wall.strftime("%a %d %H:%M" if span_days else "%H:%M:%S"),
            format_duration(chunk[0].elapsed),
            f"{mean:.1f}",
            f"{min(rates):.1f}",
            f"{max(rates):.1f}",
            f"×{chunk[0].schedule:g}",
            f"×{spike:.2f}" if any(p.spike_active for p in chunk) else "",
            "█" * max(0, round(_BAR * mean / top)),
        )
    console.print(table)
    peak_wall = engine.wall_time(summary.peak_at).strftime("%a %H:%M:%S")
    console.print(
        f"\n{summary.rows} points every {format_duration(step)} · mean {summary.mean:.1f} req/s"
        f" · min {summary.minimum:.1f} · max {summary.maximum:.1f} (peak {peak_wall},"
        f" +{format_duration(summary.peak_at)}) · spikes {summary.spikes}"
        f" · ≈{summary.requests:,.0f} requests"
    )

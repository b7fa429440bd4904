"""`--format png`: the curve as a picture (needs the optional `png` extra: matplotlib)."""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from kar98k_loadpod.durations import format_duration

from ._curve import Simulation, spike_periods

MAX_PLOTTED = 4000  # beyond this, plot per-bucket mean with a min-max band
MAX_SHADED = 80  # spike periods shaded at most


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _matplotlib() -> tuple[Any, Any]:
    """pyplot and matplotlib.dates, on the non-interactive Agg backend."""
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        return importlib.import_module("matplotlib.pyplot"), importlib.import_module(
            "matplotlib.dates"
        )
    except ImportError as exc:
        raise PlotUnavailable(
            "PNG output needs matplotlib: pip install 'kar98k[png]' (or use --format csv)"
        ) from exc


def _buckets(values: Sequence[float], size: int) -> tuple[list[float], list[float], list[float]]:
    means, lows, highs = [], [], []
    for first in range(0, len(values), size):
        chunk = values[first : first + size]
        means.append(math.fsum(chunk) / len(chunk))
        lows.append(min(chunk))
        highs.append(max(chunk))
    return means, lows, highs


def write_png(sim: Simulation, path: Path) -> None:
    plt, mdates = _matplotlib()
    engine, points, step, summary = sim.engine, sim.points, sim.step, sim.summary
    zone = engine.zone
    origin = float(mdates.date2num(engine.start))

    def x_of(elapsed: float) -> float:
        return origin + elapsed / 86400.0

    fig, ax = plt.subplots(figsize=(13, 5.5), dpi=120)
    rates = [p.rate for p in points]
    size = max(1, math.ceil(len(points) / MAX_PLOTTED))
    xs = [x_of(points[i].elapsed) for i in range(0, len(points), size)]
    if size == 1:
        ax.plot(xs, rates, color="#1f5fbf", linewidth=1.1, label="target rate")
        ax.fill_between(xs, rates, color="#1f5fbf", alpha=0.08)
    else:
        means, lows, highs = _buckets(rates, size)
        ax.fill_between(xs, lows, highs, color="#1f5fbf", alpha=0.18, label="min-max")
        ax.plot(xs, means, color="#1f5fbf", linewidth=0.7, label="target rate (mean)")

    periods = spike_periods(points)
    if len(periods) <= MAX_SHADED:  # past that, shading turns the plot orange, not clearer
        for number, (first, last) in enumerate(periods):
            ax.axvspan(
                x_of(first),
                x_of(last + step),
                color="#f28e2b",
                alpha=0.22,
                linewidth=0,
                label="spike" if number == 0 else None,
            )

    pattern = engine.pattern
    ax.axhline(pattern.base_tps, color="#555555", linestyle="--", linewidth=0.9, label="baseTPS")
    if pattern.ceiling <= summary.maximum * 1.25:
        ax.axhline(pattern.ceiling, color="#c0392b", linestyle=":", linewidth=1.2, label="maxTPS")
    if pattern.min_tps > 0:
        ax.axhline(pattern.min_tps, color="#8e44ad", linestyle=":", linewidth=1.0, label="minTPS")
    ax.set_ylim(0, max(summary.maximum, pattern.base_tps) * 1.12)
    ax.set_ylabel("target rate (req/s)")
    ax.grid(alpha=0.25)

    schedule = ax.twinx()
    sched_x = [x_of(points[i].elapsed) for i in range(0, len(points), size)]
    sched_y = [points[i].schedule for i in range(0, len(points), size)]
    schedule.step(
        sched_x, sched_y, where="post", color="#2e8b57", linewidth=1.3, alpha=0.85, label="schedule"
    )
    schedule.set_ylabel("schedule multiplier", color="#2e8b57")
    schedule.tick_params(axis="y", colors="#2e8b57")
    schedule.set_ylim(0, max(*sched_y, 1.0) * 1.4)

    locator = mdates.AutoDateLocator(tz=zone)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=zone))
    ax.set_xlim(x_of(0), x_of(points[-1].elapsed + step))
    ax.set_xlabel(f"wall clock ({zone.key})")

    end = engine.start + timedelta(seconds=points[-1].elapsed + step)
    ax.set_title(sim.title, loc="left", fontsize=12, fontweight="bold")
    ax.set_title(
        f"mean {summary.mean:.0f} · max {summary.maximum:.0f} req/s · {summary.spikes} spikes"
        f" · ≈{summary.requests:,.0f} requests · {format_duration(step)} steps until"
        f" {end.astimezone(zone):%Y-%m-%d %H:%M}",
        loc="right",
        fontsize=9,
        color="#555555",
    )
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = schedule.get_legend_handles_labels()
    ax.legend(handles + more_handles, labels + more_labels, loc="upper left", fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

"""The HTML report's per-target charts: latency (p95) and error rate over time, one line per
target, the run's p95 threshold drawn across the latency chart when the spec sets one.

A run-wide p95 can hide one slow target behind five fast ones; one line per target shows which
target breaks and when. Targets are bounded by the spec's limit, and so are the lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kar98k.results import TargetPoint

from .charts import Bucket, empty_chart, latency_scale, spike_shading, spike_spans, time_scale
from .svg import Frame, Scale, el, esc, linear_ticks, svg, text, time_ticks, title, x_axis, y_axis

TARGET_LATENCY_CHART_ID = "chart-target-latency"
TARGET_ERRORS_CHART_ID = "chart-target-errors"
PALETTE_SIZE = 8
"""Colour slots for target lines (`.tl0` … `.tl7` in the stylesheet), reused beyond eight."""

Getter = Callable[[TargetPoint], float | None]


def target_latency_chart(bs: Sequence[Bucket], threshold_ms: float | None) -> str:
    """p95 (corrected) per target over time, on a log axis when targets differ by more than
    30×; the p95 threshold as a dashed line."""
    return _per_target(
        bs,
        TARGET_LATENCY_CHART_ID,
        "p95 latency over time per target",
        lambda t: t.p95_ms,
        unit="p95 latency ms",
        fmt=lambda v: f"{v:,.1f} ms",
        threshold=threshold_ms,
        log_able=True,
    )


def target_errors_chart(bs: Sequence[Bucket]) -> str:
    """Error rate per target over time, in percent."""
    return _per_target(
        bs,
        TARGET_ERRORS_CHART_ID,
        "Error rate over time per target",
        lambda t: None if t.error_rate is None else t.error_rate * 100.0,
        unit="errors %",
        fmt=lambda v: f"{v:.2f} %",
        threshold=None,
        log_able=False,
    )


def _per_target(
    bs: Sequence[Bucket],
    chart_id: str,
    label: str,
    get: Getter,
    *,
    unit: str,
    fmt: Callable[[float], str],
    threshold: float | None,
    log_able: bool,
) -> str:
    frame = Frame(top=28)
    names = sorted({name for b in bs for name in b.targets})
    values = [v for b in bs for t in b.targets.values() if (v := get(t)) is not None]
    if not values:
        return empty_chart(chart_id, frame, label, "no per-target figures recorded")
    xs, end = time_scale(bs, frame)
    drawn = [*values, threshold] if threshold is not None else values
    if log_able:
        ys, yt, unit = latency_scale(drawn, frame, unit)
    else:
        yt = linear_ticks(max(drawn) * 1.05)
        ys = Scale(0.0, yt[-1], frame.y0, frame.y1)
    lines = [
        _target_path(bs, name, get, (xs, ys), cls=f"tline tl{i % PALETTE_SIZE}", fmt=fmt)
        for i, name in enumerate(names)
    ]
    legend = _legend(frame, names)
    limit = _threshold_line(threshold, ys, frame, fmt) if threshold is not None else ""
    return svg(
        chart_id,
        frame,
        label,
        spike_shading(spike_spans(bs), xs, frame),
        y_axis(frame, ys, yt, unit),
        x_axis(frame, xs, time_ticks(end), unit="time since start"),
        limit,
        *lines,
        legend,
    )


def _target_path(
    bs: Sequence[Bucket],
    name: str,
    get: Getter,
    scales: tuple[Scale, Scale],
    *,
    cls: str,
    fmt: Callable[[float], str],
) -> str:
    """One <path> per target: a missing bin lifts the pen (M), so gaps stay gaps."""
    xs, ys = scales
    parts: list[str] = []
    pen_down = False
    worst: float | None = None
    for b in bs:
        point = b.targets.get(name)
        value = get(point) if point is not None else None
        if value is None:
            pen_down = False
            continue
        worst = value if worst is None else max(worst, value)
        x, y = xs(b.t + b.width / 2), ys(value)
        parts.append(f"{'L' if pen_down else 'M'}{x:.2f},{y:.2f}")
        pen_down = True
    if not parts:
        return ""
    if all(p.startswith("M") for p in parts):  # lone points: draw them visibly
        parts = [f"{p} h0.01" for p in parts]
    summary = f"{name}: worst {fmt(worst)}" if worst is not None else name
    return el("path", {"d": " ".join(parts), "class": cls, "data-target": name}, title(summary))


def _threshold_line(value: float, ys: Scale, frame: Frame, fmt: Callable[[float], str]) -> str:
    y = ys(value)
    return el(
        "g",
        {"class": "threshold"},
        el("line", {"x1": frame.x0, "x2": frame.x1, "y1": y, "y2": y, "class": "threshold"}),
        text(frame.x1 - 4, y - 5, f"threshold {fmt(value)}", "threshold-label", "end"),
    )


def _legend(frame: Frame, names: Sequence[str]) -> str:
    """Target names above the plot, left to right; long lists are cut with their count."""
    out: list[str] = []
    x = frame.x0
    for i, name in enumerate(names):
        shown = name if len(name) <= 18 else name[:17] + "…"
        width = 7.2 * len(shown) + 26
        if x + width > frame.x1:
            out.append(text(x, 11, f"+{len(names) - i} more", "legend", "start"))
            break
        cls = f"swatch tl{i % PALETTE_SIZE}"
        out.append(el("rect", {"x": x, "y": 2, "width": 14, "height": 10, "rx": 2, "class": cls}))
        out.append(el("text", {"x": x + 19, "y": 11, "class": "legend"}, esc(shown), title(name)))
        x += width
    return el("g", {"class": "legend"}, *out)

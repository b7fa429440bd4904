"""The HTML report's three inline-SVG charts: rate, latency over time, outcomes by target."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from kar98k.results import SeriesPoint, TargetPoint, TargetSummary

from .svg import (
    Frame,
    Scale,
    el,
    esc,
    fmt_time,
    linear_ticks,
    log_ticks,
    points,
    svg,
    text,
    time_ticks,
    title,
    x_axis,
    y_axis,
)

RATE_CHART_ID = "chart-rate"
LATENCY_CHART_ID = "chart-latency"
OUTCOMES_CHART_ID = "chart-outcomes"
MAX_POINTS = 1200
MIN_BIN_S = 0.25
_LOG_WHEN_RATIO = 30.0
_SUCCESS_ORDER = ("2xx", "grpc_OK", "3xx", "1xx")
_ERROR_ORDER = ("4xx", "5xx", "timeout", "connect_error", "error")


@dataclass(frozen=True)
class Bucket:
    """One plotted step: a second, or a few seconds merged when the run is long."""

    t: float
    width: float
    target: float
    achieved: float
    spike: bool
    p50: float | None
    p95: float | None
    p99: float | None
    targets: dict[str, TargetPoint] = field(default_factory=dict)  # worst of the merged bins


def buckets(
    series: Sequence[SeriesPoint], duration: float = 0.0, max_points: int = MAX_POINTS
) -> list[Bucket]:
    """Points to plot, as rates over each bin's real width.

    Bins are whole unix seconds, so the first and last of a run are partial and hold counts for
    less than a second; dividing by the width keeps them from looking like a dip. Slivers under
    MIN_BIN_S are left out (a few requests in 50 ms are no rate). Long runs merge consecutive bins
    so a day-long run stays a light file: rates over the merged time, latency the worst bin (a
    mean would hide the tail).
    """
    pts = sorted(series, key=lambda p: p.t)
    widths = _widths(pts, duration)
    kept = [(p, w) for p, w in zip(pts, widths, strict=True) if w >= MIN_BIN_S]
    size = max(1, math.ceil(len(kept) / max_points))
    out = []
    for i in range(0, len(kept), size):
        group = kept[i : i + size]
        span = sum(w for _, w in group)
        first, (last, last_w) = group[0][0], group[-1]
        out.append(
            Bucket(
                t=first.t,
                width=last.t + last_w - first.t,
                target=sum(p.target_tps for p, _ in group) / span,
                achieved=sum(p.achieved_tps for p, _ in group) / span,
                spike=any(p.spike_active for p, _ in group),
                p50=_worst(p.p50_ms for p, _ in group),
                p95=_worst(p.p95_ms for p, _ in group),
                p99=_worst(p.p99_ms for p, _ in group),
                targets=_worst_targets([p for p, _ in group]),
            )
        )
    return out


def _worst_targets(group: Sequence[SeriesPoint]) -> dict[str, TargetPoint]:
    names = sorted({name for p in group for name in p.targets})
    return {
        name: TargetPoint(
            p95_ms=_worst(p.targets[name].p95_ms for p in group if name in p.targets),
            error_rate=_worst(p.targets[name].error_rate for p in group if name in p.targets),
        )
        for name in names
    }


def _widths(pts: Sequence[SeriesPoint], duration: float) -> list[float]:
    """Seconds each bin covers: up to the next bin, a whole second, and the run's end."""
    out = []
    for i, p in enumerate(pts):
        end = p.t + 1.0
        if i + 1 < len(pts):
            end = min(end, pts[i + 1].t)
        elif p.t < duration:
            end = min(end, duration)
        out.append(max(end - p.t, 0.0))
    return out


def _worst(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return max(present) if present else None


def spike_spans(bs: Sequence[Bucket]) -> list[tuple[float, float]]:
    """[start, end) intervals where a spike was active, for shading."""
    spans: list[tuple[float, float]] = []
    for b in bs:
        if not b.spike:
            continue
        if spans and abs(spans[-1][1] - b.t) < 1e-6:
            spans[-1] = (spans[-1][0], b.t + b.width)
        else:
            spans.append((b.t, b.t + b.width))
    return spans


def time_scale(bs: Sequence[Bucket], frame: Frame) -> tuple[Scale, float]:
    end = max((b.t + b.width for b in bs), default=1.0)
    return Scale(0.0, end, frame.x0, frame.x1), end


def spike_shading(spans: Sequence[tuple[float, float]], xs: Scale, frame: Frame) -> str:
    rects = [
        el(
            "rect",
            {
                "x": xs(a),
                "y": frame.y1,
                "width": max(xs(b) - xs(a), 1.0),
                "height": frame.y0 - frame.y1,
                "class": "spike",
            },
            title(f"spike {fmt_time(a)} – {fmt_time(b)}"),
        )
        for a, b in spans
    ]
    return el("g", {"class": "spikes"}, *rects)


def _polyline(
    bs: Sequence[Bucket], get: Callable[[Bucket], float | None], xs: Scale, ys: Scale, cls: str
) -> str:
    """One line per unbroken run of values (a missing second breaks the line)."""
    runs: list[list[Bucket]] = [[]]
    for b in bs:
        if get(b) is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(b)
    lines = []
    for run in runs:
        if not run:
            continue
        px = [xs(b.t + b.width / 2) for b in run]
        py = [ys(v) for v in (get(b) for b in run) if v is not None]
        if len(run) == 1:
            lines.append(el("circle", {"cx": px[0], "cy": py[0], "r": 2.5, "class": cls}))
        else:
            lines.append(el("polyline", {"points": points(px, py), "class": cls}))
    return "".join(lines)


def _hover_columns(
    bs: Sequence[Bucket], xs: Scale, frame: Frame, label: Callable[[Bucket], str]
) -> str:
    cols = [
        el(
            "rect",
            {
                "x": xs(b.t),
                "y": frame.y1,
                "width": max(xs(b.t + b.width) - xs(b.t), 0.5),
                "height": frame.y0 - frame.y1,
                "class": "hover",
            },
            title(label(b)),
        )
        for b in bs
    ]
    return el("g", {"class": "hovers"}, *cols)


def _legend(frame: Frame, items: Sequence[tuple[str, str]]) -> str:
    """A row of swatches above the plot's right edge."""
    out = []
    x = frame.x1
    for label, cls in reversed(items):
        width = 7.2 * len(label) + 26
        x -= width
        out.append(
            el(
                "rect",
                {"x": x, "y": 2, "width": 14, "height": 10, "rx": 2, "class": f"swatch {cls}"},
            )
        )
        out.append(text(x + 19, 11, label, "legend", "start"))
    return el("g", {"class": "legend"}, *out)


def empty_chart(chart_id: str, frame: Frame, label: str, message: str) -> str:
    return svg(chart_id, frame, label, text(frame.width / 2, frame.height / 2, message, "empty"))


def rate_chart(bs: Sequence[Bucket]) -> str:
    """Chart 1: what the curve asked for against what the pods started, spikes shaded."""
    frame = Frame(top=28)
    label = "Target vs achieved request rate over time"
    if not bs:
        return empty_chart(RATE_CHART_ID, frame, label, "no per-second series recorded")
    xs, end = time_scale(bs, frame)
    peak = max(max(b.target, b.achieved) for b in bs)
    yt = linear_ticks(peak * 1.05)
    ys = Scale(0.0, yt[-1], frame.y0, frame.y1)
    target_line = _polyline(bs, lambda b: b.target, xs, ys, "line target")
    achieved_line = _polyline(bs, lambda b: b.achieved, xs, ys, "line achieved")
    area = _area(bs, xs, ys, frame)

    def hover(b: Bucket) -> str:
        spike = " · spike" if b.spike else ""
        return f"{fmt_time(b.t)}: target {b.target:,.1f}/s · achieved {b.achieved:,.1f}/s{spike}"

    return svg(
        RATE_CHART_ID,
        frame,
        label,
        spike_shading(spike_spans(bs), xs, frame),
        y_axis(frame, ys, yt, "requests / s"),
        x_axis(frame, xs, time_ticks(end), unit="time since start"),
        area,
        target_line,
        achieved_line,
        _legend(frame, [("target", "target"), ("achieved", "achieved"), ("spike", "spike")]),
        _hover_columns(bs, xs, frame, hover),
    )


def _area(bs: Sequence[Bucket], xs: Scale, ys: Scale, frame: Frame) -> str:
    px = [xs(b.t + b.width / 2) for b in bs]
    py = [ys(b.achieved) for b in bs]
    xs_all = [px[0], *px, px[-1]]
    ys_all = [frame.y0, *py, frame.y0]
    return el("polygon", {"points": points(xs_all, ys_all), "class": "area achieved"})


def latency_scale(
    values: Sequence[float], frame: Frame, unit: str
) -> tuple[Scale, list[float], str]:
    """The y scale, ticks and axis caption for latencies: log when the tail dwarfs the median
    (more than 30×), so a fast target's line is not flattened against the axis."""
    positive = [v for v in values if v > 0] or [1.0]
    if max(positive) / min(positive) > _LOG_WHEN_RATIO:
        yt = log_ticks(max(min(positive), 0.01), max(positive))
        return Scale(yt[0], yt[-1], frame.y0, frame.y1, log=True), yt, f"{unit} (log scale)"
    yt = linear_ticks(max(values) * 1.05)
    return Scale(0.0, yt[-1], frame.y0, frame.y1), yt, unit


def latency_chart(bs: Sequence[Bucket]) -> str:
    """Chart 2: per-second p50/p95/p99; a log axis when the tail dwarfs the median."""
    frame = Frame(top=28)
    label = "Latency percentiles over time"
    values = [v for b in bs for v in (b.p50, b.p95, b.p99) if v is not None]
    if not values:
        return empty_chart(LATENCY_CHART_ID, frame, label, "no per-second latency recorded")
    xs, end = time_scale(bs, frame)
    ys, yt, unit = latency_scale(values, frame, "latency ms")
    lines = [
        _polyline(bs, lambda b: b.p50, xs, ys, "line p50"),
        _polyline(bs, lambda b: b.p95, xs, ys, "line p95"),
        _polyline(bs, lambda b: b.p99, xs, ys, "line p99"),
    ]
    legend = [
        (n, n)
        for n, present in (("p50", "p50"), ("p95", "p95"), ("p99", "p99"))
        if any(getattr(b, present) is not None for b in bs)
    ]

    def hover(b: Bucket) -> str:
        parts = [
            f"{n} {v:,.1f} ms"
            for n, v in (("p50", b.p50), ("p95", b.p95), ("p99", b.p99))
            if v is not None
        ]
        return f"{fmt_time(b.t)}: " + (" · ".join(parts) or "no requests completed")

    return svg(
        LATENCY_CHART_ID,
        frame,
        label,
        spike_shading(spike_spans(bs), xs, frame),
        y_axis(frame, ys, yt, unit),
        x_axis(frame, xs, time_ticks(end), unit="time since start"),
        *lines,
        _legend(frame, [*legend, ("spike", "spike")]),
        _hover_columns(bs, xs, frame, hover),
    )


def outcome_order(outcomes: Sequence[str]) -> list[str]:
    """Successes first, then HTTP errors, transport errors, then gRPC codes alphabetically."""
    known = [o for o in (*_SUCCESS_ORDER, *_ERROR_ORDER) if o in outcomes]
    rest = sorted(o for o in outcomes if o not in known)
    return known + rest


def outcome_class(outcome: str) -> str:
    """CSS class per outcome: a fixed colour for known kinds, a hashed palette slot otherwise."""
    fixed = {
        "2xx": "o-ok",
        "grpc_OK": "o-ok2",
        "3xx": "o-3xx",
        "1xx": "o-1xx",
        "4xx": "o-4xx",
        "5xx": "o-5xx",
        "timeout": "o-timeout",
        "connect_error": "o-connect",
        "error": "o-error",
    }
    if outcome in fixed:
        return fixed[outcome]
    return f"o-x{sum(outcome.encode()) % 6}"


def outcomes_chart(targets: dict[str, TargetSummary]) -> str:
    """Chart 3: one horizontal stacked bar per target, segments by outcome."""
    label = "Outcomes by target"
    rows = sorted(targets.items(), key=lambda kv: (-kv[1].requests, kv[0]))
    bar, gap, top = 22.0, 14.0, 34.0
    frame = Frame(height=top + max(len(rows), 1) * (bar + gap) + 40, left=180, right=150, top=top)
    if not rows:
        return empty_chart(OUTCOMES_CHART_ID, frame, label, "no targets")
    kinds = outcome_order(sorted({k for _, t in rows for k in t.outcomes}))
    peak = max((sum(t.outcomes.values()) or t.requests) for _, t in rows)
    xt = linear_ticks(max(peak, 1), 6)
    xs = Scale(0.0, xt[-1], frame.x0, frame.x1)
    grid = [
        el("line", {"x1": xs(v), "x2": xs(v), "y1": frame.y1, "y2": frame.y0, "class": "grid"})
        for v in xt
    ]
    bars = [
        _bar_row(name, t, kinds, xs, y=frame.y1 + i * (bar + gap) + gap / 2, height=bar)
        for i, (name, t) in enumerate(rows)
    ]
    legend = _legend(frame, [(k, outcome_class(k)) for k in kinds]) if kinds else ""
    return svg(
        OUTCOMES_CHART_ID,
        frame,
        label,
        el("g", {"class": "grid-lines"}, *grid),
        x_axis(frame, xs, xt, fmt="count", unit="requests"),
        *bars,
        legend,
    )


def _bar_row(
    name: str, t: TargetSummary, kinds: Sequence[str], xs: Scale, *, y: float, height: float
) -> str:
    bar = height
    total = sum(t.outcomes.values())
    shown = name if len(name) <= 24 else name[:23] + "…"
    parts = [
        el(
            "text",
            {"x": xs.r0 - 10, "y": y + bar / 2 + 4, "class": "bar-label", "text-anchor": "end"},
            esc(shown),
            title(name),
        )
    ]
    x = xs.r0
    for kind in kinds:
        count = t.outcomes.get(kind, 0)
        if count <= 0:
            continue
        # Keep a sliver visible: 0.5 % of errors must not vanish next to 99.5 % of 2xx.
        width = max(xs(count) - xs(0), 2.0)
        share = count / total if total else 0.0
        parts.append(
            el(
                "rect",
                {
                    "x": x,
                    "y": y,
                    "width": width,
                    "height": bar,
                    "class": f"seg {outcome_class(kind)}",
                },
                title(f"{name} · {kind}: {count:,} ({share:.1%})"),
            )
        )
        x += width
    err = f" · {t.error_rate:.1%} err" if t.errors else ""
    parts.append(
        text(x + 8, y + bar / 2 + 4, f"{total or t.requests:,}{err}", "bar-total", "start")
    )
    return el("g", {"class": "bar"}, *parts)

"""Tiny SVG toolkit for the HTML report: escaped elements, scales, tick picking, axis drawing.

Hand-rolled so the report needs no plotting library and no JavaScript, and every attribute and
text node goes through one escaping function (names in charts come from user YAML).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from kar98k_loadpod.durations import format_duration

_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)


def esc(value: object) -> str:
    """HTML/SVG-escape any value for text or a quoted attribute."""
    return escape(str(value), quote=True)


def el(tag: str, attrs: Mapping[str, object] | None = None, *children: str) -> str:
    """One element; attribute values are escaped here, children must already be markup."""
    parts = [tag]
    for key, value in (attrs or {}).items():
        if value is None:
            continue
        parts.append(f'{key}="{esc(_num(value) if isinstance(value, float) else value)}"')
    head = " ".join(parts)
    if not children:
        return f"<{head}/>"
    return f"<{head}>{''.join(children)}</{tag}>"


def text(x: float, y: float, label: str, cls: str, anchor: str = "middle") -> str:
    return el("text", {"x": x, "y": y, "class": cls, "text-anchor": anchor}, esc(label))


def title(label: str) -> str:
    """A native tooltip: hover text without any script."""
    return el("title", None, esc(label))


def _num(value: float) -> str:
    """Short coordinates keep the file small; two decimals are finer than a pixel."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def points(xs: Iterable[float], ys: Iterable[float]) -> str:
    return " ".join(f"{_num(x)},{_num(y)}" for x, y in zip(xs, ys, strict=True))


@dataclass(frozen=True)
class Scale:
    """Maps a data interval onto a pixel interval, linearly or on log10."""

    d0: float
    d1: float
    r0: float
    r1: float
    log: bool = False

    def __call__(self, value: float) -> float:
        lo, hi, v = self.d0, self.d1, value
        if self.log:
            lo, hi, v = math.log10(lo), math.log10(hi), math.log10(max(value, self.d0))
        if hi == lo:
            return self.r0
        return self.r0 + (v - lo) / (hi - lo) * (self.r1 - self.r0)


def nice_step(span: float, count: int) -> float:
    """A 1-2-5 step giving about `count` intervals over `span`."""
    if span <= 0:
        return 1.0
    raw = span / max(count, 1)
    mag: float = 10.0 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= mult * mag:
            return mult * mag
    return 10 * mag


def linear_ticks(hi: float, count: int = 5) -> list[float]:
    """Ticks from 0 to at least `hi`, the last one a round number at or above it."""
    step = nice_step(hi if hi > 0 else 1.0, count)
    top = math.ceil((hi if hi > 0 else 1.0) / step - 1e-9) * step
    n = round(top / step)
    return [i * step for i in range(n + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks from the power of ten at or below `lo` to the first tick at or above `hi`."""
    start = math.floor(math.log10(lo))
    decades = math.ceil(math.log10(hi)) - start
    mults = (1, 2, 5) if decades <= 3 else (1,)
    ticks: list[float] = []
    exp = start
    while not ticks or ticks[-1] < hi:
        ticks.extend(m * 10.0**exp for m in mults)
        exp += 1
    cut = next(i for i, t in enumerate(ticks) if t >= hi)
    return ticks[: cut + 1]


def time_ticks(duration: float, count: int = 8) -> list[float]:
    """Ticks at round seconds/minutes/hours from 0 to `duration`."""
    if duration <= 0:
        return [0.0]
    step = next((s for s in _TIME_STEPS if duration / s <= count), None)
    if step is None:
        step = math.ceil(duration / count / 86400) * 86400
    return [float(i * step) for i in range(int(duration // step) + 1)]


def fmt_time(seconds: float) -> str:
    return format_duration(round(seconds))


def fmt_axis(value: float) -> str:
    """Compact axis numbers: 0.5, 12, 1.5k, 2M."""
    if value == 0:
        return "0"
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:g}{suffix}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class Frame:
    """The plot area of a chart inside its viewBox."""

    width: float = 960
    height: float = 300
    left: float = 64
    right: float = 20
    top: float = 16
    bottom: float = 44

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        return self.height - self.bottom

    @property
    def y1(self) -> float:
        return self.top


def svg(chart_id: str, frame: Frame, label: str, *body: str) -> str:
    """The outer <svg>; no xmlns needed inline in HTML5, so the file holds no URL at all."""
    attrs = {
        "id": chart_id,
        "class": "chart",
        "viewBox": f"0 0 {_num(frame.width)} {_num(frame.height)}",
        "role": "img",
        "aria-label": label,
        "preserveAspectRatio": "xMidYMid meet",
    }
    return el("svg", attrs, title(label), *body)


def x_axis(
    frame: Frame, scale: Scale, ticks: Sequence[float], fmt: str = "time", unit: str = ""
) -> str:
    """Bottom axis with tick marks, labels and a unit caption."""
    out = [
        el(
            "line",
            {"x1": frame.x0, "x2": frame.x1, "y1": frame.y0, "y2": frame.y0, "class": "axis"},
        )
    ]
    for tick in ticks:
        x = scale(tick)
        out.append(
            el("line", {"x1": x, "x2": x, "y1": frame.y0, "y2": frame.y0 + 5, "class": "axis"})
        )
        label = fmt_time(tick) if fmt == "time" else fmt_axis(tick)
        out.append(text(x, frame.y0 + 18, label, "tick"))
    if unit:
        out.append(text(frame.x1, frame.height - 6, unit, "unit", "end"))
    return el("g", {"class": "x-axis"}, *out)


def y_axis(frame: Frame, scale: Scale, ticks: Sequence[float], unit: str) -> str:
    """Left axis: labels and light grid lines across the plot."""
    out = []
    for tick in ticks:
        y = scale(tick)
        out.append(el("line", {"x1": frame.x0, "x2": frame.x1, "y1": y, "y2": y, "class": "grid"}))
        out.append(text(frame.x0 - 8, y + 4, fmt_axis(tick), "tick", "end"))
    out.append(
        el(
            "line",
            {"x1": frame.x0, "x2": frame.x0, "y1": frame.y0, "y2": frame.y1, "class": "axis"},
        )
    )
    out.append(
        el(
            "text",
            {
                "class": "unit",
                "text-anchor": "middle",
                "transform": f"translate(14 {_num((frame.y0 + frame.y1) / 2)}) rotate(-90)",
            },
            esc(unit),
        )
    )
    return el("g", {"class": "y-axis"}, *out)

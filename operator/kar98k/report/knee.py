"""The HTML report's knee charts for a capacity search: per step, rate against p50/p99 latency
and against error rate, each step a dot (filled: passed, ring: failed), the answer marked."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kar98k.results import SearchStep, SearchSummary

from .svg import Frame, Scale, el, linear_ticks, points, svg, text, title, x_axis, y_axis

KNEE_LATENCY_ID = "chart-knee-latency"
KNEE_ERRORS_ID = "chart-knee-errors"

Series = tuple[str, Callable[[SearchStep], float]]


def knee_charts(search: SearchSummary) -> tuple[str, str]:
    """(latency chart, error-rate chart), both over the rates the search stepped through."""
    latency: list[Series] = [("p50", lambda s: s.p50_ms), ("p99", lambda s: s.p99_ms)]
    errors: list[Series] = [("errors", lambda s: s.error_rate * 100)]
    return (
        _knee(KNEE_LATENCY_ID, "Latency per search step against its rate", search, latency,
              "latency ms"),
        _knee(KNEE_ERRORS_ID, "Error rate per search step against its rate", search, errors,
              "errors %"),
    )  # fmt: skip


def _knee(
    chart_id: str, label: str, search: SearchSummary, series: Sequence[Series], unit: str
) -> str:
    frame = Frame(top=28)
    steps = sorted(search.steps, key=lambda s: (s.rate, s.index))
    if not steps:
        return svg(chart_id, frame, label, text(frame.width / 2, frame.height / 2, "no steps",
                                                "empty"))  # fmt: skip
    xt = linear_ticks(max(s.rate for s in steps) * 1.05)
    xs = Scale(0.0, xt[-1], frame.x0, frame.x1)
    peak = max((get(s) for _, get in series for s in steps), default=0.0)
    yt = linear_ticks(max(peak * 1.05, 1e-9))
    ys = Scale(0.0, yt[-1], frame.y0, frame.y1)
    body = [y_axis(frame, ys, yt, unit), x_axis(frame, xs, xt, fmt="number", unit="rate / s")]
    best = search.max_sustainable_tps
    if best is not None:
        x = xs(best)
        body.append(el("line", {"x1": x, "x2": x, "y1": frame.y0, "y2": frame.y1,
                                "class": "line target"}))  # fmt: skip
        body.append(text(x + 4, frame.y1 + 12, f"max sustainable {best:,.1f}/s", "legend",
                         "start"))  # fmt: skip
    for name, get in series:
        px = [xs(s.rate) for s in steps]
        py = [ys(get(s)) for s in steps]
        if len(steps) > 1:
            body.append(el("polyline", {"points": points(px, py), "class": f"line {name}"}))
        for step, x, y in zip(steps, px, py, strict=True):
            verdict = "pass" if step.passed else "fail"
            body.append(
                el(
                    "circle",
                    {"cx": x, "cy": y, "r": 4, "class": f"{name} step-{verdict}"},
                    title(
                        f"step {step.index} ({step.phase}) {step.rate:,.1f}/s: {verdict}, "
                        f"p50 {step.p50_ms:,.1f} ms, p99 {step.p99_ms:,.1f} ms, errors "
                        f"{step.error_rate:.2%} — {step.reason}"
                    ),
                )
            )
    return svg(chart_id, frame, label, *body)

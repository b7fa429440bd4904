"""The `.html` report: one self-contained file (inline CSS and SVG, no script, no URL).

It must open from a CI artifact store or an e-mail attachment years later, so nothing is fetched;
a Content-Security-Policy forbids scripts and remote loads as a second line behind escaping.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from kar98k import __version__
from kar98k.results import Check, LatencySummary, RunSummary, TargetSummary

from .charts import buckets, latency_chart, outcomes_chart, rate_chart
from .html_style import CSS
from .knee import knee_charts
from .schema import SCHEMA_VERSION
from .svg import esc, fmt_time
from .target_charts import target_errors_chart, target_latency_chart
from .wording import delivered_bound_text, unaccounted_text

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_VERDICT_LABEL = {"pass": "PASS", "fail": "FAIL", "none": "NO THRESHOLDS", "running": "RUNNING"}


def render_html(summary: RunSummary) -> str:
    """The whole page as one string."""
    points = buckets(summary.series, summary.duration_s)
    body = "\n".join(
        [
            _header(summary),
            _figures(summary),
            _search(summary) if summary.search is not None else _checks(summary.checks),
            _section(
                "Request rate",
                rate_chart(points),
                "Dashed: the rate the pattern asked for. Solid: requests the load pods started, "
                "per second. Shaded: spikes.",
            ),
            _section(
                "Latency over time",
                latency_chart(points),
                "Per-second percentiles, measured from each request's intended send time "
                "(corrected for coordinated omission). Shaded: spikes.",
            ),
            _section(
                "Latency over time per target",
                target_latency_chart(points, _threshold(summary, "latency.p95")),
                "p95 per target (corrected), one line per target, from the stats window "
                "covering each second. Dashed: the run's p95 threshold, when set.",
            ),
            _section(
                "Error rate over time per target",
                target_errors_chart(points),
                "Errors / requests per target, from the stats window covering each second.",
            ),
            _section(
                "Outcomes by target",
                outcomes_chart(summary.targets),
                "Requests per target by outcome; hover a segment for its count.",
            ),
            _targets_table(summary),
            _failures_table(summary),
            _pods_table(summary),
            _footer(summary),
        ]
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(_CSP)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>kar98k report · {esc(summary.name)}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _threshold(s: RunSummary, check: str) -> float | None:
    """A threshold the run was judged by (the checks carry what the spec set)."""
    return next((c.threshold for c in s.checks if c.name == check), None)


def _header(s: RunSummary) -> str:
    verdict = f'<span class="badge {esc(s.verdict)}">{_VERDICT_LABEL.get(s.verdict, "?")}</span>'
    interrupted = '<span class="badge interrupted">INTERRUPTED</span>' if s.interrupted else ""
    meta = [
        f"started {esc(_when(s.started_at))}",
        f"duration {esc(fmt_time(s.duration_s))}",
        f"seed {s.seed}",
        f"{len(s.pods)} load pod{'s' if len(s.pods) != 1 else ''}",
    ]
    return (
        '<header><div class="title-row">'
        f'<h1><span class="brand">kar98k</span> {esc(s.name)}</h1>{verdict}{interrupted}</div>'
        f'<p class="meta">{" · ".join(meta)}</p></header>'
    )


def _figures(s: RunSummary) -> str:
    lat, raw = s.latency_ms.corrected, s.latency_ms.raw
    delivered = s.delivered.ratio if s.delivered is not None else None
    at_least = "≥ " if s.unaccounted_max else ""
    more = f" · up to {s.unaccounted_max:,} unreported" if s.unaccounted_max else ""
    cards = [
        ("Requests", f"{at_least}{s.requests_total:,}", f"target {s.target_requests:,.0f}{more}"),
        ("Achieved rate", f"{s.achieved_tps:,.1f}/s", f"target mean {s.target_tps_mean:,.1f}/s"),
        ("Delivered", _pct(delivered), delivered_bound_text(s)),
        ("Errors", _pct(s.error_rate), f"{s.errors_total:,} requests"),
        ("p50", _ms(lat.p50), f"raw {_ms(raw.p50)}"),
        ("p95", _ms(lat.p95), f"raw {_ms(raw.p95)}"),
        ("p99", _ms(lat.p99), f"raw {_ms(raw.p99)}"),
        ("Late sends", f"{s.late_sends:,}", f"dropped {s.dropped:,}"),
    ]
    items = "".join(
        f'<div class="card"><div class="label">{esc(label)}</div>'
        f'<div class="value">{esc(value)}</div><div class="sub">{esc(sub)}</div></div>'
        for label, value, sub in cards
    )
    lost = unaccounted_text(s)
    warning = f'<p class="warning">{esc(lost[0].upper() + lost[1:])}.</p>' if lost else ""
    return f'<section class="figures">{items}</section>{warning}'


def _checks(checks: Sequence[Check]) -> str:
    if not checks:
        return _card_section(
            "Thresholds", '<p class="muted">No thresholds set: the run has no verdict.</p>'
        )
    rows = [
        [
            esc(c.name),
            _check_value(c.name, c.threshold),
            _check_value(c.name, c.observed),
            f'<span class="pill {"pass" if c.passed else "fail"}">'
            f"{'pass' if c.passed else 'fail'}</span>",
            esc(c.message),
        ]
        for c in checks
    ]
    table = _table(["Check", "Threshold", "Observed", "Result", "Message"], rows, numeric={1, 2})
    return _card_section("Thresholds", table)


def health_pill(t: TargetSummary) -> str:
    """A target without a health check is "not checked", whatever its errors: "healthy" would
    claim a probe said so."""
    if t.health_checked is False:
        return '<span class="pill">not checked</span>'
    if t.healthy:
        return '<span class="pill pass">healthy</span>'
    return '<span class="pill fail">unhealthy</span>'


def _search(s: RunSummary) -> str:
    """The capacity search: its answer, the knee charts and one row per step."""
    search = s.search
    assert search is not None
    latency, errors = knee_charts(search)
    facts = [search.message]
    if search.limited_by is not None:
        facts.append(f"Limited by: {search.limited_by}.")
    if search.advice:
        facts.append(search.advice)
    rows = [
        [
            str(step.index),
            esc(step.phase),
            esc(f"{step.rate:,.1f}"),
            esc(f"{step.achieved_tps:,.1f}"),
            _ms(step.p50_ms),
            _ms(step.p99_ms),
            _pct(step.error_rate, digits=2),
            f'<span class="pill {"pass" if step.passed else "fail"}">'
            f"{'pass' if step.passed else 'fail'}</span>",
            esc(step.reason),
        ]
        for step in search.steps
    ]
    table = _table(
        ["#", "Phase", "Rate /s", "Achieved /s", "p50", "p99", "Errors", "Result", "Reason"],
        rows,
        numeric={0, 2, 3, 4, 5, 6},
    )
    answer = "".join(f"<p>{esc(fact)}</p>" for fact in facts)
    caption = (
        "Each dot is one step, judged on its own window: filled passed, ring failed. "
        "The dashed line marks the highest sustainable rate."
    )
    return "\n".join(
        [
            _card_section("Capacity search", answer + table),
            _section("Knee: latency against rate", latency, caption),
            _section("Knee: errors against rate", errors, caption),
        ]
    )


def _targets_table(s: RunSummary) -> str:
    rows = []
    for name, t in sorted(s.targets.items()):
        rows.append(
            [
                esc(name),
                f"{t.requests:,}",
                f"{t.errors:,}",
                _pct(t.error_rate),
                *_latency_cells(t.latency_ms.corrected),
                _ms(t.latency_ms.raw.p99),
                health_pill(t),
                f"{t.skipped_unhealthy:,}",
            ]
        )
    total = [
        "<strong>all</strong>",
        f"{s.requests_total:,}",
        f"{s.errors_total:,}",
        _pct(s.error_rate),
        *_latency_cells(s.latency_ms.corrected),
        _ms(s.latency_ms.raw.p99),
        "",
        "",
    ]
    head = ["Target", "Requests", "Errors", "Error rate", "p50", "p95", "p99", "max", "p99 raw"]
    table = _table([*head, "Health", "Skipped"], [*rows, total], numeric=set(range(1, 9)) | {10})
    note = '<p class="muted">Latency in ms, corrected unless marked raw.</p>'
    return _card_section("Targets", table + note)


def _failures_table(s: RunSummary) -> str:
    """How long unanswered attempts took to fail, per outcome: kept apart from latency, which
    only answered requests make (a refused port is fast, and no response time)."""
    if not s.time_to_failure_ms:
        return _card_section("Time to failure", '<p class="muted">Every request got an answer.</p>')
    rows = [
        [esc(outcome), f"{f.count:,}", _ms(f.p50), _ms(f.p95), _ms(f.max)]
        for outcome, f in sorted(s.time_to_failure_ms.items())
    ]
    table = _table(["Outcome", "Requests", "p50", "p95", "max"], rows, numeric={1, 2, 3, 4})
    note = (
        '<p class="muted">From the actual send until the attempt failed without an answer; '
        "not part of the latency figures above.</p>"
    )
    return _card_section("Time to failure", table + note)


def _latency_cells(lat: LatencySummary) -> list[str]:
    return [_ms(lat.p50), _ms(lat.p95), _ms(lat.p99), _ms(lat.max)]


def _pods_table(s: RunSummary) -> str:
    if not s.pods:
        return _card_section("Load pods", '<p class="muted">No pod figures recorded.</p>')
    rows = [
        [
            esc(p.name),
            '<span class="pill pass">ready</span>'
            if p.ready
            else '<span class="pill fail">lost</span>',
            f"{p.share_tps:,.1f}/s",
            f"{p.achieved_tps:,.1f}/s",
            f"{p.requests:,}",
            f"{p.errors:,}",
            f"{p.push_failures:,}",
            str(p.epoch),
        ]
        for p in s.pods
    ]
    head = [
        "Pod",
        "State",
        "Last share",
        "Achieved",
        "Requests",
        "Errors",
        "Push failures",
        "Epoch",
    ]
    return _card_section("Load pods", _table(head, rows, numeric=set(range(2, 8))))


def _footer(s: RunSummary) -> str:
    ended = f" · ended {esc(_when(s.ended_at))}" if s.ended_at else ""
    return (
        f"<footer>kar98k {esc(__version__)} · report schema {SCHEMA_VERSION}{ended} · "
        f"seed {s.seed} reproduces the same target curve</footer>"
    )


def _section(heading: str, chart: str, caption: str) -> str:
    return _card_section(heading, f'{chart}<p class="caption">{esc(caption)}</p>')


def _card_section(heading: str, inner: str) -> str:
    return f'<section class="panel"><h2>{esc(heading)}</h2>{inner}</section>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """Cells are markup already escaped by the caller; headers are escaped here."""

    def cls(i: int) -> str:
        return ' class="num"' if i in numeric else ""

    thead = "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    table = f"<table><thead><tr>{thead}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="table-wrap">{table}</div>'


def _check_value(name: str, value: float | None) -> str:
    if value is None:
        return "–"
    if name.startswith("latency"):
        return _ms(value)
    if "rate" in name or "ratio" in name:
        return _pct(value, digits=2)
    return esc(f"{value:g}")


def _when(iso: str) -> str:
    """'2025-01-02 10:00:00 UTC' from an ISO 8601 stamp; the stamp itself if it does not parse."""
    try:
        stamp = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if stamp.tzinfo is None:
        return stamp.strftime("%Y-%m-%d %H:%M:%S")
    return stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def _ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"

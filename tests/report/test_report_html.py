"""The HTML report: one self-contained file with its three charts, safe against hostile names."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

from kar98k.report import write_report
from kar98k.report.charts import MAX_POINTS
from kar98k.results import RunSummary, SeriesPoint, TargetSummary

CHART_IDS = (
    "chart-rate",
    "chart-latency",
    "chart-target-latency",
    "chart-target-errors",
    "chart-outcomes",
)
XSS_TARGET = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
XSS_NAME = "</title><script>alert(3)</script>"


class _Elements(HTMLParser):
    """Collects (tag, attrs) of every start tag, and checks nesting of svg/section/table."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("svg", "section", "table", "g", "text"):
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("svg", "section", "table", "g", "text"):
            assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def _render(summary: RunSummary, tmp_path: Path) -> tuple[str, _Elements]:
    path = tmp_path / "report.html"
    write_report(summary, path)
    html = path.read_text(encoding="utf-8")
    parser = _Elements()
    parser.feed(html)
    parser.close()
    assert parser.stack == []
    return html, parser


def test_single_self_contained_file(tmp_path: Path, summary: RunSummary) -> None:
    html, parsed = _render(summary, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert html.startswith("<!DOCTYPE html>")
    assert "http://" not in html
    assert "https://" not in html
    assert "url(" not in html
    assert "@import" not in html
    tags = {tag for tag, _ in parsed.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    for tag, attrs in parsed.tags:
        assert "src" not in attrs, tag
        assert "href" not in attrs and "xlink:href" not in attrs, tag
    csp = [a for t, a in parsed.tags if t == "meta" and a.get("http-equiv")]
    assert csp
    assert "default-src 'none'" in (csp[0].get("content") or "")


def test_three_charts_with_their_parts(tmp_path: Path, summary: RunSummary) -> None:
    html, parsed = _render(summary, tmp_path)
    svg_ids = [a.get("id") for t, a in parsed.tags if t == "svg"]
    assert svg_ids == list(CHART_IDS)
    # two spikes in the sample series, shaded on both time charts
    assert len(re.findall(r'<rect [^>]*class="spike"', html)) == 4
    assert 'class="line target"' in html
    assert 'class="line achieved"' in html
    for p in ("p50", "p95", "p99"):
        assert f'class="line {p}"' in html
    for target in summary.targets:
        assert f"{target} · 2xx" in html or f"{target} · grpc_OK" in html
    # axes carry ticks with units
    assert "requests / s" in html
    assert "latency ms" in html
    assert ">30s<" in html


def test_header_figures_and_tables(tmp_path: Path, summary: RunSummary) -> None:
    html, parsed = _render(summary, tmp_path)
    assert 'class="badge fail">FAIL<' in html
    text = " ".join(parsed.texts)
    assert "16,500" in text
    for check in summary.checks:
        assert check.message.replace("<", "&lt;") in html or check.message in text
    for pod in summary.pods:
        assert pod.name in text
    assert "unhealthy" in text


def test_passing_badge(tmp_path: Path, make: Callable[..., RunSummary]) -> None:
    html, _ = _render(make(failing=False), tmp_path)
    assert 'class="badge pass">PASS<' in html


def test_hostile_names_are_escaped(tmp_path: Path, summary: RunSummary) -> None:
    summary.name = XSS_NAME
    summary.targets[XSS_TARGET] = TargetSummary(
        requests=10, errors=1, error_rate=0.1, outcomes={"2xx": 9, XSS_TARGET: 1}
    )
    summary.pods[0].name = XSS_TARGET
    summary.checks[0].message = XSS_NAME
    html, parsed = _render(summary, tmp_path)
    assert "<script" not in html
    assert "<img" not in html
    assert not {t for t, _ in parsed.tags} & {"script", "img"}
    text = " ".join(parsed.texts)
    assert XSS_NAME in text
    assert XSS_TARGET in text


def test_empty_run_still_renders_all_charts(tmp_path: Path) -> None:
    summary = RunSummary(name="empty", seed=1, started_at="2025-01-01T00:00:00Z", verdict="none")
    html, parsed = _render(summary, tmp_path)
    assert [a.get("id") for t, a in parsed.tags if t == "svg"] == list(CHART_IDS)
    assert "NO THRESHOLDS" in html


def test_missing_latency_seconds_break_the_line(tmp_path: Path, summary: RunSummary) -> None:
    for point in summary.series[20:25]:
        point.p50_ms = point.p95_ms = point.p99_ms = None
    html, _ = _render(summary, tmp_path)
    assert html.count('class="line p99"') == 2


def test_long_run_is_bucketed(tmp_path: Path, summary: RunSummary) -> None:
    summary.series = [
        SeriesPoint(
            t=float(t),
            target_tps=100 + t % 50,
            achieved_tps=99.0,
            p99_ms=5.0,
            spike_active=t % 900 < 60,
        )
        for t in range(24 * 3600)
    ]
    summary.duration_s = 24 * 3600.0
    html, _ = _render(summary, tmp_path)
    assert len(html) < 2_000_000
    polyline = re.search(r'<polyline points="([^"]*)" class="line achieved"', html)
    assert polyline is not None
    assert len(polyline.group(1).split()) <= MAX_POINTS
    assert ">1d<" in html or ">24h<" in html

"""Per-target charts: one line per target for p95 and error rate, the p95 threshold drawn at the
value it stands for, and the series that feeds them carrying per-target figures."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest
from kar98k.controller.merge import Merger, StatsBook
from kar98k.controller.series import SeriesBook
from kar98k.report.charts import buckets
from kar98k.report.html_report import render_html
from kar98k.report.target_charts import (
    TARGET_ERRORS_CHART_ID,
    TARGET_LATENCY_CHART_ID,
    target_latency_chart,
)
from kar98k.results import Check, RunSummary, SeriesPoint, TargetPoint
from kar98k_loadpod.histogram import LatencyHistogram
from kar98k_loadpod.stats import PodStats, TargetStats

FRAME_Y0, FRAME_Y1 = 256.0, 28.0  # Frame(top=28): height 300 - bottom 44, and the top margin


def _series(seconds: int = 20) -> list[SeriesPoint]:
    """Three targets: 'slow' at 80 ms, 'fast' at 5 ms, 'flaky' at 20 ms and 10 % errors."""
    return [
        SeriesPoint(
            t=float(t),
            target_tps=100.0,
            achieved_tps=100.0,
            p95_ms=80.0,
            error_rate=0.03,
            targets={
                "slow": TargetPoint(p95_ms=80.0, error_rate=0.0),
                "fast": TargetPoint(p95_ms=5.0, error_rate=0.0),
                "flaky": TargetPoint(p95_ms=20.0, error_rate=0.1),
            },
        )
        for t in range(seconds)
    ]


def _svg(html: str, chart_id: str) -> ET.Element:
    found = re.search(rf'<svg id="{chart_id}".*?</svg>', html, re.DOTALL)
    assert found, chart_id
    return ET.fromstring(found.group(0))


def _summary(checks: list[Check]) -> RunSummary:
    return RunSummary(
        name="per-target", seed=1, started_at="2026-01-01T00:00:00Z", duration_s=20.0,
        series=_series(), checks=checks,
    )  # fmt: skip


def test_one_path_per_target_and_the_threshold_at_its_value() -> None:
    p95 = Check(name="latency.p95", threshold=100.0, observed=80.0, passed=True, message="ok")
    html = render_html(_summary([p95]))
    chart = _svg(html, TARGET_LATENCY_CHART_ID)
    paths = [p for p in chart.iter("path") if "tline" in p.get("class", "")]
    assert sorted(p.get("data-target") or "" for p in paths) == ["fast", "flaky", "slow"]
    # The y axis runs 0..125: linear_ticks(max(80, 100) * 1.05 = 105) steps by 25 up to 125.
    # So 100 ms sits at y0 - 100/125 of the plot height, and 80 ms at y0 - 80/125 of it.
    height = FRAME_Y0 - FRAME_Y1
    lines = [ln for ln in chart.iter("line") if ln.get("class") == "threshold"]
    assert len(lines) == 1
    assert float(lines[0].get("y1") or 0) == pytest.approx(FRAME_Y0 - 100 / 125 * height, abs=0.01)
    slow = next(p for p in paths if p.get("data-target") == "slow")
    ys = [float(xy.split(",")[1]) for xy in re.findall(r"[ML]([\d.]+,[\d.]+)", slow.get("d", ""))]
    assert len(ys) == 20  # one vertex per second
    assert all(y == pytest.approx(FRAME_Y0 - 80 / 125 * height, abs=0.01) for y in ys)

    errors = _svg(html, TARGET_ERRORS_CHART_ID)
    error_paths = [p for p in errors.iter("path") if "tline" in p.get("class", "")]
    assert len(error_paths) == 3
    assert not [ln for ln in errors.iter("line") if ln.get("class") == "threshold"]


def test_no_threshold_line_without_a_p95_threshold() -> None:
    chart = target_latency_chart(buckets(_series(), 20.0), None)
    assert 'class="threshold"' not in chart
    assert chart.count('class="tline') == 3


def test_long_runs_keep_one_line_per_target_with_the_worst_value() -> None:
    """A day of seconds merges into at most MAX_POINTS bins; each keeps its worst p95."""
    series = _series(3000)
    series[1500].targets["fast"] = TargetPoint(p95_ms=60.0, error_rate=0.0)
    bs = buckets(series, 3000.0)
    assert len(bs) <= 1200
    assert max(b.targets["fast"].p95_ms or 0 for b in bs) == 60.0
    chart = target_latency_chart(bs, None)
    assert chart.count('class="tline') == 3


def _pod(slow_ms: float, fast_ms: float, n: int, errors: int) -> PodStats:
    def enc(ms: float) -> str:
        h = LatencyHistogram()
        for _ in range(n):
            h.record_seconds(ms / 1000)
        return h.encode()

    def target(ms: float, errs: int) -> TargetStats:
        return TargetStats(
            requests=n, errors=errs, outcomes={"2xx": n - errs, "5xx": errs},
            latency_raw=enc(ms), latency_corrected=enc(ms),
        )  # fmt: skip

    return PodStats(
        started_at=1.0, requests=2 * n, errors=errors,
        targets={"slow": target(slow_ms, errors), "fast": target(fast_ms, 0)},
    )  # fmt: skip


def test_merge_windows_and_series_carry_per_target_figures() -> None:
    """Per target, the interval holds only what happened in it: the second window's p95 is the
    new requests' (cumulative histograms minus the previous merge), not the run's so far."""
    book, merger = StatsBook(), Merger()
    book.update("a", _pod(slow_ms=50, fast_ms=2, n=100, errors=0))
    merger.merge(book.records(), now_unix=1000.0)
    # 100 more requests on each target: slow ones now at 400 ms, 10 of them errors
    later = _pod(slow_ms=50, fast_ms=2, n=100, errors=0)
    for name, ms, errs in (("slow", 400.0, 10), ("fast", 3.0, 0)):
        h = LatencyHistogram.decode(later.targets[name].latency_corrected)
        for _ in range(100):
            h.record_seconds(ms / 1000)
        later.targets[name] = TargetStats(
            requests=200, errors=errs, outcomes={"2xx": 200 - errs, "5xx": errs},
            latency_raw=h.encode(), latency_corrected=h.encode(),
        )  # fmt: skip
    book.update("a", later)
    merged = merger.merge(book.records(), now_unix=1002.0)
    assert merged.interval is not None
    slow, fast = merged.interval.targets["slow"], merged.interval.targets["fast"]
    assert slow.requests == 100 and slow.error_rate == pytest.approx(0.1)
    assert slow.p95_ms == pytest.approx(400.0, rel=0.01)  # not the run's mix of 50 and 400
    assert fast.p95_ms == pytest.approx(3.0, rel=0.01) and fast.error_rate == 0.0

    series = SeriesBook(start_unix=1000.0)
    series.add_target(1000.0, 1003.0, 100.0, spike=False)
    series.add_window(merged.interval)
    points = {p.unix_s: p for p in series.points({})}
    assert points[1001].targets["slow"].p95_ms == pytest.approx(400.0, rel=0.01)
    assert points[1001].targets["fast"].error_rate == 0.0


def test_threshold_on_a_log_axis_when_targets_differ_by_more_than_30x() -> None:
    """2 ms and 400 ms targets: log ticks 1, 2, 5 … 500, so 250 ms sits at
    log10(250) / log10(500) of the plot height above the bottom."""
    series = _series()
    for p in series:
        p.targets = {
            "fast": TargetPoint(p95_ms=2.0, error_rate=0.0),
            "slow": TargetPoint(p95_ms=400.0, error_rate=0.0),
        }
    chart = ET.fromstring(target_latency_chart(buckets(series, 20.0), 250.0))
    assert "log scale" in "".join(chart.itertext())
    lines = [ln for ln in chart.iter("line") if ln.get("class") == "threshold"]
    expected = FRAME_Y0 - math.log10(250) / math.log10(500) * (FRAME_Y0 - FRAME_Y1)
    assert float(lines[0].get("y1") or 0) == pytest.approx(expected, abs=0.01)

"""Reports of a capacity search: knee charts in HTML, one JUnit case per step, JSON figures."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from kar98k.report import write_report
from kar98k.results import RunSummary, SearchStep, SearchSummary
from kit.summaries import make_summary


def searched(found: bool = True) -> RunSummary:
    summary = make_summary("knee", failing=False, seconds=30)
    steps = [
        SearchStep(index=1, phase="bracket", rate=100, p50_ms=21, p99_ms=30, passed=True,
                   reason="passed"),
        SearchStep(index=2, phase="bracket", rate=200, p50_ms=480, p99_ms=750, passed=False,
                   error_rate=0.02, reason="p99 corrected latency 750.0 ms exceeds the 100 ms "
                   "ceiling <script>"),
        SearchStep(index=3, phase="confirm", rate=100, p50_ms=22, p99_ms=31, passed=True,
                   reason="passed"),
    ]  # fmt: skip
    if not found:
        steps = [steps[1].model_copy(update={"index": 1})]
    summary.checks = []
    summary.verdict = "pass" if found else "fail"
    summary.search = SearchSummary(
        found=found,
        max_sustainable_tps=100 if found else None,
        last_passing_tps=100 if found else None,
        first_failing_tps=200,
        limited_by="target",
        message="max sustainable 100.0/s" if found else "nothing passed",
        steps=steps,
    )
    return summary


def test_html_has_both_knee_charts_with_a_dot_per_step(tmp_path: Path) -> None:
    path = tmp_path / "r.html"
    write_report(searched(), path)
    html = path.read_text(encoding="utf-8")
    for chart in ("chart-knee-latency", "chart-knee-errors"):
        svg = re.search(rf'<svg id="{chart}".*?</svg>', html, flags=re.DOTALL)
        assert svg is not None, chart
        dots = re.findall(r'<circle [^>]*class="[a-z0-9]+ step-(pass|fail)"', svg.group(0))
        per_series = 2 if chart == "chart-knee-latency" else 1
        assert sorted(dots) == sorted(["pass", "fail", "pass"] * per_series)
        assert "max sustainable 100.0/s" in svg.group(0)
    assert "Capacity search" in html and "<script>" not in html
    assert html.count("<tr>") >= 3


def test_junit_has_a_case_per_step_and_fails_only_when_nothing_passed(tmp_path: Path) -> None:
    path = tmp_path / "j.xml"
    write_report(searched(), path)
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names == [
        "search.step-01 bracket 100.0/s pass",
        "search.step-02 bracket 200.0/s FAIL",
        "search.step-03 confirm 100.0/s pass",
        "search",
    ]
    assert suite.get("failures") == "0"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["search.maxSustainableTPS"] == "100.00"
    assert props["search.firstFailingTPS"] == "200.00"
    write_report(searched(found=False), path)
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failed = [c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None]
    assert failed == ["search"]

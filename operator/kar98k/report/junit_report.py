"""The `.xml` report: JUnit, one test case per threshold, so CI shows which criterion failed.

A capacity search adds one case per step (named with its rate and result) and a `search` case
that fails only when not even the first step passed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from kar98k.results import Check, RunSummary, SearchStep

from .wording import unaccounted_text

# Characters XML 1.0 forbids even when escaped; strip them rather than emit an unparsable file.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
NO_THRESHOLDS_CASE = "run-completed"


def render_junit(summary: RunSummary) -> str:
    """A <testsuites> document holding one <testsuite name="kar98k.NAME">."""
    suite_name = f"kar98k.{summary.name}"
    search = summary.search
    steps = search.steps if search is not None else []
    failures = sum(1 for c in summary.checks if not c.passed)
    failures += 1 if search is not None and not search.found else 0
    tests = (len(summary.checks) + len(steps) + (search is not None)) or 1
    time = f"{summary.duration_s:.3f}"
    root = ET.Element(
        "testsuites",
        _attrs(name="kar98k", tests=str(tests), failures=str(failures), errors="0", time=time),
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        _attrs(
            name=suite_name,
            tests=str(tests),
            failures=str(failures),
            errors="0",
            skipped="0",
            time=time,
            timestamp=summary.started_at,
        ),
    )
    props = ET.SubElement(suite, "properties")
    for key, value in _properties(summary):
        ET.SubElement(props, "property", _attrs(name=key, value=value))
    if summary.checks or search is not None:
        for check in summary.checks:
            _check_case(suite, suite_name, check)
        for step in steps:
            _step_case(suite, suite_name, step)
        if search is not None:
            case = ET.SubElement(suite, "testcase", _attrs(classname=suite_name, name="search"))
            if not search.found:
                ET.SubElement(case, "failure", _attrs(message=search.message, type="search"))
    else:
        ET.SubElement(suite, "testcase", _attrs(classname=suite_name, name=NO_THRESHOLDS_CASE))
    out = ET.SubElement(suite, "system-out")
    out.text = _clean(_overview(summary))
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def _check_case(suite: ET.Element, classname: str, check: Check) -> None:
    case = ET.SubElement(suite, "testcase", _attrs(classname=classname, name=check.name))
    if not check.passed:
        failure = ET.SubElement(case, "failure", _attrs(message=check.message, type="threshold"))
        failure.text = _clean(
            f"{check.message}\nobserved: {check.observed:g}\nthreshold: {check.threshold:g}"
        )


def _step_case(suite: ET.Element, classname: str, step: SearchStep) -> None:
    """One search step. A step failing its thresholds is the search doing its work (it found a
    limit), so the case itself passes and says what happened; only the `search` case fails,
    when nothing passed at all."""
    verdict = "pass" if step.passed else "FAIL"
    name = f"search.step-{step.index:02d} {step.phase} {step.rate:.1f}/s {verdict}"
    case = ET.SubElement(
        suite, "testcase", _attrs(classname=classname, name=name, time=f"{step.window_s:.3f}")
    )
    out = ET.SubElement(case, "system-out")
    out.text = _clean(
        f"{verdict}: {step.reason}\nrate {step.rate:g}/s, achieved {step.achieved_tps:.1f}/s, "
        f"p50 {step.p50_ms:.1f} ms, p99 {step.p99_ms:.1f} ms, errors {step.error_rate:.2%}"
    )


def _properties(summary: RunSummary) -> list[tuple[str, str]]:
    search = summary.search
    extra: list[tuple[str, str]] = []
    if search is not None:
        extra = [
            ("search.maxSustainableTPS", _opt(search.max_sustainable_tps)),
            ("search.lastPassingTPS", _opt(search.last_passing_tps)),
            ("search.firstFailingTPS", _opt(search.first_failing_tps)),
            ("search.limitedBy", search.limited_by or ""),
            ("search.ended", search.ended),
        ]
    return [
        *extra,
        ("verdict", summary.verdict),
        ("seed", str(summary.seed)),
        ("interrupted", str(summary.interrupted).lower()),
        ("requests_total", str(summary.requests_total)),
        ("unaccounted_max", str(summary.unaccounted_max)),
        ("errors_total", str(summary.errors_total)),
        ("achieved_tps", f"{summary.achieved_tps:.2f}"),
        ("target_tps_mean", f"{summary.target_tps_mean:.2f}"),
        ("latency_p99_corrected_ms", f"{summary.latency_ms.corrected.p99:.2f}"),
    ]


def _opt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _overview(summary: RunSummary) -> str:
    lat = summary.latency_ms.corrected
    search = f"{summary.search.message}\n" if summary.search is not None else ""
    lost = unaccounted_text(summary)
    return search + (
        f"{summary.name}: verdict {summary.verdict}, {summary.requests_total} requests "
        f"({summary.achieved_tps:.1f}/s achieved, {summary.target_tps_mean:.1f}/s target), "
        f"{summary.errors_total} errors ({summary.error_rate:.2%}), "
        f"corrected latency p50 {lat.p50:.1f} ms, p95 {lat.p95:.1f} ms, p99 {lat.p99:.1f} ms"
        + (f"; {lost}" if lost else "")
    )


def _attrs(**values: str) -> dict[str, str]:
    return {k: _clean(v) for k, v in values.items()}


def _clean(text: str) -> str:
    return _INVALID_XML.sub("", text)

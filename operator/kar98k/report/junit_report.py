"""The `.xml` report: JUnit, one test case per threshold, so CI shows which criterion failed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from kar98k.results import Check, RunSummary

# Characters XML 1.0 forbids even when escaped; strip them rather than emit an unparsable file.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
NO_THRESHOLDS_CASE = "run-completed"


def render_junit(summary: RunSummary) -> str:
    """A <testsuites> document holding one <testsuite name="kar98k.NAME">."""
    suite_name = f"kar98k.{summary.name}"
    failures = sum(1 for c in summary.checks if not c.passed)
    tests = len(summary.checks) or 1
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
    if summary.checks:
        for check in summary.checks:
            _check_case(suite, suite_name, check)
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


def _properties(summary: RunSummary) -> list[tuple[str, str]]:
    return [
        ("verdict", summary.verdict),
        ("seed", str(summary.seed)),
        ("interrupted", str(summary.interrupted).lower()),
        ("requests_total", str(summary.requests_total)),
        ("errors_total", str(summary.errors_total)),
        ("achieved_tps", f"{summary.achieved_tps:.2f}"),
        ("target_tps_mean", f"{summary.target_tps_mean:.2f}"),
        ("latency_p99_corrected_ms", f"{summary.latency_ms.corrected.p99:.2f}"),
    ]


def _overview(summary: RunSummary) -> str:
    lat = summary.latency_ms.corrected
    return (
        f"{summary.name}: verdict {summary.verdict}, {summary.requests_total} requests "
        f"({summary.achieved_tps:.1f}/s achieved, {summary.target_tps_mean:.1f}/s target), "
        f"{summary.errors_total} errors ({summary.error_rate:.2%}), "
        f"corrected latency p50 {lat.p50:.1f} ms, p95 {lat.p95:.1f} ms, p99 {lat.p99:.1f} ms"
    )


def _attrs(**values: str) -> dict[str, str]:
    return {k: _clean(v) for k, v in values.items()}


def _clean(text: str) -> str:
    return _INVALID_XML.sub("", text)

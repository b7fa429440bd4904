"""The JUnit report: one test case per threshold, failures exactly where checks failed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from kar98k.report import write_report
from kar98k.results import Check, RunSummary


def _suite(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    suites = root.findall("testsuite") if root.tag == "testsuites" else [root]
    assert len(suites) == 1
    return suites[0]


def test_one_testcase_per_check_with_failures(tmp_path: Path, summary: RunSummary) -> None:
    path = tmp_path / "junit.xml"
    write_report(summary, path)
    suite = _suite(path)
    assert suite.get("name") == "kar98k.checkout"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.name for c in summary.checks]
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failed) == {c.name for c in summary.checks if not c.passed} == {"error_rate"}
    expected = next(c.message for c in summary.checks if c.name == "error_rate")
    failure = failed["error_rate"]
    assert failure is not None
    assert failure.get("message") == expected
    assert suite.get("tests") == "3"
    assert suite.get("failures") == "1"


def test_passing_run_has_no_failures(tmp_path: Path, make: Callable[..., RunSummary]) -> None:
    path = tmp_path / "junit.xml"
    write_report(make(failing=False), path)
    suite = _suite(path)
    assert suite.get("failures") == "0"
    assert all(c.find("failure") is None for c in suite.findall("testcase"))


def test_no_thresholds_gives_run_completed(tmp_path: Path, summary: RunSummary) -> None:
    summary.checks = []
    summary.verdict = "none"
    path = tmp_path / "junit.xml"
    write_report(summary, path)
    cases = _suite(path).findall("testcase")
    assert [c.get("name") for c in cases] == ["run-completed"]
    assert cases[0].find("failure") is None


def test_hostile_text_still_parses(tmp_path: Path, summary: RunSummary) -> None:
    summary.name = 'x"<&>'
    summary.checks = [
        Check(
            name="latency.p99",
            threshold=1.0,
            observed=2.0,
            passed=False,
            message='bad \x00\x07 <![CDATA[ ]]> & "quotes"',
        )
    ]
    path = tmp_path / "junit.xml"
    write_report(summary, path)
    suite = _suite(path)
    assert suite.get("name") == 'kar98k.x"<&>'
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert failure.get("message") == 'bad  <![CDATA[ ]]> & "quotes"'

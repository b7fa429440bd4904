"""A target without a health check is "not checked" in reports, never "healthy", however many
of its requests failed (issue 12, section 1), from the pod's stats through the merge."""

from __future__ import annotations

import re

from kar98k.controller.merge import Merger, PodRecord
from kar98k.report.html_report import health_pill, render_html
from kar98k.results import RunSummary, TargetSummary
from kar98k_loadpod.plan import Plan
from kar98k_loadpod.runtime import PodRuntime
from kar98k_loadpod.stats import PodStats, TargetStats


async def test_the_pod_says_which_targets_it_health_checks() -> None:
    runtime = PodRuntime("health-pod")
    runtime.start()
    try:
        runtime.apply(
            Plan.model_validate(
                {
                    "epoch": 1,
                    "rate": 0,
                    "targets": [
                        {"name": "plain", "url": "http://127.0.0.1:9/"},
                        {
                            "name": "off",
                            "url": "http://127.0.0.1:9/",
                            "healthCheck": {"enabled": False},
                        },
                        {"name": "probed", "url": "http://127.0.0.1:9/", "healthCheck": {}},
                    ],
                }
            )
        )
        wire = runtime.stats().to_wire()
    finally:
        await runtime.close()
    checked = {name: t["healthChecked"] for name, t in wire["targets"].items()}  # type: ignore[attr-defined]
    assert checked == {"plain": False, "off": False, "probed": True}


def _merged(*targets: dict[str, TargetStats]) -> dict[str, TargetSummary]:
    records = [
        PodRecord(f"pod-{i}", 1.0, PodStats(pod=f"pod-{i}", targets=t))
        for i, t in enumerate(targets)
    ]
    return Merger().merge(records, 100.0).targets


def test_merge_keeps_health_checked_across_pods() -> None:
    failing = TargetStats(requests=50, errors=50, outcomes={"connect_error": 50})
    merged = _merged({"down": failing}, {"down": failing})
    assert merged["down"].health_checked is False
    assert merged["down"].healthy  # the pod never judged it: "healthy" meant nothing
    checked = TargetStats(health_checked=True, healthy=False)
    assert _merged({"t": failing}, {"t": checked})["t"].health_checked is True


def _row(html: str, name: str) -> str:
    match = re.search(rf"<tr><td>{name}</td>.*?</tr>", html, re.DOTALL)
    assert match is not None, name
    return match.group(0)


def test_report_shows_not_checked_for_a_failing_unchecked_target(summary: RunSummary) -> None:
    summary = summary.model_copy(
        update={
            "targets": {
                "down": TargetSummary(
                    requests=100, errors=100, error_rate=1.0, healthy=True, health_checked=False
                ),
                "probed-ok": TargetSummary(requests=100, healthy=True, health_checked=True),
                "probed-bad": TargetSummary(requests=100, healthy=False, health_checked=True),
                "old-report": TargetSummary(requests=100, healthy=True),
            }
        }
    )
    html = render_html(summary)
    assert "not checked" in _row(html, "down")
    assert ">healthy<" not in _row(html, "down")
    assert ">healthy<" in _row(html, "probed-ok")
    assert ">unhealthy<" in _row(html, "probed-bad")
    assert ">healthy<" in _row(html, "old-report")  # not reported: shown as before


def test_health_pill_words() -> None:
    assert "not checked" in health_pill(TargetSummary(health_checked=False, healthy=False))
    assert ">healthy<" in health_pill(TargetSummary(health_checked=True))

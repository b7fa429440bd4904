"""judge(): one check per threshold set, judged on merged figures, with readable messages."""

from __future__ import annotations

import pytest
from kar98k.results import LatencyPair, LatencySummary, RunSummary
from kar98k.spec.model import Thresholds
from kar98k.verdict import judge, verdict_of


def summary(**kwargs: object) -> RunSummary:
    base: dict[str, object] = {
        "name": "lt",
        "seed": 1,
        "started_at": "2026-01-01T00:00:00Z",
        "requests_total": 1000,
        "errors_total": 5,
        "error_rate": 0.005,
        "outcomes": {"2xx": 995, "5xx": 5},
        "target_requests": 1010.0,
        "latency_ms": LatencyPair(
            raw=LatencySummary(p50=1.0, p95=5.0, p99=9.0),
            corrected=LatencySummary(p50=2.0, p95=50.0, p99=300.0),
        ),
    }
    base.update(kwargs)
    return RunSummary.model_validate(base)


def thresholds(**data: object) -> Thresholds:
    return Thresholds.model_validate(data)


def test_no_thresholds_no_checks_verdict_none() -> None:
    checks = judge(thresholds(), summary())
    assert checks == []
    assert verdict_of(checks) == "none"


def test_latency_uses_the_corrected_basis_by_default() -> None:
    checks = judge(thresholds(latency={"p95": "100ms", "p99": "250ms"}), summary())
    assert [(c.name, c.passed) for c in checks] == [("latency.p95", True), ("latency.p99", False)]
    p99 = checks[1]
    assert p99.threshold == 250.0 and p99.observed == 300.0
    assert p99.message == "p99 corrected latency 300.0 ms exceeds the 250 ms ceiling"
    assert verdict_of(checks) == "fail"


def test_raw_basis_judges_raw_latency() -> None:
    checks = judge(thresholds(latency={"p99": "250ms"}, latencyBasis="raw"), summary())
    assert checks[0].passed and checks[0].observed == 9.0
    assert "raw" in checks[0].message
    assert verdict_of(checks) == "pass"


def test_error_rate_ceiling() -> None:
    ok = judge(thresholds(errorRate=0.01), summary())[0]
    assert ok.name == "error_rate" and ok.passed
    assert "5 of 1000 requests failed" in ok.message
    bad = judge(thresholds(errorRate=0.001), summary())[0]
    assert not bad.passed and "exceeds" in bad.message


def test_min_achieved_ratio() -> None:
    ok = judge(thresholds(minAchievedRatio=0.95), summary())[0]
    assert ok.name == "min_achieved_ratio" and ok.passed
    assert ok.observed == pytest.approx(1000 / 1010)
    bad = judge(thresholds(minAchievedRatio=0.995), summary())[0]
    assert not bad.passed and "is below" in bad.message


def test_achieved_ratio_under_poisson_arrivals_states_the_scatter_and_warns() -> None:
    # 1010 asked: 2σ = 2·√1010/1010 = 6.3 %, so a 99 % floor sits inside the scatter.
    poisson = {"ratio": 1000 / 1010, "bound": 2 / 1010**0.5, "arrival": "poisson"}
    tight = judge(thresholds(minAchievedRatio=0.99), summary(delivered=poisson))[0]
    assert "±6.3% (2σ)" in tight.message and "can fail by chance" in tight.message
    loose = judge(thresholds(minAchievedRatio=0.9), summary(delivered=poisson))[0]
    assert "±6.3% (2σ)" in loose.message and "by chance" not in loose.message
    uniform = {"ratio": 1000 / 1010, "bound": 1 / 1010, "arrival": "uniform"}
    exact = judge(thresholds(minAchievedRatio=0.99), summary(delivered=uniform))[0]
    assert "Poisson" not in exact.message


def test_nothing_asked_means_nothing_missed() -> None:
    check = judge(thresholds(minAchievedRatio=0.9), summary(target_requests=0.0))[0]
    assert check.passed and check.observed == 1.0


def test_latency_with_no_requests_fails_rather_than_passing_silently() -> None:
    check = judge(thresholds(latency={"p50": "1s"}), summary(requests_total=0))[0]
    assert not check.passed
    assert "no requests" in check.message


def test_a_run_with_no_answered_request_fails_its_latency_checks() -> None:
    """Every request failed to connect: whatever the (empty) percentiles say, latency fails."""
    failed = summary(
        errors_total=1000,
        error_rate=1.0,
        outcomes={"connect_error": 900, "timeout": 100},
        latency_ms=LatencyPair(),
    )
    checks = judge(thresholds(latency={"p99": "250ms"}, errorRate=1.0), failed)
    latency = checks[0]
    assert latency.name == "latency.p99" and not latency.passed
    assert "none of 1000 requests was answered" in latency.message
    assert verdict_of(checks) == "fail"
    # Answered errors (a 503 is an answer) still have a latency to judge.
    answered = summary(outcomes={"5xx": 1000}, errors_total=1000, error_rate=1.0)
    assert judge(thresholds(latency={"p99": "1s"}), answered)[0].passed


def test_all_kinds_in_a_fixed_order() -> None:
    checks = judge(
        thresholds(
            latency={"p50": "1s", "p95": "1s", "p99": "1s"}, errorRate=0.5, minAchievedRatio=0.5
        ),
        summary(),
    )
    assert [c.name for c in checks] == [
        "latency.p50",
        "latency.p95",
        "latency.p99",
        "error_rate",
        "min_achieved_ratio",
    ]
    assert verdict_of(checks) == "pass"

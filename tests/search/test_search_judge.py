"""One step judged on its own window, pure: thresholds, the generator's share, attribution."""

from __future__ import annotations

from dataclasses import replace

from kar98k.controller import StepWindow
from kar98k.controller.merge import Window
from kar98k.results import LatencySummary, SearchStep
from kar98k.search.judge import attribute, first_failure, judge_step
from kar98k.spec.model import Search, Thresholds

THRESHOLDS = Thresholds.model_validate({"latency": {"p99": "100ms"}, "errorRate": 0.01})
SEARCH = Search()


def window(
    *,
    requests: int = 1000,
    asked: float = 1000,
    errors: int = 0,
    p99: float = 20.0,
    raw_p99: float | None = None,
    late: int = 0,
    dropped: int = 0,
) -> StepWindow:
    corrected = LatencySummary(p50=p99 / 2, p95=p99, p99=p99)
    raw_value = p99 if raw_p99 is None else raw_p99
    raw = LatencySummary(p50=raw_value / 2, p95=raw_value, p99=raw_value)
    # Every request answered (errors here are answers such as 5xx; see the unanswered test).
    stats = Window(
        0.0, 2.0, requests, errors, corrected, raw, late_sends=late, dropped=dropped,
        answered=requests,
    )  # fmt: skip
    return StepWindow(stats, asked)


def judge(w: StepWindow, rate: float = 500.0) -> SearchStep:
    return judge_step(THRESHOLDS, SEARCH, w, index=1, rate=rate, phase="bracket")


def test_a_step_within_every_threshold_passes_with_its_own_rates() -> None:
    step = judge(window())
    assert step.passed and step.limited_by is None
    assert step.achieved_tps == 500 and step.target_tps == 500 and step.window_s == 2
    assert [c.name for c in step.checks] == [
        "latency.p99",
        "error_rate",
        "search.achieved",
        "search.generator",
    ]
    assert first_failure(step) is None


def test_latency_past_the_ceiling_is_the_targets_limit_and_says_by_how_much() -> None:
    step = judge(window(p99=150.0))
    assert not step.passed and step.limited_by == "target"
    failure = first_failure(step)
    assert failure is not None
    assert failure.check == "latency.p99" and failure.excess == 0.5


def test_errors_fail_a_step_even_with_fast_answers() -> None:
    step = judge(window(errors=20))
    assert not step.passed and step.limited_by == "target"
    assert "error rate 2.00%" in step.reason


def test_late_pods_with_a_fast_target_are_the_generators_limit() -> None:
    # Sends waited in the pod: corrected latency is high, raw (what the target took) is not.
    step = judge(window(p99=300.0, raw_p99=22.0, late=200))
    assert not step.passed and step.limited_by == "generator"
    assert step.reason.startswith("load generator behind (200 late, 0 dropped)")
    # Too little sent with no latency trouble at all is the generator's too.
    short = judge(window(requests=700))
    assert not short.passed and short.limited_by == "generator"
    failure = first_failure(short)
    assert failure is not None and failure.check == "search.achieved"


def test_late_pods_and_a_slow_target_are_the_targets_limit() -> None:
    step = judge(window(p99=300.0, raw_p99=250.0, late=200))
    assert not step.passed and step.limited_by == "target"


def test_attribution_turns_to_the_target_when_its_own_latency_climbed() -> None:
    passing = [judge(window(p99=22.0), rate=200.0), judge(window(p99=25.0), rate=300.0)]
    slowing = judge(window(p99=130.0, raw_p99=80.0, late=80))
    assert slowing.limited_by == "generator"
    moved = attribute(slowing, passing)
    assert moved.limited_by == "target" and "rose from 22.0 ms to 80.0 ms" in moved.reason
    steady = judge(window(p99=130.0, raw_p99=40.0, late=80))
    assert attribute(steady, passing).limited_by == "generator"
    assert attribute(slowing, []).limited_by == "generator"


def test_a_step_nobody_answered_fails_its_latency_checks() -> None:
    """Connection failures only: the (empty) latency of the window cannot pass."""
    step = window(errors=1000)
    unanswered = StepWindow(replace(step.stats, answered=0), step.asked)
    judged = judge_step(THRESHOLDS, SEARCH, unanswered, index=1, rate=500.0, phase="bracket")
    assert not judged.passed
    assert any("was answered" in c.message for c in judged.checks if not c.passed)

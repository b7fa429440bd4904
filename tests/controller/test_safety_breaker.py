"""The safety breaker on its own: exact evaluation instants, no loop, no pods.

Times are plain numbers (the breaker never reads a clock), so each case states the instants at
which it is fed and the one instant at which it must change state.
"""

from __future__ import annotations

from typing import Any

import pytest
from kar98k.controller.hdr import counts_of
from kar98k.controller.merge import Mark
from kar98k.controller.safety import Breach, Breaker, RollingMarks, SafetyGuard, judge
from kar98k.spec.model import Safety
from kar98k_loadpod.histogram import LatencyHistogram

BAD = Breach("ErrorRateAbove", 0.9, 0.5, "error rate 90% above 50%")


def rules(**fields: Any) -> Safety:
    data: dict[str, Any] = {"errorRateAbove": 0.5, "sustainedFor": "3s"}
    data.update(fields)
    return Safety.model_validate(data)


def feed(breaker: Breaker, bad_at: set[int], until: int) -> list[tuple[int, str]]:
    """Evaluate every second 0..until (bad at `bad_at`); the (second, kind) of each change."""
    out: list[tuple[int, str]] = []
    for t in range(until + 1):
        change = breaker.observe(float(t), BAD if t in bad_at else None)
        if change is not None:
            out.append((t, change.kind))
    return out


def test_trips_only_once_the_rule_held_for_sustained_for() -> None:
    # Bad from t=2: held 3 s at t=5, not before.
    assert feed(Breaker(rules()), set(range(2, 20)), 10) == [(5, "trip")]


def test_one_bad_second_or_short_bursts_never_trip() -> None:
    # Bursts of 3 evaluations (2 s held) separated by one clear evaluation: never 3 s held.
    bad = {t for t in range(40) if t % 4 != 3}
    assert feed(Breaker(rules()), bad, 40) == []
    assert feed(Breaker(rules()), {7}, 20) == []


def test_without_resume_after_it_stays_tripped_until_a_human_resumes() -> None:
    breaker = Breaker(rules())
    assert feed(breaker, set(range(0, 4)), 100) == [(3, "trip")]
    assert breaker.tripped and breaker.factor == 0.0
    change = breaker.reset()
    assert change is not None and change.kind == "close" and change.by == "human"
    assert breaker.factor == 1.0


def test_resumes_only_after_clear_for_resume_after_and_any_bad_second_restarts_it() -> None:
    breaker = Breaker(rules(resumeAfter="5s"))
    # Tripped at 3; clear from 4; bad again at 7 (restarts the clear timer); clear from 8:
    # 5 s clear at 13.
    changes = feed(breaker, {0, 1, 2, 3, 7}, 20)
    assert changes == [(3, "trip"), (13, "close")]


def test_no_flapping_a_closed_breaker_needs_the_full_sustained_for_again() -> None:
    breaker = Breaker(rules(resumeAfter="2s"))
    # Bad 0..3 trips at 3; clear 4..6 closes at 6; bad again from 7: next trip at 10, not 7.
    bad = {0, 1, 2, 3, *range(7, 30)}
    assert feed(breaker, bad, 12) == [(3, "trip"), (6, "close"), (10, "trip")]


def test_scale_keeps_the_share_and_abort_never_closes() -> None:
    scaled = Breaker(rules(action="scale", scaleTo=0.25))
    feed(scaled, {0, 1, 2, 3}, 3)
    assert scaled.factor == 0.25
    aborted = Breaker(rules(action="abort", resumeAfter="1s"))
    assert feed(aborted, {0, 1, 2, 3}, 30) == [(3, "trip")]
    assert aborted.reset() is None and aborted.tripped


def mark(unix: float, requests: int, errors: int, latency_s: float = 0.001) -> Mark:
    hist = LatencyHistogram()
    for _ in range(requests):
        hist.record_seconds(latency_s)
    counts = counts_of(hist)
    return Mark(unix, requests, errors, counts, counts, answered=requests)


def test_judge_names_the_rule_and_the_measured_figure() -> None:
    window = RollingMarks(10).add(mark(0, 0, 0))
    assert window is None  # one mark makes no window
    marks = RollingMarks(10)
    marks.add(mark(0, 0, 0))
    errors = marks.add(mark(1, 100, 60))
    assert errors is not None
    breach = judge(rules(), errors, "corrected")
    assert breach is not None and breach.rule == "ErrorRateAbove"
    assert breach.measured == pytest.approx(0.6) and "60.0%" in breach.message
    exactly = judge(rules(errorRateAbove=0.6), errors, "corrected")
    assert exactly is None  # "above": a rate equal to the limit is clear
    slow = RollingMarks(10)
    slow.add(mark(0, 0, 0))
    window = slow.add(mark(1, 50, 0, latency_s=0.3))
    assert window is not None
    p95 = judge(Safety.model_validate({"p95Above": "200ms"}), window, "raw")
    assert p95 is not None and p95.rule == "P95Above" and p95.measured > 200.0
    assert judge(Safety.model_validate({"p95Above": "400ms"}), window, "raw") is None


def test_an_empty_window_is_clear_and_no_answer_means_no_latency_verdict() -> None:
    marks = RollingMarks(10)
    marks.add(mark(0, 10, 10))
    empty = marks.add(mark(1, 10, 10))
    assert empty is not None and empty.requests == 0
    assert judge(rules(), empty, "corrected") is None
    assert judge(Safety.model_validate({"p95Above": "1ms"}), empty, "corrected") is None


def test_rolling_window_forgets_marks_older_than_its_length() -> None:
    marks = RollingMarks(3)
    for t in range(6):
        window = marks.add(mark(t, 100 * t, 90 * t if t <= 2 else 180))
    # At t=5 the window runs from t=2: 300 requests, 0 new errors.
    assert window is not None
    assert (window.unix_from, window.requests, window.errors) == (2, 300, 0)


def test_guard_records_trip_and_close_with_run_times() -> None:
    guard = SafetyGuard(rules(sustainedFor="1s", window="1s", resumeAfter="1s"), "corrected")
    requests = errors = 0
    for t in range(8):
        requests += 100
        errors += 80 if t < 3 else 0
        guard.observe(float(t), 10.0 + t, mark(float(t), requests, errors))
    # Bad windows end at 1 and 2: trip at 2 (held 1 s); clear at 3 and 4: close at 4.
    assert len(guard.trips) == 1
    trip = guard.trips[0]
    assert (trip.rule, trip.action, trip.at_s, trip.closed_at_s, trip.closed_by) == (
        "ErrorRateAbove",
        "pause",
        12.0,
        14.0,
        "clear",
    )
    assert trip.measured == pytest.approx(0.8)


def test_a_held_breaker_closes_only_after_the_full_resume_after() -> None:
    breaker = Breaker(rules(resumeAfter="4s"))
    breaker.hold(BAD)  # a restarted operator resuming a tripped run
    assert breaker.tripped and breaker.factor == 0.0
    # Clear from 0: closes at 4, not earlier.
    assert feed(breaker, set(), 10) == [(4, "close")]
    kept = Breaker(rules())
    kept.hold(BAD)
    assert feed(kept, set(), 100) == []  # no resumeAfter: held until a human resumes

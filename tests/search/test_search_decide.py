"""The search's pure decisions, driven against simulated targets of known capacity."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from kar98k.search.decide import Bounds, Done, Next, Outcome, bracket, conclude, decide

Judge = Callable[[float, str], Outcome]


def capacity(cap: float, *, generator_above: float | None = None) -> Judge:
    """A target that passes every rate up to `cap`; past `generator_above` the generator is
    the one failing."""

    def judge(rate: float, phase: str) -> Outcome:
        if generator_above is not None and rate > generator_above:
            return Outcome(rate, phase, passed=False, generator=True)  # type: ignore[arg-type]
        return Outcome(rate, phase, passed=rate <= cap)  # type: ignore[arg-type]

    return judge


def search(bounds: Bounds, judge: Judge) -> tuple[Done, list[Outcome]]:
    outcomes: list[Outcome] = []
    for _ in range(bounds.max_steps + 1):
        step = decide(bounds, outcomes)
        if isinstance(step, Done):
            return step, outcomes
        assert 0 < step.rate <= bounds.ceiling
        outcomes.append(judge(step.rate, step.phase))
    raise AssertionError(f"no end after {bounds.max_steps} steps: {outcomes}")


def test_first_step_is_the_start_rate_capped_at_the_ceiling() -> None:
    assert decide(Bounds(100, 2, 0.05, 1000, 20), []) == Next(100, "bracket")
    assert decide(Bounds(100, 2, 0.05, 60, 20), []) == Next(60, "bracket")


def test_a_worked_search() -> None:
    done, outcomes = search(Bounds(100, 2, 0.05, 10_000, 20), capacity(300))
    assert [(o.rate, o.phase, o.passed) for o in outcomes] == [
        (100, "bracket", True),
        (200, "bracket", True),
        (400, "bracket", False),
        (300, "bisect", True),
        (350, "bisect", False),
        (325, "bisect", False),
        (312.5, "bisect", False),  # 12.5 above the best: within 5 % of 300
        (300, "confirm", True),
    ]
    assert done == Done("resolved", 300, 312.5, True, "target")


@pytest.mark.parametrize("growth", [1.25, 1.5, 2.0, 3.0, 10.0])
@pytest.mark.parametrize("resolution", [0.01, 0.05, 0.1, 0.3])
@pytest.mark.parametrize("start", [1.0, 37.0, 100.0, 999.0])
def test_finds_every_capacity_within_the_resolution(
    growth: float, resolution: float, start: float
) -> None:
    bounds = Bounds(start, growth, resolution, ceiling=start * 10_000, max_steps=100)
    for factor in (1.0, 1.001, 1.3, 2.5, 7.77, 100.0, 4321.0):
        cap = start * factor
        done, outcomes = search(bounds, capacity(cap))
        assert done.ended == "resolved" and done.confirmed
        assert done.best is not None and done.first_failing is not None
        assert done.best <= cap < done.first_failing
        assert done.first_failing - done.best <= resolution * done.best + 1e-9
        assert done.limited_by == "target"
        assert max(o.rate for o in outcomes) <= bounds.ceiling
        # Only one climb past the knee: every rate after the first failure stays below it.
        first_fail = next(i for i, o in enumerate(outcomes) if not o.passed)
        assert all(o.rate < outcomes[first_fail].rate for o in outcomes[first_fail + 1 :])


def test_never_above_the_ceiling_and_a_passing_ceiling_ends_it() -> None:
    for growth, ceiling in itertools.product((1.5, 2.0, 7.0), (150.0, 333.0, 1000.0)):
        done, outcomes = search(Bounds(100, growth, 0.05, ceiling, 20), capacity(1e9))
        assert all(o.rate <= ceiling for o in outcomes)
        assert outcomes[-1] == Outcome(ceiling, "confirm", True)
        assert done == Done("ceiling", ceiling, None, True, "ceiling")


def test_nothing_passed_when_the_first_step_fails() -> None:
    done, outcomes = search(Bounds(100, 2, 0.05, 1000, 20), capacity(50))
    assert len(outcomes) == 1
    assert done == Done("nothingPassed", None, 100, False, "target")


def test_a_failed_confirmation_lowers_the_bracket() -> None:
    bounds = Bounds(100, 2, 0.1, 1000, 20)
    history = [
        Outcome(100, "bracket", True),
        Outcome(200, "bracket", False),
        Outcome(150, "bisect", True),
        Outcome(175, "bisect", False),
        Outcome(162.5, "bisect", True),
        Outcome(175 - 12.5 / 2, "bisect", False),
    ]
    assert decide(bounds, history) == Next(162.5, "confirm")
    history.append(Outcome(162.5, "confirm", False))  # the long window found it out
    assert bracket(history) == (150, 162.5)
    assert decide(bounds, history) == Next(150, "confirm")  # 12.5 apart: within 10 %
    history.append(Outcome(150, "confirm", True))
    assert decide(bounds, history) == Done("resolved", 150, 162.5, True, "target")


def test_a_pass_above_a_failure_is_not_trusted() -> None:
    history = [
        Outcome(100, "bracket", True),
        Outcome(200, "bracket", False),
        Outcome(150, "bisect", False),
        Outcome(175, "bisect", True),  # noise: above a failing rate
    ]
    assert bracket(history) == (100, 150)
    assert decide(Bounds(100, 2, 0.05, 1000, 20), history) == Next(125, "bisect")


def test_the_step_budget_keeps_its_last_step_for_a_confirmation() -> None:
    for max_steps in range(2, 12):
        bounds = Bounds(10, 2, 0.001, 1e6, max_steps)
        done, outcomes = search(bounds, capacity(12345))
        assert len(outcomes) == max_steps
        assert outcomes[-1].phase == "confirm" and outcomes[-1].passed
        assert done.ended == "maxSteps" and done.confirmed
        assert done.best == outcomes[-1].rate and done.best <= 12345


def test_generator_limit_is_reported_when_it_is_the_first_failing_rate() -> None:
    done, _ = search(Bounds(50, 2, 0.05, 10_000, 30), capacity(800, generator_above=120))
    assert done.limited_by == "generator"
    assert done.best is not None and 120 * 0.95 <= done.best <= 120
    done, _ = search(Bounds(50, 2, 0.05, 10_000, 30), capacity(100, generator_above=500))
    assert done.limited_by == "target"


def test_conclude_after_an_abort_keeps_what_was_measured() -> None:
    bounds = Bounds(100, 2, 0.05, 1000, 20)
    history = [Outcome(100, "bracket", True), Outcome(200, "bracket", False)]
    assert conclude(bounds, history, "aborted") == Done("aborted", 100, 200, False, "target")
    assert conclude(bounds, [], "interrupted") == Done("interrupted", None, None, False, None)


def test_bad_bounds_are_refused() -> None:
    for args in ((0, 2, 0.05, 10, 5), (1, 1, 0.05, 10, 5), (1, 2, 0, 10, 5), (1, 2, 0.1, 10, 1)):
        with pytest.raises(ValueError):
            Bounds(*args)

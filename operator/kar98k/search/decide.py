"""The search's decisions, pure and clock-free: which rate comes next, and when it is over.

`decide(bounds, outcomes)` looks only at the outcomes of the steps so far:

- no step yet: the start rate (never above the ceiling);
- nothing has failed yet: the last passing rate × growth, capped at the ceiling; a pass at the
  ceiling itself is confirmed and ends the search (the target holds all we may send);
- something failed: `hi` is the lowest failing rate, `lo` the highest passing rate below it
  (a pass above a failure is noise and never trusted); while `hi - lo > resolution · lo`
  bisect between them; within the resolution confirm `lo` with the longer window;
- a passing confirmation ends the search; a failing one becomes the new `hi` and the search
  goes on below it;
- the first step failing ends it (nothing passed); so does the step budget, whose last step is
  kept for confirming the best rate found so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Phase = Literal["bracket", "bisect", "confirm"]
Ended = Literal["resolved", "ceiling", "maxSteps", "nothingPassed", "aborted", "interrupted"]
LimitedBy = Literal["target", "generator", "ceiling"]
_EPS = 1e-9


@dataclass(frozen=True)
class Bounds:
    """The search settings the decisions need (from spec.search and spec.pattern)."""

    start: float
    growth: float
    resolution: float
    ceiling: float
    max_steps: int

    def __post_init__(self) -> None:
        if not (self.start > 0 and self.ceiling > 0):
            raise ValueError("start and ceiling must be > 0")
        if self.growth <= 1 or not 0 < self.resolution <= 1 or self.max_steps < 2:
            raise ValueError("growth must be > 1, resolution in (0, 1], max_steps >= 2")


@dataclass(frozen=True)
class Outcome:
    """A judged step: its rate, phase, verdict, and whether the generator was the limit."""

    rate: float
    phase: Phase
    passed: bool
    generator: bool = False


@dataclass(frozen=True)
class Next:
    rate: float
    phase: Phase


@dataclass(frozen=True)
class Done:
    ended: Ended
    best: float | None  # the highest passing rate below the first failure
    first_failing: float | None
    confirmed: bool
    limited_by: LimitedBy | None


def bracket(outcomes: Sequence[Outcome]) -> tuple[float | None, float | None]:
    """(lo, hi): the highest passing rate below the lowest failing rate, and that failing rate."""
    failing = [o.rate for o in outcomes if not o.passed]
    hi = min(failing) if failing else None
    passing = [o.rate for o in outcomes if o.passed and (hi is None or o.rate < hi)]
    return (max(passing) if passing else None), hi


def decide(bounds: Bounds, outcomes: Sequence[Outcome]) -> Next | Done:
    """The next step, or the end of the search (see the module docstring)."""
    if not outcomes:
        return Next(min(bounds.start, bounds.ceiling), "bracket")
    last = outcomes[-1]
    lo, hi = bracket(outcomes)
    if last.phase == "confirm" and last.passed and lo is not None and last.rate >= lo - _EPS:
        ended: Ended
        if hi is None:
            ended = "ceiling" if lo >= bounds.ceiling - _EPS else "maxSteps"
        else:
            ended = "resolved" if _within(bounds, lo, hi) else "maxSteps"
        return conclude(bounds, outcomes, ended)
    if lo is None:
        return conclude(bounds, outcomes, "nothingPassed")
    remaining = bounds.max_steps - len(outcomes)
    if remaining <= 0:
        return conclude(bounds, outcomes, "maxSteps")
    if hi is None:
        if lo >= bounds.ceiling - _EPS or remaining == 1:
            return Next(lo, "confirm")
        return Next(min(lo * bounds.growth, bounds.ceiling), "bracket")
    if _within(bounds, lo, hi) or remaining == 1:
        return Next(lo, "confirm")
    return Next((lo + hi) / 2, "bisect")


def _within(bounds: Bounds, lo: float, hi: float) -> bool:
    return hi - lo <= bounds.resolution * lo + _EPS


def conclude(bounds: Bounds, outcomes: Sequence[Outcome], ended: Ended) -> Done:
    """The answer the outcomes give when the search ends with `ended`; `confirmed` when a
    confirmation step passed at the best rate."""
    lo, hi = bracket(outcomes)
    limited_by: LimitedBy | None = None
    if hi is not None:
        at_hi = [o for o in outcomes if not o.passed and o.rate == hi]
        limited_by = "generator" if any(o.generator for o in at_hi) else "target"
    elif lo is not None and lo >= bounds.ceiling - _EPS:
        limited_by = "ceiling"
    confirmed = lo is not None and any(
        o.phase == "confirm" and o.passed and o.rate == lo for o in outcomes
    )
    return Done(ended=ended, best=lo, first_failing=hi, confirmed=confirmed, limited_by=limited_by)

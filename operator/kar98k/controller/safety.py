"""The safety breaker (spec.safety): stop hurting a target that is going down.

Pure: fed the run's merged cumulative figures (`Mark`s) with a time of the caller's clock, it
keeps a rolling window of them, judges the rules on that window and says when to trip and when
to close. The controller core applies what it says (the rate factor, events, abort); nothing
here reads a clock, sleeps or talks to a pod, so every decision is testable on loop time.

Why timers on top of the window: a window smooths one bad second, `sustainedFor` ignores a
short burst (a rule must hold at every evaluation for that long), and `resumeAfter` needs the
rules clear at every evaluation for that long; any bad evaluation while tripped restarts it.
Together they keep the breaker from flapping. A window without requests counts as clear: a
paused run sends nothing, so with `resumeAfter` the breaker closes and the traffic it lets
through probes the target; if the target is still failing, the breaker trips again after
`sustainedFor`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from kar98k.results import SafetyTrip
from kar98k.spec.model import Safety, SafetyAction

from .merge import Mark, Window, window_between

__all__ = ["Breach", "Breaker", "SafetyGuard", "Transition", "judge"]

EPSILON = 1e-9  # float slack on elapsed-time comparisons


@dataclass(frozen=True)
class Breach:
    """One rule broken on one window: which, by how much, said for a human."""

    rule: Literal["ErrorRateAbove", "P95Above"]
    measured: float
    limit: float
    message: str


@dataclass(frozen=True)
class Transition:
    """The breaker changed state: `trip` (with the breach that did it) or `close`."""

    kind: Literal["trip", "close"]
    breach: Breach | None
    by: Literal["clear", "human"] | None = None


def judge(rules: Safety, window: Window, basis: Literal["corrected", "raw"]) -> Breach | None:
    """The first rule `window` breaks, or None. Latency counts answered requests only (the
    histograms hold nothing else), so a window of timeouts is judged by its error rate."""
    rate = window.error_rate
    if rules.error_rate_above is not None and rate is not None and rate > rules.error_rate_above:
        return Breach(
            "ErrorRateAbove",
            rate,
            rules.error_rate_above,
            f"error rate {rate:.1%} above {rules.error_rate_above:.1%} "
            f"({window.errors}/{window.requests} requests)",
        )
    latency = window.corrected if basis == "corrected" else window.raw
    if rules.p95_above is not None and window.answered > 0:
        limit_ms = rules.p95_above * 1000.0
        if latency.p95 > limit_ms:
            return Breach(
                "P95Above",
                latency.p95,
                limit_ms,
                f"p95 {latency.p95:.1f} ms above {limit_ms:.1f} ms "
                f"({window.answered} answered, {basis})",
            )
    return None


class Breaker:
    """Closed or tripped, from breaches seen at evaluation times (see module docstring)."""

    def __init__(self, rules: Safety) -> None:
        self.rules = rules
        self.tripped = False
        self.last_breach: Breach | None = None
        self._bad_since: float | None = None
        self._clear_since: float | None = None

    @property
    def factor(self) -> float:
        """What the curve's rate is multiplied by now."""
        return self.rules.tripped_factor if self.tripped else 1.0

    def observe(self, now: float, breach: Breach | None) -> Transition | None:
        """One evaluation at `now`; a Transition when the state changes."""
        if not self.tripped:
            if breach is None:
                self._bad_since = None
                return None
            if self._bad_since is None:
                self._bad_since = now
            if now - self._bad_since < self.rules.sustained_for - EPSILON:
                return None
            self.tripped, self.last_breach = True, breach
            self._bad_since = self._clear_since = None
            return Transition("trip", breach)
        if breach is not None:
            self.last_breach = breach
            self._clear_since = None
            return None
        if self._clear_since is None:
            self._clear_since = now
        resume = self.rules.resume_after
        if self.rules.action is SafetyAction.ABORT or resume is None:
            return None
        if now - self._clear_since < resume - EPSILON:
            return None
        return self._close("clear")

    def hold(self, breach: Breach) -> None:
        """Start tripped (a resumed run whose breaker was tripped): no trip is recorded again,
        and closing takes the full resumeAfter (or a human) as before the restart."""
        self.tripped, self.last_breach = True, breach
        self._bad_since = self._clear_since = None

    def reset(self) -> Transition | None:
        """A human resumes: close now (an aborted run stays aborted)."""
        if not self.tripped or self.rules.action is SafetyAction.ABORT:
            return None
        return self._close("human")

    def _close(self, by: Literal["clear", "human"]) -> Transition:
        self.tripped = False
        self._bad_since = self._clear_since = None
        return Transition("close", None, by)


class RollingMarks:
    """Windows over the last `seconds` of marks (the oldest kept mark is >= that old)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._marks: deque[Mark] = deque()

    def add(self, mark: Mark) -> Window | None:
        """Keep `mark`; the window from the newest mark at least `seconds` old (or the oldest)."""
        marks = self._marks
        while len(marks) > 1 and mark.unix - marks[1].unix >= self.seconds - EPSILON:
            marks.popleft()
        window = window_between(marks[0], mark) if marks else None
        marks.append(mark)
        return window


class SafetyGuard:
    """The breaker with its window and its record of trips: what the controller core holds."""

    def __init__(self, rules: Safety, basis: Literal["corrected", "raw"]) -> None:
        self.breaker = Breaker(rules)
        self.basis = basis
        self.trips: list[SafetyTrip] = []
        self._marks = RollingMarks(rules.window)

    @property
    def rules(self) -> Safety:
        return self.breaker.rules

    @property
    def aborted(self) -> bool:
        return self.breaker.tripped and self.rules.action is SafetyAction.ABORT

    def observe(self, now: float, elapsed: float, mark: Mark) -> Transition | None:
        """Add a merge's mark at loop time `now` (run time `elapsed`); judge; record trips."""
        window = self._marks.add(mark)
        breach = judge(self.rules, window, self.basis) if window is not None else None
        return self._record(self.breaker.observe(now, breach), elapsed, mark.unix)

    def reset(self, elapsed: float, unix: float) -> Transition | None:
        return self._record(self.breaker.reset(), elapsed, unix)

    def _record(self, change: Transition | None, elapsed: float, unix: float) -> Transition | None:
        if change is None:
            return None
        if change.kind == "trip" and change.breach is not None:
            self.trips.append(
                SafetyTrip(
                    rule=change.breach.rule,
                    action=self.rules.action.value,
                    measured=change.breach.measured,
                    limit=change.breach.limit,
                    message=change.breach.message,
                    at_s=round(elapsed, 3),
                    at_unix=unix,
                )
            )
        elif change.kind == "close" and self.trips:
            self.trips[-1].closed_at_s = round(elapsed, 3)
            self.trips[-1].closed_by = change.by
        return change

    def message(self, change: Transition) -> str:
        """What the events say about a transition."""
        if change.kind == "close":
            how = "clear for resumeAfter" if change.by == "clear" else "resumed by hand"
            return f"safety breaker closed ({how}): following the curve again"
        breach = change.breach
        what = breach.message if breach is not None else "rule broken"
        held = f"for {self.rules.sustained_for:g}s"
        action = self.rules.action
        if action is SafetyAction.ABORT:
            return f"safety breaker tripped, aborting the run: {what} {held}"
        if action is SafetyAction.SCALE:
            return f"safety breaker tripped, rate x{self.breaker.factor:g}: {what} {held}"
        return f"safety breaker tripped, paused: {what} {held}"

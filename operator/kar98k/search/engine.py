"""The search engine: drives one Controller through the steps `decide` chooses.

Each step sets the pattern's base rate (the whole curve — schedule, spikes, noise — scales with
it; the start-up ramp is left out), holds it for `settle`, then judges a window between two
stats marks (every pod pulled and merged at both ends). After a failing step the pods pause for
`cooldown`, so the target's backlog drains before the next, lower step. Throughout, every
stats interval is watched: an error rate at `abortErrorRate` or an unhealthy target ends the
search at once. However the search ends, the controller is stopped and its pods drained before
`run()` returns: no load is left running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kar98k.controller import Controller, StepMark
from kar98k.results import RunSummary, SearchStep, SearchSummary
from kar98k.spec.model import LoadTestSpec, Search, Thresholds

from .decide import Bounds, Done, Ended, Next, Outcome, conclude, decide
from .judge import attribute, first_failure, judge_step

WATCH_INTERVAL = 0.25  # how often an abort condition is looked for
ABORT_MIN_REQUESTS = 20  # an error-rate explosion needs at least this many requests to count


def bounds_of(spec: LoadTestSpec, search: Search) -> Bounds:
    start = search.start_tps if search.start_tps is not None else spec.pattern.base_tps
    return Bounds(
        start=start,
        growth=search.growth,
        resolution=search.resolution,
        ceiling=spec.pattern.ceiling,
        max_steps=search.max_steps,
    )


def scaled(spec: LoadTestSpec, rate: float, ceiling: float) -> LoadTestSpec:
    """The spec with its base rate at `rate` (never above `ceiling`), no ramp, no end, and no
    thresholds: the controller's whole-run checks would mix every step; the engine judges."""
    pattern = spec.pattern.model_copy(
        update={
            "base_tps": rate,
            "max_tps": ceiling,
            "min_tps": min(spec.pattern.min_tps, rate),
            "ramp_up": 0.0,
        }
    )
    return spec.model_copy(
        update={
            "pattern": pattern,
            "duration": None,
            "paused": False,
            "thresholds": Thresholds(),
        }
    )


class _Stop(Exception):
    """The search ends now: aborted (reason) or interrupted (reason None)."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason or "interrupted")
        self.reason = reason


class SearchEngine:
    """One search over one Controller (built with the LoadTest's spec; see module docstring)."""

    def __init__(
        self,
        controller: Controller,
        search: Search,
        *,
        on_step: Callable[[SearchStep], None] | None = None,
    ) -> None:
        self._controller = controller
        self._search = search
        self._base = controller.spec
        self._bounds = bounds_of(self._base, search)
        self._on_step = on_step
        self._task: asyncio.Task[RunSummary] | None = None
        self._stop_requested = False
        self.steps: list[SearchStep] = []

    def stop(self) -> None:
        """End the search early (graceful: the controller drains its pods)."""
        self._stop_requested = True
        self._controller.stop()

    async def run(self) -> RunSummary:
        """Search, then stop the controller; its RunSummary carries `search` and the verdict
        pass (a rate passed) or fail (none did)."""
        controller = self._controller
        first = decide(self._bounds, [])
        assert isinstance(first, Next)
        controller.update_spec(scaled(self._base, first.rate, self._bounds.ceiling))
        self._task = asyncio.create_task(controller.run(), name=f"{controller.name}-search")
        try:
            done = await self._climb()
        except BaseException:
            controller.stop()
            await asyncio.gather(self._task, return_exceptions=True)
            raise
        answer = self._answer(done)
        controller.emit("search-result", answer.message)
        controller.stop(complete=done.ended != "interrupted")
        summary = await self._task
        summary.search = answer
        summary.checks = []
        summary.verdict = "pass" if summary.search.found else "fail"
        return summary

    # ------------------------------------------------------------------ steps

    async def _climb(self) -> Done:
        outcomes: list[Outcome] = []
        while True:
            step = decide(self._bounds, outcomes)
            if isinstance(step, Done):
                return step
            try:
                judged = await self._step(step, len(outcomes) + 1)
            except _Stop as stop:
                ended: Ended = "aborted" if stop.reason else "interrupted"
                if len(self.steps) > len(outcomes):  # the step that was under way
                    outcomes.append(_outcome(self.steps[-1]))
                return conclude(self._bounds, outcomes, ended)
            outcomes.append(_outcome(judged))

    async def _step(self, step: Next, index: int) -> SearchStep:
        controller = self._controller
        search = self._search
        controller.update_spec(scaled(self._base, step.rate, self._bounds.ceiling))
        controller.resume()
        began = controller.now_unix()
        window = search.confirm_window if step.phase == "confirm" else search.window
        start: StepMark | None = None
        try:
            await self._hold(search.settle, began)
            start = await controller.mark()
            await self._hold(window, began)
        except _Stop as stop:
            if stop.reason is not None and start is not None:
                self._record(await self._judge(start, index, step), aborted=stop.reason)
            elif stop.reason is not None:
                self._record(_aborted_step(index, step, stop.reason))
            raise
        judged = self._record(await self._judge(start, index, step))
        if not judged.passed and search.cooldown > 0:
            controller.pause()
            await self._hold(search.cooldown, None)
        return judged

    async def _judge(self, start: StepMark, index: int, step: Next) -> SearchStep:
        end = await self._controller.mark()
        judged = judge_step(
            self._base.thresholds,
            self._search,
            self._controller.window(start, end),
            index=index,
            rate=step.rate,
            phase=step.phase,
        )
        return attribute(judged, [s for s in self.steps if s.passed])

    def _record(self, step: SearchStep, *, aborted: str | None = None) -> SearchStep:
        if aborted is not None:
            step = step.model_copy(update={"passed": False, "reason": f"aborted: {aborted}"})
        self.steps.append(step)
        mark = "pass" if step.passed else "FAIL"
        self._controller.emit(
            "search-step",
            f"step {step.index} ({step.phase}) {step.rate:.1f}/s: {mark}, "
            f"p99 {step.p99_ms:.1f} ms, errors {step.error_rate:.2%}, "
            f"achieved {step.achieved_tps:.1f}/s: {step.reason}",
        )
        if self._on_step is not None:
            self._on_step(step)
        return step

    async def _hold(self, seconds: float, began: float | None) -> None:
        """Wait `seconds` of loop time, watching for the end of the run and (when `began` is
        set) for an abort condition in stats intervals that started after `began`."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while True:
            self._check(began)
            remaining = until - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(WATCH_INTERVAL, remaining))

    def _check(self, began: float | None) -> None:
        if self._stop_requested or (self._task is not None and self._task.done()):
            raise _Stop(None)
        if began is None:
            return
        interval = self._controller.last_interval()
        if interval is None or interval.unix_from < began:
            return
        if not interval.healthy:
            raise _Stop("a target's health check failed")
        rate = interval.error_rate
        if (
            rate is not None
            and interval.requests >= ABORT_MIN_REQUESTS
            and rate >= self._search.abort_error_rate
        ):
            raise _Stop(
                f"error rate {rate:.0%} over {interval.requests} requests reached the "
                f"{self._search.abort_error_rate:.0%} abort limit"
            )

    # ------------------------------------------------------------------ answer

    def _answer(self, done: Done) -> SearchSummary:
        steps = self.steps
        failing = [s for s in steps if not s.passed and s.rate == done.first_failing]
        failure = first_failure(failing[0]) if failing else None
        aborted = next(
            (s.reason.removeprefix("aborted: ") for s in steps if s.reason.startswith("aborted: ")),
            None,
        )
        found = done.best is not None
        summary = SearchSummary(
            found=found,
            max_sustainable_tps=done.best,
            last_passing_tps=done.best,
            first_failing_tps=done.first_failing,
            limited_by=done.limited_by,
            ended=done.ended,
            first_failure=failure,
            confirmed=done.confirmed,
            aborted=aborted,
            ceiling_tps=self._bounds.ceiling,
            resolution=self._bounds.resolution,
            steps=list(steps),
        )
        summary.message = _message(summary)
        if done.limited_by == "generator":
            pods = len(self._controller.live().summary.pods) or 1
            summary.advice = (
                f"the load generator fell behind at {done.first_failing:g}/s before the target "
                f"showed a limit: run more load pods (e.g. {2 * pods}) or raise "
                "loadPods.maxInFlight, then search again"
            )
        return summary


def _outcome(step: SearchStep) -> Outcome:
    return Outcome(step.rate, step.phase, step.passed, step.limited_by == "generator")


def _aborted_step(index: int, step: Next, reason: str) -> SearchStep:
    return SearchStep(
        index=index, phase=step.phase, rate=step.rate, passed=False, reason=f"aborted: {reason}"
    )


def _message(summary: SearchSummary) -> str:
    best, failing = summary.max_sustainable_tps, summary.first_failing_tps
    if best is None:
        first = f" ({summary.first_failure.message})" if summary.first_failure else ""
        return f"nothing passed, not even the first step at {failing or 0:g}/s{first}"
    text = f"max sustainable {best:.1f}/s"
    if failing is not None:
        text += f" (passes; {failing:.1f}/s fails"
        if summary.first_failure is not None:
            text += f": {summary.first_failure.message}"
        text += ")"
    elif summary.limited_by == "ceiling":
        text += " = pattern.maxTPS: the target held everything the search may send"
    if not summary.confirmed:
        text += "; not confirmed with the longer window"
    if summary.ended not in ("resolved", "ceiling"):
        text += f"; search ended: {summary.ended}"
    return text

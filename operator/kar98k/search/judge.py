"""One search step judged, pure: the LoadTest's own thresholds on that step's window only.

The window's figures (requests, errors, merged latency histograms, late sends, drops) are run
through the same `verdict.judge` a whole run gets, plus the search's own checks: a step fails
when the pods dropped more than 5 % of the asked sends or sent less than `minAchievedRatio` of
them (late sends fail a step only through the corrected latency). A failing step is the
generator's limit, not the target's, when the pods fell behind (late or dropped sends, too
little sent) while the target's own figures — latency from the actual send (raw), errors —
were within their ceilings.
"""

from __future__ import annotations

from collections.abc import Sequence

from kar98k import verdict
from kar98k.controller import StepWindow
from kar98k.results import Check, FirstFailure, LatencyPair, RunSummary, SearchStep
from kar98k.spec.model import Search, Thresholds

from .decide import Phase

ACHIEVED_CHECK = "search.achieved"
GENERATOR_CHECK = "search.generator"
BEHIND_SHARE = 0.05  # late + dropped sends above this share of the asked: the pods fell behind


def judge_step(
    thresholds: Thresholds,
    search: Search,
    window: StepWindow,
    *,
    index: int,
    rate: float,
    phase: Phase,
) -> SearchStep:
    """The step's figures, checks and verdict (see module docstring)."""
    stats = window.stats
    seconds = window.seconds
    asked = window.asked
    figures = RunSummary(
        name="step",
        seed=0,
        started_at="",
        duration_s=seconds,
        requests_total=stats.requests,
        errors_total=stats.errors,
        error_rate=stats.error_rate or 0.0,
        target_requests=asked,
        latency_ms=LatencyPair(raw=stats.raw, corrected=stats.corrected),
    )
    checks = verdict.judge(thresholds, figures, answered=stats.answered)
    achieved_ratio = stats.requests / asked if asked > 0 else 1.0
    floor = search.min_achieved_ratio
    verb = "meets" if achieved_ratio >= floor else "is below"
    checks.append(
        Check(
            name=ACHIEVED_CHECK,
            threshold=floor,
            observed=achieved_ratio,
            passed=achieved_ratio >= floor,
            message=f"achieved {achieved_ratio:.1%} of the {asked:.0f} requests asked "
            f"{verb} the search's {floor:.0%} floor",
        )
    )
    # Sends never made fail a step; late ones do not by themselves (their lateness is already
    # in the corrected latency the thresholds judge), but they do say who fell behind.
    dropped_share = stats.dropped / max(asked, 1.0)
    checks.append(
        Check(
            name=GENERATOR_CHECK,
            threshold=BEHIND_SHARE,
            observed=dropped_share,
            passed=dropped_share <= BEHIND_SHARE,
            message=f"{stats.dropped} sends dropped by the load pods: "
            f"{dropped_share:.1%} of the asked, "
            + ("within" if dropped_share <= BEHIND_SHARE else "over")
            + f" the {BEHIND_SHARE:.0%} the load generator may miss",
        )
    )
    behind_share = (stats.late_sends + stats.dropped) / max(asked, 1.0)
    passed = all(c.passed for c in checks)
    behind = behind_share > BEHIND_SHARE or achieved_ratio < floor
    # The target's side of the story: latency from each request's actual send (raw), so time a
    # request spent waiting inside a load pod that could not send it does not count against
    # the target; a pod at its own limit inflates corrected latency, not raw.
    raw_view = thresholds.model_copy(update={"latency_basis": "raw"})
    target_fine = all(c.passed for c in verdict.judge(raw_view, figures))
    limited_by = None if passed else ("generator" if behind and target_fine else "target")
    latency = stats.corrected if thresholds.latency_basis == "corrected" else stats.raw
    if passed:
        reason = (
            f"passed: p99 {latency.p99:.1f} ms, errors {stats.error_rate or 0.0:.2%}, "
            f"achieved {achieved_ratio:.1%}"
        )
    else:
        first = next(c for c in checks if not c.passed)
        reason = first.message
        if limited_by == "generator":
            reason = (
                f"load generator behind ({stats.late_sends} late, {stats.dropped} dropped): "
                f"{reason}"
            )
    return SearchStep(
        index=index,
        phase=phase,
        rate=rate,
        target_tps=asked / seconds if seconds > 0 else 0.0,
        achieved_tps=stats.requests / seconds if seconds > 0 else 0.0,
        window_s=seconds,
        requests=stats.requests,
        errors=stats.errors,
        error_rate=stats.error_rate or 0.0,
        p50_ms=latency.p50,
        p99_ms=latency.p99,
        raw_p99_ms=stats.raw.p99,
        late_sends=stats.late_sends,
        dropped=stats.dropped,
        passed=passed,
        limited_by=limited_by,
        reason=reason,
        checks=checks,
    )


DEGRADED_FACTOR = 2.0  # the target's raw p99 more than doubled (plus the slack below)...
DEGRADED_SLACK_MS = 10.0  # ...over its best passing step: the target is slowing down too


def attribute(step: SearchStep, passed: Sequence[SearchStep]) -> SearchStep:
    """A failing step judged the generator's is the target's after all when the target's own
    latency (raw p99, from the actual send) climbed well above what it showed at the passing
    steps: at the knee both may fall behind at once (a busy load pod sends late while the
    target's queue grows), and then the target's limit is the answer."""
    if step.passed or step.limited_by != "generator" or not passed:
        return step
    baseline = min(s.raw_p99_ms for s in passed)
    if step.raw_p99_ms <= baseline * DEGRADED_FACTOR + DEGRADED_SLACK_MS:
        return step
    return step.model_copy(
        update={
            "limited_by": "target",
            "reason": f"{step.reason}; but the target's raw p99 rose from {baseline:.1f} ms "
            f"to {step.raw_p99_ms:.1f} ms: its limit, not only the generator's",
        }
    )


def first_failure(step: SearchStep) -> FirstFailure | None:
    """The first failing check of a failing step, with how far past its limit it was."""
    failed = [c for c in step.checks if not c.passed and not _is_achieved(c)]
    failed = failed or [c for c in step.checks if not c.passed]
    if not failed:
        if step.passed:
            return None
        return FirstFailure(
            rate=step.rate, check="aborted", threshold=0, observed=0, excess=0, message=step.reason
        )
    check = failed[0]
    floor = check.name in (ACHIEVED_CHECK, "min_achieved_ratio")  # the others are ceilings
    if check.threshold > 0:
        excess = (
            1 - check.observed / check.threshold if floor else check.observed / check.threshold - 1
        )
    else:
        excess = check.observed
    return FirstFailure(
        rate=step.rate,
        check=check.name,
        threshold=check.threshold,
        observed=check.observed,
        excess=excess,
        message=check.message,
    )


def _is_achieved(check: Check) -> bool:
    """Checks on what the generator delivered, rather than on how the target answered."""
    return check.name in (ACHIEVED_CHECK, GENERATOR_CHECK, "min_achieved_ratio")

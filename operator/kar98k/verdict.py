"""Judge a run against its thresholds: one Check per threshold set, with a message a human reads.

Everything is judged over the whole run (or the run so far, for live views): latency from the
merged histograms, never from averaged per-pod percentiles. Latency is that of answered requests
(any status); requests that got no answer count as errors and never make latency look good.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from kar98k.results import Check, RunSummary
from kar98k.spec.model import Thresholds


def judge(
    thresholds: Thresholds, summary: RunSummary, *, answered: int | None = None
) -> list[Check]:
    """Checks in a fixed order: latency p50, p95, p99, error rate, achieved ratio.

    `answered` (requests that got an answer) overrides what the summary's outcomes say, for
    figures of a window that carry no outcome counts."""
    checks: list[Check] = []
    answered_total = summary.answered_total if answered is None else answered
    basis = thresholds.latency_basis
    observed_latency = (
        summary.latency_ms.corrected if basis == "corrected" else summary.latency_ms.raw
    )
    for name in ("p50", "p95", "p99"):
        ceiling_s = getattr(thresholds.latency, name)
        if ceiling_s is None:
            continue
        ceiling = ceiling_s * 1000.0
        observed = float(getattr(observed_latency, name))
        passed = observed <= ceiling
        what = f"{name} {basis} latency {observed:.1f} ms"
        if summary.requests_total == 0:
            passed = False
            message = f"{name} {basis} latency: no requests completed, nothing to judge"
        elif answered_total == 0:
            # Percentiles are of answered requests; with none, a fast "p99" would be a lie.
            passed = False
            message = (
                f"{name} {basis} latency: none of {summary.requests_total} requests was answered "
                "(timeouts or connection failures), so latency cannot pass"
            )
        elif passed:
            message = f"{what} is within the {_ms(ceiling)} ceiling"
        else:
            message = f"{what} exceeds the {_ms(ceiling)} ceiling"
        checks.append(
            Check(
                name=f"latency.{name}",
                threshold=ceiling,
                observed=observed,
                passed=passed,
                message=message,
            )
        )
    if thresholds.error_rate is not None:
        ceiling = thresholds.error_rate
        observed = summary.error_rate
        passed = observed <= ceiling
        detail = f"{summary.errors_total} of {summary.requests_total} requests failed"
        verb = "is within" if passed else "exceeds"
        message = f"error rate {observed:.2%} ({detail}) {verb} the {ceiling:.2%} ceiling"
        checks.append(
            Check(
                name="error_rate",
                threshold=ceiling,
                observed=observed,
                passed=passed,
                message=message,
            )
        )
    if thresholds.min_achieved_ratio is not None:
        floor = thresholds.min_achieved_ratio
        if summary.target_requests <= 0:
            observed = 1.0
            message = "achieved ratio: the curve asked for no requests, nothing to miss"
        else:
            observed = summary.requests_total / summary.target_requests
            detail = f"{summary.requests_total} sent of {summary.target_requests:.0f} asked"
            verb = "meets" if observed >= floor else "is below"
            message = f"achieved ratio {observed:.1%} ({detail}) {verb} the {floor:.1%} floor"
            message += _scatter_note(summary, floor)
        checks.append(
            Check(
                name="min_achieved_ratio",
                threshold=floor,
                observed=observed,
                passed=observed >= floor,
                message=message,
            )
        )
    return checks


def verdict_of(checks: Sequence[Check]) -> Literal["pass", "fail", "none"]:
    """'none' when no threshold was set, else 'fail' if any check failed."""
    if not checks:
        return "none"
    return "pass" if all(c.passed for c in checks) else "fail"


def _scatter_note(summary: RunSummary, floor: float) -> str:
    """Poisson arrivals scatter the sent count on their own: say by how much, and warn when the
    floor sits inside that scatter (a perfect generator would then fail it by chance)."""
    delivered = summary.delivered
    if delivered is None or delivered.arrival != "poisson":
        return ""
    note = f"; Poisson arrivals alone move it by ±{delivered.bound:.1%} (2σ)"
    if 1.0 - delivered.bound < floor:
        note += ", so this floor can fail by chance: lower it or use uniform arrivals"
    return note


def _ms(value: float) -> str:
    return f"{value:g} ms"

"""The RunSummary of a run so far (live views, threshold checks) or at its end (reports)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from kar98k_loadpod.plan import Arrival

from kar98k import verdict
from kar98k.results import ControllerFigures, Delivered, LatencyPair, PodSummary, RunSummary
from kar98k.spec.model import Thresholds

from .clock import RunClock
from .collector import StatsCollector
from .fleet import PodFleet
from .merge import StatsBook
from .series import SeriesBook
from .unaccounted import unaccounted

DELIVERED_SIGMAS = 2.0
"""The delivered ratio's stated bound under Poisson arrivals: ±2σ holds ~95 % of runs."""


def build_summary(
    *,
    name: str,
    seed: int,
    clock: RunClock,
    series: SeriesBook | None,
    last_mono: float,
    end_mono: float | None,
    interrupted: bool,
    stats: StatsCollector,
    fleet: PodFleet,
    figures: ControllerFigures,
    thresholds: Thresholds,
    final: bool,
    series_last: int | None,
    arrival: Arrival = Arrival.POISSON,
    lease_s: float = 0.0,
) -> RunSummary:
    """`series` is None until the run began; `last_mono` is the loop time accounted up to,
    `end_mono` when the ticks ended (None while they run). `series_last`: the newest points
    only (None: all, 0: none). `final` judges the verdict and bounds what dead pods may have
    sent unreported (pods send nothing `lease_s` after their last plan); otherwise the verdict
    is "running"."""
    merged = stats.merged
    until = end_mono if end_mono is not None else last_mono
    active = max(0.0, until - clock.mono0) if series else 0.0
    duration = max(0.0, clock.elapsed0 + active) if series else 0.0
    target_requests = series.target_total() if series else 0.0
    requests = merged.requests
    summary = RunSummary(
        name=name,
        seed=seed,
        started_at=_iso(clock.start),
        ended_at=_iso(datetime.fromtimestamp(clock.unix(until), UTC))
        if end_mono is not None
        else None,
        duration_s=duration,
        interrupted=interrupted,
        requests_total=requests,
        errors_total=merged.errors,
        error_rate=merged.errors / requests if requests else 0.0,
        late_sends=merged.late_sends,
        dropped=merged.dropped,
        achieved_tps=requests / duration if duration > 0 else 0.0,
        target_tps_mean=target_requests / active if active > 0 else 0.0,
        target_requests=target_requests,
        delivered=delivered(requests, target_requests, arrival, len(fleet.pods)),
        latency_ms=merged.latency.model_copy(deep=True) if merged.requests else LatencyPair(),
        outcomes=dict(merged.outcomes),
        time_to_failure_ms={k: v.model_copy() for k, v in merged.time_to_failure.items()},
        targets={k: v.model_copy(deep=True) for k, v in merged.targets.items()},
        pods=pod_summaries(fleet, stats.book, final=final, active=active),
        controller=figures,
    )
    if final:
        lost = unaccounted(
            stats.book.records(),
            fleet.pods,
            start_unix=clock.unix(clock.mono0),
            end_unix=clock.unix(until),
            lease_s=lease_s,
            unix_of=clock.unix,
        )
        summary.unaccounted_max, summary.unaccounted_pods = lost.requests, list(lost.pods)
    if series is not None and series_last != 0:
        summary.series = series.points(merged.per_second, last=series_last)
    summary.checks = verdict.judge(thresholds, summary)
    summary.verdict = verdict.verdict_of(summary.checks) if final else "running"
    return summary


def delivered(sent: int, asked: float, arrival: Arrival, pods: int) -> Delivered | None:
    """Sent / asked with the ± the arrivals alone put on it (docs/report-schema.md)."""
    if asked <= 0:
        return None
    if arrival is Arrival.POISSON:
        bound = DELIVERED_SIGMAS * math.sqrt(asked) / asked
    else:
        bound = max(pods, 1) / asked  # one send per pod at either end of its window
    return Delivered(ratio=sent / asked, bound=bound, arrival=arrival.value)


def pod_summaries(
    fleet: PodFleet, book: StatsBook, *, final: bool, active: float
) -> list[PodSummary]:
    """One row per pod name; achieved is the run mean when final, else the last second."""
    out: list[PodSummary] = []
    for name in sorted(fleet.pods):
        pod = fleet.pods[name]
        requests, errors = book.totals(name)
        stats = book.latest(name)
        if final:
            achieved = requests / active if active > 0 else 0.0
        else:
            achieved = stats.achieved_rate_1s if stats is not None and pod.in_source else 0.0
        out.append(
            PodSummary(
                name=name,
                ready=pod.serving,
                share_tps=pod.share,
                achieved_tps=achieved,
                requests=requests,
                errors=errors,
                push_failures=pod.push_failures,
                epoch=pod.epoch,
            )
        )
    return out


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

"""Merge the pods' cumulative stats into run-wide figures.

Counters are cumulative per pod process, so the run total is the sum of each pod's *latest*
report, and a pod that died keeps counting with the last report it gave. A pod that restarts
under the same name (new `startedAt`) is a new instance; the old one is kept as it was.
Latency is merged as histograms (HDR), never by averaging the pods' percentiles.
The heavy part (`Merger.merge`) runs in a worker thread; it only reads immutable inputs and its
own state, and the controller never runs two merges at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from kar98k_loadpod.failures import decode_failures, failure_histogram
from kar98k_loadpod.histogram import LatencyHistogram
from kar98k_loadpod.stats import PodStats

from kar98k.results import FailureTimeSummary, LatencyPair, LatencySummary, TargetSummary

from .hdr import Counts, counts_of, summarize, summarize_counts, summarize_delta

ROLLING_SECONDS = 10.0


@dataclass
class PodRecord:
    """The latest stats of one pod process (name + start time)."""

    name: str
    started_at: float
    stats: PodStats
    per_second: dict[int, int] = field(default_factory=dict)
    pulled_at: float = 0.0  # unix time the pull that brought `stats` was sent (0: unknown)
    final: bool = False  # a drain's last report: nothing more was sent after it


class StatsBook:
    """Latest stats per pod instance; lives on the event loop, updated after each pull."""

    def __init__(self) -> None:
        self._current: dict[str, PodRecord] = {}
        self._retired: list[PodRecord] = []

    def update(
        self, name: str, stats: PodStats, *, final: bool = False, pulled_at: float = 0.0
    ) -> None:
        """Keep `stats` as the pod's latest; `final` marks a drained pod's last report and
        `pulled_at` is when the pull was sent (the report is no older)."""
        record = self._current.get(name)
        if record is not None and stats.started_at and record.started_at != stats.started_at:
            self._retired.append(record)  # the pod restarted: its old counts still count
            record = None
        if record is None:
            record = PodRecord(name=name, started_at=stats.started_at, stats=stats)
            self._current[name] = record
        record.stats = stats
        record.pulled_at = pulled_at
        record.final = final
        # Whole seconds are final once reported; later reports supersede earlier ones.
        per_second = dict(record.per_second)
        per_second.update({int(sec): int(n) for sec, n in stats.sent_per_second})
        if final:
            _add_unreported_second(per_second, stats)
        record.per_second = per_second

    def latest(self, name: str) -> PodStats | None:
        record = self._current.get(name)
        return record.stats if record else None

    def totals(self, name: str) -> tuple[int, int]:
        """Requests and errors of every instance of this pod name."""
        records = [r for r in self._retired if r.name == name]
        if name in self._current:
            records.append(self._current[name])
        return sum(r.stats.requests for r in records), sum(r.stats.errors for r in records)

    def records(self) -> list[PodRecord]:
        """A snapshot safe to hand to the merge thread (records are replaced, never mutated)."""
        return [
            PodRecord(r.name, r.started_at, r.stats, r.per_second, r.pulled_at, r.final)
            for r in [*self._retired, *self._current.values()]
        ]

    def names(self) -> list[str]:
        return list(self._current)


@dataclass(frozen=True)
class Window:
    """Figures for what happened between two merges (or over the rolling window)."""

    unix_from: float
    unix_to: float
    requests: int
    errors: int
    corrected: LatencySummary
    raw: LatencySummary
    late_sends: int = 0
    dropped: int = 0
    healthy: bool = True  # every target healthy at the window's end
    answered: int = 0  # requests the targets answered (the ones latency is measured on)
    targets: dict[str, TargetWindow] = field(default_factory=dict)  # interval windows only

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class TargetWindow:
    """One target's figures between two merges: the per-target lines of the report's charts."""

    requests: int
    errors: int
    p95_ms: float | None  # corrected; None when nothing was answered in the window

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class _TargetMark:
    """One target's cumulative figures at the last merge (what the next interval starts from)."""

    requests: int
    errors: int
    corrected: Counts


@dataclass(frozen=True)
class Merged:
    """Run-wide figures from one merge."""

    at_unix: float = 0.0
    requests: int = 0
    errors: int = 0
    late_sends: int = 0
    dropped: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    time_to_failure: dict[str, FailureTimeSummary] = field(default_factory=dict)
    targets: dict[str, TargetSummary] = field(default_factory=dict)
    latency: LatencyPair = field(default_factory=LatencyPair)
    per_second: dict[int, int] = field(default_factory=dict)
    interval: Window | None = None
    rolling: Window | None = None
    mark: Mark | None = None


@dataclass(frozen=True)
class Mark:
    """The merged cumulative figures at one instant; two marks make a window (`window_between`)."""

    unix: float
    requests: int
    errors: int
    raw: Counts
    corrected: Counts
    late_sends: int = 0
    dropped: int = 0
    healthy: bool = True
    answered: int = 0


_SHAPES: list[LatencyHistogram] = []


def _shape() -> LatencyHistogram:
    """An empty histogram of the pods' shape: the read-outs take bucket values from it."""
    if not _SHAPES:
        _SHAPES.append(LatencyHistogram())
    return _SHAPES[0]


def window_between(old: Mark, new: Mark) -> Window:
    """What happened between two marks: counter differences and histogram differences."""
    shape = _shape()
    return Window(
        unix_from=old.unix,
        unix_to=new.unix,
        requests=max(0, new.requests - old.requests),
        errors=max(0, new.errors - old.errors),
        corrected=summarize_delta(shape, new.corrected, old.corrected),
        raw=summarize_delta(shape, new.raw, old.raw),
        late_sends=max(0, new.late_sends - old.late_sends),
        dropped=max(0, new.dropped - old.dropped),
        healthy=new.healthy,
        answered=max(0, new.answered - old.answered),
    )


class Merger:
    """Turns the stats book into `Merged`, keeping the snapshots the windows are computed from."""

    def __init__(self, rolling_seconds: float = ROLLING_SECONDS) -> None:
        self._rolling = rolling_seconds
        self._history: deque[Mark] = deque()
        # Per target, the last merge's figures only (the series needs intervals, not the
        # rolling window): one histogram snapshot per target, bounded by the spec's targets.
        self._targets_then: dict[str, _TargetMark] = {}

    def merge(self, records: Sequence[PodRecord], now_unix: float) -> Merged:
        total_raw, total_corr = LatencyHistogram(), LatencyHistogram()
        per_target_raw: dict[str, LatencyHistogram] = {}
        per_target_corr: dict[str, LatencyHistogram] = {}
        failures = _FailureMerge()
        targets: dict[str, TargetSummary] = {}
        outcomes: dict[str, int] = {}
        per_second: dict[int, int] = {}
        requests = errors = late = dropped = 0
        for record in records:
            stats = record.stats
            requests += stats.requests
            errors += stats.errors
            late += stats.late_sends
            dropped += stats.dropped
            for sec, count in record.per_second.items():
                per_second[sec] = per_second.get(sec, 0) + count
            for name, tstats in stats.targets.items():
                summary = targets.setdefault(name, TargetSummary())
                summary.requests += tstats.requests
                summary.errors += tstats.errors
                summary.skipped_unhealthy += tstats.skipped_unhealthy
                summary.healthy = summary.healthy and tstats.healthy
                summary.health_checked = bool(summary.health_checked) or tstats.health_checked
                _add(summary.outcomes, tstats.outcomes.items())
                _add(outcomes, tstats.outcomes.items())
                raw = LatencyHistogram.decode(tstats.latency_raw)
                corr = LatencyHistogram.decode(tstats.latency_corrected)
                per_target_raw.setdefault(name, LatencyHistogram()).merge(raw)
                per_target_corr.setdefault(name, LatencyHistogram()).merge(corr)
                total_raw.merge(raw)
                total_corr.merge(corr)
                failures.add(name, tstats.time_to_failure)
        for name, summary in targets.items():
            summary.time_to_failure_ms = failures.summaries(name)
            summary.error_rate = summary.errors / summary.requests if summary.requests else 0.0
            summary.latency_ms = LatencyPair(
                raw=summarize(per_target_raw[name]), corrected=summarize(per_target_corr[name])
            )
        snap = Mark(
            now_unix,
            requests,
            errors,
            counts_of(total_raw),
            counts_of(total_corr),
            late_sends=late,
            dropped=dropped,
            healthy=all(t.healthy for t in targets.values()),
            answered=total_raw.count,  # latency is recorded for answered requests only
        )
        previous = self._history[-1] if self._history else None
        interval = window_between(previous, snap) if previous else None
        targets_now = {
            name: _TargetMark(t.requests, t.errors, counts_of(per_target_corr[name]))
            for name, t in targets.items()
        }
        if interval is not None:
            interval = replace(interval, targets=_target_windows(self._targets_then, targets_now))
        self._targets_then = targets_now
        while len(self._history) > 1 and now_unix - self._history[1].unix >= self._rolling:
            self._history.popleft()
        oldest = self._history[0] if self._history else None
        rolling = window_between(oldest, snap) if oldest else None
        self._history.append(snap)
        return Merged(
            at_unix=now_unix,
            requests=requests,
            errors=errors,
            late_sends=late,
            dropped=dropped,
            outcomes=outcomes,
            time_to_failure=failures.summaries(None),
            targets=targets,
            latency=LatencyPair(
                raw=summarize_counts(total_raw, snap.raw),
                corrected=summarize_counts(total_corr, snap.corrected),
            ),
            per_second=per_second,
            interval=interval,
            rolling=rolling,
            mark=snap,
        )


class _FailureMerge:
    """Time-to-failure histograms merged per (target, outcome) and per outcome over all targets
    (None), like the latency ones: never averaged, never mixed into latency."""

    def __init__(self) -> None:
        self._hists: dict[tuple[str | None, str], LatencyHistogram] = {}

    def add(self, target: str, encoded: dict[str, str]) -> None:
        for outcome, text in encoded.items():
            hist = decode_failures(text)
            for key in ((target, outcome), (None, outcome)):
                merged = self._hists.get(key)
                if merged is None:
                    merged = self._hists[key] = failure_histogram()
                merged.merge(hist)

    def summaries(self, target: str | None) -> dict[str, FailureTimeSummary]:
        out: dict[str, FailureTimeSummary] = {}
        for (name, outcome), hist in sorted(self._hists.items(), key=lambda kv: kv[0][1]):
            if name == target and hist.count:
                figures = summarize(hist)
                out[outcome] = FailureTimeSummary(count=hist.count, **figures.model_dump())
        return out


def _target_windows(
    before: dict[str, _TargetMark], now: dict[str, _TargetMark]
) -> dict[str, TargetWindow]:
    """Each target's interval: counter and histogram differences, as `window_between`."""
    shape = _shape()
    out: dict[str, TargetWindow] = {}
    for name, mark in now.items():
        then = before.get(name, _TargetMark(0, 0, ()))
        answered = summarize_delta(shape, mark.corrected, then.corrected)
        out[name] = TargetWindow(
            requests=max(0, mark.requests - then.requests),
            errors=max(0, mark.errors - then.errors),
            p95_ms=answered.p95 if answered.max > 0 else None,
        )
    return out


def _add_unreported_second(per_second: dict[int, int], stats: PodStats) -> None:
    """A drained pod reports whole seconds only; its last, partial second is the difference
    between its request total and the seconds it reported. Only computable when the reported
    seconds reach back to the pod's start (its history holds 60 s), so the sum is complete.
    """
    if not per_second or min(per_second) > stats.started_at + 1:
        return
    residual = stats.requests - sum(per_second.values())
    if residual > 0:
        last = max(per_second) + 1
        per_second[last] = per_second.get(last, 0) + residual


def _add(into: dict[str, int], items: Iterable[tuple[str, int]]) -> None:
    for key, count in items:
        into[key] = into.get(key, 0) + count

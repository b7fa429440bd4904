"""How far the totals may fall short: requests sent by pods that died between two stats pulls.

Counters are cumulative per pod process, so a pod that dies keeps counting with its last report
(merge.py), and whatever it sent after that report died with it. The totals are then a lower
bound; this module says by how much at most. After its last report a pod can send only until
the earliest of: the run's end, its successor under the same name starting, and its lease
running out after the last plan it acknowledged (a pod sends nothing past its lease). At most
at the highest rate it was known to run (its plan rate, its last achieved second, its last
accepted share), plus three standard deviations of Poisson arrivals over that time, plus the
requests it had in flight at its last report (counted at completion).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .fleet import PodState
from .merge import PodRecord

POISSON_SIGMAS = 3.0
"""Margin for Poisson arrivals over the gap: a count beyond mean + 3σ happens ~1 in 700 runs."""


@dataclass(frozen=True)
class Unaccounted:
    """The largest number of requests the totals may miss, and the pods it comes from."""

    requests: int = 0
    pods: tuple[str, ...] = ()


def unaccounted(
    records: Sequence[PodRecord],
    pods: dict[str, PodState],
    *,
    start_unix: float,
    end_unix: float,
    lease_s: float,
    unix_of: Callable[[float], float],
) -> Unaccounted:
    """The bound for a finished run; `unix_of` maps loop time to unix time."""
    total = 0
    names: list[str] = []

    def lease_end(pod: PodState) -> float:
        return unix_of(pod.accepted_at) + lease_s if math.isfinite(pod.accepted_at) else -math.inf

    reported = {r.name for r in records}
    for name, silent in pods.items():
        if name not in reported:  # died before its first pull: all it sent is unreported
            bound = _bound(0, silent.share, min(end_unix, lease_end(silent)) - start_unix)
            if bound > 0:
                total += bound
                names.append(name)
    for i, record in enumerate(records):
        if record.final:
            continue  # drained: its last report holds everything it sent
        successor = next((r for r in records[i + 1 :] if r.name == record.name), None)
        pod = pods.get(record.name) if successor is None else None
        stop = end_unix
        if successor is not None:
            stop = min(stop, successor.started_at)  # the old process was gone by then
        if pod is not None:
            stop = min(stop, lease_end(pod))
        bound = _record_bound(record, pod, stop)
        if bound > 0:
            total += bound
            if record.name not in names:
                names.append(record.name)
    return Unaccounted(total, tuple(names))


def _record_bound(record: PodRecord, pod: PodState | None, stop: float) -> int:
    """What one pod instance may have sent between its last report and `stop` (unix)."""
    stats = record.stats
    reported_at = record.pulled_at or (stats.started_at + stats.uptime_seconds)
    rate = max(stats.rate, stats.achieved_rate_1s, pod.share if pod is not None else 0.0)
    return _bound(stats.in_flight, rate, stop - reported_at)


def _bound(in_flight: int, rate: float, gap: float) -> int:
    """In-flight requests plus sends at `rate` over `gap` seconds, with 3σ of Poisson margin."""
    expected = rate * max(0.0, gap)
    return in_flight + math.ceil(expected + POISSON_SIGMAS * math.sqrt(expected))

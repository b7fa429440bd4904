"""Stats merge: sums of latest reports, histograms merged (not averaged), windows, series."""

from __future__ import annotations

import math
from typing import Any

import pytest
from kar98k.controller.fleet import PodState
from kar98k.controller.hdr import counts_of, summarize, summarize_delta
from kar98k.controller.merge import Merger, PodRecord, StatsBook
from kar98k.controller.pods import PodEndpoint
from kar98k.controller.series import SeriesBook
from kar98k.controller.ticks import LagRecorder
from kar98k.controller.unaccounted import unaccounted
from kar98k_loadpod.client import parse_stats
from kar98k_loadpod.histogram import LatencyHistogram
from kar98k_loadpod.recorder import TargetRecorder
from kar98k_loadpod.stats import PodStats, TargetStats


def hist(*latencies_s: float, times: int = 1) -> str:
    h = LatencyHistogram()
    for value in latencies_s:
        for _ in range(times):
            h.record_seconds(value)
    return h.encode()


def pod_stats(
    requests: int,
    latency_s: float,
    *,
    started_at: float = 1000.0,
    errors: int = 0,
    per_second: list[tuple[int, int]] | None = None,
    target: str = "t",
) -> PodStats:
    encoded = hist(latency_s, times=requests)
    outcomes = {"2xx": requests - errors} | ({"5xx": errors} if errors else {})
    return PodStats(
        started_at=started_at,
        requests=requests,
        errors=errors,
        sent_per_second=per_second or [],
        targets={
            target: TargetStats(
                requests=requests,
                errors=errors,
                outcomes=outcomes,
                latency_raw=encoded,
                latency_corrected=encoded,
            )
        },
    )


def test_percentiles_are_merged_from_histograms_never_averaged() -> None:
    book = StatsBook()
    book.update("a", pod_stats(980, 0.001))  # 98 % of requests at 1 ms
    book.update("b", pod_stats(20, 0.200))  # 2 % at 200 ms
    merged = Merger().merge(book.records(), now_unix=2000.0)
    assert merged.requests == 1000
    # Averaging the two pods' p99 (1 ms and 200 ms) would say ~100 ms; the merged p99 is 200.
    assert merged.latency.corrected.p99 == pytest.approx(200.0, rel=0.01)
    assert merged.latency.corrected.p50 == pytest.approx(1.0, rel=0.01)
    assert merged.targets["t"].requests == 1000
    assert merged.outcomes == {"2xx": 1000}


def test_latest_report_counts_and_dead_or_restarted_pods_keep_counting() -> None:
    book = StatsBook()
    book.update("a", pod_stats(100, 0.001, errors=4))
    book.update("a", pod_stats(300, 0.001, errors=6))  # cumulative: replaces, not adds
    book.update("b", pod_stats(50, 0.001))
    book.update("b", pod_stats(10, 0.001, started_at=1500.0))  # b restarted: a new instance
    merged = Merger().merge(book.records(), now_unix=2000.0)
    assert merged.requests == 300 + 50 + 10
    assert merged.errors == 6
    assert merged.targets["t"].error_rate == pytest.approx(6 / 360)
    assert merged.outcomes == {"2xx": 354, "5xx": 6}
    assert book.totals("b") == (60, 0)


def test_windows_show_what_happened_between_merges() -> None:
    book = StatsBook()
    merger = Merger(rolling_seconds=10.0)
    book.update("a", pod_stats(100, 0.001))
    first = merger.merge(book.records(), now_unix=100.0)
    assert first.interval is None
    stats = pod_stats(100, 0.001)
    slow = LatencyHistogram.decode(stats.targets["t"].latency_corrected)
    for _ in range(50):
        slow.record_seconds(0.5)
    stats.requests = 150
    stats.targets["t"].requests = 150
    stats.targets["t"].latency_corrected = slow.encode()
    book.update("a", stats)
    second = merger.merge(book.records(), now_unix=102.0)
    assert second.interval is not None
    assert second.interval.requests == 50
    assert second.interval.corrected.p50 == pytest.approx(500.0, rel=0.01)
    assert second.interval.raw.p99 == 0.0  # raw latencies did not move
    assert second.latency.corrected.p50 == pytest.approx(1.0, rel=0.01)  # whole run


def test_sent_per_second_merges_by_second_and_drained_partial_second_is_added() -> None:
    book = StatsBook()
    book.update("a", pod_stats(30, 0.001, per_second=[(1000, 10), (1001, 20)]))
    book.update("b", pod_stats(5, 0.001, per_second=[(1001, 5)]))
    final = pod_stats(45, 0.001, per_second=[(1001, 20), (1002, 12)])
    book.update("a", final, final=True)  # 45 - (10 + 20 + 12) = 3 sent in second 1003
    merged = Merger().merge(book.records(), now_unix=1004.0)
    assert merged.per_second == {1000: 10, 1001: 25, 1002: 12, 1003: 3}


def test_series_bins_follow_unix_seconds() -> None:
    series = SeriesBook(start_unix=100.5)
    series.add_target(100.5, 101.25, 100.0, spike=False)
    series.add_target(101.25, 103.0, 200.0, spike=True)
    assert series.target_total() == pytest.approx(75 + 350)
    points = series.points({100: 40, 101: 170, 102: 210, 103: 2})
    assert [p.unix_s for p in points] == [100, 101, 102, 103]
    assert [p.t for p in points] == [0.0, 0.5, 1.5, 2.5]
    assert [round(p.target_tps, 6) for p in points] == [50.0, 175.0, 200.0, 0.0]
    assert [p.achieved_tps for p in points] == [40, 170, 210, 2]
    assert [p.spike_active for p in points] == [False, True, True, False]
    assert [p.unix_s for p in series.points({}, last=2)] == [101, 102]


def test_parse_stats_ignores_fields_it_does_not_know() -> None:
    wire: dict[str, Any] = pod_stats(3, 0.001).to_wire()
    wire["someNewField"] = 1
    wire["targets"]["t"]["anotherNewField"] = "x"
    assert parse_stats(wire).requests == 3
    with pytest.raises(ValueError):
        parse_stats(["not", "an", "object"])


def test_fast_readout_matches_hdrh() -> None:
    h = LatencyHistogram()
    for i in range(1, 5000):
        h.record_seconds(i / 1e5)
    assert summarize(h).model_dump() == pytest.approx(h.summary_ms())
    old = counts_of(h)
    h.record_seconds(2.0)
    delta = summarize_delta(h, counts_of(h), old)
    assert delta.p50 == delta.max == pytest.approx(2000.0, rel=0.001)
    assert summarize(LatencyHistogram()).p99 == 0.0


def test_lag_recorder() -> None:
    lag = LagRecorder()
    for i in range(100):
        lag.record(float(i) * 0.1, 0.001 if i != 50 else 0.030)
    assert lag.max_ms() == pytest.approx(30.0)
    assert lag.percentile_ms(50) == pytest.approx(1.1, abs=0.11)
    assert lag.recent_max_ms() == pytest.approx(30.0)
    lag.record(100.0, 0.002)
    assert lag.recent_max_ms() == pytest.approx(2.0)


def test_time_to_failure_is_merged_per_outcome_and_never_mixed_into_latency() -> None:
    """Two pods' refusals (fast) and timeouts (slow) merge per outcome, per target and in all;
    the answered latency keeps only the answered request."""

    def pod(refusal_s: float, timeout_s: float) -> PodStats:
        rec = TargetRecorder()
        rec.record("2xx", 0.010, 0.010)
        for _ in range(9):
            rec.record("connect_error", refusal_s, refusal_s)
        rec.record("timeout", timeout_s, timeout_s)
        stats = rec.to_stats()
        return PodStats(started_at=1.0, requests=stats.requests, targets={"t": stats})

    book = StatsBook()
    book.update("a", pod(0.002, 5.0))
    book.update("b", pod(0.004, 2.0))
    merged = Merger().merge(book.records(), now_unix=2000.0)
    refused = merged.time_to_failure["connect_error"]
    assert refused.count == 18
    # 2 significant digits: each read-out is within 1 % of the recorded value
    assert refused.p50 == pytest.approx(2.0, rel=0.01)  # half the refusals took 2 ms
    assert refused.max == pytest.approx(4.0, rel=0.01)
    assert merged.time_to_failure["timeout"].count == 2
    assert merged.time_to_failure["timeout"].max == pytest.approx(5000.0, rel=0.01)
    assert merged.targets["t"].time_to_failure_ms == merged.time_to_failure
    # answered latency: the two 10 ms answers only, never a 5 s timeout
    assert merged.latency.raw.max == pytest.approx(10.0, rel=0.01)
    assert merged.mark is not None and merged.mark.answered == 2


def test_unaccounted_bound_stops_at_lease_successor_or_end() -> None:
    """Each case by hand: in flight + rate × gap + 3√(rate × gap), the gap ending at the
    earliest of the run's end (110), the successor's start and the lease after the last plan."""

    def pod(name: str, accepted_at: float, share: float) -> PodState:
        return PodState(PodEndpoint(name, "http://127.0.0.1:9", "t"), accepted_at=accepted_at,
                        share=share)  # fmt: skip

    def record(name: str, started: float, pulled: float, rate: float, **kw: Any) -> PodRecord:
        stats = PodStats(started_at=started, rate=rate, in_flight=kw.pop("in_flight", 0))
        return PodRecord(name, started, stats, pulled_at=pulled, **kw)

    def bound(expected: float, in_flight: int = 0) -> int:
        return in_flight + math.ceil(expected + 3 * math.sqrt(expected))

    def run(records: list[PodRecord], pods: dict[str, PodState]) -> tuple[int, tuple[str, ...]]:
        lost = unaccounted(
            records, pods, start_unix=100.0, end_unix=110.0, lease_s=2.0, unix_of=lambda m: m
        )
        return lost.requests, lost.pods

    # killed: last pull at 100, last plan at 101 -> it stopped by 103 at the latest
    assert run([record("a", 90, 100, 50, in_flight=3)], {"a": pod("a", 101, 50)}) == (
        bound(50 * 3, in_flight=3),
        ("a",),
    )
    # drained: its last report is complete
    assert run([record("a", 90, 109, 50, final=True)], {"a": pod("a", 109, 50)}) == (0, ())
    # restarted under the same name at 102: the old process sent until then at most
    old, new = record("b", 90, 100, 10), record("b", 102, 109, 10, final=True)
    assert run([old, new], {"b": pod("b", 109, 10)}) == (bound(10 * 2), ("b",))
    # died before its first pull: from the start (100) to its lease end (104 + 2)
    assert run([], {"c": pod("c", 104, 20)}) == (bound(20 * 6), ("c",))
    # never accepted a plan: sent nothing
    assert run([], {"d": pod("d", float("-inf"), 20)}) == (0, ())

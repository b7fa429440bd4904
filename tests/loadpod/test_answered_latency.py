"""Latency is of answered requests: a failure without an answer records no response time."""

from __future__ import annotations

from kar98k_loadpod.recorder import TargetRecorder
from kar98k_loadpod.stats import UNANSWERED_OUTCOMES, is_answered


def test_unanswered_failures_count_as_errors_but_record_no_latency() -> None:
    rec = TargetRecorder()
    for outcome in sorted(UNANSWERED_OUTCOMES):
        rec.record(outcome, raw=0.002, corrected=0.002)
    assert rec.requests == rec.errors == len(UNANSWERED_OUTCOMES)
    assert rec.raw.count == rec.corrected.count == 0
    assert sum(rec.buckets) == 0 and rec.raw_sum == 0.0


def test_answered_requests_record_latency_whatever_their_status() -> None:
    rec = TargetRecorder()
    rec.record("2xx", raw=0.010, corrected=0.012)
    rec.record("5xx", raw=0.020, corrected=0.020)  # an error, but an answer
    rec.record("grpc_NOT_FOUND", raw=0.001, corrected=0.001)
    rec.record("connect_error", raw=0.0005, corrected=0.0005)
    assert rec.requests == 4 and rec.errors == 3
    assert rec.raw.count == rec.corrected.count == 3
    assert is_answered("grpc_OK") and is_answered("4xx") and not is_answered("timeout")

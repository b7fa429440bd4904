"""The corrected-latency Prometheus histogram is read from the HDR histogram at scrape time."""

from __future__ import annotations

import pytest
from kar98k_loadpod.histogram import LatencyHistogram
from kar98k_loadpod.recorder import DURATION_BUCKETS


def test_hdr_to_prometheus_buckets_is_cumulative_inclusive_and_sums() -> None:
    values = (0.0004, 0.0005, 0.001, 0.0012, 0.0012, 0.02, 3.0, 20.0)
    hist = LatencyHistogram()
    for value in values:
        hist.record_seconds(value)
    counts, total = hist.prometheus_buckets(DURATION_BUCKETS)
    assert len(counts) == len(DURATION_BUCKETS) + 1
    expected = [sum(1 for v in values if v <= bound) for bound in DURATION_BUCKETS]
    assert counts == [*expected, len(values)]  # `le` is inclusive: 0.0005 counts at 0.0005
    assert total == pytest.approx(sum(values), rel=1e-3)  # HDR keeps 3 significant digits


def test_empty_histogram_has_zero_buckets() -> None:
    counts, total = LatencyHistogram().prometheus_buckets(DURATION_BUCKETS)
    assert counts == [0] * (len(DURATION_BUCKETS) + 1) and total == 0.0

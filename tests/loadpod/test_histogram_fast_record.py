"""The pod's inlined HDR record agrees with hdrh's own record_value on every value."""

from __future__ import annotations

import random

from hdrh.histogram import HdrHistogram
from kar98k_loadpod.histogram import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS, LatencyHistogram


def test_inlined_record_equals_hdrh_record_value() -> None:
    rng = random.Random(42)
    ours = LatencyHistogram()
    reference = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    values = [rng.randint(LOWEST_US, HIGHEST_US) for _ in range(50_000)]
    values += [int(rng.expovariate(1 / 5000)) + 1 for _ in range(150_000)]  # typical latencies
    values += [LOWEST_US, HIGHEST_US, 2047, 2048, 4095, 4096, 1_000_000]  # bucket edges
    for micros in values:
        seconds = micros / 1_000_000
        ours.record_seconds(seconds)
        # What record_seconds did through hdrh before: the same float-to-µs conversion.
        reference.record_value(min(max(int(seconds * 1_000_000), LOWEST_US), HIGHEST_US))
    inner = ours._h
    assert list(inner.counts) == list(reference.counts)
    assert inner.total_count == reference.total_count == len(values)
    assert (inner.min_value, inner.max_value) == (reference.min_value, reference.max_value)
    assert ours.percentile_ms(99) == reference.get_value_at_percentile(99) / 1000


def test_out_of_range_values_are_clamped_not_dropped() -> None:
    ours = LatencyHistogram()
    ours.record_seconds(0.0)
    ours.record_seconds(10 * 3600.0)
    assert ours.count == 2
    assert ours._h.min_value == LOWEST_US and ours._h.max_value == HIGHEST_US

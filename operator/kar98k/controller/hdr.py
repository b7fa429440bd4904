"""Fast read-outs of merged HDR histograms: percentiles, mean and the difference of two snapshots.

Why not `LatencyHistogram.summary_ms()`: the hdrh library walks its buckets in Python (the
mean alone takes ~40 ms per histogram), and it has no subtraction, which the rolling figures
need (cumulative now minus cumulative a few seconds ago). Here every pass over the ~23k buckets
is a C-level builtin (`bytes`, `accumulate`, `map`, `sum`, `bisect`), so a read-out costs about
a millisecond and the merge thread holds the GIL only briefly, which keeps the tick loop on
time. This module is the only place that reads hdrh's internals (`counts`, index-to-value
mapping), so a library change touches one file.
"""

from __future__ import annotations

import operator
import threading
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from kar98k_loadpod.histogram import LatencyHistogram

from kar98k.results import LatencySummary

PERCENTILES = (50.0, 95.0, 99.0)
Counts = Sequence[int]

_midpoints: dict[tuple[int, int, int, int], array[float]] = {}
_midpoints_lock = threading.Lock()


def counts_of(hist: LatencyHistogram) -> array[int]:
    """A copy of the histogram's bucket counts (a snapshot that later merges don't change)."""
    inner = _inner(hist)
    snapshot = array("Q")
    snapshot.frombytes(bytes(memoryview(inner.counts).cast("B")))
    return snapshot


def summarize(hist: LatencyHistogram) -> LatencySummary:
    """p50/p95/p99/max/mean in milliseconds of a whole histogram."""
    return summarize_counts(hist, counts_of(hist))


def summarize_delta(hist: LatencyHistogram, newer: Counts, older: Counts) -> LatencySummary:
    """The same figures for what was recorded between two snapshots of growing histograms."""
    packed = _packed(newer)
    if not older:
        return summarize_counts(hist, packed)
    span = _nonzero_span(packed)
    if span is None:
        return LatencySummary()
    lo, hi = span  # the older snapshot holds nothing outside the newer one's span
    delta = array("q", map(operator.sub, packed[lo : hi + 1], older[lo : hi + 1]))
    if min(delta) < 0:  # cannot happen for growing histograms; never go negative
        delta = array("q", (max(0, d) for d in delta))
    return summarize_counts(hist, delta, offset=lo)


def summarize_counts(hist: LatencyHistogram, counts: Counts, offset: int = 0) -> LatencySummary:
    """Percentiles as hdrh defines them (the highest value equivalent to the bucket that reaches
    the rank), max likewise, mean from bucket midpoints; zeros when the counts are empty.

    Only the span between the first and the last non-zero bucket is walked (found with
    `bytes.strip`, in C), usually a few thousand buckets of the ~23k. `offset` is the bucket
    index of `counts[0]` (deltas are computed over a span only).
    """
    inner = _inner(hist)
    packed = _packed(counts)
    span = _nonzero_span(packed)
    if span is None:
        return LatencySummary()
    first, last = span
    window = packed[first : last + 1]
    lo = first + offset  # bucket index of window[0]
    cumulative = list(accumulate(window))
    total = cumulative[-1]
    if total <= 0:
        return LatencySummary()

    def value_ms(position: int) -> float:
        value = inner.get_value_from_index(lo + position)
        return float(inner.get_highest_equivalent_value(value)) / 1e3

    p50, p95, p99 = (
        value_ms(bisect_left(cumulative, max(int(p * total / 100.0 + 0.5), 1))) for p in PERCENTILES
    )
    weighted = sum(map(operator.mul, window, _midpoints_of(inner)[lo : lo + len(window)]))
    return LatencySummary(
        p50=p50, p95=p95, p99=p99, max=value_ms(len(window) - 1), mean=weighted / total / 1e3
    )


def _packed(counts: Counts) -> array[int]:
    return counts if isinstance(counts, array) else array("q", counts)


def _nonzero_span(counts: array[int]) -> tuple[int, int] | None:
    """First and last index holding a non-zero count, or None when all are zero."""
    raw = counts.tobytes()
    stripped = raw.rstrip(b"\0")
    if not stripped:
        return None
    size = counts.itemsize
    first = (len(raw) - len(raw.lstrip(b"\0"))) // size
    last = (len(stripped) - 1) // size
    return first, last


def _midpoints_of(inner: Any) -> array[float]:
    """Midpoint value of every bucket, computed once per histogram shape."""
    key = (
        int(inner.lowest_trackable_value),
        int(inner.highest_trackable_value),
        int(inner.significant_figures),
        int(inner.counts_len),
    )
    found = _midpoints.get(key)
    if found is None:
        with _midpoints_lock:
            found = _midpoints.get(key)
            if found is None:
                found = array(
                    "d",
                    (
                        float(inner._hdr_median_equiv_value(inner.get_value_from_index(i)))
                        for i in range(inner.counts_len)
                    ),
                )
                _midpoints[key] = found
    return found


def _inner(hist: LatencyHistogram) -> Any:
    return hist._h

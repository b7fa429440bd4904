"""Mergeable latency histograms (HDR), so percentiles are merged across pods, never averaged."""

from __future__ import annotations

from bisect import bisect_left

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3600 * 1_000_000
SIGNIFICANT_DIGITS = 3

# The bucket layout every LatencyHistogram shares (same range and precision), read once from hdrh
# so the hot path can index its counts directly: see LatencyHistogram.record_seconds.
_LAYOUT = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
_MASK = _LAYOUT.sub_bucket_mask
_UNIT = _LAYOUT.unit_magnitude
_HALF_MAG = _LAYOUT.sub_bucket_half_count_magnitude
_HALF = _LAYOUT.sub_bucket_half_count
_BUCKET_SHIFT = _UNIT + _HALF_MAG + 1
del _LAYOUT


class LatencyHistogram:
    """Latencies in microseconds from 1 µs to 1 h at 3 significant digits."""

    __slots__ = ("_h",)

    def __init__(self, inner: HdrHistogram | None = None) -> None:
        self._h = inner or HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def __del__(self) -> None:
        # hdrh's histogram and its encoder refer to each other: without breaking that cycle,
        # every dropped histogram (~190 KB of counts) waits for a full cycle collection, and a
        # pod churning targets (or a controller decoding stats) holds hundreds of MB of them.
        encoder = getattr(getattr(self, "_h", None), "encoder", None)
        if encoder is not None:
            encoder.histogram = None

    def record_seconds(self, seconds: float) -> None:
        """Record one latency; twice per request on the pod's hot path.

        Does what hdrh's `record_value` does — the same counts index, total, min and max — in
        one expression instead of four method calls (a test checks both agree on every value):
        ~0.4 µs instead of ~1.1 µs per call.
        """
        value = int(seconds * 1_000_000)
        if value < LOWEST_US:
            value = LOWEST_US
        elif value > HIGHEST_US:
            value = HIGHEST_US
        h = self._h
        bucket = (value | _MASK).bit_length() - _BUCKET_SHIFT
        h.counts[((bucket + 1) << _HALF_MAG) + (value >> (bucket + _UNIT)) - _HALF] += 1
        h.total_count += 1
        # Comparisons, not min()/max(): two calls fewer per record.
        if value < h.min_value:  # noqa: PLR1730
            h.min_value = value
        if value > h.max_value:  # noqa: PLR1730
            h.max_value = value

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def percentile_ms(self, percentile: float) -> float:
        """Value at `percentile` (0-100) in milliseconds; 0 when empty."""
        if self.count == 0:
            return 0.0
        return float(self._h.get_value_at_percentile(percentile)) / 1000.0

    def max_ms(self) -> float:
        return float(self._h.get_max_value()) / 1000.0 if self.count else 0.0

    def mean_ms(self) -> float:
        return float(self._h.get_mean_value()) / 1000.0 if self.count else 0.0

    def merge(self, other: LatencyHistogram) -> None:
        self._h.add(other._h)

    def encode(self) -> str:
        """Compressed base64 HdrHistogram V2 encoding (interoperable with other HDR libraries)."""
        return str(self._h.encode().decode("ascii"))

    @classmethod
    def decode(cls, encoded: str) -> LatencyHistogram:
        if not encoded:
            return cls()
        return cls(HdrHistogram.decode(encoded.encode("ascii")))

    def copy(self) -> LatencyHistogram:
        clone = LatencyHistogram()
        clone.merge(self)
        return clone

    def prometheus_buckets(self, bounds_s: tuple[float, ...]) -> tuple[list[int], float]:
        """Cumulative counts at each bound (seconds) plus +Inf, and the sum in seconds, read
        from the HDR buckets at scrape time (to its 3 significant digits): the hot path records
        nothing twice."""
        counts = [0] * (len(bounds_s) + 1)
        total_us = 0.0
        for item in self._h.get_recorded_iterator():
            low = self._h.get_lowest_equivalent_value(item.value_iterated_to)
            high = self._h.get_highest_equivalent_value(item.value_iterated_to)
            count = item.count_added_in_this_iter_step
            counts[bisect_left(bounds_s, low / 1_000_000)] += count
            total_us += (low + high) / 2 * count
        cumulative, running = [], 0
        for count in counts:
            running += count
            cumulative.append(running)
        return cumulative, total_us / 1_000_000

    def summary_ms(self) -> dict[str, float]:
        return {
            "p50": self.percentile_ms(50),
            "p95": self.percentile_ms(95),
            "p99": self.percentile_ms(99),
            "max": self.max_ms(),
            "mean": self.mean_ms(),
        }

"""Prometheus exposition of the pod's counters, read from the recorder at scrape time.

A custom collector instead of prometheus-client Counter/Histogram objects: the hot path
then pays nothing for metrics (no label lookups, no locks), and /metrics always agrees
with /v1/stats because both read the same counters.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .recorder import DURATION_BUCKETS
from .runtime import PodRuntime

__all__ = ["CONTENT_TYPE_LATEST", "PodCollector", "make_registry", "render"]

SPIKE_LABEL = "spikeActive"
LOADTEST_LABEL = "loadtest"


class PodCollector(Collector):
    """Yields the kar98k_* families for one pod runtime."""

    def __init__(self, runtime: PodRuntime) -> None:
        self._rt = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self._rt
        rec = rt.recorder
        rec.sent.roll()
        labels = rt.labels
        loadtest = labels.get(LOADTEST_LABEL, "")
        pod = rt.name
        pod_labels = ["loadtest", "pod"]
        target_labels = ["loadtest", "target", "pod"]

        requests = CounterMetricFamily(
            "kar98k_requests",
            "Requests completed, by target and outcome (2xx, 5xx, timeout, grpc_OK, ...).",
            labels=["loadtest", "target", "outcome", "pod"],
        )
        duration = HistogramMetricFamily(
            "kar98k_request_duration_seconds",
            "Raw request latency (completion minus actual send).",
            labels=target_labels,
        )
        corrected = HistogramMetricFamily(
            "kar98k_request_corrected_duration_seconds",
            "Corrected request latency (completion minus intended send time: no coordinated "
            "omission), from the HDR histogram at scrape time.",
            labels=target_labels,
        )
        for name, trec in sorted(rec.targets.items()):
            for outcome, count in sorted(trec.outcomes.items()):
                requests.add_metric([loadtest, name, outcome, pod], count)
            duration.add_metric(
                [loadtest, name, pod], _buckets(trec.cumulative_buckets()), trec.raw_sum
            )
            counts, total = trec.corrected.prometheus_buckets(DURATION_BUCKETS)
            corrected.add_metric([loadtest, name, pod], _buckets(counts), total)
        yield requests
        yield duration
        yield corrected

        yield _gauge(
            "kar98k_current_tps",
            "Achieved sends per second over the last whole second.",
            pod_labels,
            [loadtest, pod],
            rec.sent.rate(1),
        )
        yield _gauge(
            "kar98k_target_tps",
            "Rate this pod is asked to send at right now (0 after lease expiry or drain).",
            pod_labels,
            [loadtest, pod],
            rt.pacer.rate,
        )
        yield _gauge(
            "kar98k_active_workers",
            "Requests in flight.",
            pod_labels,
            [loadtest, pod],
            rt.pacer.in_flight,
        )
        yield _gauge(
            "kar98k_spike_active",
            "1 while the controller says a spike is active (plan label spikeActive=true).",
            pod_labels,
            [loadtest, pod],
            1.0 if labels.get(SPIKE_LABEL, "").lower() == "true" else 0.0,
        )
        health = GaugeMetricFamily(
            "kar98k_target_health",
            "1 when the target passes its health check (or has none), else 0.",
            labels=target_labels,
        )
        for name, healthy in sorted(rt.target_health().items()):
            health.add_metric([loadtest, name, pod], 1.0 if healthy else 0.0)
        yield health
        yield _counter(
            "kar98k_late_sends",
            "Sends that started more than the late tolerance after their intended time.",
            pod_labels,
            [loadtest, pod],
            rec.late,
        )
        yield _counter(
            "kar98k_dropped",
            "Due sends abandoned because maxInFlight was reached and the waiting line was full.",
            pod_labels,
            [loadtest, pod],
            rec.dropped,
        )
        yield _gauge(
            "kar98k_lease_expired",
            "1 when no plan renewed the lease in time (the pod sends nothing).",
            pod_labels,
            [loadtest, pod],
            1.0 if rt.lease_expired else 0.0,
        )


def _buckets(cumulative: list[int]) -> list[tuple[str, float]]:
    """Prometheus (le, cumulative count) pairs for DURATION_BUCKETS plus +Inf."""
    out = [(_le(b), float(c)) for b, c in zip(DURATION_BUCKETS, cumulative, strict=False)]
    out.append(("+Inf", float(cumulative[-1])))
    return out


def _gauge(name: str, doc: str, labels: list[str], values: list[str], value: float) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    family.add_metric(values, value)
    return family


def _counter(name: str, doc: str, labels: list[str], values: list[str], value: float) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    family.add_metric(values, value)
    return family


def _le(bound: float) -> str:
    return repr(float(bound))


def make_registry(runtime: PodRuntime, *, process_metrics: bool = True) -> CollectorRegistry:
    """A registry per process (never the global one), so tests can run many pods in one process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PodCollector(runtime))
    if process_metrics:
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)

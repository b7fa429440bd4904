"""The operator's /metrics: per-LoadTest target and achieved rate, spike, pods, push errors, lag.

Runners publish a small snapshot after every supervision step; the collector reads snapshots at
scrape time (from prometheus-client's server thread), so no gauge is ever left behind for a
LoadTest that is gone, and scrapes never touch the controller's objects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

PHASES = ("Pending", "Starting", "Running", "Paused", "Succeeded", "Failed")


@dataclass(frozen=True)
class Snapshot:
    phase: str
    target_tps: float = 0.0
    achieved_tps: float = 0.0
    spike_active: bool = False
    ready_pods: int = 0
    desired_pods: int = 0
    push_errors: int = 0
    tick_lag_seconds: float = 0.0
    requests: int = 0
    errors: int = 0


class Book:
    """Thread-safe latest snapshot per (namespace, LoadTest)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], Snapshot] = {}

    def publish(self, namespace: str, name: str, snapshot: Snapshot) -> None:
        with self._lock:
            self._items[(namespace, name)] = snapshot

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._items.pop((namespace, name), None)

    def items(self) -> list[tuple[tuple[str, str], Snapshot]]:
        with self._lock:
            return sorted(self._items.items())


class LoadTestCollector(Collector):
    def __init__(self, book: Book) -> None:
        self._book = book

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["namespace", "loadtest"]
        gauges = {
            "target": GaugeMetricFamily(
                "kar98k_loadtest_target_requests_per_second",
                "Rate the curve asks for (whole fleet).",
                labels=labels,
            ),
            "current": GaugeMetricFamily(
                "kar98k_loadtest_achieved_requests_per_second",
                "Rate the load pods achieved together (~1 s).",
                labels=labels,
            ),
            "spike": GaugeMetricFamily(
                "kar98k_loadtest_spike_active", "1 while a spike shapes the rate.", labels=labels
            ),
            "ready": GaugeMetricFamily(
                "kar98k_loadtest_ready_pods", "Load pods ready and receiving plans.", labels=labels
            ),
            "desired": GaugeMetricFamily(
                "kar98k_loadtest_desired_pods", "Load pods the run asks for.", labels=labels
            ),
            "lag": GaugeMetricFamily(
                "kar98k_loadtest_tick_lag_seconds",
                "How late the controller's ticks ran (max over ~10 s).",
                labels=labels,
            ),
        }
        phase = GaugeMetricFamily(
            "kar98k_loadtest_phase",
            "1 for the LoadTest's current phase.",
            labels=[*labels, "phase"],
        )
        pushes = CounterMetricFamily(
            "kar98k_loadtest_plan_push_errors",
            "Plan pushes that failed in this run.",
            labels=labels,
        )
        requests = CounterMetricFamily(
            "kar98k_loadtest_requests", "Requests sent in this run (merged).", labels=labels
        )
        errors = CounterMetricFamily(
            "kar98k_loadtest_errors", "Requests failed in this run (merged).", labels=labels
        )
        for (ns, name), snap in self._book.items():
            key = [ns, name]
            gauges["target"].add_metric(key, snap.target_tps)
            gauges["current"].add_metric(key, snap.achieved_tps)
            gauges["spike"].add_metric(key, 1.0 if snap.spike_active else 0.0)
            gauges["ready"].add_metric(key, snap.ready_pods)
            gauges["desired"].add_metric(key, snap.desired_pods)
            gauges["lag"].add_metric(key, snap.tick_lag_seconds)
            for candidate in PHASES:
                phase.add_metric([*key, candidate], 1.0 if snap.phase == candidate else 0.0)
            pushes.add_metric(key, snap.push_errors)
            requests.add_metric(key, snap.requests)
            errors.add_metric(key, snap.errors)
        yield from gauges.values()
        yield phase
        yield pushes
        yield requests
        yield errors


def serve(book: Book, address: str, port: int) -> CollectorRegistry:
    """Start the /metrics HTTP server (a daemon thread) and return its registry."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    registry.register(LoadTestCollector(book))
    start_http_server(port, addr=address, registry=registry)
    return registry

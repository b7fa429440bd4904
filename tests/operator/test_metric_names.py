"""Operator and load pods export disjoint metric families: the operator's per-LoadTest series all
start with `kar98k_loadtest_`, the load pods' per-pod series never do; times end in `_seconds`,
counters in `_total`, and the operator's rates say `requests_per_second`."""

from __future__ import annotations

from kar98k_operator.metrics import Book, LoadTestCollector, Snapshot
from kit.loadpod import in_process_pod, plan, target
from prometheus_client.parser import text_string_to_metric_families


def _operator_families() -> dict[str, str]:
    book = Book()
    book.publish("perf", "shop", Snapshot(phase="Running", target_tps=10, requests=5))
    return {f.name: f.type for f in LoadTestCollector(book).collect()}


async def _pod_families() -> dict[str, str]:
    async with in_process_pod() as pod:
        await pod.put_plan(plan([target("t", "http://127.0.0.1:9/")], rate=0.0))
        status, text = await pod.call("GET", "/metrics", token=None)
        assert status == 200
    return {
        f.name: f.type for f in text_string_to_metric_families(text) if f.name.startswith("kar98k_")
    }


async def test_operator_and_pod_families_are_told_apart_by_name() -> None:
    operator = _operator_families()
    pods = await _pod_families()
    assert len(operator) == 10 and len(pods) >= 11
    assert all(name.startswith("kar98k_loadtest_") for name in operator), sorted(operator)
    assert not any(name.startswith("kar98k_loadtest_") for name in pods), sorted(pods)
    assert not operator.keys() & pods.keys()
    # The pods keep DESIGN.md's original names (kar98k_current_tps and friends: a contract);
    # the operator's names are new, so they say their unit.
    assert not [n for n in operator if "tps" in n.split("_")]
    for name in [*operator, *pods]:
        assert not name.endswith(("lag", "duration", "latency")), f"{name}: needs _seconds"
    counted = {n for n in operator if n.endswith(("_errors", "_requests"))}
    assert len(counted) == 3 and {operator[n] for n in counted} == {"counter"}
    assert "kar98k_request_corrected_duration_seconds" in pods
    assert "kar98k_loadtest_achieved_requests_per_second" in operator

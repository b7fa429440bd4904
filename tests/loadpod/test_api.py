"""Control API against an in-process pod on 127.0.0.1 and a real counting target."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from kar98k_loadpod.executors import make_executor
from kar98k_loadpod.histogram import LatencyHistogram
from kar98k_loadpod.plan import MAX_PLAN_BYTES, Plan
from kar98k_loadpod.protocol import DRAIN_PATH, PLAN_PATH, STATS_PATH
from kar98k_loadpod.runtime import PlanRejected, PodRuntime
from kar98k_loadpod.stats import PodStats
from kar98k_loadpod.targets import Target
from kit.counting_server import CountServer
from kit.loadpod import Pod, plan, target
from kit.wait import holds_for, wait_until
from prometheus_client.parser import text_string_to_metric_families


def simple_plan(server: CountServer, path: str = "/api", **kw: Any) -> Plan:
    return plan([target("t", server.url(path))], **kw)


@pytest.mark.parametrize(
    ("method", "path"), [("PUT", PLAN_PATH), ("GET", STATS_PATH), ("POST", DRAIN_PATH)]
)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Basic dDBrZW4=", "Bearer", "t0ken-for-tests-only"],
)
async def test_v1_needs_the_bearer_token(
    pod: Pod, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    status, body = await pod.call(method, path, token=None, headers=headers, json={})
    assert status == 401
    assert body["error"] == "unauthorized"


async def test_probes_and_metrics_are_open(pod: Pod) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        status, _ = await pod.call("GET", path, token=None)
        assert status == 200, path


async def test_invalid_plan_names_the_field(pod: Pod) -> None:
    bad = {"epoch": 1, "rate": -5, "targets": [{"name": "a", "url": "ftp://127.0.0.1/x"}]}
    status, body = await pod.call("PUT", PLAN_PATH, json=bad)
    assert status == 400
    assert body["error"] == "invalid plan"
    assert any(d.startswith("targets[0].url: ") for d in body["details"]), body
    assert any(d.startswith("rate: ") for d in body["details"]), body

    status, body = await pod.call("PUT", PLAN_PATH, json={**bad, "rate": 1, "bogus": True})
    assert status == 400
    assert any(d.startswith("bogus: ") for d in body["details"]), body


@pytest.mark.parametrize("payload", [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b"null", b"42"])
async def test_malformed_bodies_are_400(pod: Pod, payload: bytes) -> None:
    status, body = await pod.call("PUT", PLAN_PATH, data=payload)
    assert status == 400
    assert body["error"] in {"malformed JSON", "empty body", "invalid plan"}


async def test_body_over_1mib_is_413(pod: Pod) -> None:
    big = b'{"pad": "' + b"x" * MAX_PLAN_BYTES + b'"}'
    status, body = await pod.call("PUT", PLAN_PATH, data=big)
    assert status == 413, body
    # ... and the pod keeps serving.
    status, _ = await pod.call("GET", STATS_PATH)
    assert status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", PLAN_PATH), ("DELETE", STATS_PATH), ("GET", DRAIN_PATH), ("POST", "/healthz")],
)
async def test_wrong_method_is_405(pod: Pod, method: str, path: str) -> None:
    status, body = await pod.call(method, path)
    assert status == 405
    assert body["error"] == "method not allowed"


async def test_unknown_path_is_json_404(pod: Pod) -> None:
    status, body = await pod.call("GET", "/v2/plan")
    assert status == 404
    assert body["error"] == "not found"


async def test_epoch_order_409_and_renewal(pod: Pod, count_server: CountServer) -> None:
    body = simple_plan(count_server, epoch=5, rate=10)
    assert (await pod.put_plan(body)).renewed is False
    assert (await pod.put_plan(body)).renewed is True  # same epoch: idempotent renewal
    status, answer = await pod.call("PUT", PLAN_PATH, json={**body.to_wire(), "epoch": 4})
    assert status == 409
    assert answer["currentEpoch"] == 5
    # A same-epoch renewal may carry a new rate: it applies at once.
    await pod.put_plan(body.model_copy(update={"rate": 20}))
    stats = await pod.stats()
    assert (stats.epoch, stats.rate) == (5, 20)
    assert (await pod.put_plan(body.model_copy(update={"epoch": 6}))).renewed is False
    await pod.drain()


async def test_stats_are_pod_stats(pod: Pod, count_server: CountServer) -> None:
    await pod.put_plan(simple_plan(count_server, "/api-stats", rate=300))

    async def some_requests() -> bool:
        return (await pod.stats()).requests >= 100

    await wait_until(some_requests)
    raw = await pod.raw_stats()
    stats = PodStats.model_validate(raw)
    assert stats.pod == "test-pod"
    assert stats.targets["t"].outcomes.get("2xx", 0) >= 100
    assert LatencyHistogram.decode(stats.latency_corrected).count == stats.requests
    assert stats.started_at > 0
    assert "achievedRate1S" in raw and "sentPerSecond" in raw
    await pod.drain()


async def test_lease_expiry_stops_traffic(
    pod: Pod, count_server: CountServer, caplog: pytest.LogCaptureFixture
) -> None:
    path = "/lease"
    body = simple_plan(count_server, path, rate=300, lease=0.5)
    caplog.set_level(logging.WARNING, logger="kar98k_loadpod")
    await pod.put_plan(body)

    async def expired() -> bool:
        return (await pod.stats()).lease_expired

    await wait_until(expired, 3.0)
    expired_at = time.time()
    stats = await pod.stats()
    assert stats.rate == 0
    assert any("lease expired" in r.getMessage() for r in caplog.records)
    before = await count_server.count(path)
    assert before >= 100  # it did send while the lease held

    async def count_unchanged() -> bool:
        return await count_server.count(path) == before

    await holds_for(count_unchanged, 0.3, what="no traffic after lease expiry")
    assert await count_server.count(path, expired_at + 0.05) == 0
    _, metrics = await pod.call("GET", "/metrics", token=None)
    assert 'kar98k_lease_expired{loadtest="lt-test",pod="test-pod"} 1.0' in metrics

    # A renewal (same epoch) brings the load back.
    await pod.put_plan(body)
    assert not (await pod.stats()).lease_expired

    async def sending_again() -> bool:
        return await count_server.count(path) > before

    await wait_until(sending_again, 2.0)
    await pod.drain()


async def test_drain_waits_for_in_flight_and_returns_final_stats(
    pod: Pod, count_server: CountServer
) -> None:
    path = "/drain"
    body = simple_plan(count_server, path, epoch=3, rate=200)
    await pod.put_plan(body)

    async def some_requests() -> bool:
        return (await pod.stats()).requests >= 50

    await wait_until(some_requests)
    await count_server.stall(0.4)  # requests now hang for up to 400 ms

    async def in_flight() -> bool:
        return pod.runtime.pacer.in_flight > 0

    await wait_until(in_flight)
    drain = asyncio.create_task(pod.drain(timeout_s=5.0))
    status, _ = await wait_ready_status(pod, 503)
    assert status == 503  # not ready while draining ...
    status, answer = await pod.call("PUT", PLAN_PATH, json={**body.to_wire(), "epoch": 9})
    assert status == 503, answer  # ... and no plans meanwhile
    final = await drain
    assert final.in_flight == 0
    assert final.draining is True
    assert final.rate == 0
    sent = sum(count for _, count in final.sent_per_second) + pod.runtime.recorder.sent.count
    assert final.requests == sent  # every send that started was waited for and recorded
    arrived = await count_server.count(path)

    async def nothing_more() -> bool:
        return await count_server.count(path) == arrived

    await holds_for(nothing_more, 0.2, what="no sends after the drain")

    status, _ = await pod.call("GET", "/readyz", token=None)
    assert status == 200
    status, answer = await pod.call("PUT", PLAN_PATH, json=body.to_wire())  # same epoch
    assert status == 409, answer
    assert (await pod.put_plan(body.model_copy(update={"epoch": 4}))).renewed is False
    await pod.drain()


async def wait_ready_status(pod: Pod, want: int) -> tuple[int, object]:
    seen: list[tuple[int, object]] = []

    async def answered() -> bool:
        seen.append(await pod.call("GET", "/readyz", token=None))
        return seen[-1][0] == want

    await wait_until(answered, 2.0, what=f"/readyz {want}")
    return seen[-1]


async def test_drain_body_is_validated(pod: Pod) -> None:
    status, body = await pod.call("POST", DRAIN_PATH, json={"timeoutSeconds": -1})
    assert status == 400
    assert body["details"][0].startswith("timeoutSeconds: ")
    status, body = await pod.call("POST", DRAIN_PATH)  # no body: default timeout
    assert status == 200
    assert body["inFlight"] == 0


async def test_plan_change_reuses_unchanged_executors(pod: Pod, count_server: CountServer) -> None:
    first = plan(
        [target("a", count_server.url("/ra")), target("b", count_server.url("/rb"))], rate=0
    )
    await pod.put_plan(first)
    before = {s.name: s for s in pod.runtime.pacer.slots}
    second = plan(
        [
            target("a", count_server.url("/ra")),
            target("b", count_server.url("/rb2")),
            target("c", count_server.url("/rc")),
        ],
        rate=0,
    )
    await pod.put_plan(second)
    after = {s.name: s for s in pod.runtime.pacer.slots}
    assert after["a"] is before["a"]  # unchanged definition: same executor
    assert after["b"] is not before["b"] and before["b"].retired
    assert not after["a"].retired and "c" in after
    heavier = second.targets[0].model_copy(update={"weight": 5})
    reweighted = second.model_copy(update={"targets": [heavier, *second.targets[1:]]})
    await pod.put_plan(reweighted)  # only a weight changed: same executor, new weight
    assert pod.runtime.pacer.slots[0] is after["a"] and after["a"].weight == 5
    await pod.put_plan(reweighted.model_copy(update={"max_in_flight": 8}))  # all rebuilt
    assert all(s is not after[s.name] for s in pod.runtime.pacer.slots)


async def test_metrics_content(pod: Pod, count_server: CountServer) -> None:
    labels = {"loadtest": "lt-metrics", "spikeActive": "true"}
    await pod.put_plan(simple_plan(count_server, "/metrics-t", rate=250, labels=labels))

    async def some_requests() -> bool:
        return (await pod.stats()).requests >= 50

    await wait_until(some_requests)
    status, text = await pod.call("GET", "/metrics", token=None)
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "kar98k_requests",
        "kar98k_request_duration_seconds",
        "kar98k_request_corrected_duration_seconds",
        "kar98k_current_tps",
        "kar98k_target_tps",
        "kar98k_active_workers",
        "kar98k_spike_active",
        "kar98k_target_health",
        "kar98k_late_sends",
        "kar98k_dropped",
        "kar98k_lease_expired",
    ):
        assert name in families, name
    requests = [s for s in families["kar98k_requests"].samples if s.name.endswith("_total")]
    assert requests[0].labels == {
        "loadtest": "lt-metrics",
        "target": "t",
        "outcome": "2xx",
        "pod": "test-pod",
    }
    assert requests[0].value >= 50
    buckets = [
        s for s in families["kar98k_request_duration_seconds"].samples if s.name.endswith("_count")
    ]
    assert buckets[0].value >= 50
    corrected = {
        s.name.rsplit("_", 1)[-1]: s.value
        for s in families["kar98k_request_corrected_duration_seconds"].samples
        if not s.name.endswith("_bucket")
    }
    # Same requests; corrected latency (from the intended send time) is never below raw.
    assert corrected["count"] == buckets[0].value
    raw_sum = next(
        s.value
        for s in families["kar98k_request_duration_seconds"].samples
        if s.name.endswith("_sum")
    )
    assert corrected["sum"] >= raw_sum * 0.99
    value = {f: families[f].samples[0].value for f in ("kar98k_target_tps", "kar98k_spike_active")}
    assert value == {"kar98k_target_tps": 250.0, "kar98k_spike_active": 1.0}
    health = families["kar98k_target_health"].samples[0]
    assert health.labels["target"] == "t" and health.value == 1.0
    await pod.drain()


async def test_pod_survives_odd_input(pod: Pod) -> None:
    for method, path, data in [
        ("PUT", PLAN_PATH, b'{"epoch": 1e400, "rate": 1}'),
        ("PUT", PLAN_PATH, b'{"epoch": 1, "rate": "fast", "targets": {}}'),
        ("PUT", PLAN_PATH, '{"epoch": 1, "labels": {"a": "\u00e9\U0001f600"}}'.encode()),
        ("POST", DRAIN_PATH, b'{"timeoutSeconds": "soon"}'),
        ("GET", "/nope", b""),
    ]:
        status, _ = await pod.call(method, path, data=data)
        assert status in (200, 400, 404), (path, data, status)
    status, _ = await pod.call("GET", "/healthz", token=None)
    assert status == 200


async def test_executor_failure_rejects_the_whole_plan(count_server: CountServer) -> None:
    def factory(t: Target, max_in_flight: int) -> object:
        if t.name == "broken":
            raise ValueError("no such method")
        return make_executor(t, max_in_flight)

    runtime = PodRuntime("p", executor_factory=factory)  # type: ignore[arg-type]
    runtime.start()
    try:
        good = target("good", count_server.url("/x"))
        runtime.apply(plan([good], rate=0))
        slot = runtime.pacer.slots[0]
        heavier = good.model_copy(update={"weight": 2})
        bad = plan([heavier, target("broken", count_server.url("/y"))], epoch=2)
        with pytest.raises(PlanRejected):
            runtime.apply(bad)
        assert runtime.epoch == 1 and runtime.pacer.slots == [slot] and slot.weight == 1
    finally:
        await runtime.close()

"""The capacity demo server: exactly workers / service time, queueing past it, a bounded queue."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from kar98k.demo import CapacityServer
from kit.capacity import capacity_server


def test_admission_bookkeeping_is_exact() -> None:
    server = CapacityServer(workers=2, service_time=0.05, max_queue=4)  # 40 req/s
    assert server.capacity == pytest.approx(40.0)
    # Ten requests at t=0: two workers take the first two, four wait (2+2 slots of queue),
    # the rest find the queue full.
    answers = [server.admit(0.0) for _ in range(10)]
    assert answers[:6] == pytest.approx([0.05, 0.05, 0.10, 0.10, 0.15, 0.15])
    assert answers[6:] == [None] * 4
    # Later arrivals after the backlog cleared start at once: sleep overshoot never accrues.
    assert server.admit(1.0) == pytest.approx(1.05)
    # A steady stream at exactly capacity never waits.
    fresh = CapacityServer(workers=2, service_time=0.05)
    for k in range(200):
        now = k / fresh.capacity
        assert fresh.admit(now) == pytest.approx(now + 0.05)


def test_rejects_bad_settings_and_non_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        CapacityServer("10.0.0.1", workers=1, service_time=0.01)
    with pytest.raises(ValueError, match="workers"):
        CapacityServer(workers=0, service_time=0.01)
    with pytest.raises(ValueError, match="service_time"):
        CapacityServer(workers=1, service_time=0)


async def test_a_burst_queues_at_capacity_and_overflow_is_503() -> None:
    async with (
        CapacityServer(workers=2, service_time=0.05, max_queue=6) as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as client,
    ):
        started = time.perf_counter()
        replies = await asyncio.gather(*(client.get("/work") for _ in range(12)))
        took = time.perf_counter() - started
        stats = (await client.get("/stats")).json()
    codes = sorted(r.status_code for r in replies)
    # 2 served at once + 6 queued (3 service times of 2 workers) = 8; the other 4 are refused.
    assert codes == [200] * 8 + [503] * 4
    assert stats == {**stats, "served": 8, "rejected": 4, "capacity": 40.0}
    # The last served request waited for three service times before its own: 4 × 50 ms.
    assert 0.19 <= took < 1.5


def test_process_entry_point_serves_until_stdin_closes() -> None:
    with capacity_server(workers=3, service_ms=10) as server:
        assert server.capacity == pytest.approx(300.0)
        reply = httpx.get(server.url + "/work", timeout=5)
        assert reply.status_code == 200 and reply.text == "ok"
        health = httpx.get(server.url + "/healthz", timeout=5)
        assert health.status_code == 200
    assert server.process.returncode == 0
    assert server.process.stdout is not None
    last = json.loads(server.process.stdout.read().strip().splitlines()[-1])
    assert last == {"served": 1, "rejected": 0}

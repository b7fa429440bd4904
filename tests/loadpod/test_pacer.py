"""The pacer with real executors, measured at a real loopback server (the counting server in
its own process). These run in real time, so they measure generously: the exact schedule
(rates, rate changes, renewals, stalls, weights, leases) is checked on a controllable clock in
test_pacer_schedule.py. A miss here fails; it never skips.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from kar98k_loadpod.pacer import WAITING_SECONDS
from kit.counting_server import BIN_S, CountServer
from kit.loadpod import Pod, plan, target
from kit.wait import holds_for, wait_until

WARMUP_S = 0.3  # connections open, first sends; not part of any measured window


def bin_edge(t: float) -> float:
    """Round a wall time up to the next 10 ms bin edge, so windows cover whole bins."""
    return math.ceil(t / BIN_S) * BIN_S


@pytest.mark.parametrize("arrival", ["uniform", "poisson"])
async def test_rate_is_held_at_the_server(
    pod: Pod, count_server: CountServer, arrival: str
) -> None:
    rate, seconds = 1000.0, 1.5
    path = f"/held-{arrival}"
    body = plan(
        [target("t", count_server.url(path))],
        rate=rate,
        arrival=arrival,
        seed=1234,
        max_in_flight=256,
    )
    await pod.put_plan(body)
    start = bin_edge(time.time() + WARMUP_S)
    end = start + seconds
    await asyncio.sleep(end - time.time() + 0.1)  # the window's arrivals are in
    await pod.drain()
    got = await count_server.count(path, start, end)
    expected = rate * (end - start)
    # Generous: 10 % (Poisson's own sd here is 2.6 %), so a starved shared box does not fail
    # it, while a pacer that lags, bursts or loses sends by design does.
    print(f"{arrival} {rate:g}/s: {got} of {expected:.0f} expected")
    assert abs(got - expected) <= 0.10 * expected, (got, expected)


async def test_stalled_target_drops_and_memory_stays_flat(
    pod: Pod, count_server: CountServer
) -> None:
    # A target that never answers: 4 sends hang, the line fills to one second of arrivals,
    # everything after that is dropped (and late). Nothing grows without bound.
    rate = 500.0
    cap = math.ceil(rate * WAITING_SECONDS)
    await pod.put_plan(
        plan(
            [target("t", count_server.url("/hang"), timeout="30s")],
            rate=rate,
            arrival="uniform",
            max_in_flight=4,
        )
    )

    async def some_dropped() -> bool:
        return (await pod.stats()).dropped >= 100

    await wait_until(some_dropped, 4.0)
    stats = await pod.stats()
    assert stats.in_flight == 4
    assert pod.runtime.pacer.waiting <= cap
    assert stats.late_sends >= stats.dropped
    assert stats.requests == 0

    final = await pod.drain(timeout_s=0.2)  # the hung sends are cancelled after 0.2 s
    assert final.in_flight == 0
    assert pod.runtime.pacer.waiting == 0


async def test_unhealthy_target_skipped_then_recovers(pod: Pod, count_server: CountServer) -> None:
    check = {"path": "/health", "interval": "100ms", "timeout": "1s"}
    body = plan(
        [
            target("checked", count_server.url("/h-checked"), healthCheck=check),
            target("plain", count_server.url("/h-plain")),
        ],
        rate=400.0,
        arrival="uniform",
    )

    async def healthy_is(value: bool) -> bool:
        return (await pod.stats()).targets["checked"].healthy is value

    try:
        await pod.put_plan(body)
        await count_server.set_health(False)
        await wait_until(lambda: healthy_is(False), 3.0)
        down_at = time.time()

        async def no_traffic_to_checked() -> bool:
            return await count_server.count("/h-checked", down_at + 0.1, time.time()) == 0

        await holds_for(no_traffic_to_checked, 0.5, what="no traffic to the unhealthy target")
        stats = await pod.stats()
        # No traffic to the unhealthy target (allow 100 ms for sends already in flight) ...
        assert await count_server.count("/h-checked", down_at + 0.1, time.time()) == 0
        # ... its picks (half of 400/s) were counted and went to the healthy one instead,
        # which now gets the whole rate: 160 in 0.4 s.
        assert stats.targets["checked"].skipped_unhealthy >= 50
        assert await count_server.count("/h-plain", down_at + 0.1, down_at + 0.5) >= 144

        await count_server.set_health(True)
        await wait_until(lambda: healthy_is(True), 3.0)
        up_at = time.time()

        async def traffic_back() -> bool:
            return await count_server.count("/h-checked", up_at) >= 20

        await wait_until(traffic_back, 2.0)
    finally:
        await count_server.set_health(True)
        await pod.drain()

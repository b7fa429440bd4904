"""Pacer behaviour measured at a real loopback server (counting_server.py, its own process).

The pod runs in the test's event loop with the real executors; arrivals are counted where
they matter, at the server, in 10 ms wall-clock bins.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from kar98k_loadpod.histogram import LatencyHistogram
from kar98k_loadpod.pacer import WAITING_SECONDS
from podkit import BIN_S, CountServer, Pod, passes_once, plan, target, wait_for

WARMUP_S = 0.3  # connections open, first sends; not part of any measured window


def bin_edge(t: float) -> float:
    """Round a wall time up to the next 10 ms bin edge, so windows cover whole bins."""
    return math.ceil(t / BIN_S) * BIN_S


async def run_and_count(
    pod: Pod,
    server: CountServer,
    path: str,
    *,
    rate: float,
    arrival: str,
    seconds: float,
    attempt: int,
) -> tuple[int, float]:
    """Send at `rate` for WARMUP_S + `seconds`; return (arrivals in the window, window length)."""
    body = plan(
        [target("t", server.url(path))],
        epoch=attempt + 1,
        rate=rate,
        arrival=arrival,
        seed=1234,
        max_in_flight=256,
    )
    await pod.put_plan(body)
    start = bin_edge(time.time() + WARMUP_S)
    end = start + seconds
    await asyncio.sleep(end - time.time() + 0.1)  # arrivals of the window are in; no assertion
    await pod.drain()
    return await server.count(path, start, end), end - start


def tolerance(arrival: str, expected: float) -> float:
    """How far the count in a window of `expected` sends may be off."""
    if arrival == "uniform":
        # Uniform arrivals are deterministic: over a window of N = rate*T expected sends the
        # count is off only by the sends whose tick fell across a window edge (a few at most).
        # 2 % + 3 is tight; scheduler stalls of the shared box are what `passes_once` absorbs.
        return 0.02 * expected + 3
    # Poisson arrivals: the count in a window with N expected sends has standard deviation
    # sqrt(N). 4 sigma leaves a false failure rate of ~6e-5 per run; +1 % of N covers pacing
    # overhead (tick slop at the window edges). N = 400 -> +-84, N = 2000 -> +-199.
    return 4 * math.sqrt(expected) + 0.01 * expected


@pytest.mark.parametrize(("arrival", "seconds"), [("uniform", 1.5), ("poisson", 2.0)])
@pytest.mark.parametrize("rate", [200.0, 1000.0])
async def test_rate_is_held(
    pod: Pod, count_server: CountServer, rate: float, arrival: str, seconds: float
) -> None:
    async def measure(attempt: int) -> str | None:
        path = f"/{arrival}-{int(rate)}-{attempt}"
        got, window = await run_and_count(
            pod, count_server, path, rate=rate, arrival=arrival, seconds=seconds, attempt=attempt
        )
        expected = rate * window
        allowed = tolerance(arrival, expected)
        print(f"{arrival} {rate:g}/s: {got} of {expected:.0f} expected (+-{allowed:.0f})")
        if abs(got - expected) <= allowed:
            return None
        return f"counted {got}, expected {expected:.0f} +- {allowed:.0f}"

    await passes_once(measure)


async def test_rate_change_in_force_within_150ms(pod: Pod, count_server: CountServer) -> None:
    low, high = 200.0, 1000.0

    async def measure(attempt: int) -> str | None:
        path = f"/agility-{attempt}"
        body = plan(
            [target("t", count_server.url(path))],
            epoch=attempt + 1,
            rate=low,
            arrival="uniform",
            max_in_flight=256,
        )
        await pod.put_plan(body)
        await asyncio.sleep(0.6)
        up_at = time.time()
        await pod.put_plan({**body, "rate": high})
        await asyncio.sleep(0.6)
        down_at = time.time()
        await pod.put_plan({**body, "rate": low})
        await asyncio.sleep(0.6)
        await pod.drain()

        # From 150 ms after the PUT the new rate holds: over the next 300 ms (uniform arrivals,
        # so counts are near exact) within 8 % of it. Were the change in force only at
        # 150 ms + d, the count would fall short by (high - low) * d: this bounds d to ~30 ms.
        up = await count_server.count(path, up_at + 0.15, up_at + 0.45)
        down = await count_server.count(path, down_at + 0.15, down_at + 0.45)
        # The switch time itself: in [t, t + 0.45] the count is low*x + high*(0.45 - x).
        total = await count_server.count(path, up_at, up_at + 0.45)
        switch = (high * 0.45 - total) / (high - low)
        print(f"rate change in force after {switch * 1000:.0f} ms; windows {up}, {down}")
        if abs(up - high * 0.3) > 0.08 * high * 0.3:
            return f"{up} sends in 300 ms after the change up, expected {high * 0.3:.0f}"
        if abs(down - low * 0.3) > 0.08 * low * 0.3 + 2:
            return f"{down} sends in 300 ms after the change down, expected {low * 0.3:.0f}"
        if switch > 0.15:
            return f"new rate in force after {switch * 1000:.0f} ms"
        return None

    await passes_once(measure)


async def test_frequent_renewals_do_not_postpone_uniform_sends(
    pod: Pod, count_server: CountServer
) -> None:
    # A controller pushes every 100 ms, often with a slightly different rate. Here: 50/s
    # (a 20 ms gap) re-pushed every 10 ms with a wobbling rate. Re-anchoring every push at
    # now + gap would never send; keeping the spacing from the last send holds the rate.
    async def measure(attempt: int) -> str | None:
        path = f"/renewals-{attempt}"
        body = plan(
            [target("t", count_server.url(path))], epoch=attempt + 1, rate=50, arrival="uniform"
        )
        started = time.time()
        pushes = 0
        while time.time() - started < 1.2:
            pushes += 1
            await pod.put_plan({**body, "rate": 50.0 + (pushes % 2) * 0.5})
            await asyncio.sleep(0.01)
        await pod.drain()
        got = await count_server.count(path)
        print(f"{got} sends in 1.2 s at ~50/s with {pushes} renewals")
        return None if abs(got - 60) <= 4 else f"{got} sends, expected 60 +- 4"

    await passes_once(measure)


async def test_stall_shows_in_corrected_not_raw(pod: Pod, count_server: CountServer) -> None:
    # The server holds every request arriving in a 500 ms window. With maxInFlight=2 only the
    # two in-flight requests see that in their raw latency; the ~100 sends intended during the
    # stall wait in the pacer's line (200 slots at 200/s), start when the stall ends and have
    # short raw latencies, but corrected latencies of up to 500 ms. Of ~500 samples, p99 is the
    # 5th largest: raw p99 stays at loopback latency, corrected p99 lands near 480 ms.
    rate = 200.0

    async def measure(attempt: int) -> str | None:
        name = f"t{attempt}"
        before = await pod.stats()
        body = plan(
            [target(name, count_server.url(f"/stall-{attempt}"))],
            epoch=attempt + 1,
            rate=rate,
            arrival="uniform",
            max_in_flight=2,
        )
        await pod.put_plan(body)
        await asyncio.sleep(0.8)
        await count_server.stall(0.5)
        await asyncio.sleep(1.7)
        # Read the drop count before draining: the drain flushes whatever waits in the line at
        # that instant (by design), and the drain lands on the send schedule's phase here.
        settled = await pod.stats()
        final = await pod.drain()

        stats = final["targets"][name]
        raw = LatencyHistogram.decode(stats["latencyRaw"])
        corrected = LatencyHistogram.decode(stats["latencyCorrected"])
        print(f"stall: raw {raw.summary_ms()} corrected {corrected.summary_ms()}")
        assert raw.count == corrected.count == stats["requests"] >= 400
        assert raw.max_ms() > 400  # the in-flight requests did see the stall
        late = final["lateSends"] - before["lateSends"]
        assert late >= 50  # ~100 sends started after their intended time
        if settled["dropped"] != before["dropped"]:
            return "sends were dropped: the line (1 s of arrivals) should hold the stall"
        if raw.percentile_ms(99) >= 100 or corrected.percentile_ms(99) <= 300:
            return f"raw {raw.summary_ms()}, corrected {corrected.summary_ms()}"
        return None

    await passes_once(measure)


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
        return bool((await pod.stats())["dropped"] >= 100)

    await wait_for(some_dropped, timeout_s=4.0)
    stats = await pod.stats()
    assert stats["inFlight"] == 4
    assert pod.runtime.pacer.waiting <= cap
    assert stats["lateSends"] >= stats["dropped"]
    assert stats["requests"] == 0

    final = await pod.drain(timeout_s=0.2)  # the hung sends are cancelled after 0.2 s
    assert final["inFlight"] == 0
    assert pod.runtime.pacer.waiting == 0


async def test_weighted_target_choice(pod: Pod, count_server: CountServer) -> None:
    rate, seconds = 800.0, 1.2
    body = plan(
        [
            target("heavy", count_server.url("/w-heavy"), weight=3),
            target("light", count_server.url("/w-light"), weight=1),
        ],
        rate=rate,
        arrival="uniform",
    )
    await pod.put_plan(body)
    start = bin_edge(time.time() + WARMUP_S)
    await asyncio.sleep(start + seconds - time.time() + 0.1)
    await pod.drain()
    heavy = await count_server.count("/w-heavy", start, start + seconds)
    light = await count_server.count("/w-light", start, start + seconds)
    n = heavy + light
    # Each send picks "heavy" with p = 0.75: binomial sd = sqrt(n p (1-p)); allow 4 sd.
    assert abs(heavy / n - 0.75) <= 4 * math.sqrt(0.75 * 0.25 / n), (heavy, light)


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
        return bool((await pod.stats())["targets"]["checked"]["healthy"] is value)

    try:
        await pod.put_plan(body)
        await count_server.set_health(False)
        await wait_for(lambda: healthy_is(False), timeout_s=3.0)
        down_at = time.time()
        await asyncio.sleep(0.5)
        stats = await pod.stats()
        # No traffic to the unhealthy target (allow 100 ms for sends already in flight) ...
        assert await count_server.count("/h-checked", down_at + 0.1, time.time()) == 0
        # ... its picks (half of 400/s) were counted and went to the healthy one instead,
        # which now gets the whole rate: 160 in 0.4 s.
        assert stats["targets"]["checked"]["skippedUnhealthy"] >= 50
        assert await count_server.count("/h-plain", down_at + 0.1, down_at + 0.5) >= 144

        await count_server.set_health(True)
        await wait_for(lambda: healthy_is(True), timeout_s=3.0)
        up_at = time.time()

        async def traffic_back() -> bool:
            return await count_server.count("/h-checked", up_at) >= 20

        await wait_for(traffic_back, timeout_s=2.0)
    finally:
        await count_server.set_health(True)
        await pod.drain()

"""The pacer's schedule on a controllable clock (looptime): exact counts, no machine noise.

The pacer runs with `clock=` the fake loop time and a fake executor; every send's loop time is
recorded, so rates, rate changes, renewals, stalls and leases are checked to the send.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from kar98k_loadpod.pacer import WAITING_SECONDS, Pacer, Slot
from kar98k_loadpod.plan import Arrival
from kar98k_loadpod.recorder import Recorder
from kit.clock import FakeSender, loop_clock

pytestmark = pytest.mark.looptime


def make_pacer(
    *names: str, latency: float = 0.001
) -> tuple[Pacer, Recorder, dict[str, FakeSender]]:
    """A pacer on the loop's (fake) clock and one fake executor per target name."""
    rec = Recorder()
    return Pacer(rec, clock=loop_clock()), rec, {name: FakeSender(latency) for name in names}


def slots_of(rec: Recorder, senders: dict[str, FakeSender], **weights: float) -> list[Slot]:
    return [Slot(n, s, weights.get(n, 1.0), rec.target(n)) for n, s in senders.items()]


def configure(
    pacer: Pacer,
    slots: list[Slot],
    rate: float,
    *,
    arrival: Arrival = Arrival.UNIFORM,
    lease: float = 60.0,
    max_in_flight: int = 256,
    seed: int | None = 7,
) -> None:
    pacer.configure(
        rate=rate,
        arrival=arrival,
        seed=seed,
        max_in_flight=max_in_flight,
        slots=slots,
        lease_seconds=lease,
    )


async def run_for(seconds: float) -> float:
    """Let the pacer run `seconds` of loop time; returns the loop time at the end."""
    await asyncio.sleep(seconds)
    return asyncio.get_running_loop().time()


@pytest.mark.parametrize("rate", [200.0, 1000.0, 5000.0])
async def test_uniform_rate_is_exact(rate: float) -> None:
    pacer, rec, senders = make_pacer("t")
    slots = slots_of(rec, senders)
    pacer.start()
    try:
        t0 = asyncio.get_running_loop().time()
        configure(pacer, slots, rate)
        await run_for(2.0)
        # One send at t0, then one every 1/rate: rate * 2 s of them, to the send (those due
        # in the last 1 ms tick fire on the tick after the window).
        got = senders["t"].count(t0, t0 + 2.0)
        assert rate * 2.0 - rate * 0.001 - 1 <= got <= rate * 2.0 + 1
        gaps = [b - a for a, b in zip(senders["t"].sent, senders["t"].sent[1:], strict=False)]
        # Sends fire on a 1 ms tick: each lands within one tick of its intended time.
        assert max(gaps) <= 1 / rate + 0.0011
        assert rec.late == 0 and rec.dropped == 0
    finally:
        await pacer.close()


async def test_poisson_rate_within_statistics() -> None:
    rate, seconds = 1000.0, 5.0
    pacer, rec, senders = make_pacer("t")
    pacer.start()
    try:
        configure(pacer, slots_of(rec, senders), rate, arrival=Arrival.POISSON)
        await run_for(seconds)
        expected = rate * seconds
        # sd sqrt(N); 4 sd: a false failure once in ~16,000 runs with a random seed, never here.
        assert abs(len(senders["t"].sent) - expected) <= 4 * math.sqrt(expected)
    finally:
        await pacer.close()


async def test_rate_change_is_in_force_at_once() -> None:
    low, high = 200.0, 1000.0
    pacer, rec, senders = make_pacer("t")
    slots = slots_of(rec, senders)
    sender = senders["t"]
    pacer.start()
    try:
        configure(pacer, slots, low)
        up_at = await run_for(0.5)
        configure(pacer, slots, high)
        down_at = await run_for(0.5)
        configure(pacer, slots, low)
        await run_for(0.5)
        # The new rate holds from the next gap on: no lag, no smeared change.
        assert sender.count(up_at + 0.002, up_at + 0.302) == pytest.approx(high * 0.3, abs=2)
        assert sender.count(down_at + 0.006, down_at + 0.306) == pytest.approx(low * 0.3, abs=2)
        first_fast = min(t for t in sender.sent if t >= up_at)
        assert first_fast - up_at <= 1 / high + 0.0011
    finally:
        await pacer.close()


async def test_frequent_renewals_do_not_postpone_uniform_sends() -> None:
    # A controller re-pushes every 100 ms, often with a slightly different rate. Here 50/s
    # (20 ms gap) re-pushed every 10 ms with a wobbling rate: re-anchoring every push at
    # now + gap would never send; keeping the spacing from the last send holds the rate.
    pacer, rec, senders = make_pacer("t")
    slots = slots_of(rec, senders)
    pacer.start()
    try:
        for pushes in range(120):
            configure(pacer, slots, 50.0 + (pushes % 2) * 0.5)
            await asyncio.sleep(0.01)
        assert len(senders["t"].sent) == pytest.approx(60, abs=2)
    finally:
        await pacer.close()


async def test_stall_shows_in_corrected_not_raw() -> None:
    # The target holds every answer for 500 ms. With maxInFlight=2 only the two in-flight
    # sends see it in their raw latency; the ~100 sends intended meanwhile wait in the line,
    # start when it ends with short raw latencies but corrected latencies up to 500 ms.
    rate = 200.0
    pacer, rec, senders = make_pacer("t")
    sender = senders["t"]
    pacer.start()
    try:
        configure(pacer, slots_of(rec, senders), rate, max_in_flight=2)
        stall_at = await run_for(0.8)
        sender.stall_until = stall_at + 0.5
        await run_for(1.7)
        assert rec.dropped == 0  # the line (1 s of arrivals) holds the stall
        assert rec.late >= 90
        stats = rec.targets["t"]
        raw, corrected = stats.raw, stats.corrected
        assert raw.count == corrected.count >= 480
        assert raw.max_ms() > 400  # the in-flight ones did see the stall
        assert raw.percentile_ms(99) < 100
        assert corrected.percentile_ms(99) > 300
    finally:
        await pacer.close()


async def test_stalled_target_drops_and_memory_stays_flat() -> None:
    rate = 500.0
    cap = math.ceil(rate * WAITING_SECONDS)
    pacer, rec, senders = make_pacer("t", latency=3600.0)  # never answers
    pacer.start()
    try:
        configure(pacer, slots_of(rec, senders), rate, max_in_flight=4)
        await run_for(1.5)
        assert pacer.in_flight == 4
        assert pacer.waiting == cap
        # 1.5 s of arrivals (751): 4 in flight, `cap` waiting, the rest dropped and late.
        assert rec.dropped == pytest.approx(751 - 4 - cap, abs=2)
        assert rec.late >= rec.dropped
        assert rec.targets["t"].requests == 0
    finally:
        await pacer.close()
    assert pacer.in_flight == 0 and pacer.waiting == 0


async def test_weighted_target_choice() -> None:
    rate, seconds = 800.0, 5.0
    pacer, rec, senders = make_pacer("heavy", "light")
    pacer.start()
    try:
        configure(pacer, slots_of(rec, senders, heavy=3.0), rate)
        await run_for(seconds)
        heavy, light = len(senders["heavy"].sent), len(senders["light"].sent)
        n = heavy + light
        assert n == pytest.approx(rate * seconds, abs=1)
        # Each send picks "heavy" with p = 0.75: binomial sd = sqrt(n p (1-p)); allow 4 sd.
        assert abs(heavy / n - 0.75) <= 4 * math.sqrt(0.75 * 0.25 / n), (heavy, light)
    finally:
        await pacer.close()


async def test_lease_expiry_stops_sending_at_the_deadline() -> None:
    expired: list[float] = []
    rec = Recorder()
    loop = asyncio.get_running_loop()
    pacer = Pacer(rec, clock=loop.time, on_lease_expired=lambda: expired.append(loop.time()))
    sender = FakeSender()
    pacer.start()
    try:
        t0 = loop.time()
        configure(pacer, [Slot("t", sender, 1.0, rec.target("t"))], 300.0, lease=0.5)
        await run_for(2.0)
        assert expired == [pytest.approx(t0 + 0.5, abs=0.0011)]
        assert max(sender.sent) < t0 + 0.5
        assert len(sender.sent) == pytest.approx(150, abs=1)
        assert pacer.rate == 0
    finally:
        await pacer.close()

"""The pacer's task-free path (executors with `push`) on a controllable clock (looptime).

A pushed send must keep every promise of the task path: the planned count at the planned
times, the bound on in-flight sends, the waiting line, late and corrected latency, and
cancellation on drain.
"""

from __future__ import annotations

import asyncio

import pytest
from kar98k_loadpod.pacer import Pacer, Slot
from kar98k_loadpod.plan import Arrival
from kar98k_loadpod.recorder import Recorder
from kit.clock import FakePusher, loop_clock

pytestmark = pytest.mark.looptime


def setup(
    sender: FakePusher, rate: float, *, max_in_flight: int = 256
) -> tuple[Pacer, Recorder, float]:
    rec = Recorder()
    pacer = Pacer(rec, clock=loop_clock())
    pacer.start()
    t0 = asyncio.get_running_loop().time()
    pacer.configure(
        rate=rate,
        arrival=Arrival.UNIFORM,
        seed=3,
        max_in_flight=max_in_flight,
        slots=[Slot("t", sender, 1.0, rec.target("t"))],
        lease_seconds=60.0,
    )
    return pacer, rec, t0


@pytest.mark.parametrize("rate", [500.0, 4000.0])
async def test_pushed_sends_are_the_planned_count_at_the_planned_times(rate: float) -> None:
    sender = FakePusher(latency=0.002)
    pacer, rec, t0 = setup(sender, rate)
    try:
        await asyncio.sleep(2.0)
        pacer.halt()  # no more sends: the count below is final
        # Send i is intended at t0 + i/rate and fires on the first 1 ms tick at or after it.
        n = len(sender.sent)
        assert rate * 2.0 - rate * 0.001 - 1 <= n <= rate * 2.0 + 1
        for i, at in enumerate(sender.sent):
            intended = t0 + i / rate
            assert intended - 1e-9 <= at <= intended + 0.0011, (i, at - intended)
        assert sender.pushed == n and sender.tasked == 0  # all on the task-free path
        await asyncio.sleep(0.01)  # the last answers arrive
        assert rec.targets["t"].requests == n
        assert rec.late == 0 and rec.dropped == 0
        # Raw latency is the fake's 2 ms exactly (the clock is the loop's).
        assert rec.targets["t"].raw.percentile_ms(100) == pytest.approx(2.0, abs=0.01)
    finally:
        await pacer.close()


async def test_declined_pushes_fall_back_to_tasks_and_the_count_holds() -> None:
    # 1000/s with 10 ms answers: ~10 open at once, the fake takes only 3 pushed ones.
    rate = 1000.0
    sender = FakePusher(latency=0.010, capacity=3)
    pacer, rec, _ = setup(sender, rate)
    try:
        await asyncio.sleep(1.0)
        assert sender.pushed > 0 and sender.tasked > 0
        assert sender.pushed + sender.tasked == len(sender.sent)
        assert len(sender.sent) == pytest.approx(rate * 1.0, abs=2)
        assert rec.late == 0
    finally:
        await pacer.close()


async def test_pushed_sends_respect_max_in_flight_and_serve_the_waiting_line() -> None:
    # Answers held 300 ms, 2 in flight at most: the ~60 sends due meanwhile wait in the line,
    # start (pushed again) as answers free places, late, with corrected >> raw latency.
    rate = 200.0
    sender = FakePusher(latency=0.001)
    pacer, rec, _ = setup(sender, rate, max_in_flight=2)
    try:
        await asyncio.sleep(0.5)
        stall_at = asyncio.get_running_loop().time()
        sender.stall_until = stall_at + 0.3
        await asyncio.sleep(0.1)
        assert pacer.in_flight == 2 and sender.open == 2
        assert pacer.waiting >= 15
        await asyncio.sleep(1.4)
        assert sender.tasked == 0
        assert rec.dropped == 0 and pacer.waiting == 0
        assert rec.late >= 50
        stats = rec.targets["t"]
        assert stats.corrected.percentile_ms(99) > 200
        assert stats.raw.percentile_ms(90) < 10
        assert max(sender.open, pacer.in_flight) <= 2
    finally:
        await pacer.close()


async def test_cancel_in_flight_forgets_pushed_sends_and_ignores_their_answers() -> None:
    sender = FakePusher(latency=3600.0)  # never answers within the test
    pacer, rec, _ = setup(sender, 100.0, max_in_flight=5)
    await asyncio.sleep(0.2)
    assert pacer.in_flight == 5
    pacer.halt()
    assert not await pacer.wait_idle(0.1)
    assert await pacer.cancel_in_flight() == 5
    assert pacer.in_flight == 0
    assert await pacer.wait_idle(0.01)
    # The abandoned answers still come; they must not be recorded nor uncount anything.
    await asyncio.sleep(3601)
    assert rec.targets["t"].requests == 0
    assert pacer.in_flight == 0
    await pacer.close()

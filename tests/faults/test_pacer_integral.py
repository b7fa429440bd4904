"""Uniform pacing under a rate that changes every tick sends the curve's integral, to the send.

Found by the soak (bench/soak.py): with noise the controller pushes a new rate every 100 ms,
and re-anchoring the uniform schedule at "last send + new gap, at the earliest now" dropped the
part of a gap already waited whenever the rate rose: about 1 % fewer sends than the integral.
On a fake loop clock (looptime) the count is exact, so the check is to within two sends.
"""

from __future__ import annotations

import asyncio

import pytest
from kar98k_loadpod.pacer import Pacer, Slot
from kar98k_loadpod.plan import Arrival
from kar98k_loadpod.recorder import Recorder
from kit.clock import FakeSender, loop_clock

pytestmark = pytest.mark.looptime

TICK_S = 0.1


@pytest.mark.parametrize(("low", "high"), [(90.0, 130.0), (37.0, 41.0), (400.0, 1000.0)])
async def test_rate_changing_every_tick_sends_the_integral(low: float, high: float) -> None:
    rec = Recorder()
    pacer = Pacer(rec, clock=loop_clock())
    sender = FakeSender()
    slots = [Slot("t", sender, 1.0, rec.target("t"))]
    pacer.start()
    integral = 0.0
    try:
        for tick in range(100):  # 10 s: the rate alternates, so half the changes are rises
            rate = high if tick % 2 else low
            pacer.configure(
                rate=rate,
                arrival=Arrival.UNIFORM,
                seed=7,
                max_in_flight=256,
                slots=slots,
                lease_seconds=5.0,
            )
            integral += rate * TICK_S
            await asyncio.sleep(TICK_S)
    finally:
        await pacer.close()
    sent = len(sender.sent)
    print(f"\n{low:g}<->{high:g}/s every {TICK_S:g} s: sent {sent}, integral {integral:.0f}")
    # Sends fire on a 1 ms tick and the first at once: within two of the integral.
    assert abs(sent - integral) <= 2, (sent, integral)

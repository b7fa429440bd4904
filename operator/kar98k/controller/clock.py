"""The run's clock: elapsed time since t = 0 and unix time, read off the event loop's clock.

Before run() begins (and after it ends) elapsed time is wall time since `start`; while it runs,
both derive from the loop's monotonic clock, so a wall-clock step never jolts the curve.

The wall clock is injected (`wall`, unix seconds); the monotonic clock is the event loop's. A
test on a fake loop clock (looptime) passes `wall=lambda: T0 + loop.time()` and the whole run,
ticks, leases and series, happens at exact, repeatable instants in no real time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import datetime

WallClock = Callable[[], float]  # unix seconds, like time.time


class RunClock:
    def __init__(self, start: datetime, wall: WallClock = time.time) -> None:
        self.start = start  # aware UTC wall time of t = 0
        self.wall = wall
        self.running = False
        self.mono0 = 0.0  # loop time when the run began
        self.elapsed0 = 0.0  # elapsed time (since t = 0) then
        self.unix0 = 0.0  # unix time then

    def begin(self, mono: float) -> None:
        """The run begins now, at loop time `mono`."""
        self.running = True
        self.mono0 = mono
        self.unix0 = self.wall()
        self.elapsed0 = self.unix0 - self.start.timestamp()

    def unix(self, mono: float) -> float:
        return self.unix0 + (mono - self.mono0)

    def elapsed(self, mono: float) -> float:
        return self.elapsed0 + (mono - self.mono0)

    def elapsed_now(self) -> float:
        if not self.running:
            return self.wall() - self.start.timestamp()
        return self.elapsed(asyncio.get_running_loop().time())

    def end_at(self, duration: float | None) -> float:
        """Loop time at which a run of `duration` seconds (None: endless) reaches its end."""
        if duration is None:
            return math.inf
        return self.mono0 + (duration - self.elapsed0)

"""Tests on a controllable clock: the event loop's time is fake (looptime) and jumps straight
to the next timer, so a 10-second schedule runs in milliseconds and every instant is exact.

Mark a test `@pytest.mark.looptime` and hand the code under test `loop_clock()` wherever it
takes a clock (the pacer's `clock=`, the controller's `clock=`). Such tests must not wait on
real sockets or processes: the fake time would run past their timeouts at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_clock() -> Callable[[], float]:
    """The running loop's clock (fake under looptime) as a plain callable."""
    return asyncio.get_running_loop().time


class FakeSender:
    """An executor for the pacer that answers after `latency` seconds of loop time and records
    the loop time of every send; `stall_until` holds answers until that loop time."""

    def __init__(self, latency: float = 0.001) -> None:
        self.latency = latency
        self.sent: list[float] = []
        self.stall_until = 0.0
        self.closed = False

    async def send(self) -> str:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.sent.append(now)
        await asyncio.sleep(max(self.latency, self.stall_until - now))
        return "2xx"

    async def close(self) -> None:
        self.closed = True

    def count(self, start: float, end: float) -> int:
        """Sends started in loop time [start, end)."""
        return sum(1 for t in self.sent if start <= t < end)


class FakePusher(FakeSender):
    """A FakeSender that also takes the pacer's task-free path (`push`): it answers through
    the callback after `latency` of loop time. With `capacity`, it declines a push while that
    many pushed sends are open (like the HTTP/1.1 client without an idle connection), so the
    pacer falls back to `send`; `pushed` and `tasked` count which path each send took."""

    def __init__(self, latency: float = 0.001, capacity: int | None = None) -> None:
        super().__init__(latency)
        self.capacity = capacity
        self.open = 0
        self.pushed = 0
        self.tasked = 0

    def push(self, done: Callable[[object, str], None], token: object) -> bool:
        if self.capacity is not None and self.open >= self.capacity:
            return False
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.sent.append(now)
        self.open += 1
        self.pushed += 1
        loop.call_later(max(self.latency, self.stall_until - now), self._answer, done, token)
        return True

    def _answer(self, done: Callable[[object, str], None], token: object) -> None:
        self.open -= 1
        done(token, "2xx")

    async def send(self) -> str:
        self.tasked += 1
        return await super().send()

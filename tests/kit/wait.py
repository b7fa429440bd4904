"""The one poll helper: wait for a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    within: float = 5.0,
    interval: float = 0.01,
    *,
    what: str = "condition",
) -> None:
    """Poll `condition` (plain or async) until it holds; fail the test after `within` seconds.

    The deadline is wall time (`time.monotonic`), so it also bounds tests whose event loop
    runs on a fake clock.
    """
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within:g} s")
        await asyncio.sleep(interval)


async def holds_for(
    condition: Callable[[], bool | Awaitable[bool]],
    seconds: float,
    interval: float = 0.02,
    *,
    what: str = "condition",
) -> None:
    """Check `condition` keeps holding for `seconds` (e.g. "no more traffic"), failing at once
    when it breaks. The only honest way to prove that nothing happens is to watch for a while;
    this watches continuously instead of sleeping and looking once."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if not result:
            raise AssertionError(f"{what} stopped holding")
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)

"""Per-target health monitor: one probe loop per checked target, flipping a healthy flag.

Targets start healthy (optimistic): traffic flows at once and the first probe, run straight
away, withdraws it within one probe timeout if the target is down. One failed probe makes a
target unhealthy, one good probe makes it healthy again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .executors import Executor
from .targets import HealthCheck, Target

log = logging.getLogger(__name__)

# Grace over the probe's own timeout before the monitor gives up on a probe that hangs.
_GRACE = 0.5


@dataclass
class _Watch:
    check: HealthCheck
    executor: Executor
    task: asyncio.Task[None]


class HealthMonitor:
    """Probes each target's executor every `healthCheck.interval`; reports flips to `on_change`."""

    def __init__(self, on_change: Callable[[str, bool], None] | None = None) -> None:
        self._on_change = on_change
        self._healthy: dict[str, bool] = {}
        self._watches: dict[str, _Watch] = {}

    def update(self, targets: Mapping[str, tuple[Target, Executor]]) -> None:
        """Start, restart or stop probe loops so they match `targets` (call within the loop)."""
        for name in list(self._watches):
            if name not in targets:
                self._stop(name)
        for name in list(self._healthy):
            if name not in targets:
                del self._healthy[name]
        for name, (target, executor) in targets.items():
            check = target.health_check
            watch = self._watches.get(name)
            if check is None or not check.enabled:
                if watch is not None:
                    self._stop(name)
                self._set(name, True)
                continue
            if watch is not None and watch.executor is executor and watch.check == check:
                continue  # unchanged: keep the loop and its state
            if watch is not None:
                self._stop(name)
            self._healthy.setdefault(name, True)
            task = asyncio.get_running_loop().create_task(
                self._loop(name, check, executor), name=f"health:{name}"
            )
            self._watches[name] = _Watch(check=check, executor=executor, task=task)

    def is_healthy(self, name: str) -> bool:
        """Unknown names count as healthy: nothing says otherwise."""
        return self._healthy.get(name, True)

    def snapshot(self) -> dict[str, bool]:
        """Current health of every known target."""
        return dict(self._healthy)

    async def close(self) -> None:
        tasks = [watch.task for watch in self._watches.values()]
        self._watches.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _stop(self, name: str) -> None:
        watch = self._watches.pop(name, None)
        if watch is not None:
            watch.task.cancel()

    def _set(self, name: str, healthy: bool) -> None:
        before = self._healthy.get(name)
        self._healthy[name] = healthy
        if before is None or before == healthy:
            return
        log.info("target %s is now %s", name, "healthy" if healthy else "unhealthy")
        if self._on_change is not None:
            try:
                self._on_change(name, healthy)
            except Exception:
                log.exception("health on_change callback failed for %s", name)

    async def _loop(self, name: str, check: HealthCheck, executor: Executor) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                async with asyncio.timeout(check.timeout + _GRACE):
                    healthy = await executor.probe()
            except TimeoutError:
                healthy = False
            except Exception:
                log.exception("health probe of %s failed unexpectedly", name)
                healthy = False
            watch = self._watches.get(name)
            if watch is None or watch.task is not asyncio.current_task():
                return  # superseded while probing
            self._set(name, healthy)
            # Fixed cadence from probe start; a slow probe never makes the next one wait longer.
            next_at = max(next_at + check.interval, loop.time())
            await asyncio.sleep(next_at - loop.time())

"""A demo target with a known capacity: `workers` servers, each busy `service_time` per request.

Capacity = workers / service_time requests per second. Below it a request waits for nothing but
its own service time; past it requests queue and latency climbs for as long as the overload
lasts; a full queue (`max_queue` requests waiting) answers 503 at once, so memory stays bounded.

The workers are bookkept, not slept in turn: each worker's next free instant is kept in a heap,
a request takes the earliest free worker and is answered at `max(now, free) + service_time`.
Sleep overshoot of the event loop therefore never lowers the capacity (an instant in the past
is simply answered at once), and the figure `workers / service_time` holds exactly.

Usage::

    async with CapacityServer(workers=6, service_time=0.02) as server:   # 300 req/s
        url = server.url + "/work"

`python -m kar98k.demo.serve_capacity --workers 6 --service-time 20ms` serves until stdin
closes (printing `{"port": N, "capacity": C}` first), for tests and `kar98k demo --find-max`.
"""

from __future__ import annotations

import asyncio
import heapq

from aiohttp import web

from .behaviour import require_loopback
from .counters import RequestCounter
from .lifecycle import Lifecycle

DEFAULT_QUEUE_SECONDS = 1.0  # default queue bound: one second of work at capacity


class CapacityServer(Lifecycle):
    """Serves GET|POST /work (200 after queue + service time, 503 when the queue is full),
    /healthz (200) and /stats (JSON counters), on a loopback address."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        workers: int,
        service_time: float,
        max_queue: int | None = None,
    ) -> None:
        require_loopback(host)
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if not 0 < service_time <= 10:
            raise ValueError(f"service_time must be in (0, 10] seconds, got {service_time}")
        self.host = host
        self.port = port
        self.workers = workers
        self.service_time = service_time
        self.max_queue = (
            max_queue
            if max_queue is not None
            else max(1, round(self.capacity * DEFAULT_QUEUE_SECONDS))
        )
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue}")
        self.counter = RequestCounter()
        self.rejected = 0
        self.served = 0
        self._free_at: list[float] = []
        self._runner: web.AppRunner | None = None

    @property
    def capacity(self) -> float:
        """Requests per second the server completes at most: workers / service_time."""
        return self.workers / self.service_time

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def admit(self, now: float) -> float | None:
        """When a request arriving at `now` is answered, or None when the queue is full."""
        free = self._free_at
        if len(free) < self.workers:
            start = now
        else:
            start = max(now, free[0])
            # Requests queued ahead of this one: the wait, in units of one capacity slot.
            if (start - now) * self.capacity > self.max_queue:
                return None
            heapq.heappop(free)
        done = start + self.service_time
        heapq.heappush(free, done)
        return done

    async def _work(self, request: web.Request) -> web.Response:
        self.counter.hit("/work", "1.1")
        loop = asyncio.get_running_loop()
        now = loop.time()
        done = self.admit(now)
        if done is None:
            self.rejected += 1
            return web.Response(status=503, text="queue full")
        await asyncio.sleep(done - now)
        self.served += 1
        return web.Response(text="ok")

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _stats(self, request: web.Request) -> web.Response:
        body = {
            "capacity": self.capacity,
            "served": self.served,
            "rejected": self.rejected,
            "counts": self.counter.snapshot(),
        }
        return web.json_response(body)

    async def start(self) -> int:
        """Start listening; returns the bound port."""
        app = web.Application()
        app.router.add_route("*", "/work", self._work)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/stats", self._stats)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

"""Tiny real control-API servers on 127.0.0.1 for controller tests (no mocked HTTP client).

Each FakePod is an aiohttp server implementing PUT /v1/plan, GET /v1/stats and POST /v1/drain
minimally: it checks the bearer token and the epoch order, records every plan it accepts and
counts "requests" as the integral of the rates it was given, so merges have numbers to add.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from kar98k.controller import PodEndpoint
from kar98k_loadpod.histogram import LatencyHistogram
from kar98k_loadpod.stats import PodStats, TargetStats


@dataclass
class Received:
    at: float  # loop time
    plan: dict[str, Any]


@dataclass
class FakePod:
    name: str
    token: str = "test-token"
    delay: float = 0.0  # answer plans this late
    fail_status: int | None = None  # answer plans with this status
    latency_s: float = 0.001  # every counted request took this long
    plans: list[Received] = field(default_factory=list)
    drained: bool = False
    stats_calls: int = 0
    started_at: float = field(default_factory=time.time)
    _epoch: int = -1
    _rate: float = 0.0
    _since: float = 0.0
    _requests: float = 0.0
    _runner: web.AppRunner | None = None
    _hist: LatencyHistogram = field(default_factory=LatencyHistogram)
    base_url: str = ""

    @property
    def endpoint(self) -> PodEndpoint:
        return PodEndpoint(self.name, self.base_url, self.token)

    async def start(self) -> FakePod:
        app = web.Application()
        app.router.add_put("/v1/plan", self._plan)
        app.router.add_get("/v1/stats", self._stats)
        app.router.add_post("/v1/drain", self._drain)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def _account(self) -> None:
        now = time.monotonic()
        if self._since:
            self._requests += self._rate * (now - self._since)
        self._since = now

    async def _plan(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        plan = json.loads(await request.read())
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_status is not None:
            return web.json_response({"error": "failing on purpose"}, status=self.fail_status)
        if plan["epoch"] < self._epoch:
            return web.json_response({"error": "stale epoch"}, status=409)
        self._account()
        self._epoch, self._rate = plan["epoch"], plan["rate"]
        self.plans.append(Received(asyncio.get_running_loop().time(), plan))
        return web.json_response({"epoch": plan["epoch"], "rate": plan["rate"]})

    def stats(self) -> PodStats:
        self._account()
        requests = int(self._requests)
        for _ in range(requests - self._hist.count):
            self._hist.record_seconds(self.latency_s)
        encoded = self._hist.encode()
        return PodStats(
            pod=self.name,
            epoch=self._epoch,
            rate=self._rate,
            started_at=self.started_at,
            requests=requests,
            targets={
                "t": TargetStats(
                    requests=requests,
                    outcomes={"2xx": requests} if requests else {},
                    latency_raw=encoded,
                    latency_corrected=encoded,
                )
            },
        )

    async def _stats(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        self.stats_calls += 1
        return web.json_response(self.stats().to_wire())

    async def _drain(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        self._account()
        self._rate = 0.0
        self.drained = True
        return web.json_response(self.stats().to_wire())


class StaticSource:
    """A PodSource over a list the test may change while the controller runs."""

    def __init__(self, pods: list[FakePod]) -> None:
        self.pods = list(pods)

    def endpoints(self) -> list[PodEndpoint]:
        return [p.endpoint for p in self.pods]


class FixedSource:
    """A PodSource over fixed endpoints (pods served by another process)."""

    def __init__(self, endpoints: list[PodEndpoint]) -> None:
        self._endpoints = endpoints

    def endpoints(self) -> list[PodEndpoint]:
        return list(self._endpoints)


async def start_pods(count: int, **kwargs: Any) -> list[FakePod]:
    return [await FakePod(f"pod-{i:02d}", **kwargs).start() for i in range(count)]


async def serve_many(count: int) -> None:
    """Run `count` fake pods until stdin closes; print one URL per line, then 'ready'."""
    pods = await start_pods(count)
    for pod in pods:
        print(pod.base_url, flush=True)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await asyncio.gather(*(p.stop() for p in pods))


if __name__ == "__main__":
    asyncio.run(serve_many(int(sys.argv[1])))

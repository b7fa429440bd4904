"""Fake load pods for controller tests: the same fake served two ways.

`FakePod` holds a pod's behaviour: it checks the token and the epoch order, records every plan
it accepts (as `Plan` models) and counts "requests" as the integral of the rates it was given,
so merges have numbers to add. `FakePodApi` hands a controller those pods in memory (no
sockets: the choice for tests on a fake clock); `FakePod.start()` serves one over the real
control API on 127.0.0.1 (paths from `kar98k_loadpod.protocol`), for tests of the wire.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiohttp import web
from kar98k.controller import PodEndpoint
from kar98k_loadpod.client import PUSH_TIMEOUT, STATS_TIMEOUT, PodCallError, parse_stats
from kar98k_loadpod.histogram import LatencyHistogram
from kar98k_loadpod.plan import Plan
from kar98k_loadpod.protocol import DRAIN_PATH, PLAN_PATH, STATS_PATH, PlanAck
from kar98k_loadpod.stats import PodStats, TargetStats

TOKEN = "test-token"


@dataclass
class Received:
    at: float  # loop time
    plan: Plan


class Refused(Exception):
    """What the fake answers instead of accepting: an HTTP status and a message."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class FakePod:
    name: str
    token: str = TOKEN
    delay: float = 0.0  # answer plans this late
    fail_status: int | None = None  # answer plans with this status
    latency_s: float = 0.001  # every counted request took this long
    error_ratio: float = 0.0  # this share of the requests sent from now on fails (5xx)
    plans: list[Received] = field(default_factory=list)
    drained: bool = False
    stats_calls: int = 0
    started_at: float = field(default_factory=time.time)
    base_url: str = "http://fake.invalid"
    _epoch: int = -1
    _rate: float = 0.0
    _since: float | None = None
    _requests: float = 0.0
    _errors: float = 0.0
    _runner: web.AppRunner | None = None
    _hist: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def endpoint(self) -> PodEndpoint:
        return PodEndpoint(self.name, self.base_url, self.token)

    @property
    def last(self) -> Plan:
        """The last plan this pod accepted."""
        return self.plans[-1].plan

    # --- behaviour ---------------------------------------------------------------------------

    def _account(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._since is not None:
            sent = self._rate * (now - self._since)
            self._requests += sent
            self._errors += sent * self.error_ratio
        self._since = now

    async def accept(self, plan: Plan) -> PlanAck:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_status is not None:
            raise Refused(self.fail_status, "failing on purpose")
        if plan.epoch < self._epoch:
            raise Refused(409, "stale epoch")
        self._account()
        self._epoch, self._rate = plan.epoch, plan.rate
        self.plans.append(Received(asyncio.get_running_loop().time(), plan))
        return PlanAck(epoch=plan.epoch, rate=plan.rate, lease_seconds=plan.lease_seconds)

    def stats(self) -> PodStats:
        self._account()
        requests = int(self._requests)
        errors = min(requests, int(self._errors))
        for _ in range(requests - self._hist.count):
            self._hist.record_seconds(self.latency_s)
        encoded = self._hist.encode()
        outcomes = {"2xx": requests - errors, "5xx": errors}
        return PodStats(
            pod=self.name,
            epoch=self._epoch,
            rate=self._rate,
            started_at=self.started_at,
            requests=requests,
            errors=errors,
            targets={
                "t": TargetStats(
                    requests=requests,
                    errors=errors,
                    outcomes={k: n for k, n in outcomes.items() if n},
                    latency_raw=encoded,
                    latency_corrected=encoded,
                )
            },
        )

    def drain(self) -> PodStats:
        self._account()
        self._rate = 0.0
        self.drained = True
        return self.stats()

    # --- served over HTTP ----------------------------------------------------------------------

    async def start(self) -> FakePod:
        app = web.Application()
        app.router.add_put(PLAN_PATH, self._http_plan)
        app.router.add_get(STATS_PATH, self._http_stats)
        app.router.add_post(DRAIN_PATH, self._http_drain)
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

    async def _http_plan(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            ack = await self.accept(Plan.model_validate(json.loads(await request.read())))
        except Refused as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response(ack.to_wire())

    async def _http_stats(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        self.stats_calls += 1
        return web.json_response(self.stats().to_wire())

    async def _http_drain(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response(self.drain().to_wire())


class FakePodApi:
    """The controller's `PodApi` over in-memory FakePods: no sockets, so it runs exactly on a
    fake loop clock. Timeouts, refusals and wrong tokens fail as PodClient's calls do."""

    def __init__(self, pods: Iterable[FakePod]) -> None:
        self.pods = {p.name: p for p in pods}

    def _pod(self, endpoint: PodEndpoint, what: str) -> FakePod:
        pod = self.pods.get(endpoint.name)
        if pod is None:
            raise PodCallError(endpoint.name, what, "ClientConnectorError: connection refused")
        if endpoint.token != pod.token:
            raise PodCallError(endpoint.name, what, "HTTP 401: unauthorized", 401)
        return pod

    async def push_plan(
        self, pod: PodEndpoint, plan: Plan, within: float = PUSH_TIMEOUT
    ) -> PlanAck:
        fake = self._pod(pod, "push plan")
        # Through the wire format, as the real client sends it.
        sent = Plan.model_validate_json(plan.model_dump_json(by_alias=True, exclude_none=True))
        try:
            async with asyncio.timeout(within):
                return await fake.accept(sent)
        except TimeoutError:
            raise PodCallError(pod.name, "push plan", f"no answer within {within:g}s") from None
        except Refused as exc:
            raise PodCallError(
                pod.name, "push plan", f"HTTP {exc.status}: {exc}", exc.status
            ) from None

    async def stats(self, pod: PodEndpoint, within: float = STATS_TIMEOUT) -> PodStats:
        fake = self._pod(pod, "pull stats")
        fake.stats_calls += 1
        return parse_stats(fake.stats().to_wire())

    async def drain(self, pod: PodEndpoint, timeout_seconds: float) -> PodStats:
        return parse_stats(self._pod(pod, "drain").drain().to_wire())


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


def fake_pods(count: int, **kwargs: object) -> list[FakePod]:
    return [FakePod(f"pod-{i:02d}", **kwargs) for i in range(count)]  # type: ignore[arg-type]


async def start_pods(count: int, **kwargs: object) -> list[FakePod]:
    """`count` fake pods served over HTTP on 127.0.0.1."""
    return [await pod.start() for pod in fake_pods(count, **kwargs)]


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

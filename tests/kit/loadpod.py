"""Load pods for tests, driven through the load pod's own client (`kar98k_loadpod.client`).

One in-process pod (runtime + control API on 127.0.0.1, for white-box checks), one way to run
`kar98k-loadpod` as a process, and plan builders that make `Plan` models.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from kar98k_loadpod.api import make_app
from kar98k_loadpod.client import PodClient, PodEndpoint
from kar98k_loadpod.metrics import make_registry
from kar98k_loadpod.plan import Plan
from kar98k_loadpod.protocol import STATS_PATH, PlanAck
from kar98k_loadpod.runtime import PodRuntime
from kar98k_loadpod.stats import PodStats
from kar98k_loadpod.targets import Target

TOKEN = "t0ken-for-tests-only"


class Pod:
    """A load pod as tests see it: the client for the wire, raw `call` for hostile input."""

    def __init__(
        self,
        endpoint: PodEndpoint,
        client: PodClient,
        session: aiohttp.ClientSession,
        runtime: PodRuntime | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.client = client
        self.session = session
        self._runtime = runtime

    @property
    def base(self) -> str:
        return self.endpoint.base_url

    @property
    def runtime(self) -> PodRuntime:
        """The runtime behind an in-process pod (white-box checks)."""
        assert self._runtime is not None, "a pod process has no runtime in this process"
        return self._runtime

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = TOKEN,
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """A raw request (bad bodies, wrong methods, missing tokens): (status, JSON or text)."""
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.base + path, json=json, data=data, headers=hdrs
        ) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def put_plan(self, plan: Plan) -> PlanAck:
        return await self.client.push_plan(self.endpoint, plan, within=5.0)

    async def stats(self) -> PodStats:
        return await self.client.stats(self.endpoint, within=5.0)

    async def drain(self, timeout_s: float = 5.0) -> PodStats:
        return await self.client.drain(self.endpoint, timeout_s)

    async def raw_stats(self) -> dict[str, Any]:
        """The stats as the pod wrote them (to check wire names)."""
        status, body = await self.call("GET", STATS_PATH)
        assert status == 200, body
        return dict(body)


@contextlib.asynccontextmanager
async def client_for(base_url: str, name: str = "pod", token: str = TOKEN) -> AsyncIterator[Pod]:
    """A `Pod` handle on a pod served elsewhere (a process)."""
    async with PodClient() as client, aiohttp.ClientSession() as session:
        yield Pod(PodEndpoint(name, base_url, token), client, session)


@contextlib.asynccontextmanager
async def in_process_pod(name: str = "test-pod") -> AsyncIterator[Pod]:
    """A pod (runtime + control API) in this event loop, on a free 127.0.0.1 port."""
    runtime = PodRuntime(name)
    runtime.start()
    app = make_app(runtime, TOKEN, make_registry(runtime, process_metrics=False))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with PodClient() as client, aiohttp.ClientSession() as session:
            endpoint = PodEndpoint(name, f"http://127.0.0.1:{port}", TOKEN)
            yield Pod(endpoint, client, session, runtime)
    finally:
        await runner.cleanup()
        await runtime.close()


def plan(
    targets: list[Target],
    *,
    epoch: int = 1,
    rate: float = 100.0,
    arrival: str = "uniform",
    lease: float = 10.0,
    max_in_flight: int = 64,
    seed: int | None = 7,
    labels: dict[str, str] | None = None,
) -> Plan:
    return Plan(
        epoch=epoch,
        rate=rate,
        arrival=arrival,  # type: ignore[arg-type]  # validated into an Arrival
        lease_seconds=lease,
        max_in_flight=max_in_flight,
        seed=seed,
        targets=targets,
        labels=labels or {"loadtest": "lt-test"},
    )


def target(name: str, url: str, **extra: Any) -> Target:
    """A target from wire fields (camelCase); timeout 5 s unless given."""
    return Target.model_validate({"name": name, "url": url, "timeout": "5s", **extra})


def read_line(proc: subprocess.Popen[str], prefix: str, deadline_s: float = 15.0) -> str:
    """First stdout line starting with `prefix` (the process's 'ready' line)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before {prefix!r}")
            continue
        if line.startswith(prefix):
            return line.strip()
    raise TimeoutError(f"no {prefix!r} line within {deadline_s}s")


def loadpod_command() -> list[str]:
    """The installed console script, or the module if the script is not on disk."""
    script = Path(sys.executable).with_name("kar98k-loadpod")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "kar98k_loadpod.main"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAR98K_")}
    env.update(extra)
    return env


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@contextlib.contextmanager
def loadpod_process(*args: str, **env: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`kar98k-loadpod --listen 127.0.0.1:0 ARGS` with `env` (no inherited KAR98K_*):
    yields (process, base URL) once it listens; killed after unless it has exited."""
    proc = subprocess.Popen(
        [*loadpod_command(), "--listen", "127.0.0.1:0", *args],
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = read_line(proc, "listening on ").removeprefix("listening on ")
        yield proc, url
    finally:
        stop_process(proc)

"""Helpers for the load-pod runtime tests: the counting target's client, an in-process pod
client, plan builders, polling. Fixtures that use them live in conftest.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kar98k_loadpod.runtime import PodRuntime

HERE = Path(__file__).parent
TOKEN = "t0ken-for-tests-only"
BIN_S = 0.01  # counting_server.py bins arrivals in 10 ms wall-clock bins


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


class CountServer:
    """Client side of counting_server.py (a separate process with its own event loop)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    async def _call(self, method: str, path: str) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.base + path) as resp,
        ):
            resp.raise_for_status()
            if resp.content_type == "application/json":
                return await resp.json()
            return await resp.text()

    async def bins(self, path: str) -> dict[int, int]:
        data = await self._call("GET", f"/__counts?path={path}")
        return {int(k): int(v) for k, v in data["bins"].items()}

    async def count(self, path: str, start: float | None = None, end: float | None = None) -> int:
        """Arrivals on `path` in whole 10 ms bins covering wall-clock [start, end)."""
        lo = -1 if start is None else round(start / BIN_S)
        hi = 1 << 62 if end is None else round(end / BIN_S)
        return sum(v for b, v in (await self.bins(path)).items() if lo <= b < hi)

    async def stall(self, seconds: float) -> float:
        data = await self._call("POST", f"/__stall?seconds={seconds}")
        return float(data["at"])

    async def set_health(self, ok: bool) -> None:
        await self._call("POST", f"/__health?ok={1 if ok else 0}")


class Pod:
    """An in-process pod on 127.0.0.1 with a client session and the runtime for white-box checks."""

    def __init__(self, base: str, runtime: PodRuntime, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.runtime = runtime
        self.session = session

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
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.base + path, json=json, data=data, headers=hdrs
        ) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def put_plan(self, plan: dict[str, Any]) -> dict[str, Any]:
        status, body = await self.call("PUT", "/v1/plan", json=plan)
        assert status == 200, body
        return dict(body)

    async def stats(self) -> dict[str, Any]:
        status, body = await self.call("GET", "/v1/stats")
        assert status == 200, body
        return dict(body)

    async def drain(self, timeout_s: float = 5.0) -> dict[str, Any]:
        status, body = await self.call("POST", "/v1/drain", json={"timeoutSeconds": timeout_s})
        assert status == 200, body
        return dict(body)


def plan(
    targets: list[dict[str, Any]],
    *,
    epoch: int = 1,
    rate: float = 100.0,
    arrival: str = "uniform",
    lease: float = 10.0,
    max_in_flight: int = 64,
    seed: int | None = 7,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "epoch": epoch,
        "rate": rate,
        "arrival": arrival,
        "leaseSeconds": lease,
        "maxInFlight": max_in_flight,
        "targets": targets,
        "labels": labels or {"loadtest": "lt-test"},
    }
    if seed is not None:
        body["seed"] = seed
    return body


def target(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "timeout": "5s", **extra}


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0, interval_s: float = 0.02
) -> None:
    """Poll `check` until true; fail after `timeout_s` (no fixed sleeps in assertions)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


MAX_ATTEMPTS = 3
OVERLOADED_PER_CORE = 2.0  # 1-minute load average per core above which timing is not judged


async def passes_once(
    measure: Callable[[int], Awaitable[str | None]], attempts: int = MAX_ATTEMPTS
) -> None:
    """Run a timing measurement until one attempt passes (`measure` returns None), at most
    `attempts` times.

    The test box is shared (2 cores, other suites running at the same time): a process starved
    for a few hundred ms skews one window, but a real pacing fault fails every attempt.
    """
    failures: list[str] = []
    for attempt in range(attempts):
        problem = await measure(attempt)
        if problem is None:
            return
        load = os.getloadavg()[0]
        failures.append(f"attempt {attempt + 1}: {problem} (load average {load:.1f})")
        print(failures[-1])
    cores = os.cpu_count() or 1
    if os.getloadavg()[0] > OVERLOADED_PER_CORE * cores:
        # Each process then gets well under half a core: pacing accuracy cannot be judged.
        pytest.skip(f"machine overloaded, timing not judged: {'; '.join(failures)}")
    raise AssertionError("; ".join(failures))


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

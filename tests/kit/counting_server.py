"""The counting target: a loopback HTTP/1.1 server that counts arrivals in 10 ms wall-clock
bins, per path, and its client (`CountServer`, started by `counting_server()`).

The server runs as its own process (`python counting_server.py`) so it has its own core and
the load pod's pacing is measured where it matters: at the server. Prints `PORT <n>` when ready.

Control endpoints (not counted):
  GET  /__counts?path=/x      {"bins": {"<unix time in 10 ms units>": count, ...}}
  POST /__stall?seconds=0.5   every request arriving in the next 0.5 s is held until it ends
  POST /__health?ok=0|1       /health answers 503 or 200
  POST /__reset               forget all counts
Any other path answers 200 "ok" (after a stall, if one is active); /hang never answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

BIN_S = 0.01


class State:
    def __init__(self) -> None:
        self.counts: defaultdict[str, defaultdict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.stall_until = 0.0
        self.healthy = True


async def handle(request: web.BaseRequest, state: State) -> web.StreamResponse:
    path = request.path
    if path.startswith("/__"):
        return await control(request, state)
    state.counts[path][int(time.time() / BIN_S)] += 1
    if request.can_read_body:
        await request.read()
    now = time.monotonic()
    if now < state.stall_until:
        await asyncio.sleep(state.stall_until - now)
    if path == "/hang":
        await asyncio.sleep(3600)
    if path == "/health":
        return web.Response(status=200 if state.healthy else 503, text="health")
    return web.Response(text="ok")


async def control(request: web.BaseRequest, state: State) -> web.StreamResponse:
    query = request.query
    if request.path == "/__counts":
        bins: dict[int, int] = state.counts.get(query.get("path", "/"), {})
        return web.Response(text=json.dumps({"bins": bins}), content_type="application/json")
    if request.path == "/__stall":
        state.stall_until = time.monotonic() + float(query.get("seconds", "0.5"))
        return web.Response(text=json.dumps({"at": time.time()}), content_type="application/json")
    if request.path == "/__health":
        state.healthy = query.get("ok", "1") == "1"
        return web.Response(text="ok")
    if request.path == "/__reset":
        state.counts.clear()
        return web.Response(text="ok")
    return web.Response(status=404, text="unknown control path")


async def serve(host: str, port: int) -> None:
    state = State()

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return await handle(request, state)

    server = web.Server(handler, access_log=None)
    runner = web.ServerRunner(server, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"PORT {bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(serve(args.host, args.port))
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass
    sys.exit(0)


class CountServer:
    """Client side of the counting server (a separate process with its own event loop)."""

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


@contextlib.contextmanager
def counting_server() -> Iterator[CountServer]:
    """Start the counting server process on a free 127.0.0.1 port; stop it afterwards."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__)), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"counting server did not start: {line!r}")
        yield CountServer(int(line.split()[1]))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    main()

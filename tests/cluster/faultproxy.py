"""Faults a real API server will not make on demand, from a small proxy in front of it.

The pods of a cluster started with `running_cluster(..., fault_proxy=True)` reach the API server
through this proxy (their in-cluster KUBERNETES_SERVICE_HOST/PORT point at it); tests talk to the
real server directly. The proxy serves TLS with the API server's own certificate and forwards
every request, streaming watches, unless a fault rule matches: then it answers like the API
server would (a `Status` object with 409 Conflict, 500 or 503, say), for a while. It can also cut
every open watch stream at once, as a restarting API server or a load balancer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

REASONS = {409: "Conflict", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class FaultRule:
    method: str
    path: re.Pattern[str]
    status: int
    until: float  # time.monotonic()


class FaultProxy:
    """See the module docstring. Runs its own event loop in a thread; methods are thread-safe."""

    def __init__(self, upstream: str, ca_file: Path, cert_file: Path, key_file: Path) -> None:
        self.upstream = upstream.rstrip("/")
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self.port = 0
        self.injected: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="faults")
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._watches: set[web.StreamResponse] = set()

    # ------------------------------------------------------------------ control (any thread)

    def inject(self, method: str, path_pattern: str, status: int, seconds: float) -> None:
        """Answer `method` requests whose path matches with `status` for `seconds`."""
        rule = FaultRule(
            method.upper(), re.compile(path_pattern), status, time.monotonic() + seconds
        )
        with self._lock:
            self._rules.append(rule)

    def cut_watches(self) -> int:
        """Close every open watch stream now; returns how many were cut."""
        future = asyncio.run_coroutine_threadsafe(self._cut(), self._loop)
        return future.result(10)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(15)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        client_tls = ssl.create_default_context(cafile=str(self.ca_file))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=client_tls, limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
        )
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(str(self.cert_file), str(self.key_file))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_tls)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        await self._cut()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _cut(self) -> int:
        cut = 0
        for stream in list(self._watches):
            with contextlib.suppress(Exception):
                transport = stream._req.transport if stream._req else None
                if transport is not None:
                    transport.close()
                    cut += 1
        self._watches.clear()
        return cut

    # ------------------------------------------------------------------ the proxy

    def _fault_for(self, method: str, path: str) -> int | None:
        now = time.monotonic()
        with self._lock:
            self._rules = [r for r in self._rules if r.until > now]
            for rule in self._rules:
                if rule.method == method and rule.path.search(path):
                    return rule.status
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        status = self._fault_for(request.method, request.path)
        key = f"{request.method} {request.path}"
        if status is not None:
            self.injected[key] += 1
            reason = REASONS.get(status, "InternalError")
            return web.json_response(
                {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                 "message": f"injected by the test fault proxy: {reason}", "reason": reason,
                 "code": status},
                status=status,
            )  # fmt: skip
        self.forwarded[key] += 1
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            out = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    out.headers[name] = value
            watching = request.query.get("watch") in ("true", "1")
            if watching:
                self._watches.add(out)
            try:
                await out.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await out.write(chunk)
                await out.write_eof()
            except (ConnectionResetError, aiohttp.ClientError, asyncio.CancelledError):
                pass
            finally:
                self._watches.discard(out)
            return out

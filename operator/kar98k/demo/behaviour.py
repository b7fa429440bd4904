"""Endpoint behaviour shared by the HTTP/1.1 and HTTP/2 demo servers (one source of truth)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .counters import RequestCounter

FLAKY_RATE = 0.03
SLOW_RANGE = (0.05, 0.15)
INDEX = b"""kar98k demo target
GET|POST /fast          tiny 200
GET|POST /slow          200 after 50-150 ms
GET|POST /flaky         500 for ~3 % of requests (seeded), else 200
GET|POST /status/{code} that status (200-599)
GET      /healthz       200, or 503 after POST /control/healthy?value=false
POST     /control/stall?ms=N  hold every response for the next N ms
GET      /stats         request counters as JSON
"""


def require_loopback(host: str) -> None:
    """The demo servers are test targets: they never listen beyond loopback."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"demo servers bind loopback addresses only, not {host!r}")


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "text/plain"


_OK = Reply(200, b"ok")
_NOT_FOUND = Reply(404, b"not found")


class DemoBehaviour:
    """Decides each response; keeps the counters, the health flag and the stall window."""

    def __init__(self, *, seed: int = 0, flaky_rate: float = FLAKY_RATE) -> None:
        self.counter = RequestCounter()
        self.healthy = True
        self.flaky_rate = flaky_rate
        self._last_headers: Mapping[str, str] = {}
        self._rng = random.Random(seed)
        self._stall_until = 0.0

    @property
    def last_headers(self) -> dict[str, str]:
        """Headers of the latest counted request, lower-case names."""
        return {k.lower(): v for k, v in self._last_headers.items()}

    def stall(self, seconds: float) -> None:
        """Hold every response (in flight or arriving) until `seconds` from now, once."""
        self._stall_until = max(self._stall_until, time.monotonic() + seconds)

    async def respond(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        protocol: str,
    ) -> Reply:
        if path.startswith("/control/"):
            return self._control(method, path, query)
        if path == "/stats":
            return Reply(200, json.dumps(self.counter.snapshot()).encode(), "application/json")
        self.counter.hit(path, protocol)
        self._last_headers = headers  # by reference: copied only when someone asks
        reply = await self._route(path)
        delay = self._stall_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return reply

    async def _route(self, path: str) -> Reply:
        if path == "/fast":
            return _OK
        if path == "/slow":
            await asyncio.sleep(self._rng.uniform(*SLOW_RANGE))
            return _OK
        if path == "/flaky":
            return Reply(500, b"flaky") if self._rng.random() < self.flaky_rate else _OK
        if path == "/healthz":
            return _OK if self.healthy else Reply(503, b"unhealthy")
        if path.startswith("/status/"):
            try:
                code = int(path[len("/status/") :])
            except ValueError:
                return Reply(400, b"status must be a number")
            if 200 <= code <= 599:
                return Reply(code, b"")
            return Reply(400, b"status must be 200-599")
        if path == "/":
            return Reply(200, INDEX)
        return _NOT_FOUND

    def _control(self, method: str, path: str, query: Mapping[str, str]) -> Reply:
        if method != "POST":
            return Reply(405, b"use POST")
        if path == "/control/healthy":
            self.healthy = query.get("value", "true").lower() not in ("false", "0", "no")
            return _OK
        if path == "/control/stall":
            try:
                self.stall(float(query.get("ms", "500")) / 1000.0)
            except ValueError:
                return Reply(400, b"ms must be a number")
            return _OK
        if path == "/control/reset":
            self.counter.reset()
            return _OK
        return _NOT_FOUND

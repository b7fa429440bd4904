"""What every demo server shares: start/stop as an async context manager, and (for the two
HTTP servers) the DemoBehaviour-backed counters, URL, health switch and stall."""

from __future__ import annotations

import asyncio
import ssl
import sys
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

from .behaviour import DemoBehaviour, require_loopback
from .counters import RequestCounter


class Lifecycle(ABC):
    """`async with server:` starts it and stops it again, whatever happens inside."""

    @abstractmethod
    async def start(self) -> object:
        """Start serving (the servers return their bound port)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop serving; a no-op when not started."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class BehaviourServer(Lifecycle):
    """A loopback HTTP server whose endpoints are answered by one DemoBehaviour."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        seed: int,
        flaky_rate: float,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        require_loopback(host)
        self.host = host
        self.port = port
        self.behaviour = DemoBehaviour(seed=seed, flaky_rate=flaky_rate)
        self._ssl = ssl_context

    @property
    def counter(self) -> RequestCounter:
        return self.behaviour.counter

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def last_headers(self) -> dict[str, str]:
        return self.behaviour.last_headers

    def set_healthy(self, healthy: bool) -> None:
        """Make /healthz answer 200 (True) or 503 (False)."""
        self.behaviour.healthy = healthy

    def stall(self, seconds: float) -> None:
        """Hold every response for the next `seconds` (a server pause, once)."""
        self.behaviour.stall(seconds)

    @abstractmethod
    async def start(self) -> int:
        """Start listening; returns the bound port."""


async def until_stdin_closes(stop: asyncio.Event) -> None:
    """Wait until stdin reaches EOF (the parent closed it or died) or `stop` is set: how a
    server started as a child process lives exactly as long as its parent."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    eof = asyncio.ensure_future(reader.read())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({eof, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        eof.cancel()
        stopped.cancel()
        transport.close()

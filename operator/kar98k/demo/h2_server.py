"""HTTP/2 demo target: hypercorn serving an ASGI app with the shared demo endpoints.

Cleartext it speaks h2c with prior knowledge (and HTTP/1.1); with an SSL context it offers
ALPN h2 and http/1.1. `counter.by_protocol` records each request's negotiated version
("2", "1.1") so tests can prove HTTP/2 was really used.

    async with DemoH2Server() as server:                 # h2c on 127.0.0.1
    async with DemoH2Server(ssl_context=ctx) as server:  # h2 over TLS
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import sys
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app

from .behaviour import FLAKY_RATE
from .lifecycle import BehaviourServer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger(__name__)
# Seconds granted to in-flight requests when stopping.
_GRACE = 1.0


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _TrackingSocket(socket.socket):
    """Listening socket that remembers accepted connections, so stop() can cut them.

    Without this a TLS client that keeps an idle connection open (and does not read)
    holds asyncio's SSL shutdown, and so the server's stop, for 30 s. (Works with the
    standard event loop, which accepts through this object; uvloop accepts natively.)
    """

    def __init__(self, family: int) -> None:
        super().__init__(family, socket.SOCK_STREAM)
        self.accepted: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def accept(self) -> tuple[socket.socket, Any]:
        conn, address = super().accept()
        self.accepted.add(conn)
        return conn, address

    def cut_connections(self) -> None:
        for conn in list(self.accepted):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Config(Config):
    """Hypercorn config taking a ready SSLContext (hypercorn wants cert files otherwise)."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        super().__init__()
        self._context = context

    @property
    def ssl_enabled(self) -> bool:
        return self._context is not None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        if self._context is not None:
            self._context.set_alpn_protocols(self.alpn_protocols)
        return self._context


class DemoH2Server(BehaviourServer):
    """h2 (TLS/ALPN) or h2c (prior knowledge) server with the demo endpoints and counters."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 0,
        flaky_rate: float = FLAKY_RATE,
        ssl_context: ssl.SSLContext | None = None,
        max_requests_per_connection: int = 0,
    ) -> None:
        """`max_requests_per_connection`: retire a connection (GOAWAY) after so many; 0 never.

        hypercorn's own default (1000) drops the streams in flight when it retires one.
        """
        super().__init__(host, port, seed=seed, flaky_rate=flaky_rate, ssl_context=ssl_context)
        self._max_requests = max_requests_per_connection
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sock: _TrackingSocket | None = None

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI application."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        more = True
        while more:  # read and discard the request body
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            more = bool(message.get("more_body", False))
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        # Watch for the client giving up (reset stream, closed connection): hypercorn's h2
        # send then waits forever for a drain that never comes, so don't answer at all.
        gone = asyncio.get_running_loop().create_task(_disconnected(receive))
        try:
            reply = await self.behaviour.respond(
                scope["method"], scope["path"], query, headers, str(scope.get("http_version", ""))
            )
            if gone.done():
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": reply.status,
                    "headers": [
                        (b"content-type", reply.content_type.encode()),
                        (b"content-length", str(len(reply.body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": reply.body})
        finally:
            gone.cancel()

    async def start(self) -> int:
        """Bind, start serving in a task and return the bound port."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = _TrackingSocket(family)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)  # connections queue from now, before hypercorn accepts
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        config = _Config(self._ssl)
        config.accesslog = None
        config.errorlog = log
        config.graceful_timeout = _GRACE
        config.keep_alive_max_requests = self._max_requests or sys.maxsize
        sockets = Sockets(
            secure_sockets=[sock] if self._ssl else [],
            insecure_sockets=[] if self._ssl else [sock],
            quic_sockets=[],
        )
        self._sock = sock
        self._stop.clear()
        app = wrap_app(self.app, config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
        self._task = asyncio.get_running_loop().create_task(
            worker_serve(app, config, sockets=sockets, shutdown_trigger=self._stop.wait)
        )
        return self.port

    async def stop(self) -> None:
        """Graceful for in-flight requests, then idle connections are cut."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        done, _ = await asyncio.wait({task}, timeout=_GRACE / 2)
        if not done and self._sock is not None:
            self._sock.cut_connections()
        try:
            await asyncio.wait_for(task, 2 * _GRACE + 1.0)
        except TimeoutError:
            log.warning("h2 demo server did not stop in time")
        self._sock = None

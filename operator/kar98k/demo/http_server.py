"""HTTP/1.1 demo target: an aiohttp server with the shared demo endpoints and counters.

Usage::

    async with DemoHttpServer() as server:        # 127.0.0.1, ephemeral port
        url = server.url + "/fast"
        ...
        server.counter.count("/fast"); server.counter.per_second("/fast")
        server.set_healthy(False); server.stall(0.5)
"""

from __future__ import annotations

import ssl

from aiohttp import web

from .behaviour import FLAKY_RATE
from .lifecycle import BehaviourServer


class DemoHttpServer(BehaviourServer):
    """Serves /fast, /slow, /flaky, /status/{code}, /healthz, /stats and /control/*."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 0,
        flaky_rate: float = FLAKY_RATE,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(host, port, seed=seed, flaky_rate=flaky_rate, ssl_context=ssl_context)
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        reply = await self.behaviour.respond(
            request.method, request.path, request.query, request.headers, "1.1"
        )
        return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)

    async def start(self) -> int:
        """Start listening; returns the bound port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self._ssl, reuse_address=True)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

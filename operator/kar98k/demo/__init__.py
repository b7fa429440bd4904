"""Built-in demo target servers (HTTP/1.1, h2/h2c, gRPC; a capacity server of known capacity)
for `kar98k demo`, tests and benches.

They are real servers on loopback only. Each has `start() -> port`, `stop()`, an async
context manager, a `counter` (RequestCounter: totals, per key, per second) and a health
switch (`set_healthy` for HTTP, `await set_serving` for gRPC).
"""

from __future__ import annotations

from .capacity import CapacityServer
from .counters import RequestCounter
from .grpc_server import DemoGrpcServer
from .h2_server import DemoH2Server
from .http_server import DemoHttpServer
from .lifecycle import Lifecycle
from .proto import SAY_METHOD

__all__ = [
    "SAY_METHOD",
    "CapacityServer",
    "DemoGrpcServer",
    "DemoH2Server",
    "DemoHttpServer",
    "DemoServers",
    "RequestCounter",
]


class DemoServers(Lifecycle):
    """All three demo servers on one host: HTTP/1.1, cleartext h2c and gRPC (0 = any port)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        http_port: int = 0,
        h2c_port: int = 0,
        grpc_port: int = 0,
        seed: int = 0,
    ) -> None:
        self.http = DemoHttpServer(host, http_port, seed=seed)
        self.h2c = DemoH2Server(host, h2c_port, seed=seed)
        self.grpc = DemoGrpcServer(host, grpc_port)

    async def start(self) -> None:
        await self.http.start()
        try:
            await self.h2c.start()
            await self.grpc.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await self.grpc.stop()
        await self.h2c.stop()
        await self.http.stop()

"""gRPC demo target: grpc.aio server with health, reflection and kar98k.demo.Echo/Say.

    async with DemoGrpcServer() as server:              # grpc://127.0.0.1:<port>
        await server.set_serving(False)                 # health: NOT_SERVING
        server.counter.count("/kar98k.demo.Echo/Say")

Say({text, delayMs, failCode}) answers {text} after delayMs, or fails with status failCode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from . import proto
from .behaviour import require_loopback
from .counters import RequestCounter
from .lifecycle import Lifecycle

_CODES: dict[int, Any] = {code.value[0]: code for code in grpc.StatusCode}
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class _Counting(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts every call by full method name and keeps the latest metadata."""

    def __init__(self, server: DemoGrpcServer) -> None:
        self._server = server

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        self._server.counter.hit(details.method, "2")
        self._server.last_metadata = dict(details.invocation_metadata or ())
        return await continuation(details)


class DemoGrpcServer(Lifecycle):
    """Health (settable), reflection and Echo/Say on a loopback port, cleartext or TLS."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: tuple[bytes, bytes] | None = None,
    ) -> None:
        """`tls` is (private key PEM, certificate chain PEM); None serves cleartext."""
        require_loopback(host)
        self.host = host
        self.port = port
        self.counter = RequestCounter()
        self.last_metadata: dict[str, Any] = {}
        self._tls = tls
        self._server: Any = None
        self._health = health_aio.HealthServicer()

    @property
    def target_url(self) -> str:
        return f"{'grpcs' if self._tls else 'grpc'}://{self.host}:{self.port}"

    async def set_serving(self, serving: bool, service: str = "") -> None:
        """Health status of `service` ('' = the whole server)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._health.set(service, status)

    async def _say(self, request: Any, context: Any) -> Any:
        if request.delay_ms > 0:
            await asyncio.sleep(request.delay_ms / 1000.0)
        if request.fail_code:
            code = _CODES.get(request.fail_code, grpc.StatusCode.UNKNOWN)
            await context.abort(code, f"failure requested: {code.name}")
        return proto.SayReply(text=request.text)

    async def start(self) -> int:
        """Start serving; returns the bound port."""
        server = grpc.aio.server(interceptors=[_Counting(self)])
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        handler = grpc.method_handlers_generic_handler(
            proto.SERVICE,
            {
                "Say": grpc.unary_unary_rpc_method_handler(
                    self._say,
                    request_deserializer=proto.SayRequest.FromString,
                    response_serializer=proto.SayReply.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
        reflection.enable_server_reflection(
            (proto.SERVICE, HEALTH_SERVICE, reflection.SERVICE_NAME), server, pool=proto.POOL
        )
        await self._health.set(proto.SERVICE, health_pb2.HealthCheckResponse.SERVING)
        address = f"{self.host}:{self.port}"
        if self._tls is None:
            self.port = server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials([self._tls])
            self.port = server.add_secure_port(address, credentials)
        if not self.port:
            raise OSError(f"cannot bind gRPC demo server to {address}")
        await server.start()
        self._server = server
        return self.port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace=0.5)

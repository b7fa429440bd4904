"""Fallback gRPC target when the Go server cannot be built: grpc.aio health + reflection.

Much slower than the Go server (a Python grpc.aio server saturates near 2k/s on one core),
so ceilings measured against it are the server's, not the load pod's; run_all.py says so.
Same command line and ready line as bench/grpc_server: `listening ADDR stats ADDR`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection


class Count(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.calls = 0

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        self.calls += 1
        return await continuation(details)


async def main(listen: str, stats: str) -> None:
    for address in (listen, stats):
        if not address.startswith("127."):
            raise SystemExit(f"refusing non-loopback address {address}")
    counter = Count()
    server = grpc.aio.server(interceptors=[counter])
    servicer = health.aio.HealthServicer()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    reflection.enable_server_reflection(
        [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    port = server.add_insecure_port(listen)
    await server.start()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = f"{counter.calls}\n".encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        await writer.drain()
        writer.close()

    host, _, stats_port = stats.rpartition(":")
    stats_server = await asyncio.start_server(answer, host, int(stats_port))
    bound = stats_server.sockets[0].getsockname()
    print(f"listening {listen.rpartition(':')[0]}:{port} stats {bound[0]}:{bound[1]}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--stats", default="127.0.0.1:0")
    args = parser.parse_args()
    asyncio.run(main(args.listen, args.stats))

"""Reference gRPC client: grpc.aio, closed loop, `concurrency` health checks in flight.

Run as a subprocess pinned to the generator core; prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


async def run(address: str, concurrency: int, seconds: float) -> dict[str, float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest()
        ok = 0
        failed = 0
        stop_at = 0.0

        async def worker() -> None:
            nonlocal ok, failed
            while time.monotonic() < stop_at:
                try:
                    await stub.Check(request, timeout=10)
                    ok += 1
                except grpc.aio.AioRpcError:
                    failed += 1

        stop_at = time.monotonic() + 0.5  # warm-up
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        ok = failed = 0
        start = time.monotonic()
        stop_at = start + seconds
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - start
    return {"rate": (ok + failed) / elapsed, "ok": ok / max(1, ok + failed)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.address, args.concurrency, args.seconds))))

"""`python -m kar98k.demo.serve_capacity`: the capacity server as a process of its own.

It prints `{"port": N, "capacity": C}` once listening, serves until stdin closes (its parent
ended) or SIGINT/SIGTERM, then prints `{"served": N, "rejected": M}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence

from kar98k_loadpod.durations import parse_duration

from .capacity import CapacityServer
from .lifecycle import until_stdin_closes


async def serve(args: argparse.Namespace) -> int:
    server = CapacityServer(
        args.host,
        args.port,
        workers=args.workers,
        service_time=args.service_time,
        max_queue=args.max_queue,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        port = await server.start()
    except OSError as exc:
        print(f"capacity server: cannot listen: {exc}", file=sys.stderr)
        return 2
    try:
        print(json.dumps({"port": port, "capacity": server.capacity}), flush=True)
        await until_stdin_closes(stop)
    finally:
        await server.stop()
    print(json.dumps({"served": server.served, "rejected": server.rejected}), flush=True)
    return 0


def _service_time(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kar98k.demo.serve_capacity",
        description="A loopback server whose capacity is workers / service time; serves until "
        "stdin closes or SIGINT/SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="port (0: any)")
    parser.add_argument("--workers", type=int, required=True, help="requests served at once")
    parser.add_argument(
        "--service-time", type=_service_time, required=True, help="per request, e.g. 20ms"
    )
    parser.add_argument(
        "--max-queue", type=int, default=None, help="requests waiting before 503 (default: 1 s)"
    )
    args = parser.parse_args(argv)
    try:
        return asyncio.run(serve(args))
    except ValueError as exc:
        print(f"capacity server: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

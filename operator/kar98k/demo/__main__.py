"""`python -m kar98k.demo`: run the demo servers in the foreground (e.g. pinned to a core)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from . import DemoServers


async def _serve(args: argparse.Namespace) -> None:
    async with DemoServers(
        args.host, http_port=args.http, h2c_port=args.h2c, grpc_port=args.grpc, seed=args.seed
    ) as servers:
        print(f"http/1.1 {servers.http.url}", flush=True)
        print(f"h2c      {servers.h2c.url}", flush=True)
        print(f"grpc     {servers.grpc.target_url}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kar98k.demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--http", type=int, default=0, help="HTTP/1.1 port (0: any)")
    parser.add_argument("--h2c", type=int, default=0, help="h2c port (0: any)")
    parser.add_argument("--grpc", type=int, default=0, help="gRPC port (0: any)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()

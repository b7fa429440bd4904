"""Closed-loop throughput of one HTTP/1.1 executor class (no pacer): `concurrency` sends in flight.

Run as a subprocess by run_all.py, pinned to the generator core; prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import uvloop
from kar98k_loadpod.executors import Executor
from kar98k_loadpod.executors.http1 import Http1Executor
from kar98k_loadpod.executors.http1_fast import FastHttp1Executor
from kar98k_loadpod.targets import Target


async def closed_loop(executor: Executor, concurrency: int, seconds: float) -> dict[str, float]:
    """`concurrency` workers sending back to back for `seconds` after a 0.5 s warm-up (the
    connections open first); closes the executor. Rate and the share of 2xx answers."""
    counts: dict[str, int] = {}
    stop_at = 0.0

    async def worker() -> None:
        send = executor.send
        while time.monotonic() < stop_at:
            outcome = await send()
            counts[outcome] = counts.get(outcome, 0) + 1

    # Warm up: open the connections first, then measure.
    stop_at = time.monotonic() + 0.5
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    counts.clear()
    start = time.monotonic()
    stop_at = start + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - start
    await executor.close()
    total = sum(counts.values())
    return {"rate": total / elapsed, "ok": counts.get("2xx", 0) / max(1, total)}


async def _run(kind: str, url: str, concurrency: int, seconds: float) -> dict[str, float]:
    target = Target.model_validate({"name": "bench", "url": url})
    executor: Executor
    if kind == "fast":
        executor = FastHttp1Executor(target, concurrency)
    else:
        executor = Http1Executor(target, concurrency)
    return await closed_loop(executor, concurrency, seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("fast", "aiohttp"), required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    result = uvloop.run(_run(args.kind, args.url, args.concurrency, args.seconds))
    print(json.dumps(result))

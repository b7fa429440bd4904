"""What a maximum plan costs a load pod: memory, and sends held back while it is applied.

    .venv/bin/python bench/max_plan.py [--rate 2000] [--rounds 5]

Starts `kar98k-loadpod` (the real process: uvloop, frozen start-up heap) and bench/countsrv.py
on 127.0.0.1, paces `--rate`/s at one target, then PUTs ~1 MiB plans of 256 new targets (only
the first chosen) and compares late and dropped sends with a window of small plan pushes.
Then every target of a max plan gets traffic (all histograms allocated) and plans with new
names churn: resident memory is read from /proc after each step. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from kar98k_loadpod.protocol import PLAN_PATH, STATS_PATH

HERE = Path(__file__).parent
MAX_TARGETS = 256


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def plan(targets: list[dict[str, Any]], epoch: int, rate: float) -> str:
    body = {"epoch": epoch, "rate": rate, "arrival": "uniform", "leaseSeconds": 10,
            "maxInFlight": 256, "targets": targets, "labels": {"loadtest": "bench"}}  # fmt: skip
    return json.dumps(body)


def max_targets(url: str, prefix: str, *, all_busy: bool) -> list[dict[str, Any]]:
    return [
        {
            "name": f"{prefix}{i}",
            "url": url if all_busy or i == 0 else f"http://127.0.0.{2 + i % 200}:9/x{i}",
            "weight": 1 if all_busy or i == 0 else 0,
            "method": "POST",
            "body": "p" * 3550,
            "headers": {"X-Pad": "h" * 300},
            "timeout": "5s",
        }
        for i in range(MAX_TARGETS)
    ]


def start(cmd: list[str], env: dict[str, str], prefix: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return proc, line.strip().removeprefix(prefix).strip()
    raise RuntimeError(f"{cmd[0]} did not start")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    token = secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAR98K_")}
    server, address = start([sys.executable, str(HERE / "countsrv.py"), "--port", "0"], env,
                            "listening")  # fmt: skip
    pod, base = start(
        [str(Path(sys.executable).with_name("kar98k-loadpod")), "--listen", "127.0.0.1:0",
         "--log-level", "warning"],
        {**env, "KAR98K_TOKEN": token}, "listening on",
    )  # fmt: skip
    url = f"http://{address}/bench"
    out: dict[str, Any] = {"rate": args.rate, "rss_mb_idle": round(rss_mb(pod.pid), 1)}
    try:
        async with aiohttp.ClientSession(
            base_url=base, headers={"Authorization": f"Bearer {token}"}
        ) as session:

            async def put(data: str) -> None:
                async with session.put(PLAN_PATH, data=data) as resp:
                    assert resp.status == 200, await resp.text()

            async def window(bodies: list[str]) -> dict[str, float]:
                async with session.get(STATS_PATH) as resp:
                    before = await resp.json()
                started = time.perf_counter()
                for data in bodies:
                    await put(data)
                took = time.perf_counter() - started
                await asyncio.sleep(0.5)
                async with session.get(STATS_PATH) as resp:
                    after = await resp.json()
                return {
                    "put_ms": round(took * 1000, 1),
                    "late": after["lateSends"] - before["lateSends"],
                    "dropped": after["dropped"] - before["dropped"],
                    "sent": after["requests"] - before["requests"],
                }

            epoch = 1
            small = plan([{"name": "warm", "url": url}], epoch, args.rate)
            await put(small)
            await asyncio.sleep(1.0)
            rounds = []
            for r in range(args.rounds):
                base_window = await window([small] * 3)
                bodies = [plan(max_targets(url, f"r{r}x{k}-", all_busy=False), epoch + 1 + k,
                               args.rate) for k in range(2)]  # fmt: skip
                bodies.append(bodies[-1].replace(f'"epoch": {epoch + 2}', f'"epoch": {epoch + 3}'))
                epoch += 4
                max_window = await window(bodies)
                small = plan([{"name": "warm", "url": url}], epoch, args.rate)
                await put(small)
                rounds.append({"small_pushes": base_window, "max_plans": max_window})
            out["plan_bytes"] = len(bodies[0])
            out["rounds"] = rounds

            busy = plan(max_targets(url, "busy-", all_busy=True), epoch + 1, args.rate)
            await put(busy)
            await asyncio.sleep(3.0)
            out["rss_mb_256_busy_targets"] = round(rss_mb(pod.pid), 1)
            epoch += 2
            for r in range(10):
                await put(plan(max_targets(url, f"churn{r}-", all_busy=True), epoch + r, args.rate))
                await asyncio.sleep(0.5)
            async with session.get(STATS_PATH) as resp:
                stats = await resp.json()
            out["rss_mb_after_10_churned_max_plans"] = round(rss_mb(pod.pid), 1)
            out["target_entries_kept"] = len(stats["targets"])
    finally:
        for proc in (pod, server):
            proc.kill()
            proc.wait()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--rounds", type=int, default=5)
    print(json.dumps(asyncio.run(measure(parser.parse_args())), indent=1))


if __name__ == "__main__":
    main()

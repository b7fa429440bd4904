"""Controller scale: one Controller driving 20, 50 and 100 real load-pod processes.

    .venv/bin/python bench/scale.py                      # 20, 50, 100 pods, 20 s each
    .venv/bin/python bench/scale.py --pods 100 --seconds 10 --out /tmp/scale.json

Why this exists: the controller pushes every serving pod a plan every tick (10 Hz) and pulls
every pod's stats every stats interval, so its work grows with the fleet. This measures what
that costs at fleet sizes the operator is meant for, with the operator's own `Controller`
class (the local runner's processes stand in for Kubernetes pods): tick lag, the controller
process's CPU, plan pushes and stats pulls per second, and the share of the asked requests that
reached the server.

Set-up: all pods are started once (concurrently, one deadline), pinned to the generator core;
the controller and the counting server (`countsrv.py`) sit on the server core. Each fleet size
is one run of a fresh Controller over the first N pods, at `--rate-per-pod` each, uniform
arrivals, the operator's stats interval (2 s). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop
from harness import Cores, log, pin_self, print_section
from kar98k.controller import Controller
from kar98k.controller.plan import PushPolicy
from kar98k.controller.pods import PodEndpoint
from kar98k.local.processes import LocalPods
from kar98k.spec import parse_spec
from kar98k_loadpod.client import PUSH_TIMEOUT, STATS_TIMEOUT, PodClient
from kar98k_loadpod.plan import Plan
from kar98k_loadpod.protocol import PlanAck
from kar98k_loadpod.stats import PodStats
from pod_footprint import memory_kib
from servers import CountServer

SIZES = (20, 50, 100)
STATS_INTERVAL = 2.0  # the operator's (Controller's default); the local runner uses 1 s
POLICIES = {"default": PushPolicy(), "every-tick": PushPolicy.every_tick()}
START_TIMEOUT = 240.0  # 100 Python processes starting on two shared cores


class CountingClient:
    """The real PodClient, counting the calls the controller makes (a PodApi)."""

    def __init__(self, client: PodClient) -> None:
        self.client = client
        self.pushes = 0
        self.pulls = 0

    async def push_plan(
        self, pod: PodEndpoint, plan: Plan, within: float = PUSH_TIMEOUT
    ) -> PlanAck:
        self.pushes += 1
        return await self.client.push_plan(pod, plan, within=within)

    async def stats(self, pod: PodEndpoint, within: float = STATS_TIMEOUT) -> PodStats:
        self.pulls += 1
        return await self.client.stats(pod, within=within)

    async def drain(self, pod: PodEndpoint, timeout_seconds: float) -> PodStats:
        return await self.client.drain(pod, timeout_seconds)


@dataclass(frozen=True)
class Subset:
    """PodSource: the first `count` ready pods of the fleet."""

    pods: LocalPods
    count: int

    def endpoints(self) -> list[PodEndpoint]:
        return self.pods.endpoints()[: self.count]


def pin_all_threads(cpu: int | None, pid: int | str = "self") -> None:
    """Pin every thread of a process (affinity is per thread on Linux)."""
    if cpu is None:
        return
    with contextlib.suppress(OSError):  # a process or thread that just ended
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), {cpu})


def run_queue_wait() -> float:
    """Seconds this thread (the event loop's) was runnable but not running (schedstat): the
    part of the tick lag that other processes on the core cause, not the controller."""
    try:
        with open("/proc/thread-self/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Setting:
    """What every controller run of one bench invocation shares."""

    rate_per_pod: float
    seconds: float
    stats_interval: float = STATS_INTERVAL


async def one_size(
    pods: LocalPods, server: CountServer, count: int, setting: Setting, policy: str
) -> dict[str, Any]:
    """One Controller run over the first `count` pods; the figures of that run."""
    rate_per_pod, seconds = setting.rate_per_pod, setting.seconds
    spec = parse_spec(
        {
            "targets": [{"name": "count", "url": server.url}],
            "pattern": {"baseTPS": rate_per_pod * count},
            "duration": f"{seconds}s",
            "loadPods": {"arrival": "uniform", "maxInFlight": 64},
        }
    )
    async with PodClient() as real:
        client = CountingClient(real)
        controller = Controller(
            spec,
            Subset(pods, count),
            name=f"scale-{count}",
            seed=1,
            start=datetime.now(UTC),
            stats_interval=setting.stats_interval,
            client=client,
            push_policy=POLICIES[policy],
        )
        mono0, cpu0, thread0 = time.monotonic(), cpu_seconds(), time.thread_time()
        wait0 = run_queue_wait()
        summary = await controller.run()
        mono1, cpu1, thread1 = time.monotonic(), cpu_seconds(), time.thread_time()
        waited = run_queue_wait() - wait0
    await asyncio.sleep(0.3)  # the last answers reach the server's bins
    t0, bin_s, counts = await asyncio.to_thread(server.bins)
    first = max(0, int((mono0 - t0) / bin_s))
    last = int((mono1 + 0.3 - t0) / bin_s) + 1
    arrived = sum(counts[first:last])
    # Steady state: whole run minus its first and last second (start-up and drain edges).
    inner = sum(counts[first + round(1 / bin_s) : last - round(1.3 / bin_s)])
    inner_seconds = (last - first) * bin_s - 2.3
    steady = inner / (rate_per_pod * count * inner_seconds)
    wall = mono1 - mono0
    lags = controller.tick_lags
    figures = summary.controller
    result = {
        "pods": count,
        "policy": policy,
        "ratePerPod": rate_per_pod,
        "seconds": round(wall, 2),
        "ticks": figures.ticks,
        "ticksSkipped": figures.ticks_skipped,
        "tickLagMsP50": round(lags.percentile_ms(50.0), 2),
        "tickLagMsP99": round(figures.tick_lag_ms_p99, 2),
        "tickLagMsMax": round(figures.tick_lag_ms_max, 2),
        "controllerCpu": round((cpu1 - cpu0) / wall, 3),  # cores, the whole process
        "controllerLoopCpu": round((thread1 - thread0) / wall, 3),  # the event-loop thread
        "loopWaitedForCpuMs": round(waited * 1000, 1),
        "pushesPerSecond": round(client.pushes / wall, 1),
        "pushesSkipped": figures.pushes_skipped,
        "pushFailures": figures.push_failures,
        "pullsPerSecond": round(client.pulls / wall, 1),
        "askedRequests": round(summary.target_requests, 1),
        "podRequests": summary.requests_total,
        "serverArrived": arrived,
        "arrivedShare": round(arrived / summary.target_requests, 4)
        if summary.target_requests
        else None,
        "steadyShare": round(steady, 4),
    }
    log(
        f"{count:3} pods, {policy:10}: tick lag p50/p99/max {result['tickLagMsP50']}/"
        f"{result['tickLagMsP99']}/{result['tickLagMsMax']} ms, controller cpu "
        f"{result['controllerCpu']:.0%} (loop {result['controllerLoopCpu']:.0%}, waited for a "
        f"CPU {result['loopWaitedForCpuMs']:.0f} ms), pushes "
        f"{result['pushesPerSecond']}/s, pulls {result['pullsPerSecond']}/s, arrived "
        f"{arrived} of {summary.target_requests:.0f} asked ({result['arrivedShare']}; "
        f"steady state {result['steadyShare']})"
    )
    return result


async def run_scale(
    sizes: tuple[int, ...], setting: Setting, cores: Cores, policies: tuple[str, ...] = ("default",)
) -> dict[str, Any]:
    """Start max(sizes) pods once, then one controller run per size and push policy (side by
    side, same pods, same minute); the section's JSON."""
    out: dict[str, Any] = {
        "ratePerPod": setting.rate_per_pod,
        "statsInterval": setting.stats_interval,
    }
    with CountServer(cores.server) as server:
        # Start-up is CPU-bound (imports): the pods start on both cores, then move over.
        allowed = os.sched_getaffinity(0)
        if cores.server is not None and cores.generator is not None:
            os.sched_setaffinity(0, {cores.server, cores.generator})
        pods = LocalPods(max(sizes), start_timeout=START_TIMEOUT, name_prefix="scale")
        started = time.monotonic()
        try:
            await pods.start()
            out["startAllSeconds"] = round(time.monotonic() - started, 1)
            log(f"{len(pods.pods)} pods ready in {out['startAllSeconds']} s")
            os.sched_setaffinity(0, allowed)
            for pod in pods.pods:
                pin_all_threads(cores.generator, pod.pid)
            pin_all_threads(cores.server)
            out["sizes"] = [
                await one_size(pods, server, n, setting, policy)
                for n in sizes
                for policy in policies
            ]
            out["podMemory"] = fleet_memory(pods)
        finally:
            pin_all_threads(cores.server)
            await pods.stop()
    return out


def fleet_memory(pods: LocalPods) -> dict[str, float]:
    """PSS and RSS of every pod after the runs (10/s each): what the fleet costs a node."""
    pss = rss = 0
    for pod in pods.pods:
        mem = memory_kib(pod.pid)
        pss, rss = pss + mem["Pss"], rss + mem["VmRSS"]
    n = len(pods.pods)
    result = {
        "pods": n,
        "pssTotalMiB": round(pss / 1024, 1),
        "pssPerPodMiB": round(pss / 1024 / n, 1),
        "rssPerPodMiB": round(rss / 1024 / n, 1),
    }
    log(
        f"{n} pods: PSS {result['pssTotalMiB']} MiB in all, {result['pssPerPodMiB']} MiB each "
        f"(RSS {result['rssPerPodMiB']} MiB each)"
    )
    return result


def goals(section: dict[str, Any]) -> dict[str, bool]:
    """Issue 14: 100 pods with tick lag p99 < 20 ms and the controller under half a core."""
    runs = [s for s in section["sizes"] if s["policy"] == "default"] or section["sizes"]
    biggest = max(runs, key=lambda s: s["pods"])
    return {
        "tickLagP99Under20ms": biggest["tickLagMsP99"] < 20.0,
        "controllerUnderHalfCore": biggest["controllerCpu"] < 0.5,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", default=",".join(map(str, SIZES)))
    parser.add_argument("--rate-per-pod", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--stats-interval", type=float, default=STATS_INTERVAL)
    parser.add_argument(
        "--policies", default="default", help=f"comma-separated, of {', '.join(POLICIES)}"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sizes = tuple(sorted(int(x) for x in args.pods.split(",")))
    cores = Cores.detect()
    pin_self(cores.server)
    setting = Setting(args.rate_per_pod, args.seconds, args.stats_interval)
    policies = tuple(args.policies.split(","))
    section = uvloop.run(run_scale(sizes, setting, cores, policies))
    section["goals"] = goals(section)
    print_section(section, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

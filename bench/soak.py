"""Soak: the local runner's path (two `kar98k-loadpod` processes driven by the controller core,
as `kar98k run --pods 2` does) with spikes and noise against a counting server on loopback,
held for minutes and sampled every window.

Why it exists: a fault test watches seconds; slow leaks (memory, descriptors) and pacing
drift only show over minutes. Each window (60 s by default) records, per pod, its resident
memory (VmRSS) and open descriptors, and for the fleet the requests counted at the server
against the curve's integral over the same window (`kar98k.pattern.expected_requests`, the
sum the controller itself holds each tick's rate for). Arrivals are uniform, so the count is
the integral up to edge effects and the 1 % check measures pacing, not Poisson noise.

    .venv/bin/python bench/soak.py                       # 10 minutes, 60 s windows
    .venv/bin/python bench/soak.py --duration 75s --every 15s --json /tmp/soak.json

Checks (exit 1 when one fails): per window achieved/target within --rate-tolerance; each pod's
RSS within --rss-tolerance of its first window's; each pod's descriptors back to its idle
count once the run has drained (any leak stays), and while running at most its idle count +
maxInFlight (the connection pool's bound) + --fd-slack: connections open as concurrency needs
them and stay open for reuse, so a spike or a stalled loop steps the count up.
Prints a table and writes JSON. Traffic goes to 127.0.0.1 only. The soak, its pods and the
counting server run at the bench harness's raised priority (when root), like every benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import NICE
from kar98k.controller.core import Controller
from kar98k.local.processes import LocalPods
from kar98k.pattern import PatternEngine, expected_requests
from kar98k.spec import parse_spec
from kar98k_loadpod.durations import parse_duration
from servers import CountServer

BASE_TPS = 200.0


@dataclass
class Sample:
    """One window: [start, end) in seconds since the run began."""

    start: float
    end: float
    target: float
    achieved: int
    rss_kib: list[int]
    fds: list[int]
    spike_s: float = 0.0  # seconds of the window with a spike under way

    @property
    def ratio(self) -> float:
        return self.achieved / self.target if self.target else 0.0


@dataclass
class Result:
    duration: float
    every: float
    pods: int
    seed: int
    load_average: tuple[float, float, float]
    samples: list[Sample] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)  # the controller's own figures
    idle_fds: list[int] = field(default_factory=list)  # each pod before the run
    drained_fds: list[int] = field(default_factory=list)  # each pod once the run has drained
    max_in_flight: int = 0
    failures: list[str] = field(default_factory=list)


def soak_spec(duration: float, pods: int, seed: int, url: str) -> Any:
    """Base 200 req/s, ±20 % spring noise, a spike (x2.5) about every 90 s."""
    return parse_spec(
        {
            "duration": f"{duration + 2}s",  # the last window must not meet the stop
            "targets": [{"name": "count", "url": url}],
            "pattern": {
                "baseTPS": BASE_TPS,
                "seed": seed,
                "noise": {"enabled": True, "amplitude": 0.2},
                "spikes": {
                    "enabled": True,
                    "meanInterval": "90s",
                    "factor": 2.5,
                    "rampUp": "5s",
                    "duration": "10s",
                    "rampDown": "10s",
                },
            },
            "loadPods": {"replicas": pods, "arrival": "uniform"},
        }
    )


def spike_seconds(engine: PatternEngine, a: float, b: float, step: float = 0.1) -> float:
    steps = int((b - a) / step)
    return round(sum(step for i in range(steps) if engine.at(a + i * step).spike_active), 1)


async def settled_fds(pids: list[int], idle: list[int], within: float = 10.0) -> list[int]:
    """Each pod's descriptors once a drain has closed its executors (back to `idle`), or
    as they stand after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        now = [open_fds(pid) for pid in pids]
        if all(n <= i for n, i in zip(now, idle, strict=True)) or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.1)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_priority(pid: int) -> None:
    """Niceness `harness.NICE` (when root may set it), as every benchmark process has: a soak
    measures the pods, not the other work on a shared machine."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, NICE)


async def run(duration: float, every: float, pods: int, seed: int) -> Result:
    result = Result(duration, every, pods, seed, os.getloadavg())
    raise_priority(0)
    with CountServer(cpu=None) as server:
        spec = soak_spec(duration, pods, seed, server.url + "soak")
        async with LocalPods(pods, name_prefix="soak") as local:
            pids = [pod.pid for pod in local.pods]
            for pid in pids:
                raise_priority(pid)
            result.idle_fds = [open_fds(pid) for pid in pids]
            result.max_in_flight = spec.load_pods.max_in_flight
            start = datetime.now(UTC)
            # CLOCK_MONOTONIC (the server's bins) to curve time: one offset, taken now.
            mono_to_curve = time.time() - time.monotonic() - start.timestamp()
            engine = PatternEngine(spec.pattern, seed=seed, start=start)
            controller = Controller(spec, local, name="soak", seed=seed, start=start)
            task = asyncio.create_task(controller.run())
            marks: list[tuple[float, list[int], list[int]]] = []  # (monotonic, rss, fds)
            windows = max(1, round(duration / every))
            origin = time.monotonic() - (time.time() - start.timestamp())
            for k in range(1, windows + 1):
                await asyncio.sleep(max(0.0, origin + k * every - time.monotonic()))
                if task.done():
                    result.failures.append("the controller stopped early")
                    break
                marks.append(
                    (
                        origin + k * every,
                        [rss_kib(pid) for pid in pids],
                        [open_fds(pid) for pid in pids],
                    )
                )
                print(f"  {k * every:6.0f} s sampled", file=sys.stderr, flush=True)
            controller.stop()
            summary = await task
            result.drained_fds = await settled_fds(pids, result.idle_fds)
        result.run = {
            "requests_total": summary.requests_total,
            "target_requests": round(summary.target_requests, 1),
            "late_sends": summary.late_sends,
            "dropped": summary.dropped,
            "errors_total": summary.errors_total,
            "ticks_skipped": summary.controller.ticks_skipped,
            "tick_lag_ms_max": summary.controller.tick_lag_ms_max,
            "push_failures": summary.controller.push_failures,
            "pushes_skipped": summary.controller.pushes_skipped,
        }
        t0, bin_s, counts = server.bins()

    def edge(mono: float) -> int:
        return round((mono - t0) / bin_s)

    previous = origin
    for mono, rss, fds in marks:
        lo, hi = edge(previous), edge(mono)
        # The target over exactly the bins counted: their edges in curve time.
        a = t0 + lo * bin_s + mono_to_curve
        b = t0 + hi * bin_s + mono_to_curve
        result.samples.append(
            Sample(
                start=round(a, 3),
                end=round(b, 3),
                target=round(expected_requests(engine, a, b, step=0.01), 1),
                achieved=sum(counts[max(lo, 0) : max(hi, 0)]),
                rss_kib=rss,
                fds=fds,
                spike_s=spike_seconds(engine, a, b),
            )
        )
        previous = mono
    return result


def judge(result: Result, *, rate_tolerance: float, rss_tolerance: float, fd_slack: int) -> None:
    samples = result.samples
    if not samples:
        result.failures.append("no windows measured")
        return
    first = samples[0]
    # Connections open as concurrency needs them and stay open for reuse (a spike, or a
    # stalled loop, opens more): while running, a pod may hold up to its pool's bound; once
    # drained it must be back to its idle count, or something leaked.
    for pod, (idle, drained) in enumerate(zip(result.idle_fds, result.drained_fds, strict=True)):
        if drained > idle:
            result.failures.append(f"pod {pod}: {drained} fds after the drain, {idle} idle")
    for i, s in enumerate(samples):
        if abs(s.ratio - 1) > rate_tolerance:
            result.failures.append(f"window {i}: achieved/target {s.ratio:.4f}")
        for pod, (rss, fds) in enumerate(zip(s.rss_kib, s.fds, strict=True)):
            if i > 0 and rss_tolerance > 0 and abs(rss / first.rss_kib[pod] - 1) > rss_tolerance:
                result.failures.append(
                    f"window {i}: pod {pod} RSS {rss} KiB vs {first.rss_kib[pod]}"
                )
            bound = result.idle_fds[pod] + result.max_in_flight + fd_slack
            if fds > bound:
                result.failures.append(f"window {i}: pod {pod} {fds} fds, bound {bound}")


def table(result: Result) -> str:
    rows = [
        f"soak: {result.pods} pods, {result.duration:g} s, windows of {result.every:g} s, "
        f"seed {result.seed}, load average at start {result.load_average}",
        f"{'window':>13} {'spike s':>7} {'target':>9} {'achieved':>9} {'ratio':>7}  "
        + "  ".join(
            f"{'rss' + str(i) + ' KiB':>11} {'fds' + str(i):>5}" for i in range(result.pods)
        ),
    ]
    for s in result.samples:
        cells = "  ".join(f"{r:>11} {f:>5}" for r, f in zip(s.rss_kib, s.fds, strict=True))
        span = f"{s.start:6.0f}-{s.end:<6.0f}"
        rows.append(
            f"{span} {s.spike_s:7.1f} {s.target:9.0f} {s.achieved:9d} {s.ratio:7.4f}  {cells}"
        )
    rows.append(f"fds idle {result.idle_fds}, after the drain {result.drained_fds}")
    rows.append(f"controller: {result.run}")
    rows.append("PASS" if not result.failures else "FAIL: " + "; ".join(result.failures))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", default="10m", help="run length (default 10m)")
    parser.add_argument("--every", default="60s", help="window length (default 60s)")
    parser.add_argument("--pods", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7, help="7: spikes at ~32 s and ~120 s")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    parser.add_argument("--rate-tolerance", type=float, default=0.01)
    parser.add_argument(
        "--rss-tolerance", type=float, default=0.10, help="0 leaves the RSS check out"
    )
    parser.add_argument("--fd-slack", type=int, default=4)
    args = parser.parse_args(argv)
    duration = parse_duration(args.duration)
    every = parse_duration(args.every)
    result = asyncio.run(run(duration, every, args.pods, args.seed))
    judge(
        result,
        rate_tolerance=args.rate_tolerance,
        rss_tolerance=args.rss_tolerance,
        fd_slack=args.fd_slack,
    )
    print(table(result))
    if args.json is not None:
        doc = asdict(result) | {"ratios": [s.ratio for s in result.samples]}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if not result.failures else 1


if __name__ == "__main__":
    sys.exit(main())

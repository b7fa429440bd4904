"""The controller over the real wire: the load pod's client against real control-API servers
on 127.0.0.1 (errors become PodCallError, fast), and a controller driving 20 of them."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kar98k.controller import Controller, PodEndpoint
from kar98k.controller.pods import PodCallError, PodClient
from kar98k.spec import parse_spec
from kar98k_loadpod.plan import Plan
from kit import fakepods
from kit.fakepods import FakePod, FixedSource, StaticSource, start_pods
from kit.loadpod import target


def plan(epoch: int, rate: float = 1.0) -> Plan:
    return Plan(epoch=epoch, rate=rate, targets=[target("t", "http://127.0.0.1:9/")])


async def test_push_pull_drain_and_errors() -> None:
    pod = await FakePod("p").start()
    try:
        async with PodClient() as client:
            ack = await client.push_plan(pod.endpoint, plan(5, 10.0))
            assert (ack.epoch, ack.rate) == (5, 10.0)
            assert pod.last == plan(5, 10.0)
            with pytest.raises(PodCallError, match="HTTP 409"):
                await client.push_plan(pod.endpoint, plan(4))
            bad_token = PodEndpoint(pod.name, pod.base_url, "wrong")
            with pytest.raises(PodCallError, match="HTTP 401") as info:
                await client.stats(bad_token)
            assert info.value.status == 401
            stats = await client.stats(pod.endpoint)
            assert stats.epoch == 5
            final = await client.drain(pod.endpoint, 1.0)
            assert pod.drained and final.rate == 0.0
    finally:
        await pod.stop()


async def test_slow_or_absent_pod_fails_within_the_timeout(closed_port: int) -> None:
    pod = await FakePod("slow", delay=2.0).start()
    try:
        async with PodClient() as client:
            began = time.monotonic()
            with pytest.raises(PodCallError, match=r"no answer within 0\.2s"):
                await client.push_plan(pod.endpoint, plan(1), within=0.2)
            assert time.monotonic() - began < 1.0
            gone = PodEndpoint("gone", f"http://127.0.0.1:{closed_port}", "t")
            with pytest.raises(PodCallError, match="gone: push plan"):
                await client.push_plan(gone, plan(1))
    finally:
        await asyncio.wait_for(pod.stop(), 5.0)


async def test_client_outside_context_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        await PodClient().push_plan(PodEndpoint("p", "http://127.0.0.1:9", "t"), plan(1))


async def test_a_run_over_http() -> None:
    pods = await start_pods(2)
    try:
        spec = parse_spec(
            {
                "targets": [{"name": "t", "url": "http://127.0.0.1:9/"}],
                "pattern": {"baseTPS": 100},
                "duration": "1s",
            }
        )
        ctl = Controller(spec, StaticSource(pods), name="wire", seed=1, start=datetime.now(UTC))
        summary = await ctl.run()
    finally:
        await asyncio.gather(*(p.stop() for p in pods))
    assert summary.controller.push_failures == 0
    assert all(p.drained and p.last.rate == pytest.approx(50.0) for p in pods)
    assert summary.requests_total > 0


def run_queue_wait_s() -> float:
    """Seconds this thread spent runnable but not running (Linux schedstat; 0 elsewhere)."""
    try:
        fields = Path("/proc/thread-self/schedstat").read_text().split()
    except OSError:
        return 0.0
    return int(fields[1]) / 1e9


@pytest.mark.slow
async def test_tick_lag_at_20_pods_stays_under_20ms() -> None:
    """20 real control-API servers in a helper process; pushes every tick, stats every second.

    The machine is shared (2 cores, other test suites): when the kernel kept this thread
    waiting for a CPU during the run (schedstat run-queue time), the lag measures the
    neighbours, not the controller, and the run is repeated (at most three runs); the last
    run's figures are judged either way, so this can fail but never skips.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        fakepods.__file__,
        "20",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        urls: list[str] = []
        while (line := (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()) != (
            "ready"
        ):
            assert line, "helper exited"
            urls.append(line)
        source = FixedSource(
            [PodEndpoint(f"pod-{i:02d}", u, fakepods.TOKEN) for i, u in enumerate(urls)]
        )
        spec = parse_spec(
            {
                "targets": [{"name": "t", "url": "http://127.0.0.1:9/"}],
                "pattern": {"baseTPS": 2000},
                "duration": "4s",
            }
        )
        for attempt in range(3):
            waited = run_queue_wait_s()
            ctl = Controller(
                spec, source, name="lag", seed=1, start=datetime.now(UTC), stats_interval=1.0
            )
            summary = await ctl.run()
            waited = run_queue_wait_s() - waited
            figures = summary.controller
            print(f"20 pods, run {attempt + 1}: {figures}; waited for a CPU {waited * 1e3:.0f} ms")
            if figures.tick_lag_ms_p99 < 20.0 or waited < 0.05:
                break
    finally:
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 10)
    assert figures.ticks >= 38
    assert figures.push_failures == 0
    assert figures.tick_lag_ms_p99 < 20.0
    # Every pod kept up: a flat curve pushes a pod when its lease is a quarter through (0.5 s,
    # 5 ticks; one more when the loop's jitter lands the 5th tick a hair early).
    assert all(figures.last_epoch - p.epoch <= 6 for p in summary.pods), "every pod kept up"

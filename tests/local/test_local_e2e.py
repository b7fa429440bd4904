"""End to end in one test process: real load-pod processes, the controller, a loopback target.

Arrivals are uniform here so that the totals measure the controller and the pods, not Poisson
noise (at 2,500 requests a Poisson total has a 2 % standard deviation on its own); Poisson
arrivals are exercised by the CLI tests.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
from datetime import UTC, datetime

import pytest
from kar98k.controller import Controller, ControllerEvent
from kar98k.demo import DemoHttpServer
from kar98k.local.processes import LocalPods
from kar98k.pattern import PatternEngine, expected_requests
from kar98k.spec import parse_manifest
from kit.manifests import alive, manifest
from kit.wait import wait_until

pytestmark = pytest.mark.slow

BASE = 150.0
SPIKE = {
    "enabled": True,
    "meanInterval": "3s",
    "minInterval": "3s",
    "maxInterval": "3s",
    "factor": 2.5,
    "rampUp": "300ms",
    "duration": "2s",
    "rampDown": "300ms",
}


@pytest.mark.parametrize("pods", [2, 3])
async def test_server_total_matches_the_curve_and_the_spike_shows(
    http1_server: DemoHttpServer, pods: int
) -> None:
    loadtest = parse_manifest(
        manifest(
            http1_server.url + "/fast",
            duration="9s",
            pattern={"baseTPS": BASE, "seed": 11, "spikes": SPIKE},
            loadPods={"arrival": "uniform"},
        )
    )
    spec = loadtest.spec
    async with LocalPods(pods) as local:
        start = datetime.now(UTC)
        ctl = Controller(spec, local, name="e2e", seed=11, start=start, stats_interval=1.0)
        summary = await ctl.run()
    counter = http1_server.counter
    curve = expected_requests(PatternEngine(spec.pattern, seed=11, start=start), 0.0, 9.0)
    served = counter.count("/fast")
    print(f"{pods} pods: server {served}, curve {curve:.1f}, report {summary.requests_total}")
    assert served == pytest.approx(curve, rel=0.03)
    assert summary.target_requests == pytest.approx(curve, rel=0.01)
    assert summary.requests_total == served
    assert [p.requests > 0 for p in summary.pods] == [True] * pods

    bins = counter.per_second("/fast")
    full = summary.series[1:-1]  # the first and last seconds are partial
    spike_seconds = [p.unix_s for p in full if p.target_tps > 2.3 * BASE]
    calm_seconds = [p.unix_s for p in full if p.target_tps < 1.05 * BASE]
    assert spike_seconds and calm_seconds
    calm = statistics.median(bins.get(s or 0, 0) for s in calm_seconds)
    assert calm == pytest.approx(BASE, rel=0.1)
    for second in spike_seconds:
        assert bins.get(second or 0, 0) > 2.0 * calm, (second, bins)
    for point in full:  # every whole second follows the curve (margin: shared cores)
        assert bins.get(point.unix_s or 0, 0) == pytest.approx(point.target_tps, rel=0.2)


async def test_killed_pod_share_moves_to_the_others_within_a_second(
    http1_server: DemoHttpServer,
) -> None:
    rate = 240.0
    loadtest = parse_manifest(
        manifest(
            http1_server.url + "/fast",
            duration="7s",
            pattern={"baseTPS": rate, "seed": 3},
            loadPods={"arrival": "uniform"},
        )
    )
    events: list[ControllerEvent] = []
    loop = asyncio.get_running_loop()
    async with LocalPods(3) as local:
        ctl = Controller(
            loadtest.spec,
            local,
            name="kill",
            seed=3,
            start=datetime.now(UTC),
            on_event=events.append,
            stats_interval=1.0,
        )
        run = asyncio.create_task(ctl.run())
        await wait_until(lambda: ctl.live().elapsed_s >= 2.6, 10.0)
        victim = local.pods[1]
        killed_at = loop.time()
        killed_unix = datetime.now(UTC).timestamp()
        os.kill(victim.pid, signal.SIGKILL)
        await wait_until(lambda: any(e.kind == "pod-lost" for e in events), 2.0)
        noticed_after = loop.time() - killed_at
        summary = await run
    assert not alive(victim.pid)
    assert noticed_after < 1.0  # the process watcher, then the next tick: ~0.1 s when idle
    bins = http1_server.counter.per_second("/fast")
    first_full = int(killed_unix) + 2  # the first whole second starting >= 1 s after the kill
    after = [p for p in summary.series if p.unix_s is not None and first_full <= p.unix_s]
    after = after[:-1]  # the last second is partial
    assert after, summary.series
    for point in after:
        assert bins.get(point.unix_s or 0, 0) == pytest.approx(rate, rel=0.12), (point, bins)
    # The report is whole: the dead pod's counts up to its last report still count.
    served = http1_server.counter.count("/fast")
    dead = next(p for p in summary.pods if p.name == victim.name)
    assert not dead.ready and dead.requests > 0
    assert [p.ready for p in summary.pods].count(True) == 2
    assert summary.requests_total <= served
    # At most ~1.2 s of the victim's share (stats interval 1 s) is unreported.
    assert served - summary.requests_total <= rate / 3 * 1.3
    assert summary.verdict == "none" and not summary.interrupted

"""Figures that must not claim more than they know: the delivered ratio over one window with
its Poisson bound, and the totals as a lower bound when a pod dies between two stats pulls."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kar98k.controller import Controller
from kar98k.controller.summarize import delivered
from kar98k.demo import DemoHttpServer
from kar98k.local.processes import LocalPods
from kar98k.local.runner import print_summary
from kar98k.report import write_report
from kar98k.report.wording import delivered_text
from kar98k.results import RunSummary
from kar98k.spec import parse_manifest, parse_spec
from kar98k_loadpod.plan import Arrival
from kit.fakepods import FakePodApi, StaticSource, fake_pods
from kit.manifests import manifest
from kit.wait import wait_until
from rich.console import Console

T0 = 1_790_000_000.0


def test_poisson_bound_is_two_sigma_of_the_asked_count() -> None:
    """The demo's 5,367 sent of 5,313 asked: σ = √5313 ≈ 72.9, so ±2σ is ±2.74 % and 101.0 %
    is well inside it (0.74σ); uniform arrivals are exact to a send per pod and end."""
    poisson = delivered(5367, 5313.0, Arrival.POISSON, pods=2)
    assert poisson is not None
    assert poisson.ratio == pytest.approx(5367 / 5313)
    assert poisson.bound == pytest.approx(2 * math.sqrt(5313) / 5313)
    text = delivered_text(RunSummary(name="d", seed=1, started_at="x", delivered=poisson))
    assert text == "101.0 % (±2σ of Poisson arrivals: ±2.7 %)"
    uniform = delivered(5313, 5313.0, Arrival.UNIFORM, pods=2)
    assert uniform is not None and uniform.bound == pytest.approx(2 / 5313)
    assert delivered(0, 0.0, Arrival.POISSON, pods=1) is None


@pytest.mark.looptime
async def test_asked_and_sent_cover_the_same_window() -> None:
    """Fake pods send exactly the integral of the rates they are given, from the plan that
    reached them to their drain (fake clock: pushes and drains land at once). So the asked
    integral and the sent total agree to the truncation of each pod's count: < 1 request per
    pod. A window off by a single 100 ms tick at these rates (100-300/s) is 10-30 requests."""
    loop = asyncio.get_running_loop()
    spec = parse_spec(
        {
            "targets": [{"name": "t", "url": "http://127.0.0.1:9/"}],
            "pattern": {
                "baseTPS": 100,
                "spikes": {"enabled": True, "meanInterval": "1s", "maxInterval": "1s",
                           "factor": 3, "rampUp": "100ms", "duration": "1s",
                           "rampDown": "100ms"},
            },
            "duration": "3.55s",
        }
    )  # fmt: skip
    pods = fake_pods(2)
    ctl = Controller(
        spec,
        StaticSource(pods),
        clock=lambda: T0 + loop.time(),
        client=FakePodApi(pods),
        name="window",
        seed=5,
        start=datetime.fromtimestamp(T0 + loop.time(), UTC),
    )
    summary = await ctl.run()
    assert summary.target_requests > 400
    assert abs(summary.requests_total - summary.target_requests) < len(pods)
    assert summary.delivered is not None
    assert summary.delivered.ratio == pytest.approx(1.0, abs=len(pods) / summary.target_requests)
    assert summary.unaccounted_max == 0  # every pod was drained: the totals are whole


@pytest.mark.slow
async def test_pod_killed_between_pulls_leaves_a_stated_bound_that_covers_the_server(
    http1_server: DemoHttpServer, tmp_path: Path
) -> None:
    """A real pod process SIGKILLed under load 1.5 s after a stats pull (pulls every 2 s):
    the server counted requests the report never got; the report says the totals are a lower
    bound and by how much at most, and that bound covers what the server saw."""
    rate = 200.0
    loadtest = parse_manifest(
        manifest(http1_server.url + "/fast", duration="6s", pattern={"baseTPS": rate, "seed": 2})
    )
    async with LocalPods(2) as local:
        ctl = Controller(
            loadtest.spec, local, name="lost", seed=2, start=datetime.now(UTC), stats_interval=2.0
        )
        run = asyncio.create_task(ctl.run())
        await wait_until(lambda: ctl.live().elapsed_s >= 3.5, 15.0)
        victim = local.pods[1]
        os.kill(victim.pid, signal.SIGKILL)
        summary = await run
    served = http1_server.counter.count("/fast")
    lost = served - summary.requests_total
    print(f"server {served}, report {summary.requests_total}, bound {summary.unaccounted_max}")
    assert lost > 0  # the dead pod's last ~1.5 s went unreported
    assert lost <= summary.unaccounted_max
    # Not a vacuous bound either: at most its share over stats interval + lease, with margin.
    assert summary.unaccounted_max <= rate / 2 * (2.0 + 2.0) * 1.5
    assert summary.unaccounted_pods == [victim.name]

    report, page = tmp_path / "r.json", tmp_path / "r.html"
    write_report(summary, report)
    write_report(summary, page)
    assert json.loads(report.read_text(encoding="utf-8"))["unaccounted_max"] == (
        summary.unaccounted_max
    )
    html = page.read_text(encoding="utf-8")
    assert f"≥ {summary.requests_total:,}" in html
    assert f"up to {summary.unaccounted_max:,} more requests" in html
    junit = tmp_path / "r.xml"
    write_report(summary, junit)
    assert f'name="unaccounted_max" value="{summary.unaccounted_max}"' in junit.read_text("utf-8")
    console = Console(record=True, width=200)
    print_summary(summary, console)
    said = console.export_text()
    assert "lower bound" in said and f"up to {summary.unaccounted_max:,} more" in said
    assert f"at least {summary.requests_total}" in said

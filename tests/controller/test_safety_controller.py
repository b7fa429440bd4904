"""spec.safety through the controller core, on fake loop time with in-memory fake pods.

The pods fail a share of their requests from a chosen instant; stats are merged every 0.5 s, so
each check states the instant the breaker must act at to within one merge.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from kar98k.controller import Controller, RunSummary
from kar98k.spec import parse_spec
from kar98k.spec.model import LoadTestSpec
from kit.fakepods import FakePod, FakePodApi, StaticSource, fake_pods
from test_controller_core import Events, fake_wall, now

pytestmark = pytest.mark.looptime

STATS = 0.5  # merge interval: the breaker is evaluated at each merge


def spec_with(safety: dict[str, Any], duration: str = "20s") -> LoadTestSpec:
    return parse_spec(
        {
            "targets": [{"name": "t", "url": "http://127.0.0.1:9/"}],
            "pattern": {"baseTPS": 200},
            "duration": duration,
            "safety": {"errorRateAbove": 0.5, "sustainedFor": "2s", "window": "1s", **safety},
        }
    )


def make(spec: LoadTestSpec, pods: list[FakePod], events: Events, **kwargs: Any) -> Controller:
    wall = fake_wall()
    return Controller(
        spec,
        StaticSource(pods),
        name="lt",
        seed=1,
        start=datetime.fromtimestamp(wall(), UTC),
        clock=wall,
        client=FakePodApi(pods),
        on_event=events,
        stats_interval=STATS,
        **kwargs,
    )


def rates_after(pod: FakePod, at: float) -> list[float]:
    return [r.plan.rate for r in pod.plans if r.at >= at]


async def fail_from(pods: list[FakePod], at: float, ratio: float = 1.0) -> None:
    await asyncio.sleep(at - now())
    for pod in pods:
        pod.error_ratio = ratio


def started(
    safety: dict[str, Any], duration: str
) -> tuple[list[FakePod], Events, Controller, asyncio.Task[RunSummary]]:
    """One fake pod, a controller with `safety` running on it, and its events."""
    pods = fake_pods(1)
    events = Events()
    ctl = make(spec_with(safety, duration=duration), pods, events)
    return pods, events, ctl, asyncio.create_task(ctl.run())


async def test_pause_within_sustained_for_and_resume_when_clear() -> None:
    pods, events, _ctl, run = started({"resumeAfter": "2s"}, "15s")
    await fail_from(pods, 3.0)
    await asyncio.sleep(7.0 - now())
    for pod in pods:
        pod.error_ratio = 0.0  # the target recovers (paused: no requests anyway)
    summary = await run
    (tripped,) = events.at["safety-tripped"]
    # Failing from 3.0: the 1 s window is past 50% errors by the merge at 3.5 at the latest;
    # held 2 s: trip at the merge at or before 5.5 + one merge (never before 3.5 + 2).
    assert 5.5 - 1e-6 <= tripped <= 6.0 + 1e-6
    # Paused: every plan pushed after the trip (until the close) asks for rate 0.
    (closed,) = events.at["safety-closed"]
    pod = pods[0]
    assert all(r.plan.rate == 0.0 for r in pod.plans if tripped < r.at < closed)
    # Window empty from trip + 1 s: clear for 2 s about 3 s after the trip, then the curve.
    assert tripped + 2.0 < closed <= tripped + 3.0 + STATS + 1e-6
    assert rates_after(pod, closed + 0.2)[0] == pytest.approx(200.0)
    (trip,) = summary.safety_trips
    assert (trip.rule, trip.action, trip.closed_by) == ("ErrorRateAbove", "pause", "clear")
    assert trip.measured > 0.5
    assert summary.verdict != "fail"
    kinds = [e.kind for e in events if e.kind.startswith("safety")]
    assert kinds == ["safety-tripped", "safety-closed"]
    assert "error rate" in events[[e.kind for e in events].index("safety-tripped")].message


async def test_a_short_burst_of_errors_does_not_trip() -> None:
    pods, events, _ctl, run = started({}, "10s")
    await fail_from(pods, 3.0)
    await asyncio.sleep(4.0 - now())  # 1 s of errors: shorter than sustainedFor (2 s)
    pods[0].error_ratio = 0.0
    summary = await run
    assert events.at["safety-tripped"] == []
    assert summary.safety_trips == []
    assert all(r.plan.rate == pytest.approx(200.0) for r in pods[0].plans)


async def test_scale_multiplies_the_rate_and_stays_until_a_human_resumes() -> None:
    pods, events, ctl, run = started({"action": "scale", "scaleTo": 0.25}, "20s")
    await fail_from(pods, 1.0)
    await asyncio.sleep(12.0 - now())
    (tripped,) = events.at["safety-tripped"]
    pods[0].error_ratio = 0.0
    assert rates_after(pods[0], tripped + 0.15)[0] == pytest.approx(50.0)
    # No resumeAfter: still scaled at 12 s although clear for seconds.
    assert pods[0].last.rate == pytest.approx(50.0)
    ctl.resume()  # the human
    await asyncio.sleep(0.3)
    assert pods[0].last.rate == pytest.approx(200.0)
    ctl.stop()
    summary = await run
    assert summary.safety_trips[0].closed_by == "human"


async def test_reset_closes_the_breaker_but_leaves_a_users_pause_in_force() -> None:
    pods, events, ctl, run = started({"action": "scale", "scaleTo": 0.25}, "20s")
    await fail_from(pods, 1.0)
    await asyncio.sleep(8.0 - now())
    assert events.at["safety-tripped"] and pods[0].last.rate == pytest.approx(50.0)
    pods[0].error_ratio = 0.0
    ctl.pause()  # the user's pause, then the breaker reset (the safety-reset annotation)
    ctl.reset_safety()
    await asyncio.sleep(0.3)
    assert events.at["safety-closed"] and pods[0].last.rate == 0.0  # still the user's pause
    ctl.resume()
    await asyncio.sleep(0.3)
    assert pods[0].last.rate == pytest.approx(200.0)  # closed: not scaled any more
    ctl.stop()
    summary = await run
    assert summary.safety_trips[0].closed_by == "human"


async def test_abort_ends_the_run_failed_with_the_trip_recorded() -> None:
    pods, events, _ctl, run = started({"action": "abort"}, "60s")
    await fail_from(pods, 1.0)
    summary = await run
    (tripped,) = events.at["safety-tripped"]
    assert now() < tripped + 1.0  # ended at the next tick or so, not at 60 s
    assert summary.verdict == "fail"
    assert not summary.interrupted
    assert summary.safety_trips[0].action == "abort"
    assert "aborting" in next(e for e in events if e.kind == "safety-tripped").message


async def test_rate_limit_hook_caps_every_pushed_rate() -> None:
    pods = fake_pods(1)
    events = Events()
    spec = parse_spec(
        {
            "targets": [{"name": "t", "url": "http://127.0.0.1:9/"}],
            "pattern": {"baseTPS": 200},
            "duration": "2s",
        }
    )
    asked: list[float] = []

    def limit(rate: float) -> float:
        asked.append(rate)
        return min(rate, 120.0)

    await make(spec, pods, events, rate_limit=limit).run()
    assert asked and all(r == pytest.approx(200.0) for r in asked)
    assert {r.plan.rate for r in pods[0].plans} == {120.0}

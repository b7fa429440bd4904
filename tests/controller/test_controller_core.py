"""Controller core on a controllable clock: fake loop time (looptime) and in-memory fake pods.

Ticks fall at exact instants and every run takes milliseconds of real time, so the checks are
exact (tick counts, the tick a failing pod is dropped on, the tick a share moves) instead of
"within a margin when the shared machine is idle". The wire itself is tested against real
servers in test_controller_wire.py.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kar98k.controller import Controller, ControllerEvent
from kar98k.controller.plan import PushPolicy
from kar98k.controller.pods import PodSource
from kar98k.pattern import PatternEngine, expected_requests
from kar98k.spec import parse_spec
from kar98k.spec.model import LoadTestSpec
from kit.fakepods import FakePod, FakePodApi, StaticSource, fake_pods
from kit.wait import wait_until

pytestmark = pytest.mark.looptime

EVERY_TICK = PushPolicy.every_tick()  # tests of per-tick mechanics push every pod every tick
T0 = 1_790_000_000.0  # the fake wall clock's unix time at loop time 0


def make_spec(**overrides: Any) -> LoadTestSpec:
    data: dict[str, Any] = {
        "targets": [{"name": "t", "url": "http://127.0.0.1:9/"}],
        "pattern": {"baseTPS": 100},
        "duration": "3s",
    }
    data.update(overrides)
    return parse_spec(data)


def fake_wall() -> Callable[[], float]:
    loop = asyncio.get_running_loop()
    return lambda: T0 + loop.time()


def controller(
    spec: LoadTestSpec,
    pods: list[FakePod],
    *,
    source: PodSource | None = None,
    start_offset: float = 0.0,
    **kwargs: Any,
) -> Controller:
    """A controller on the fake clock, talking to `pods` in memory."""
    wall = fake_wall()
    kwargs.setdefault("name", "lt")
    kwargs.setdefault("seed", 1)
    kwargs.setdefault("start", datetime.fromtimestamp(wall() - start_offset, UTC))
    return Controller(
        spec, source or StaticSource(pods), clock=wall, client=FakePodApi(pods), **kwargs
    )


def now() -> float:
    return asyncio.get_running_loop().time()


class Events(list[ControllerEvent]):
    """A listener that keeps each event with the loop time it came at."""

    def __init__(self) -> None:
        super().__init__()
        self.at: dict[str, list[float]] = defaultdict(list)

    def __call__(self, event: ControllerEvent) -> None:
        self.append(event)
        self.at[event.kind].append(now())


def by_epoch(pods: list[FakePod]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = defaultdict(dict)
    for pod in pods:
        for received in pod.plans:
            out[received.plan.epoch][pod.name] = received.plan.rate
    return out


async def test_plans_split_exactly_with_rising_epochs_and_labels() -> None:
    pods = fake_pods(3)
    spec = make_spec(duration="1500ms", pattern={"baseTPS": 100, "rampUp": "1s"})
    started = now()
    summary = await controller(spec, pods, name="split", push_policy=EVERY_TICK).run()
    rounds = by_epoch(pods)
    assert len(rounds) == 15  # ticks at 0, 0.1, ... 1.4 s
    for pod in pods:
        epochs = [r.plan.epoch for r in pod.plans]
        assert epochs == sorted(set(epochs)), "epochs strictly increase per pod"
        assert [r.at - started for r in pod.plans] == pytest.approx([k / 10 for k in range(15)])
        plan = pod.last
        assert plan.lease_seconds == pytest.approx(2.0)
        assert plan.labels == {"loadtest": "split", "pod": pod.name, "spikeActive": "false"}
        assert plan.targets[0].name == "t"
        assert pod.drained
    for shares in rounds.values():
        total = math.fsum(shares.values())
        # The ramp makes the rate differ per tick; each tick's shares sum to one target.
        assert max(shares.values()) - min(shares.values()) < 1e-9 * max(1.0, total)
    # Seeds differ per pod so arrival sequences never coincide.
    assert len({p.plans[0].plan.seed for p in pods}) == 3
    assert summary.verdict == "none"
    assert summary.controller.ticks == 15
    assert summary.controller.ticks_skipped == 0
    # Each tick's rate is held until the next tick: the left Riemann sum of the curve.
    engine = PatternEngine(spec.pattern, seed=1, start=datetime.now(UTC))
    assert summary.target_requests == pytest.approx(expected_requests(engine, 0, 1.5), rel=1e-6)


async def test_shares_sum_to_target_each_tick() -> None:
    pods = fake_pods(7)
    spec = make_spec(duration="1s", pattern={"baseTPS": 333.3})
    await controller(spec, pods, push_policy=EVERY_TICK).run()
    rounds = by_epoch(pods)
    assert len(rounds) == 10
    for shares in rounds.values():
        assert len(shares) == 7
        assert math.fsum(shares.values()) == 333.3


async def test_epochs_rise_across_controller_restarts() -> None:
    pods = fake_pods(1)
    spec = make_spec(duration="300ms")
    first = controller(spec, pods)
    await first.run()
    second = controller(spec, pods, epoch_base=first.epoch + 1)
    await second.run()
    third = controller(spec, pods, epoch_base=0)
    await third.run()
    assert first.epoch < second.epoch < third.epoch
    epochs = [r.plan.epoch for r in pods[0].plans]
    assert epochs == sorted(set(epochs))
    assert second.epoch >= first.epoch + 1


async def test_failing_pod_is_dropped_on_the_third_failed_push_and_its_share_moves() -> None:
    events = Events()
    pods = fake_pods(3)
    spec = make_spec(duration="3s", pattern={"baseTPS": 300})
    ctl = controller(spec, pods, on_event=events, push_policy=EVERY_TICK)
    run = asyncio.create_task(ctl.run())
    await wait_until(lambda: len(pods[2].plans) == 5)
    last_good = pods[2].plans[-1].at
    pods[2].fail_status = 500
    await wait_until(lambda: "pod-lost" in events.at)
    # Three failed pushes at 100 ms ticks: lost on the third tick after the last good one ...
    lost_at = events.at["pod-lost"][0]
    assert lost_at - last_good == pytest.approx(0.3)
    # ... and the very next tick re-splits over the two left.
    await wait_until(lambda: pods[0].plans[-1].at > lost_at)
    assert pods[0].plans[-1].at - lost_at == pytest.approx(0.1)
    assert pods[0].last.rate == pytest.approx(150.0)
    assert ctl.live().ready_pods == 2
    pods[2].fail_status = None  # it recovers: the zero-rate probe brings it back
    recovered_at = now()
    await wait_until(lambda: "pod-joined" in events.at)
    assert events.at["pod-joined"][0] - recovered_at <= 1.0 + 1e-9  # the probe interval
    await wait_until(lambda: pods[2].last.rate == pytest.approx(100.0))
    summary = await run
    assert summary.controller.push_failures >= 3
    lost = next(e for e in events if e.kind == "pod-lost")
    assert "pod-02" in lost.message and "HTTP 500" in lost.message
    assert [p.push_failures for p in summary.pods][2] >= 3


async def test_pod_leaving_the_source_loses_its_share_next_tick() -> None:
    pods = fake_pods(2)
    source = StaticSource(pods)
    spec = make_spec(duration="2s", pattern={"baseTPS": 200})
    ctl = controller(spec, pods, source=source, stats_interval=0.5)
    run = asyncio.create_task(ctl.run())
    await wait_until(lambda: pods[1].stats_calls >= 1)
    removed_at = now()
    source.pods = [pods[0]]
    await wait_until(lambda: pods[0].last.rate == pytest.approx(200.0))
    assert pods[0].plans[-1].at - removed_at <= 0.1 + 1e-9  # the next tick
    summary = await run
    assert not pods[1].drained, "a pod gone from the pool is not contacted any more"
    assert [p.ready for p in summary.pods] == [True, False]
    # Its counts still count.
    assert summary.pods[1].requests > 0
    assert summary.requests_total == sum(p.requests for p in summary.pods)


async def test_slow_pod_never_delays_the_others() -> None:
    pods = fake_pods(3)
    pods[0].delay = 0.35  # answers within the push timeout, but spans several ticks
    summary = await controller(make_spec(duration="2s"), pods, push_policy=EVERY_TICK).run()
    fast = pods[1].plans
    gaps = [b.at - a.at for a, b in itertools.pairwise(fast)]
    assert len(fast) == 20
    assert gaps == pytest.approx([0.1] * 19), "the fast pods got a plan every tick"
    # The slow pod takes a push every fourth tick (0.35 s answers): the rest are skipped.
    assert len(pods[0].plans) == 5
    assert summary.controller.pushes_skipped == 15
    assert summary.controller.tick_lag_ms_max < 1.0


async def test_pause_resume_and_manual_spike() -> None:
    events = Events()
    pods = fake_pods(2)
    spikes = {"rampUp": "200ms", "rampDown": "200ms"}  # the shape manual spikes use
    spec = make_spec(duration="3s", pattern={"baseTPS": 100, "spikes": spikes})
    ctl = controller(spec, pods, on_event=events)
    run = asyncio.create_task(ctl.run())
    await wait_until(lambda: len(pods[0].plans) >= 3)
    ctl.pause()
    await wait_until(lambda: pods[0].last.rate == 0.0)
    assert ctl.live().paused
    ctl.resume()
    await wait_until(lambda: pods[0].last.rate == pytest.approx(50.0))
    spiked_at = now()
    ctl.inject_spike(3.0, 1.0)
    await wait_until(lambda: pods[0].last.rate == pytest.approx(150.0))  # x3 after the ramp
    # The ramp takes 200 ms: full height on the first tick at or after it.
    assert 0.2 <= pods[0].plans[-1].at - spiked_at <= 0.3 + 1e-9
    assert pods[0].last.labels["spikeActive"] == "true"
    assert events.at["spike-begin"][0] - spiked_at <= 0.1 + 1e-9
    summary = await run
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    for kind in ("paused", "resumed", "spike-begin", "spike-end"):
        assert kind in kinds
    assert any(p.spike_active for p in summary.series)


async def test_stop_drains_and_marks_interrupted() -> None:
    pods = fake_pods(2)
    ctl = controller(make_spec(duration="1h"), pods)
    run = asyncio.create_task(ctl.run())
    await wait_until(lambda: len(pods[0].plans) >= 5)
    stopped_at = now()
    ctl.stop()
    summary = await run
    assert now() - stopped_at <= 0.1 + 1e-6  # the next tick slot, then drain and merge
    assert summary.interrupted
    assert summary.verdict == "none"
    assert all(p.drained for p in pods)
    assert summary.requests_total > 0
    assert summary.ended_at is not None


async def test_stats_merge_and_live_view_while_running() -> None:
    pods = fake_pods(2, latency_s=0.004)
    spec = make_spec(
        duration="2500ms",
        pattern={"baseTPS": 400},
        thresholds={"latency": {"p99": "1ms"}, "errorRate": 0.5},
    )
    ctl = controller(spec, pods, stats_interval=0.5)
    run = asyncio.create_task(ctl.run())
    await wait_until(lambda: ctl.live().rolling_p99_ms is not None)
    status = ctl.live()
    assert status.target_tps == pytest.approx(400.0)
    assert status.ready_pods == 2
    assert status.summary.verdict == "running"
    assert status.summary.requests_total > 0
    assert status.rolling_p99_ms == pytest.approx(4.0, rel=0.01)
    assert [c.name for c in status.summary.checks] == ["latency.p99", "error_rate"]
    summary = await run
    assert summary.verdict == "fail"
    failed = [c for c in summary.checks if not c.passed]
    assert [c.name for c in failed] == ["latency.p99"]
    assert summary.latency_ms.corrected.p99 == pytest.approx(4.0, rel=0.01)
    assert summary.targets["t"].requests == summary.requests_total
    assert summary.requests_total == pytest.approx(400 * 2.5, abs=2)


async def test_start_in_the_past_continues_the_curve() -> None:
    pods = fake_pods(1)
    spec = make_spec(duration="20s", pattern={"baseTPS": 100, "rampUp": "20s"})
    summary = await controller(spec, pods, start_offset=19.0).run()
    assert pods[0].plans[0].plan.rate == pytest.approx(95.0)  # 19 s into a 20 s ramp
    assert summary.duration_s == pytest.approx(20.0)
    assert summary.controller.ticks == 10


async def test_update_spec_applies_what_it_can_and_names_the_rest() -> None:
    pods = fake_pods(1)
    spec = make_spec(duration="2s")
    ctl = controller(spec, pods)
    run = asyncio.create_task(ctl.run())
    await wait_until(lambda: len(pods[0].plans) >= 2)
    data = spec.model_dump(by_alias=True, mode="json")
    data["pattern"]["baseTPS"] = 250
    data["targets"][0]["name"] = "renamed"
    data["runId"] = "other"
    data["loadPods"]["image"] = "x:1"
    ignored = ctl.update_spec(parse_spec(data))
    await wait_until(lambda: pods[0].last.rate == pytest.approx(250.0))
    assert pods[0].last.targets[0].name == "renamed"
    data["paused"] = True
    ctl.update_spec(parse_spec(data))
    await wait_until(lambda: pods[0].last.rate == 0.0)
    ctl.stop()
    await run
    # The pod template (loadPods.image) is the adapter's to judge, not the core's.
    assert ignored == ["spec.runId"]


async def test_a_long_run_costs_no_real_time() -> None:
    """A minute of ticks (600 pushes to each of 3 pods) on the fake clock."""
    pods = fake_pods(3)
    started = datetime.now(UTC)
    summary = await controller(make_spec(duration="1m"), pods, push_policy=EVERY_TICK).run()
    assert summary.controller.ticks == 600
    assert all(len(p.plans) == 600 for p in pods)
    assert datetime.now(UTC) - started < timedelta(seconds=30)

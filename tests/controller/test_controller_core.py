"""Controller core against real tiny control-API servers on 127.0.0.1 (see ctl_fakepods)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ctl_fakepods import FakePod, FixedSource, StaticSource, start_pods
from kar98k.controller import Controller, ControllerEvent, PodEndpoint
from kar98k.pattern import PatternEngine, expected_requests
from kar98k.spec import parse_spec
from kar98k.spec.model import LoadTestSpec
from servers_plugin import wait_until


def make_spec(**overrides: Any) -> LoadTestSpec:
    data: dict[str, Any] = {
        "targets": [{"name": "t", "url": "http://127.0.0.1:9/"}],
        "pattern": {"baseTPS": 100},
        "duration": "3s",
    }
    data.update(overrides)
    return parse_spec(data)


def controller(spec: LoadTestSpec, pods: list[FakePod], **kwargs: Any) -> Controller:
    kwargs.setdefault("name", "lt")
    kwargs.setdefault("seed", 1)
    kwargs.setdefault("start", datetime.now(UTC))
    return Controller(spec, StaticSource(pods), **kwargs)


@contextlib.asynccontextmanager
async def running_pods(count: int, **kwargs: Any) -> AsyncIterator[list[FakePod]]:
    """`count` fake pods, stopped again when the block ends (however it ends)."""
    pods = await start_pods(count, **kwargs)
    try:
        yield pods
    finally:
        await asyncio.gather(*(p.stop() for p in pods))


def by_epoch(pods: list[FakePod]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = defaultdict(dict)
    for pod in pods:
        for received in pod.plans:
            out[received.plan["epoch"]][pod.name] = received.plan["rate"]
    return out


async def test_plans_split_exactly_with_rising_epochs_and_labels() -> None:
    async with running_pods(3) as pods:
        spec = make_spec(duration="1500ms", pattern={"baseTPS": 100, "rampUp": "1s"})
        summary = await controller(spec, pods, name="split").run()
    rounds = by_epoch(pods)
    assert len(rounds) >= 12
    for pod in pods:
        epochs = [r.plan["epoch"] for r in pod.plans]
        assert epochs == sorted(set(epochs)), "epochs strictly increase per pod"
        plan = pod.plans[-1].plan
        assert plan["leaseSeconds"] == pytest.approx(2.0)
        assert plan["labels"] == {"loadtest": "split", "pod": pod.name, "spikeActive": "false"}
        assert plan["targets"][0]["name"] == "t"
        assert pod.drained
    for shares in rounds.values():
        if len(shares) == 3:  # every pod got this epoch
            total = math.fsum(shares.values())
            # The ramp makes the rate differ per tick; each tick's shares sum to one target.
            assert max(shares.values()) - min(shares.values()) < 1e-9 * max(1.0, total)
    # Seeds differ per pod so arrival sequences never coincide.
    assert len({p.plans[0].plan["seed"] for p in pods}) == 3
    assert summary.verdict == "none"
    assert summary.controller.ticks >= 14
    # Each tick's rate is held until the next tick: the left Riemann sum of the curve.
    engine = PatternEngine(spec.pattern, seed=1, start=datetime.now(UTC))
    assert summary.target_requests == pytest.approx(expected_requests(engine, 0, 1.5), rel=0.02)


async def test_shares_sum_to_target_each_tick() -> None:
    async with running_pods(7) as pods:
        spec = make_spec(duration="1s", pattern={"baseTPS": 333.3})
        await controller(spec, pods).run()
    complete = [s for s in by_epoch(pods).values() if len(s) == 7]
    assert len(complete) >= 8
    for shares in complete:
        assert math.fsum(shares.values()) == 333.3


async def test_epochs_rise_across_controller_restarts() -> None:
    async with running_pods(1) as pods:
        spec = make_spec(duration="300ms")
        first = controller(spec, pods)
        await first.run()
        second = controller(spec, pods, epoch_base=first.epoch + 1)
        await second.run()
        third = controller(spec, pods, epoch_base=0)
        await third.run()
    assert first.epoch < second.epoch < third.epoch
    epochs = [r.plan["epoch"] for r in pods[0].plans]
    assert epochs == sorted(set(epochs))
    assert second.epoch >= first.epoch + 1


async def test_failing_pod_is_dropped_within_a_few_ticks_and_its_share_moves() -> None:
    events: list[ControllerEvent] = []
    async with running_pods(3) as pods:
        spec = make_spec(duration="3s", pattern={"baseTPS": 300})
        ctl = controller(spec, pods, on_event=events.append)
        run = asyncio.create_task(ctl.run())
        await wait_until(lambda: all(len(p.plans) >= 5 for p in pods))
        pods[2].fail_status = 500
        loop = asyncio.get_running_loop()
        broke_at = loop.time()
        await wait_until(lambda: any(e.kind == "pod-lost" for e in events), within=2.0)
        lost_after = loop.time() - broke_at
        # The next tick re-splits (margins here and below: the 2 cores are shared).
        await wait_until(lambda: pods[0].plans[-1].plan["rate"] == pytest.approx(150.0), within=0.5)
        status = ctl.live()
        assert status.ready_pods == 2
        pods[2].fail_status = None  # it recovers: the zero-rate probe brings it back
        await wait_until(lambda: any(e.kind == "pod-joined" for e in events), within=2.5)
        await wait_until(lambda: pods[2].plans[-1].plan["rate"] == pytest.approx(100.0), 1.0)
        summary = await run
    assert lost_after < 1.0  # three failed pushes at 100 ms ticks: ~0.3 s when idle
    assert summary.controller.push_failures >= 3
    lost = next(e for e in events if e.kind == "pod-lost")
    assert "pod-02" in lost.message and "HTTP 500" in lost.message
    assert [p.push_failures for p in summary.pods][2] >= 3


async def test_pod_leaving_the_source_loses_its_share_next_tick() -> None:
    async with running_pods(2) as pods:
        source = StaticSource(pods)
        spec = make_spec(duration="2s", pattern={"baseTPS": 200})
        ctl = Controller(
            spec, source, name="lt", seed=1, start=datetime.now(UTC), stats_interval=0.5
        )
        run = asyncio.create_task(ctl.run())
        await wait_until(lambda: pods[1].stats_calls >= 1)
        loop = asyncio.get_running_loop()
        removed_at = loop.time()
        source.pods = [pods[0]]
        await wait_until(lambda: pods[0].plans[-1].plan["rate"] == pytest.approx(200.0), 1.0)
        moved_after = loop.time() - removed_at
        summary = await run
    assert moved_after < 0.5  # the next tick: <= 0.1 s when idle
    assert not pods[1].drained, "a pod gone from the pool is not contacted any more"
    assert [p.ready for p in summary.pods] == [True, False]
    # Its counts still count.
    assert summary.pods[1].requests > 0
    assert summary.requests_total == sum(p.requests for p in summary.pods)


async def test_slow_pod_never_delays_the_others() -> None:
    async with running_pods(3) as pods:
        pods[0].delay = 0.35  # answers within the push timeout, but spans several ticks
        spec = make_spec(duration="2s")
        summary = await controller(spec, pods).run()
    fast = pods[1].plans
    gaps = [b.at - a.at for a, b in itertools.pairwise(fast)]
    assert len(fast) >= 18
    assert sorted(gaps)[len(gaps) // 2] < 0.12, "the fast pods got a plan every tick"
    assert max(gaps) < 0.3, "never held up by the slow pod's 0.35 s answers"
    assert len(pods[0].plans) <= 8
    assert summary.controller.pushes_skipped >= 10
    assert summary.controller.tick_lag_ms_max < 50


async def test_pause_resume_and_manual_spike() -> None:
    events: list[ControllerEvent] = []
    async with running_pods(2) as pods:
        spikes = {"rampUp": "200ms", "rampDown": "200ms"}  # the shape manual spikes use
        spec = make_spec(duration="3s", pattern={"baseTPS": 100, "spikes": spikes})
        ctl = controller(spec, pods, on_event=events.append)
        run = asyncio.create_task(ctl.run())
        await wait_until(lambda: len(pods[0].plans) >= 3)
        ctl.pause()
        await wait_until(lambda: pods[0].plans[-1].plan["rate"] == 0.0, 1.0)
        assert ctl.live().paused
        ctl.resume()
        await wait_until(lambda: pods[0].plans[-1].plan["rate"] == pytest.approx(50.0), 1.0)
        ctl.inject_spike(3.0, 1.0)
        await wait_until(lambda: pods[0].plans[-1].plan["rate"] > 100.0, 2.0)  # x3: 150
        await wait_until(lambda: pods[0].plans[-1].plan["labels"]["spikeActive"] == "true", 1)
        summary = await run
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    for kind in ("paused", "resumed", "spike-begin"):
        assert kind in kinds
    assert any(p.spike_active for p in summary.series)


async def test_stop_drains_and_marks_interrupted() -> None:
    async with running_pods(2) as pods:
        spec = make_spec(duration="1h")
        ctl = controller(spec, pods)
        run = asyncio.create_task(ctl.run())
        await wait_until(lambda: len(pods[0].plans) >= 5)
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        ctl.stop()
        summary = await asyncio.wait_for(run, 3.0)
        took = loop.time() - stopped_at
    assert took < 2.0  # one tick, the drain and the final merge: ~0.2 s when idle
    assert summary.interrupted
    assert summary.verdict == "none"
    assert all(p.drained for p in pods)
    assert summary.requests_total > 0
    assert summary.ended_at is not None


async def test_stats_merge_and_live_view_while_running() -> None:
    async with running_pods(2, latency_s=0.004) as pods:
        spec = make_spec(
            duration="2500ms",
            pattern={"baseTPS": 400},
            thresholds={"latency": {"p99": "1ms"}, "errorRate": 0.5},
        )
        ctl = controller(spec, pods, stats_interval=0.5)
        run = asyncio.create_task(ctl.run())
        await wait_until(lambda: ctl.live().rolling_p99_ms is not None, 3.0)
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


async def test_start_in_the_past_continues_the_curve() -> None:
    async with running_pods(1) as pods:
        spec = make_spec(duration="20s", pattern={"baseTPS": 100, "rampUp": "20s"})
        start = datetime.now(UTC) - timedelta(seconds=19)
        summary = await controller(spec, pods, start=start).run()
    first_rate = pods[0].plans[0].plan["rate"]
    assert first_rate == pytest.approx(95.0, abs=1.0)  # 19 s into a 20 s ramp
    assert summary.duration_s == pytest.approx(20.0, abs=0.2)
    assert 0.7 < summary.controller.ticks * 0.1 < 1.3


async def test_update_spec_applies_what_it_can_and_names_the_rest() -> None:
    async with running_pods(1) as pods:
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
        await wait_until(lambda: pods[0].plans[-1].plan["rate"] == pytest.approx(250.0), 1.0)
        assert pods[0].plans[-1].plan["targets"][0]["name"] == "renamed"
        data["paused"] = True
        ctl.update_spec(parse_spec(data))
        await wait_until(lambda: pods[0].plans[-1].plan["rate"] == 0.0, 1.0)
        ctl.stop()
        await run
    assert ignored == ["spec.runId", "spec.loadPods.image"]


def run_queue_wait_s() -> float:
    """Seconds this thread spent runnable but not running (Linux schedstat; 0 elsewhere)."""
    try:
        fields = Path("/proc/thread-self/schedstat").read_text().split()
    except OSError:
        return 0.0
    return int(fields[1]) / 1e9


async def test_tick_lag_at_20_pods_stays_under_20ms() -> None:
    """20 real control-API servers in a helper process; pushes every tick, stats every second.

    The machine is shared (2 cores, other test suites): when the kernel kept this thread
    waiting for a CPU during the run (schedstat run-queue time), the lag measures the
    neighbours, not the controller, and the run is repeated (at most three runs).
    """
    helper = Path(__file__).with_name("ctl_fakepods.py")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(helper),
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
            [PodEndpoint(f"pod-{i:02d}", u, "test-token") for i, u in enumerate(urls)]
        )
        spec = make_spec(duration="4s", pattern={"baseTPS": 2000})
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
    assert all(p.epoch == figures.last_epoch for p in summary.pods), "every pod kept up"

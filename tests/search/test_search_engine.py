"""The search engine over a real Controller, on a fake clock, with in-memory pods that model a
target of known capacity (latency, errors and drops decided from the fleet's total rate)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from kar98k.controller import Controller, ControllerEvent
from kar98k.search.engine import SearchEngine
from kar98k.spec import parse_spec
from kar98k.spec.model import LoadTestSpec
from kar98k_loadpod.plan import Plan
from kar98k_loadpod.protocol import PlanAck
from kar98k_loadpod.stats import PodStats
from kit.fakepods import FakePod, FakePodApi, StaticSource

pytestmark = pytest.mark.looptime

T0 = 1_790_000_000.0
PODS = 2


@dataclass
class Target:
    """What the fleet's total rate does to the target (and to the generator)."""

    capacity: float
    fast_s: float = 0.005
    slow_s: float = 0.5
    error_share_over: float = 0.0  # share of requests failing past capacity
    generator_limit: float | None = None  # total rate past which pods drop sends
    unhealthy_over: float | None = None
    rates: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.rates.values())


@dataclass
class CapacityPod(FakePod):
    target: Target = field(default_factory=lambda: Target(1e9))
    _errors: float = 0.0
    _dropped: float = 0.0
    _counted: float = 0.0

    async def accept(self, plan: Plan) -> PlanAck:
        self._book()
        ack = await super().accept(plan)
        self.target.rates[self.name] = plan.rate
        self.latency_s = (
            self.target.fast_s if self.target.total <= self.target.capacity else self.target.slow_s
        )
        return ack

    def _book(self) -> None:
        """Errors and drops for what was sent since the last look, at the old rates."""
        new = self._requests - self._counted
        self._counted = self._requests
        over = self.target.total > self.target.capacity
        self._errors += new * self.target.error_share_over if over else 0.0
        limit = self.target.generator_limit
        if limit is not None and self.target.total > limit:
            self._dropped += new * (self.target.total - limit) / limit

    def stats(self) -> PodStats:
        base = super().stats()
        self._book()
        errors = int(self._errors)
        target = base.targets["t"]
        target.errors = errors
        target.healthy = not (
            self.target.unhealthy_over is not None
            and self.target.total > self.target.unhealthy_over
        )
        target.outcomes = (
            {"2xx": base.requests - errors, "5xx": errors} if errors else target.outcomes
        )
        return base.model_copy(update={"errors": errors, "dropped": int(self._dropped)})


def spec(**search: Any) -> LoadTestSpec:
    return parse_spec(
        {
            "targets": [{"name": "t", "url": "http://127.0.0.1:9/"}],
            "pattern": {"baseTPS": 100, "maxTPS": 5000},
            "thresholds": {"latency": {"p99": "100ms"}, "errorRate": 0.01},
            "search": {
                "growth": 2,
                "resolution": 0.05,
                "settle": "1s",
                "window": "2s",
                "confirmWindow": "4s",
                "cooldown": "1s",
                **search,
            },
        }
    )


def engine(
    lt: LoadTestSpec, target: Target, told: list[ControllerEvent] | None = None
) -> tuple[SearchEngine, list[CapacityPod]]:
    pods = [CapacityPod(f"pod-{i}", target=target) for i in range(PODS)]
    loop = asyncio.get_running_loop()
    controller = Controller(
        lt,
        StaticSource(list(pods)),
        name="search",
        seed=1,
        start=datetime.fromtimestamp(T0 + loop.time(), UTC),
        clock=lambda: T0 + loop.time(),
        client=FakePodApi(pods),
        stats_interval=1.0,
        on_event=told.append if told is not None else None,
    )
    assert lt.search is not None
    return SearchEngine(controller, lt.search), pods


@pytest.mark.parametrize("capacity", [300.0, 777.0, 2600.0])
async def test_finds_the_capacity_within_the_resolution(capacity: float) -> None:
    lt = spec()
    search, pods = engine(lt, Target(capacity))
    summary = await search.run()
    answer = summary.search
    assert answer is not None
    assert answer.found and answer.confirmed and answer.ended == "resolved"
    assert answer.limited_by == "target"
    best, failing = answer.max_sustainable_tps, answer.first_failing_tps
    assert best is not None and failing is not None
    assert best <= capacity < failing <= best * 1.05 + 1e-6
    assert answer.first_failure is not None
    assert answer.first_failure.check == "latency.p99"
    assert answer.first_failure.observed > 100 and answer.first_failure.excess > 0
    steps = answer.steps
    assert [s.rate for s in steps[:3]] == [100, 200, 400]
    assert steps[-1].phase == "confirm" and steps[-1].rate == best and steps[-1].passed
    assert steps[-1].window_s == pytest.approx(4.0, abs=0.2)
    for step in steps:
        # Each step is judged on its own window: the achieved rate is that step's, not a mix.
        assert step.achieved_tps == pytest.approx(step.rate, rel=0.05)
        assert step.passed == (step.rate <= capacity)
        assert (step.p99_ms < 100) == (step.rate <= capacity)
    assert max(s.rate for s in steps) <= 5000
    assert all(p.drained for p in pods)  # no load left running
    assert summary.verdict == "pass"


async def test_never_above_max_tps() -> None:
    lt = spec()
    search, pods = engine(lt, Target(1e9))
    answer = (await search.run()).search
    assert answer is not None
    assert answer.limited_by == "ceiling" and answer.ended == "ceiling"
    assert answer.max_sustainable_tps == 5000
    sent = [p.plan.rate for pod in pods for p in pod.plans]
    assert max(sent) <= 5000 / PODS + 1e-9


async def test_an_error_explosion_aborts_at_once() -> None:
    lt = spec(abortErrorRate=0.3)
    search, pods = engine(lt, Target(300, error_share_over=0.9, slow_s=0.005))
    loop = asyncio.get_running_loop()
    began = loop.time()
    answer = (await search.run()).search
    assert answer is not None
    assert answer.ended == "aborted" and answer.aborted is not None
    assert "error rate" in answer.aborted
    assert answer.max_sustainable_tps == 200 and answer.first_failing_tps == 400
    last = answer.steps[-1]
    assert last.rate == 400 and not last.passed and last.reason.startswith("aborted")
    # Two full steps of 3 s, then the third ends within about a stats interval or two.
    assert loop.time() - began < 2 * 3 + 3.5
    assert all(p.drained for p in pods)


async def test_an_unhealthy_target_aborts() -> None:
    search, _ = engine(spec(), Target(1e9, unhealthy_over=350))
    answer = (await search.run()).search
    assert answer is not None
    assert answer.ended == "aborted" and answer.aborted == "a target's health check failed"


async def test_a_generator_that_falls_behind_is_named() -> None:
    search, _ = engine(spec(), Target(1e9, generator_limit=300))
    answer = (await search.run()).search
    assert answer is not None
    assert answer.limited_by == "generator"
    assert answer.advice is not None and "more load pods" in answer.advice
    failing = [s for s in answer.steps if not s.passed]
    assert failing and all(s.limited_by == "generator" for s in failing)
    assert all(s.dropped > 0 for s in failing)


async def test_nothing_passes() -> None:
    search, _ = engine(spec(), Target(50))
    summary = await search.run()
    assert summary.search is not None
    assert not summary.search.found and summary.search.ended == "nothingPassed"
    assert len(summary.search.steps) == 1
    assert summary.verdict == "fail"


async def test_stop_ends_the_search_and_drains() -> None:
    search, pods = engine(spec(), Target(1e9))
    task = asyncio.create_task(search.run())
    await asyncio.sleep(7.5)  # fake time: into the third step
    search.stop()
    summary = await task
    assert summary.search is not None
    assert summary.search.ended == "interrupted"
    assert [s.rate for s in summary.search.steps] == [100, 200]
    assert all(p.drained for p in pods)


async def test_every_step_and_the_answer_are_told_as_events() -> None:
    told: list[ControllerEvent] = []
    search, _ = engine(spec(), Target(300), told)
    summary = await search.run()
    assert summary.search is not None
    steps = [e.message for e in told if e.kind == "search-step"]
    assert len(steps) == len(summary.search.steps)
    assert steps[0].startswith("step 1 (bracket) 100.0/s: pass")
    assert [e.message for e in told if e.kind == "search-result"] == [summary.search.message]
    # The engine judges; the controller's whole-run checks (which would mix steps) stay quiet.
    assert not [e for e in told if e.kind == "threshold-breach"]
    assert not summary.interrupted

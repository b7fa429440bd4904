"""Which pods a tick pushes (`PushPolicy`), on the fake clock with in-memory fake pods.

What must hold when pods are not pushed every tick: a flat curve costs a push per lease quarter,
a change beyond the tolerance is pushed on the next tick, the requests sent stay within the
tolerance of the curve's, and a pod's lease is renewed well before it ends, failed pushes
included. The fake pods count requests as the exact integral of the rates they hold.
"""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest
from kar98k.controller.plan import PushPolicy
from kit.fakepods import FakePod, fake_pods
from kit.wait import wait_until
from test_controller_core import EVERY_TICK, controller, make_spec, now

pytestmark = pytest.mark.looptime

TICK = 0.1
LEASE = 2.0  # the controller's lease at 10 Hz
RENEW = PushPolicy().renew_after * LEASE  # 0.5 s


def gaps(pod: FakePod) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(pod.plans)]


async def test_flat_curve_renews_each_pod_on_its_own_slot_and_sends_exactly() -> None:
    pods = fake_pods(5)
    ctl = controller(make_spec(duration="10s", pattern={"baseTPS": 500}), pods)
    summary = await ctl.run()
    slots = round(RENEW / TICK)
    for pod in pods:
        # Pushed at 0 s, then on its slot (2-6 ticks later), then every 0.5 s: 20 or 21
        # plans instead of the 100 a push per tick costs.
        assert len(pod.plans) in (20, 21)
        first, *rest = gaps(pod)
        assert 1.5 * TICK < first <= RENEW + TICK + 1e-9
        assert rest == pytest.approx([RENEW] * len(rest))
        assert all(r.plan.rate == 100.0 for r in pod.plans)
        assert pod.last.lease_seconds == LEASE
    # Five pods over five slots: after the first push, never two renewals on one tick.
    ticks = [round(r.at / TICK) for p in pods for r in p.plans[1:]]
    assert len(ticks) == len(set(ticks))
    assert {t % slots for t in ticks} == set(range(slots))
    assert summary.controller.pushes == sum(len(p.plans) for p in pods)
    assert summary.controller.ticks == 100
    # A flat curve: every pod held its exact share all along, so nothing is lost.
    assert summary.requests_total == pytest.approx(summary.target_requests, abs=len(pods))


async def test_share_change_beyond_tolerance_is_pushed_on_the_next_tick() -> None:
    pods = fake_pods(2)
    ctl = controller(make_spec(duration="3s", pattern={"baseTPS": 200}), pods)
    run = asyncio.create_task(ctl.run())
    await wait_until(lambda: len(pods[0].plans) == 2)  # 0 s and the renewal at 0.5 s
    changed_at = now()
    ctl.update_spec(make_spec(duration="3s", pattern={"baseTPS": 202}))  # +1 %: beyond 0.5 %
    await wait_until(lambda: pods[0].last.rate == pytest.approx(101.0))
    assert pods[0].plans[-1].at - changed_at <= TICK + 1e-9
    held_at = now()
    ctl.update_spec(make_spec(duration="3s", pattern={"baseTPS": 202.5}))  # +0.25 %: held
    await wait_until(lambda: len(pods[0].plans) == 4)  # the next renewal carries it
    assert pods[0].plans[-1].at - held_at > TICK
    assert pods[0].last.rate == pytest.approx(101.25)
    await run


async def test_plan_change_besides_the_rate_is_pushed_on_the_next_tick() -> None:
    pods = fake_pods(2)
    ctl = controller(make_spec(duration="2s"), pods)
    run = asyncio.create_task(ctl.run())
    await wait_until(lambda: len(pods[0].plans) == 1)
    changed_at = now()
    other = [{"name": "u", "url": "http://127.0.0.1:10/"}]
    ctl.update_spec(make_spec(duration="2s", targets=other))
    await wait_until(lambda: pods[1].last.targets[0].name == "u")
    assert pods[1].plans[-1].at - changed_at <= TICK + 1e-9
    assert pods[1].last.rate == pytest.approx(50.0)
    await run


@pytest.mark.parametrize("tolerance", [0.005, 0.05])
async def test_a_moving_curve_stays_within_the_tolerance_of_every_tick_pushes(
    tolerance: float,
) -> None:
    """A ramp 0→1000/s over 20 s, then flat: shares move every tick, by less and less.

    Bound: a pod holds a share within `tolerance` of its exact share at every instant, so
    the total sent is within `tolerance` of the total asked, plus one request per pod from
    the fake pods counting whole requests."""
    spec = make_spec(duration="25s", pattern={"baseTPS": 1000, "rampUp": "20s"})
    exact_pods, lazy_pods = fake_pods(4), fake_pods(4)
    exact = await controller(spec, exact_pods, push_policy=EVERY_TICK).run()
    policy = PushPolicy(tolerance=tolerance)
    lazy = await controller(spec, lazy_pods, push_policy=policy).run()
    assert lazy.target_requests == pytest.approx(exact.target_requests, rel=1e-9)
    assert exact.requests_total == pytest.approx(exact.target_requests, abs=len(exact_pods))
    bound = tolerance * lazy.target_requests + len(lazy_pods)
    assert abs(lazy.requests_total - lazy.target_requests) <= bound
    assert lazy.controller.pushes < exact.controller.pushes
    # Pods lag a rising ramp by less than the tolerance: sent is at most what every-tick
    # pushes send. At 0.5 % the ramp (5/s per tick, at most 1000/s) moves beyond it every
    # tick, so nothing is lost; at 5 % shares are held for several ticks and some is.
    assert lazy.requests_total <= exact.requests_total
    assert (lazy.requests_total < exact.requests_total) == (tolerance > 0.005)


async def test_lease_is_renewed_in_time_when_a_renewal_fails() -> None:
    """A renewal that fails is retried on the next tick; the pod never goes near its lease."""
    pods = fake_pods(2)
    ctl = controller(make_spec(duration="4s", pattern={"baseTPS": 100}), pods)
    run = asyncio.create_task(ctl.run())
    await wait_until(lambda: len(pods[0].plans) == 2)
    pods[0].fail_status = 503  # the next two renewal tries fail
    failed_from = now()
    await wait_until(lambda: ctl.live().push_errors == 2)
    pods[0].fail_status = None
    await wait_until(lambda: len(pods[0].plans) == 3)
    late = pods[0].plans[-1].at - pods[0].plans[-2].at
    # Due at 0.5 s, failed at 0.5 and 0.6 s, landed at 0.7 s: retried every tick.
    assert late == pytest.approx(RENEW + 2 * TICK)
    assert pods[0].plans[-1].at - failed_from <= RENEW + 2 * TICK + 1e-9
    summary = await run
    worst = max(max(gaps(p)) for p in pods)
    assert worst < LEASE / 2, "a lease is renewed long before it runs out"
    assert all(p.ready for p in summary.pods), "two failures in a row do not mark it unready"
    assert math.isclose(max(gaps(pods[1])), RENEW)


async def test_a_hundred_pods_renew_a_fifth_per_tick() -> None:
    """The burst a flat curve costs: after the first round, at most ceil(100 / 5) pushes per
    tick (pushing all 100 on one tick held the controller's loop ~15 ms)."""
    pods = fake_pods(100)
    summary = await controller(make_spec(duration="5s", pattern={"baseTPS": 1000}), pods).run()
    per_tick: dict[int, int] = {}
    for pod in pods:
        for received in pod.plans[1:]:
            tick = round(received.at / TICK)
            per_tick[tick] = per_tick.get(tick, 0) + 1
    assert max(per_tick.values()) == 20
    # Every pod is renewed every 0.5 s: 5 s of 100 pods is ~1,000 pushes, not 5,000.
    assert 1000 <= summary.controller.pushes <= 1100
    assert all(p.last.rate == 10.0 for p in pods)

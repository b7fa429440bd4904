"""The whole engine: clamping, ramp, determinism (live, offline, any order, restart), cost."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kar98k.pattern import PatternEngine, expected_requests, row_count
from kar98k.spec import load_manifest
from kit.patterns import MONDAY, make_engine

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "loadtest.yaml"


def busy_engine(**kw: object) -> PatternEngine:
    """Everything on: schedule, spikes, spring noise, ramp, floor and ceiling."""
    pattern = load_manifest(EXAMPLE).spec.pattern
    return PatternEngine(pattern, seed=kw.get("seed", 42), start=MONDAY)  # type: ignore[arg-type]


def test_rate_is_clamped_to_the_ceiling() -> None:
    engine = make_engine(maxTPS=150, schedule=[{"multiplier": 3}])
    assert engine.at(10).rate == 150
    assert engine.at(10).schedule == 3


def test_default_ceiling_is_ten_times_base() -> None:
    engine = make_engine(schedule=[{"multiplier": 50}])
    assert engine.at(1).rate == 1000


def test_floor_applies_only_after_the_ramp() -> None:
    engine = make_engine(minTPS=20, rampUp="60s", schedule=[{"multiplier": 0}])
    assert engine.at(0).rate == 0.0
    assert engine.at(30).rate == 0.0  # still ramping: no floor, so the ramp starts at 0
    assert engine.at(60).rate == 20
    assert engine.at(3600).rate == 20


def test_ramp_is_linear_from_zero() -> None:
    engine = make_engine(rampUp="100s")
    assert engine.at(0).rate == 0.0
    assert engine.at(25).rate == pytest.approx(25.0)
    assert engine.at(50).ramp == pytest.approx(0.5)
    assert engine.at(100).rate == 100.0
    assert engine.at(5000).ramp == 1.0


def test_ramp_applies_under_spikes_and_noise() -> None:
    engine = busy_engine()
    ramp_up = engine.pattern.ramp_up
    for point in engine.series(ramp_up, 1.0):
        assert point.ramp == pytest.approx(point.elapsed / ramp_up)
        assert point.rate <= engine.pattern.base_tps * point.ramp * 3.0 * 1.1 + 1e-9


def test_factors_multiply() -> None:
    engine = busy_engine()
    for point in engine.series(3600, 7.0):
        raw = 200 * point.ramp * point.schedule * point.spike * point.noise
        if point.ramp >= 1:
            raw = max(raw, 20)
        assert point.rate == pytest.approx(min(raw, 2000))


def test_live_offline_and_out_of_order_reads_agree() -> None:
    times = [k * 0.1 for k in range(36_000)]  # one hour on the controller's 100 ms tick
    live = busy_engine()
    stepped = [live.at(t) for t in times]
    offline = list(busy_engine().series(3600, 0.1))
    assert stepped == offline
    shuffled = busy_engine()
    order = list(range(len(times)))
    random.Random(5).shuffle(order)
    by_index = {i: shuffled.at(times[i]) for i in order}
    assert [by_index[i] for i in range(len(times))] == stepped
    # Reading again changes nothing: no state advances on a read.
    assert [live.at(t) for t in times[:500]] == stepped[:500]


def test_restart_at_t0_continues_exactly() -> None:
    t0 = 2345.6
    uninterrupted = busy_engine()
    for k in range(23_456):  # a controller ticking every 100 ms up to t0
        uninterrupted.at(k * 0.1)
    restarted = busy_engine()  # a new controller process whose first read is at t0
    after = [restarted.at(t0 + k * 0.1) for k in range(4_000)]
    assert after == [uninterrupted.at(t0 + k * 0.1) for k in range(4_000)]
    assert any(p.spike_active for p in after) and len({p.noise for p in after}) > 100


def test_restart_far_into_a_long_run() -> None:
    t0 = 5 * 86_400 + 0.3
    late = busy_engine()
    first = [late.at(t0 + k) for k in range(600)]
    early = busy_engine()
    for t in range(0, int(t0), 3600):
        early.at(float(t))
    assert first == [early.at(t0 + k) for k in range(600)]


def test_same_seed_same_curve_other_seed_other_curve() -> None:
    one = [p.rate for p in busy_engine(seed=1).series(1800, 1.0)]
    assert one == [p.rate for p in busy_engine(seed=1).series(1800, 1.0)]
    assert one != [p.rate for p in busy_engine(seed=2).series(1800, 1.0)]


@pytest.mark.slow
def test_a_week_at_one_second_is_cheap() -> None:
    engine = busy_engine()
    began = time.perf_counter()
    count = 0
    peak = 0.0
    for point in engine.series(7 * 86_400, 1.0):
        count += 1
        peak = max(peak, point.rate)
    elapsed = time.perf_counter() - began
    print(f"7 days at 1 s: {count} points in {elapsed:.2f} s")
    assert count == 604_800
    assert peak <= 2000
    assert elapsed < 60


def test_series_has_one_point_per_step() -> None:
    assert row_count(3600, 1.0) == 3600
    assert row_count(1.0, 0.1) == 10
    assert row_count(0.95, 0.1) == 9
    points = list(make_engine().series(10, 2.5))
    assert [p.elapsed for p in points] == [0.0, 2.5, 5.0, 7.5]
    with pytest.raises(ValueError):
        row_count(10, 0)


def test_expected_requests_integrates_the_rate() -> None:
    flat = make_engine()
    assert expected_requests(flat, 0, 10) == pytest.approx(1000.0)
    assert expected_requests(flat, 5, 5.25) == pytest.approx(25.0)
    assert expected_requests(flat, 10, 0) == 0.0
    ramped = make_engine(rampUp="10s")
    # Left Riemann sum of 100·t/10 at 0.1 s: 100·Σ_{i<100} (i/100)·0.1 = 495.
    assert expected_requests(ramped, 0, 10) == pytest.approx(495.0)
    assert expected_requests(ramped, 0, 10, step=0.001) == pytest.approx(500.0, abs=0.1)


def test_start_must_be_timezone_aware_and_negative_time_reads_as_zero() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_engine(start=datetime(2026, 1, 5))  # naive on purpose
    engine = make_engine(start=datetime(2026, 1, 5, 1, tzinfo=UTC), rampUp="10s")
    assert engine.at(-5).rate == 0.0 and engine.at(-5).elapsed == 0.0

"""P(t): spike timing statistics against the clamped exponential, and the spike shape."""

from __future__ import annotations

import itertools
import math

import pytest
from kar98k.pattern.spikes import RandomSpikes, SpikeShape
from kit.patterns import make_engine, make_pattern

N_GAPS = 20_000


def clamped_exponential_moment(k: int, mean: float, low: float, high: float) -> float:
    """E[G^k] for G = clamp(X, low, high), X ~ Exp(mean).

    E[G^k] = low^k·P(X < low) + ∫_low^high x^k e^(-x/mean)/mean dx + high^k·P(X > high), and for
    integer k the middle term is mean^k·k!·[Q(α) - Q(β)] with α = low/mean, β = high/mean and
    Q(z) = e^(-z)·Σ_{i=0..k} z^i/i! (the regularised upper incomplete gamma function Γ(k+1, z)/k!).
    """
    alpha, beta = low / mean, high / mean

    def q(z: float) -> float:
        if math.isinf(z):
            return 0.0
        return math.exp(-z) * sum(z**i / math.factorial(i) for i in range(k + 1))

    tail = 0.0 if math.isinf(high) else high**k * math.exp(-beta)
    return (
        low**k * (1 - math.exp(-alpha)) + mean**k * math.factorial(k) * (q(alpha) - q(beta)) + tail
    )


def gaps(spikes: RandomSpikes, n: int) -> list[float]:
    return [spikes.gap(k) for k in range(n)]


@pytest.mark.parametrize(
    ("mean", "low", "high", "seed"),
    [(60.0, 0.0, math.inf, 1), (480.0, 120.0, 900.0, 42), (30.0, 20.0, 40.0, 9)],
)
def test_gap_mean_and_spread_match_the_clamped_exponential(
    mean: float, low: float, high: float, seed: int
) -> None:
    spec = make_pattern(
        spikes={
            "enabled": True,
            "meanInterval": f"{mean}s",
            "minInterval": f"{low}s",
            **({} if math.isinf(high) else {"maxInterval": f"{high}s"}),
        }
    ).spikes
    sample = gaps(RandomSpikes(spec, seed), N_GAPS)
    assert min(sample) >= low and max(sample) <= high

    # Gaps are iid (counter-based draws), so by the CLT the sample mean has standard error
    # sqrt(Var G / n), and the sample variance has standard error sqrt((μ4 - σ⁴) / n) with μ4
    # the 4th central moment, all from the raw moments E[G^k] above. 4 standard errors: a
    # correct engine fails with probability < 1e-4 (and the seeds are fixed).
    m1, m2, m3, m4 = (clamped_exponential_moment(k, mean, low, high) for k in (1, 2, 3, 4))
    var = m2 - m1**2
    mu4 = m4 - 4 * m3 * m1 + 6 * m2 * m1**2 - 3 * m1**4
    n = len(sample)
    sample_mean = math.fsum(sample) / n
    sample_var = math.fsum((g - sample_mean) ** 2 for g in sample) / (n - 1)
    assert abs(sample_mean - m1) < 4 * math.sqrt(var / n)
    assert abs(sample_var - var) < 4 * math.sqrt((mu4 - var**2) / n)

    # The share clamped to minInterval is Binomial(n, p) / n with p = P(X < low).
    if low > 0:
        p = 1 - math.exp(-low / mean)
        share = sum(1 for g in sample if g == low) / n
        assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_moment_formula_reduces_to_the_plain_exponential() -> None:
    # Sanity check of the derivation: no clamping gives E[X] = μ and E[X²] = 2μ².
    assert clamped_exponential_moment(1, 5.0, 0.0, math.inf) == pytest.approx(5.0)
    assert clamped_exponential_moment(2, 5.0, 0.0, math.inf) == pytest.approx(50.0)


def test_lambda_is_the_rate_of_the_exponential() -> None:
    spec = make_pattern(spikes={"enabled": True, "lambda": 0.02}).spikes
    assert spec.mean_gap == pytest.approx(50.0)


def test_gaps_count_from_the_end_of_the_previous_spike() -> None:
    spec = make_pattern(
        spikes={
            "enabled": True,
            "meanInterval": "5m",
            "rampUp": "10s",
            "duration": "30s",
            "rampDown": "20s",
        }
    ).spikes
    spikes = RandomSpikes(spec, 3)
    starts = spikes.starts_until(86_400)
    assert starts[0] == spikes.gap(0)  # the first gap counts from t = 0
    for k in range(1, len(starts)):
        assert starts[k] == pytest.approx(starts[k - 1] + 60.0 + spikes.gap(k), abs=1e-6)


def test_spike_shape_rises_holds_and_decays_without_jumps() -> None:
    shape = SpikeShape(rise=10.0, hold=30.0, fall=20.0)
    factor = 3.0
    assert shape.multiplier(0.0, factor) == 1.0
    assert shape.multiplier(5.0, factor) == pytest.approx(2.0)
    assert shape.multiplier(10.0, factor) == factor
    assert shape.multiplier(39.999, factor) == factor
    assert shape.multiplier(50.0, factor) == pytest.approx(2.0)
    assert shape.multiplier(60.0, factor) == 1.0
    # Continuity: over a fine grid, no step bigger than the steepest slope allows.
    grid = [i * 0.01 for i in range(-100, 7000)]
    values = [shape.multiplier(t, factor) for t in grid]
    slope = (factor - 1) / min(shape.rise, shape.fall)
    assert max(abs(b - a) for a, b in itertools.pairwise(values)) <= slope * 0.01 + 1e-9
    assert min(values) >= 1.0


def test_engine_spikes_reach_the_factor_and_mark_activity() -> None:
    engine = make_engine(
        spikes={"enabled": True, "meanInterval": "2m", "factor": 4, "maxInterval": "5m"}
    )
    points = list(engine.series(1800, 0.5))
    assert max(p.spike for p in points) == 4.0
    for p in points:
        assert p.spike >= 1.0
        if p.spike > 1.0:
            assert p.spike_active
        if not p.spike_active:
            assert p.spike == 1.0


def test_disabled_spikes_never_fire() -> None:
    engine = make_engine(spikes={"enabled": False, "meanInterval": "1s"})
    assert all(not p.spike_active and p.spike == 1.0 for p in engine.series(600, 1.0))


def test_manual_spike_has_the_pattern_shape_and_combines_by_max() -> None:
    engine = make_engine(
        spikes={
            "enabled": True,
            "meanInterval": "1s",
            "maxInterval": "1s",
            "minInterval": "1s",
            "factor": 2,
            "rampUp": "10s",
            "duration": "1000s",
            "rampDown": "10s",
        }
    )
    # A random spike holds ×2 over [11 s, 1011 s); a manual ×5 spike starts at 100 s.
    assert engine.at(500).spike == 2.0
    engine.add_manual_spike(100.0, 5.0, 60.0)
    assert engine.at(105).spike == pytest.approx(3.0)  # halfway up its 10 s rise: max(2, 3)
    assert engine.at(102).spike == 2.0  # the random spike is higher early in the rise
    assert engine.at(150).spike == 5.0
    assert engine.at(175).spike == pytest.approx(3.0)  # halfway down its 10 s decay
    assert engine.at(500).spike == 2.0


def test_manual_spike_without_random_spikes() -> None:
    engine = make_engine()
    engine.add_manual_spike(30.0, 3.0, 10.0)
    assert not engine.at(29.9).spike_active
    assert engine.at(30.0).spike_active and engine.at(30.0).spike == 1.0
    assert engine.at(37.0).spike == 3.0  # default pattern rise is 5 s
    assert engine.at(60.0).spike == 1.0


@pytest.mark.parametrize(("at", "factor", "duration"), [(-1, 2, 1), (0, 0.5, 1), (0, 2, -1)])
def test_manual_spike_rejects_bad_arguments(at: float, factor: float, duration: float) -> None:
    with pytest.raises(ValueError, match="manual spike"):
        make_engine().add_manual_spike(at, factor, duration)

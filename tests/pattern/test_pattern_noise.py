"""N(t): bounds, mean and spread of spring and perlin noise, and the block construction."""

from __future__ import annotations

import itertools
import math

import pytest
from kar98k.pattern.perlin import GAIN, WEIGHTS, PerlinNoise
from kar98k.pattern.spring import MODEL, SQUASH, STEP, SpringNoise
from kit.patterns import make_engine


def gaussian_expectation(f: object, points: int = 4001, reach: float = 10.0) -> float:
    """E[f(Z)], Z ~ N(0, 1), by Simpson's rule over [-10, 10] (the tails beyond weigh < 1e-22)."""
    assert callable(f)
    h = 2 * reach / (points - 1)
    total = 0.0
    for i in range(points):
        z = -reach + i * h
        weight = 1 if i in (0, points - 1) else (4 if i % 2 else 2)
        total += weight * f(z) * math.exp(-z * z / 2)
    return total * h / 3 / math.sqrt(2 * math.pi)


def autocorrelation_sum() -> float:
    """1 + 2·Σ_j |ρ_j| for the spring's x, from its model: Cov(s_(k+j), s_k) = A^j·Σ.

    Σ is the stationary covariance Σ_i (A^i b)(A^i b)ᵀ; ρ_j = (A^j Σ)_xx / Σ_xx.
    """
    a00, a01, a10, a11 = MODEL.a
    x, v = MODEL.b
    sxx = sxv = 0.0
    for _ in range(20 * MODEL.window):
        sxx += x * x
        sxv += x * v
        x, v = a00 * x + a01 * v, a10 * x + a11 * v
    # Row x of A^j applied to Σ's first column (Σ_xx, Σ_vx) gives (A^j Σ)_xx.
    px, pv = 1.0, 0.0
    total = 1.0
    for _ in range(20 * MODEL.window):
        px, pv = px * a00 + pv * a10, px * a01 + pv * a11
        total += 2 * abs(px * sxx + pv * sxv) / sxx
    return total


def test_spring_stays_within_amplitude_even_at_full_amplitude() -> None:
    noise = SpringNoise(seed=5, amplitude=1.0)
    values = [noise.at(k * STEP) for k in range(200_000)]
    assert all(0.0 < n < 2.0 for n in values)
    engine = make_engine(noise={"enabled": True, "amplitude": 0.25})
    for point in engine.series(3600, 0.7):
        assert abs(point.noise - 1) <= 0.25


def test_spring_mean_and_spread_match_the_model() -> None:
    amplitude = 0.2
    noise = SpringNoise(seed=11, amplitude=amplitude)
    n = 400_000
    first = MODEL.window  # skip the start from rest (block 0) so the process is stationary
    sample = [noise.at((first + k) * STEP) - 1 for k in range(n)]

    # x is a linear filter of Gaussian kicks, so z = x/σx ~ N(0, 1) and N - 1 = a·tanh(z/2).
    # E[N - 1] = 0 (odd function of a symmetric variable); E[(N - 1)²] = a²·E[tanh²(Z/2)].
    second = amplitude**2 * gaussian_expectation(lambda z: math.tanh(SQUASH * z) ** 2)
    fourth = amplitude**4 * gaussian_expectation(lambda z: math.tanh(SQUASH * z) ** 4)
    # Steps are correlated. For jointly Gaussian (Z_i, Z_j) with correlation ρ, any f has
    # |Corr(f(Z_i), f(Z_j))| <= |ρ| (Gebelein–Lancaster maximal correlation), so the variance of
    # the mean of f over n steps is at most Var(f)/n · (1 + 2Σ|ρ_j|). 4 of those standard errors.
    inflation = autocorrelation_sum()
    mean = math.fsum(sample) / n
    assert abs(mean) < 4 * math.sqrt(second * inflation / n)
    mean_square = math.fsum(d * d for d in sample) / n
    assert abs(mean_square - second) < 4 * math.sqrt((fourth - second**2) * inflation / n)
    # And the spread is substantial: the noise is not a flat line.
    assert math.sqrt(second) > 0.4 * amplitude


def test_spring_unit_deviation_is_standard_normal() -> None:
    noise = SpringNoise(seed=2, amplitude=0.1)
    n = 300_000
    z = [noise.deviation(MODEL.window + k) for k in range(n)]
    inflation = autocorrelation_sum()
    # E[z] = 0, E[z²] = 1, Var(z²) = 2 (Gaussian); correlated-sample bound as above.
    assert abs(math.fsum(z) / n) < 4 * math.sqrt(inflation / n)
    assert abs(math.fsum(v * v for v in z) / n - 1) < 4 * math.sqrt(2 * inflation / n)


def test_spring_blocks_equal_the_uninterrupted_recursion() -> None:
    """The block construction drops only influence below 1e-12 of the noise scale."""
    noise = SpringNoise(seed=8, amplitude=0.1)
    a00, a01, a10, a11 = MODEL.a
    bx, bv = MODEL.b
    x = v = 0.0
    worst = 0.0
    kicks = [kick for block in range(6) for kick in noise.kicks(block)]
    for k, kick in enumerate(kicks):
        x, v = a00 * x + a01 * v + bx * kick, a10 * x + a11 * v + bv * kick
        worst = max(worst, abs(x / MODEL.sigma_x - noise.deviation(k)))
    assert worst < 1e-10


def test_spring_is_stepped_on_the_100ms_clock() -> None:
    noise = SpringNoise(seed=4, amplitude=0.3)
    for k in (0, 1, 17, 5000):
        held = {noise.at(k * STEP + d) for d in (0.0, 0.03, 0.0999)}
        assert len(held) == 1
    assert noise.at(0.3) == noise.at(3 * STEP) != noise.at(0.2999)


def test_perlin_bounds_mean_and_smoothness() -> None:
    amplitude = 0.3
    noise = PerlinNoise(seed=21, amplitude=amplitude)
    # Points 60 s apart use disjoint lattice gradients in every octave (octave o's lattice
    # spacing is 30/2^o s), so these samples are independent; the mean is 0 by the symmetry
    # g -> -g of the gradients and the oddness of tanh. 4 standard errors of an iid mean.
    n = 20_000
    sample = [noise.at(60.0 * i + 7.3) - 1 for i in range(n)]
    mean = math.fsum(sample) / n
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in sample) / (n - 1))
    assert abs(mean) < 4 * sd / math.sqrt(n)
    assert all(abs(d) < amplitude for d in sample)
    assert sd > 0.25 * amplitude

    # Smoothness: one octave is g0·f + fade(f)·(g1·(f-1) - g0·f) with |g| <= 1, so its slope in
    # f is at most 1 + max fade'·1 + 1·2 = 1 + 1.875 + 2; per second multiply by 2^o/30. The sum
    # is divided by 0.875 and tanh has slope <= 1, so |dN/dt| <= a·GAIN·Σ w_o·4.875·2^o/30/0.875.
    slope = amplitude * GAIN * sum(w * 4.875 * 2**o / 30 for o, w in enumerate(WEIGHTS)) / 0.875
    fine = [noise.at(i * 0.01) for i in range(60_000)]
    jumps = max(abs(b - a) for a, b in itertools.pairwise(fine))
    assert jumps <= slope * 0.01


def test_perlin_engine_is_bounded() -> None:
    engine = make_engine(noise={"enabled": True, "type": "perlin", "amplitude": 0.5})
    values = [p.noise for p in engine.series(7200, 0.9)]
    assert all(0.5 <= v <= 1.5 for v in values)
    assert max(values) - min(values) > 0.3


@pytest.mark.parametrize("kind", ["spring", "perlin"])
def test_noise_depends_on_the_seed(kind: str) -> None:
    one = make_engine(seed=1, noise={"enabled": True, "type": kind})
    two = make_engine(seed=2, noise={"enabled": True, "type": kind})
    assert [one.at(t).noise for t in range(50, 60)] != [two.at(t).noise for t in range(50, 60)]


def test_disabled_or_zero_noise_is_exactly_one() -> None:
    for noise in ({"enabled": False, "amplitude": 0.5}, {"enabled": True, "amplitude": 0}):
        engine = make_engine(noise=noise)
        assert {p.noise for p in engine.series(100, 0.3)} == {1.0}

"""Count laws and the Binomial-Poisson distance in ``simlab.theory.counts``, checked exactly."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from simlab.theory.counts import (
    barbour_hall_bounds,
    binomial_pmf,
    le_cam_bound,
    poisson_pmf,
    tv_binomial_poisson,
)


def brute_force_tv(M: int, lam: float, k_stop: int | None = None) -> float:
    """TV by a direct sum in 60-digit arithmetic.

    Sums ``|Bin - Pois|`` over k = 0..min(M, k_stop) and adds the Poisson mass beyond M; with a
    ``k_stop`` below M, both laws' masses past it (below 1e-60 for the values used here) are left
    out.
    """
    with mpmath.workdps(60):
        lam_m = mpmath.mpf(lam)
        q = lam_m / M
        top = M if k_stop is None else min(M, k_stop)
        total = mpmath.mpf(0)
        pois_sum = mpmath.mpf(0)
        for k in range(top + 1):
            b = mpmath.binomial(M, k) * q**k * (1 - q) ** (M - k)
            p = mpmath.exp(-lam_m) * lam_m**k / mpmath.factorial(k)
            total += abs(b - p)
            pois_sum += p
        if top == M:
            total += 1 - pois_sum
        return float(total / 2)


def test_pmfs_match_their_formulas():
    k = np.arange(0, 13)
    expected_bin = [math.comb(12, int(j)) * 0.3**j * 0.7 ** (12 - j) for j in k]
    np.testing.assert_allclose(binomial_pmf(k, 12, 0.3), expected_bin, rtol=1e-13)
    expected_pois = [math.exp(-2.5) * 2.5**j / math.factorial(int(j)) for j in k]
    np.testing.assert_allclose(poisson_pmf(k, 2.5), expected_pois, rtol=1e-13)
    assert binomial_pmf(13, 12, 0.3) == 0.0


@pytest.mark.parametrize(
    ("M", "lam"),
    [
        (1, 0.5),
        (2, 1.0),
        (3, 3.0),
        (4, 3.0),
        (5, 0.5),
        (10, 3.0),
        (10, 9.5),
        (30, 3.0),
        (100, 7.0),
        (1000, 3.0),
        (300, 0.01),
    ],
)
def test_tv_matches_a_direct_sum(M, lam):
    assert tv_binomial_poisson(M, lam) == pytest.approx(brute_force_tv(M, lam), rel=1e-12, abs=0)


@pytest.mark.parametrize(
    ("M", "lam"), [(10**5, 3.0), (10**6, 3.0), (10**6, 0.2), (10**5, 30.0), (10**8, 3.0)]
)
def test_tv_is_accurate_at_large_M(M, lam):
    # TV is about 1e-6 here while the pmfs are of order 0.1: subtracting float pmfs keeps only
    # 8 to 10 correct digits (so does log1p(-q) + q without its series); the log-ratio form keeps
    # near-full precision.
    k_stop = int(lam + 40 * math.sqrt(lam) + 60)
    assert tv_binomial_poisson(M, lam) == pytest.approx(
        brute_force_tv(M, lam, k_stop), rel=1e-13, abs=0
    )


def test_tv_decays_like_one_over_M():
    # For fixed lam, M * TV_M converges: consecutive values agree more and more closely.
    scaled = [M * tv_binomial_poisson(M, 3.0) for M in (10**3, 10**4, 10**5, 10**6)]
    gaps = np.abs(np.diff(scaled))
    assert np.all(gaps[1:] < gaps[:-1] / 5)


def test_bounds_bracket_the_distance():
    for lam in (0.05, 0.5, 1.0, 3.0, 10.0, 40.0):
        for M in (math.ceil(lam), math.ceil(lam) + 1, 10, 30, 100, 1000, 10**4, 10**5, 10**6):
            if M < lam:
                continue
            tv = tv_binomial_poisson(M, lam)
            lower, upper = barbour_hall_bounds(M, lam)
            # At M = 1 the upper bound is attained: TV(Bernoulli(p), Poisson(p)) = p (1 - e^-p).
            assert lower <= tv <= upper * (1 + 1e-12), (M, lam, lower, tv, upper)
            assert tv <= le_cam_bound(M, lam)


def test_bound_formulas():
    assert le_cam_bound(100, 3.0) == pytest.approx(0.09)
    lower, upper = barbour_hall_bounds(100, 3.0)
    assert lower == pytest.approx(9 / 100 / 32 / 3)
    assert upper == pytest.approx((1 - math.exp(-3)) * 3 / 100)
    lower, _ = barbour_hall_bounds(100, 0.5)
    assert lower == pytest.approx(0.25 / 100 / 32)


@pytest.mark.parametrize(("M", "lam"), [(0, 1.0), (10, 0.0), (10, -1.0), (10, 11.0), (10.5, 3.0)])
def test_bad_input_is_rejected(M, lam):
    with pytest.raises(ValueError):
        tv_binomial_poisson(M, lam)

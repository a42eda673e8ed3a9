"""Pooling, goodness-of-fit statistics, TV noise floor and resolution in ``simlab.verdicts.gof``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simlab.verdicts.gof import (
    GofResult,
    chi_square_gof,
    empirical_tv_noise_floor,
    empirical_tv_null_law,
    gof_resolution,
    pool_bins,
    with_tail_bin,
)


def shapes() -> list[np.ndarray]:
    """Expected-count vectors of many shapes: skewed, flat, bimodal, with zeros and spikes."""
    rng = np.random.default_rng(0)
    k = np.arange(60)
    out = [
        1000 * stats.poisson.pmf(k, 3.0),
        200 * stats.binom.pmf(np.arange(41), 40, 0.9),
        np.full(50, 0.7),
        np.full(8, 2.0),
        500 * (stats.poisson.pmf(k, 5) + stats.poisson.pmf(k, 40)) / 2,
        np.array([0.0, 0.0, 30.0, 0.0, 0.0, 1.0, 0.0, 30.0, 0.0]),
        np.array([6.0]),
        np.array([3.0, 3.0]),
    ]
    out += [rng.exponential(3.0, size=rng.integers(1, 80)) for _ in range(40)]
    out += [rng.exponential(1.0, size=30) * (rng.random(30) < 0.5) for _ in range(10)]
    return out


# --------------------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("expected", shapes())
def test_pooling_rule(expected):
    labels = pool_bins(expected, 5.0)
    assert labels.shape == expected.shape and labels.dtype == np.int64
    # Adjacent only: labels start at 0 and go up by 0 or 1 from bin to bin (contiguous groups).
    assert labels[0] == 0
    assert set(np.diff(labels).tolist()) <= {0, 1}
    pooled = np.bincount(labels, weights=expected)
    assert pooled.sum() == pytest.approx(expected.sum())  # total preserved
    if expected.sum() >= 5.0:
        assert np.all(pooled >= 5.0 - 1e-12), pooled
    else:
        assert labels.max() == 0


def test_pooling_merges_tails_inward_and_keeps_the_bulk():
    expected = 1000 * stats.poisson.pmf(
        np.arange(30), 3.0
    )  # 49.8, 149, 224, 224, 168, ... 8.1, 2.7
    labels = pool_bins(expected)
    # Every bin from 0 to 7 expects >= 5 and stays alone; 8 and beyond (8.1 + 4.1) form one bin.
    assert labels.tolist() == list(range(8)) + [8] * 22


def test_pooling_merges_a_light_left_tail():
    expected = np.array([0.5, 1.0, 2.0, 3.0, 10.0, 20.0, 10.0, 3.0, 1.0])
    # Left: 0.5 + 1 + 2 + 3 reaches 5; right: 1 + 3 falls short, so 10 joins them.
    assert pool_bins(expected).tolist() == [0, 0, 0, 0, 1, 2, 3, 3, 3]


def test_pooling_short_total_is_one_bin():
    assert pool_bins(np.array([1.0, 2.0, 1.0])).tolist() == [0, 0, 0]
    assert pool_bins(np.array([])).size == 0


# --------------------------------------------------------------------------------------------------
# the test statistic
# --------------------------------------------------------------------------------------------------
def binomial_sample(
    n: int, seed: int, M: int = 12, q: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    pmf = stats.binom.pmf(np.arange(M + 1), M, q)
    counts = np.random.default_rng(seed).multinomial(n, pmf / pmf.sum())
    return counts, pmf


@pytest.mark.parametrize("method", ["chi2", "g"])
def test_statistic_matches_scipy_on_pooled_bins(method):
    counts, pmf = binomial_sample(3000, seed=1)
    result = chi_square_gof(counts, pmf, method=method)
    labels = pool_bins(3000 * pmf)
    obs = np.bincount(labels, weights=counts)
    exp = np.bincount(labels, weights=3000 * pmf)
    lambda_ = "pearson" if method == "chi2" else "log-likelihood"
    ref = stats.power_divergence(obs, exp, lambda_=lambda_)
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert result.dof == obs.size - 1 and result.n_bins == obs.size
    assert result.n == 3000 and result.method == method
    if method == "chi2":
        assert result.statistic == pytest.approx(stats.chisquare(obs, exp).statistic, rel=1e-12)


def test_tv_is_over_unpooled_bins():
    counts, pmf = binomial_sample(500, seed=2)
    result = chi_square_gof(counts, pmf)
    assert result.tv == pytest.approx(0.5 * np.abs(counts / 500 - pmf).sum(), rel=1e-12)


def test_tail_bin_is_added_for_a_truncated_pmf():
    lam = 4.0
    pmf = stats.poisson.pmf(np.arange(8), lam)  # P(K > 7) = 0.051 is left over
    rng = np.random.default_rng(3)
    draws = rng.poisson(lam, size=2000)  # test data for the gof machinery
    counts = np.bincount(np.minimum(draws, 8), minlength=9)  # last entry: everything beyond 7
    implicit = chi_square_gof(counts, pmf)
    explicit = chi_square_gof(counts, np.append(pmf, stats.poisson.sf(7, lam)))
    for field in ("statistic", "p_value", "tv"):
        assert getattr(implicit, field) == pytest.approx(getattr(explicit, field), rel=1e-9)
    assert (implicit.dof, implicit.n, implicit.n_bins) == (
        explicit.dof,
        explicit.n,
        explicit.n_bins,
    )
    assert with_tail_bin(pmf).sum() == pytest.approx(1.0)
    # Longer observed arrays fold into the tail bin.
    longer = np.bincount(draws, minlength=30)
    assert chi_square_gof(longer, pmf) == implicit


def test_impossible_observation_rejects():
    pmf = stats.binom.pmf(np.arange(11), 10, 0.5)  # sums to 1: no tail
    counts = np.append(np.round(1000 * pmf), 1)  # one observation at k = 11
    result = chi_square_gof(counts, pmf)
    assert result.p_value == 0.0 and math.isinf(result.statistic)


def test_a_pmf_that_does_not_sum_to_one_is_not_rescued():
    counts, pmf = binomial_sample(20_000, seed=4)
    assert chi_square_gof(counts, pmf).p_value > 1e-3
    assert chi_square_gof(counts, 1.05 * pmf).p_value < 1e-6


def test_size_and_power():
    # Under the model, rejections at 5% happen at about 5% (within 5 SE over 400 replicates);
    # a wrong model (q off by 0.02) is rejected at n = 20000.
    pmf = stats.binom.pmf(np.arange(13), 12, 0.35)
    rng = np.random.default_rng(5)
    p_values = [
        chi_square_gof(rng.multinomial(2000, pmf / pmf.sum()), pmf).p_value for _ in range(400)
    ]
    rate = np.mean(np.array(p_values) < 0.05)
    assert abs(rate - 0.05) < 5 * math.sqrt(0.05 * 0.95 / 400)
    wrong = stats.binom.pmf(np.arange(13), 12, 0.37)
    counts = rng.multinomial(20_000, wrong / wrong.sum())
    assert chi_square_gof(counts, pmf).p_value < 1e-6
    assert chi_square_gof(counts, pmf, method="g").p_value < 1e-6


def test_result_is_a_frozen_record():
    result = chi_square_gof(*binomial_sample(100, seed=6))
    assert isinstance(result, GofResult)
    with pytest.raises(AttributeError):
        result.statistic = 0.0


def test_bad_input_is_rejected():
    with pytest.raises(ValueError):
        chi_square_gof([1, 2, 3], [0.2, -0.1, 0.9])
    with pytest.raises(ValueError):
        chi_square_gof([0, 0], [0.5, 0.5])
    with pytest.raises(ValueError):
        chi_square_gof([1, 2], [0.5, 0.5], method="fisher")


# --------------------------------------------------------------------------------------------------
# noise floor and resolution
# --------------------------------------------------------------------------------------------------
def test_noise_floor_exact_formula_against_a_direct_sum():
    # De Moivre's closed form against sum_k |k - n p| Binomial(k; n, p), bin by bin.
    pmf = stats.poisson.pmf(np.arange(12), 2.0)
    n = 37
    direct = 0.0
    for p in with_tail_bin(pmf):
        k = np.arange(n + 1)
        direct += 0.5 * np.sum(np.abs(k / n - p) * stats.binom.pmf(k, n, p))
    assert empirical_tv_noise_floor(pmf, n) == pytest.approx(direct, rel=1e-10)


@pytest.mark.parametrize("n", [50, 2000])
def test_noise_floor_against_simulation(n):
    pmf = stats.poisson.pmf(np.arange(25), 3.0)
    probs = with_tail_bin(pmf)
    rng = np.random.default_rng(7)
    tvs = np.array(
        [
            0.5 * np.abs(rng.multinomial(n, probs / probs.sum()) / n - probs).sum()
            for _ in range(3000)
        ]
    )
    floor = empirical_tv_noise_floor(pmf, n)
    assert abs(tvs.mean() - floor) < 5 * tvs.std(ddof=1) / math.sqrt(tvs.size)
    if n == 2000:
        # The normal approximation agrees when the bins that matter expect many counts.
        normal = empirical_tv_noise_floor(pmf, n, method="normal")
        assert normal == pytest.approx(floor, rel=0.05)


def test_resolution_power_by_simulation():
    """Alternatives at the reported effect size are rejected about 90% of the time."""
    p0 = stats.binom.pmf(np.arange(9), 8, 0.5)
    n, alpha = 4000, 0.001
    w_star = gof_resolution(p0, n, alpha)
    # An alternative with Cohen's w = w_star over the (unpooled = pooled here) bins: tilt p0.
    assert pool_bins(n * p0).max() + 1 == p0.size
    tilt = (np.arange(9) - 3.0) * p0
    tilt -= p0 * tilt.sum() / p0.sum()  # keep total mass 1
    scale = w_star / math.sqrt(np.sum(tilt**2 / p0))
    p1 = p0 + scale * tilt
    assert math.sqrt(np.sum((p1 - p0) ** 2 / p0)) == pytest.approx(w_star)
    rng = np.random.default_rng(8)
    rejected = [
        chi_square_gof(rng.multinomial(n, p1 / p1.sum()), p0).p_value < alpha for _ in range(600)
    ]
    rate = float(np.mean(rejected))
    # 5 SE of a 600-replicate rate, plus 0.03 for the noncentral chi-square approximation.
    assert abs(rate - 0.9) < 5 * math.sqrt(0.09 / 600) + 0.03, rate


def test_resolution_scaling_and_edges():
    p0 = stats.binom.pmf(np.arange(9), 8, 0.5)
    w1 = gof_resolution(p0, 10_000, 1e-3)
    w4 = gof_resolution(p0, 40_000, 1e-3)
    assert w4 == pytest.approx(w1 / 2, rel=1e-6)  # same pooling: w* ~ 1/sqrt(n)
    assert gof_resolution(p0, 10_000, 1e-6) > w1  # stricter level, coarser resolution
    # Non-centrality at w*: the test has exactly the requested power.
    dof = p0.size - 1
    power = stats.ncx2.sf(stats.chi2.isf(1e-3, dof), dof, 10_000 * w1**2)
    assert power == pytest.approx(0.9, abs=1e-8)
    assert gof_resolution(np.array([1.0]), 100, 0.01) == math.inf


def test_tv_null_law_is_centred_on_the_exact_noise_floor_when_the_laws_agree():
    """With truth = reference the population distance is 0 and the bootstrap mean is the expected
    empirical TV, which De Moivre's formula gives exactly: within 4 of its Monte Carlo SEs."""
    p = stats.poisson.pmf(np.arange(25), 3.0)
    law = empirical_tv_null_law(p, p, 5000, np.random.default_rng(1), draws=4000)
    floor = empirical_tv_noise_floor(p, 5000)
    assert law.population == pytest.approx(0.0, abs=1e-12)
    assert abs(law.mean - floor) < 4 * law.sd / math.sqrt(law.draws), (law.mean, floor)
    # below its noise floor the statistic is a sum of folded normals: right-skewed
    assert law.skewness > 4 * math.sqrt(6 / law.draws)


def test_tv_null_law_measures_what_chi_square_gof_reports_on_the_same_bins():
    """Truth given in a histogram's layout (0..kmax, then the overflow) against a reference
    with a tail bin: the population distance is the exact TV, and the bootstrap's statistic is
    chi_square_gof's TV of the same histograms (same generator, same draws)."""
    from simlab.theory.counts import tv_binomial_poisson

    kmax = 10
    k = np.arange(kmax + 1)
    truth = np.append(stats.binom.pmf(k, 10, 0.3), 0.0)  # Binomial(10, 0.3): nothing past 10
    reference = stats.poisson.pmf(k, 3.0)  # the Poisson tail beyond 10 becomes a bin
    law = empirical_tv_null_law(truth, reference, 2000, np.random.default_rng(2), draws=50)
    assert law.population == pytest.approx(tv_binomial_poisson(10, 3.0), rel=1e-12)
    draws = np.random.default_rng(2).multinomial(2000, truth / truth.sum(), size=50)
    tvs = np.array([chi_square_gof(d, reference).tv for d in draws])
    assert law.mean == pytest.approx(tvs.mean(), rel=1e-12)
    assert law.sd == pytest.approx(tvs.std(ddof=1), rel=1e-9)


def test_tv_null_law_rejects_bad_input():
    p = np.array([0.5, 0.5])
    with pytest.raises(ValueError, match="n must be"):
        empirical_tv_null_law(p, p, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="draws"):
        empirical_tv_null_law(p, p, 10, np.random.default_rng(0), draws=2)


def test_noise_floor_survives_subnormal_tail_probabilities():
    """A pmf whose far tail is subnormal (Binomial(1e5, 0.1) out to 40 SDs) once overflowed
    scipy's binomial pmf inside the floor: those bins add nothing the floor can show."""
    p = stats.binom.pmf(np.arange(11_500), 100_000, 0.1)
    assert np.any((p > 0) & (p < 1e-300))
    floor = empirical_tv_noise_floor(p, 1000)
    assert floor == pytest.approx(empirical_tv_noise_floor(np.where(p < 1e-250, 0.0, p), 1000))

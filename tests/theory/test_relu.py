"""ReLU moment formulas against direct numerical integration (no random numbers)."""

import numpy as np
import pytest
from scipy import integrate, stats

from simlab.theory.meanfield import arccos_map
from simlab.theory.relu import (
    dropout_moments,
    relu_cross,
    relu_law,
    relu_mean,
    relu_second,
    std_normal_cdf,
    std_normal_pdf,
)


@pytest.mark.parametrize("mu,s", [(0.0, 1.0), (0.7, 1.3), (-1.2, 0.5)])
def test_moments_against_quadrature(mu, s):
    def moment(k):
        return integrate.quad(lambda z: z**k * stats.norm.pdf(z, mu, s), 0.0, np.inf, epsabs=1e-13)[
            0
        ]

    assert relu_mean(mu, s) == pytest.approx(moment(1), rel=1e-9)
    assert relu_second(mu, s) == pytest.approx(moment(2), rel=1e-9)


def test_course_values_at_the_defaults():
    m = dropout_moments(0.0, np.ones(4), q=0.5, rescale=True)
    assert m.mean_before == pytest.approx(1 / np.sqrt(2 * np.pi))
    assert m.var_before == pytest.approx(0.5 - 1 / (2 * np.pi))
    assert m.var_after == pytest.approx(1 / (2 * 0.5) - 1 / (2 * np.pi))
    assert m.cov_after == 0.0
    plain = dropout_moments(0.0, np.ones(4), q=0.5, rescale=False)
    assert plain.mean_after == pytest.approx(0.5 / np.sqrt(2 * np.pi))
    assert plain.second_after == pytest.approx(0.25)


@pytest.mark.parametrize("mu,rho", [(0.0, 0.3), (0.5, -0.6), (-0.4, 0.9)])
def test_cross_moment_against_2d_quadrature(mu, rho):
    s1, s2 = 1.1, 0.8
    cov = [[s1 * s1, rho * s1 * s2], [rho * s1 * s2, s2 * s2]]
    law = stats.multivariate_normal([mu, mu], cov)
    value = integrate.dblquad(lambda b, a: a * b * law.pdf([a, b]), 0, 12, 0, 12, epsabs=1e-11)[0]
    assert relu_cross(mu, [s1], [s2], [rho])[0] == pytest.approx(value, rel=1e-7)


def test_cross_moment_reduces_to_the_arccos_map():
    rho = np.array([-0.9, 0.0, 0.5, 0.99])
    got = relu_cross(0.0, np.ones(4), np.ones(4), rho) / 0.5
    np.testing.assert_allclose(got, arccos_map(rho), rtol=1e-9)


def test_law_integrates_to_one_and_matches_the_mean():
    mass, density = relu_law(0.3, np.array([1.0, 1.5]), q=0.6, rescale=True)
    total = mass + integrate.quad(density, 0, np.inf)[0]
    mean = integrate.quad(lambda t: t * density(t), 0, np.inf)[0]
    assert total == pytest.approx(1.0, abs=1e-9)
    assert mean == pytest.approx(relu_mean(0.3, np.array([1.0, 1.5])).mean(), rel=1e-8)


def test_the_standard_normal_is_scipy_stats_to_the_bit():
    # the predictions computed them through scipy.stats.norm: the same bits, so no check moved
    x = np.concatenate([np.linspace(-40.0, 40.0, 20001), [np.inf, -np.inf, np.nan, -0.0]])
    np.testing.assert_array_equal(std_normal_pdf(x), stats.norm.pdf(x))
    np.testing.assert_array_equal(std_normal_cdf(x), stats.norm.cdf(x))
    assert std_normal_pdf(0.3) == stats.norm.pdf(0.3)

"""Mergeable statistics must equal NumPy's on the concatenated data, however the data is split."""

import numpy as np
import pytest
from scipy import stats as sps

from simlab.stats import CoMoments, Histogram, Moments


def _split(x, rng, pieces):
    cuts = np.sort(rng.choice(np.arange(1, len(x)), size=pieces - 1, replace=False))
    return np.split(x, cuts)


@pytest.mark.parametrize("pieces", [1, 2, 7, 40])
def test_moments_merge_matches_numpy_on_concatenated_data(pieces):
    rng = np.random.default_rng(3)
    x = rng.exponential(size=(4000, 3)) * [1.0, 10.0, 0.01] + [5.0, -2.0, 1e3]
    acc = None
    for part in _split(x, rng, pieces):
        m = Moments.from_batch(part)
        acc = m if acc is None else acc.merge(m)
    assert acc.n == len(x)
    np.testing.assert_allclose(acc.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(acc.var, x.var(axis=0, ddof=1), rtol=1e-10)
    d = x - x.mean(axis=0)
    np.testing.assert_allclose(acc.m3, (d**3).sum(axis=0), rtol=1e-8)
    np.testing.assert_allclose(acc.m4, (d**4).sum(axis=0), rtol=1e-9)
    np.testing.assert_allclose(acc.excess_kurtosis, sps.kurtosis(x, axis=0, bias=True), rtol=1e-8)


def test_moments_merge_with_empty_and_single_samples():
    x = np.array([[1.0], [2.0], [4.0]])
    acc = Moments.from_batch(x[:0])
    for row in x:
        acc = acc.merge(Moments.from_batch(row[None]))
    np.testing.assert_allclose(acc.mean, [7 / 3])
    np.testing.assert_allclose(acc.var, [np.var(x, ddof=1)])


@pytest.mark.parametrize("pieces", [1, 3, 25])
def test_comoments_merge_matches_numpy_cov(pieces):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3000, 4)) @ rng.standard_normal((4, 4)) + 100.0
    acc = None
    for part in _split(x, rng, pieces):
        c = CoMoments.from_batch(part)
        acc = c if acc is None else acc.merge(c)
    np.testing.assert_allclose(acc.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(acc.cov, np.cov(x, rowvar=False), rtol=1e-9)
    np.testing.assert_allclose(acc.cov_of_mean(), np.cov(x, rowvar=False) / len(x), rtol=1e-9)


def test_histogram_merge_counts_everything_once():
    rng = np.random.default_rng(1)
    x = rng.normal(size=5000)
    edges = np.linspace(-2, 2, 21)
    a = Histogram.from_batch(x[:1234], edges).merge(Histogram.from_batch(x[1234:], edges))
    counts, _ = np.histogram(x, edges)
    np.testing.assert_array_equal(a.counts, counts)
    assert a.below == np.count_nonzero(x < -2) and a.above == np.count_nonzero(x > 2)
    assert a.total == len(x)
    with pytest.raises(ValueError, match="different bin edges"):
        a.merge(Histogram.empty(np.linspace(-1, 1, 5)))

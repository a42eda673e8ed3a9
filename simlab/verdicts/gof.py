"""Goodness of fit of observed counts to a predicted distribution: pooled chi-square or G test.

A distribution check (SPEC section 2) compares a histogram of simulated integer outcomes with a
predicted pmf. The chi-square approximation to the statistic's law needs every expected count to be
not too small, so adjacent bins are pooled until each pooled bin expects at least 5 observations.
Beside the test, the total variation distance between the empirical and predicted laws says *how
far* they are; its noise floor says how far they look apart when the prediction is exactly right,
and the resolution says how big a departure the test would catch.

Binning convention (shared by every function here): ``expected_probs`` are probabilities of the
outcomes 0..kmax, in order. If they sum to less than one, the leftover ``1 - sum`` is the
probability of "beyond kmax" and becomes one more bin at the end. Probabilities are never
renormalised: a pmf that does not sum to one is a wrong model, and the statistic shows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "GofResult",
    "TVNullLaw",
    "chi_square_gof",
    "empirical_tv_noise_floor",
    "empirical_tv_null_law",
    "gof_resolution",
    "chi_square_effect_resolution",
    "pool_bins",
    "with_tail_bin",
]

#: Leftover probability below this is rounding in the pmf, not a tail bin.
_TAIL_TOLERANCE = 1e-12

METHODS = ("chi2", "g")


@dataclass(frozen=True)
class GofResult:
    """Outcome of a goodness-of-fit test.

    Attributes
    ----------
    statistic : float
        Pearson's chi-square ``sum (O - E)^2 / E`` or the G statistic ``2 sum O log(O / E)``, over
        the pooled bins (``inf`` if an outcome the model calls impossible was observed).
    dof : int
        Degrees of freedom: pooled bins minus one (no parameter is fitted).
    p_value : float
        Upper tail of chi-square with ``dof`` degrees of freedom at ``statistic``; 1.0 when a single
        pooled bin leaves nothing to test.
    tv : float
        Total variation ``1/2 sum_k |O_k / n - p_k|`` over the unpooled bins (tail bin included).
    n : int
        Number of observations.
    n_bins : int
        Number of pooled bins.
    method : str
        ``"chi2"`` or ``"g"``.
    """

    statistic: float
    dof: int
    p_value: float
    tv: float
    n: int
    n_bins: int
    method: str


def with_tail_bin(expected_probs: ArrayLike) -> np.ndarray:
    """The probabilities with the leftover tail mass ``1 - sum`` appended as a last bin, if any.

    Parameters
    ----------
    expected_probs : array_like of float
        Probabilities of the outcomes 0..kmax (1-D, non-negative, finite).

    Returns
    -------
    numpy.ndarray of float
        ``expected_probs`` itself (as floats) when it sums to one within 1e-12 or more, else with
        ``1 - sum`` appended.
    """
    p = np.asarray(expected_probs, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("expected_probs must be a non-empty 1-D array")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("expected_probs must be finite and non-negative")
    leftover = 1.0 - float(p.sum())
    if leftover > _TAIL_TOLERANCE:
        return np.append(p, leftover)
    return p


def pool_bins(expected: ArrayLike, min_expected: float = 5.0) -> np.ndarray:
    """Pool adjacent bins so that every pooled bin expects at least ``min_expected`` counts.

    Rule: the tails are merged inward. From the lowest bin up to the mode (largest expected count),
    bins are accumulated until the running expected count reaches ``min_expected``, which closes a
    pooled bin; likewise from the highest bin down to the mode. What is left on either side next to
    the mode joins the mode's pooled bin. Bins in the bulk that already expect enough stay alone.
    If the mode's pooled bin is still short (flat or multi-modal pmfs), it absorbs its smaller
    neighbour until it is not. When the whole total is below ``min_expected`` everything is one
    bin.

    Parameters
    ----------
    expected : array_like of float
        Expected counts per bin (``n * p_k``), in the order of the outcomes.
    min_expected : float
        Minimum expected count of a pooled bin (5 is the usual rule for the chi-square
        approximation).

    Returns
    -------
    numpy.ndarray of int64
        Pooled-bin label of each bin: non-decreasing, starting at 0, consecutive; pooled bin ``g``
        is ``labels == g`` (so ``np.bincount(labels, weights=x)`` pools any per-bin quantity).
    """
    e = np.asarray(expected, dtype=float)
    n_bins = e.size
    if n_bins == 0:
        return np.zeros(0, dtype=np.int64)
    if float(e.sum()) < min_expected:
        return np.zeros(n_bins, dtype=np.int64)
    mode = int(np.argmax(e))
    # Groups as half-open ranges [start, stop) of bins.
    left: list[list[int]] = []
    start, acc = 0, 0.0
    for i in range(mode):
        acc += e[i]
        if acc >= min_expected:
            left.append([start, i + 1])
            start, acc = i + 1, 0.0
    right: list[list[int]] = []
    stop, acc = n_bins, 0.0
    for i in range(n_bins - 1, mode, -1):
        acc += e[i]
        if acc >= min_expected:
            right.append([i, stop])
            stop, acc = i, 0.0
    groups = [*left, [start, stop], *reversed(right)]
    sums = [float(e[a:b].sum()) for a, b in groups]
    centre = len(left)
    while sums[centre] < min_expected and len(groups) > 1:
        # Absorb the smaller neighbour: the fewest bins lost to pooling.
        has_left, has_right = centre > 0, centre < len(groups) - 1
        take_left = has_left and (not has_right or sums[centre - 1] <= sums[centre + 1])
        other = centre - 1 if take_left else centre + 1
        lo, hi = min(centre, other), max(centre, other)
        groups[lo : hi + 1] = [[groups[lo][0], groups[hi][1]]]
        sums[lo : hi + 1] = [sums[lo] + sums[hi]]
        centre = lo
    labels = np.empty(n_bins, dtype=np.int64)
    for g, (a, b) in enumerate(groups):
        labels[a:b] = g
    return labels


def _observed_and_expected(
    observed_counts: ArrayLike, expected_probs: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Align observed counts with the probabilities (tail bin added) on the same bins."""
    p = with_tail_bin(expected_probs)
    o = np.asarray(observed_counts, dtype=float)
    if o.ndim != 1:
        raise ValueError("observed_counts must be a 1-D array")
    if not np.all(np.isfinite(o)) or np.any(o < 0):
        raise ValueError("observed_counts must be finite and non-negative")
    if o.size < p.size:
        o = np.append(o, np.zeros(p.size - o.size))
    elif o.size > p.size:
        if p.size > len(np.atleast_1d(expected_probs)):
            # The last bin is the tail "beyond kmax": outcomes past kmax belong to it.
            o = np.append(o[: p.size - 1], o[p.size - 1 :].sum())
        else:
            # The model puts no mass past its support: outcomes there get a bin of probability 0.
            o = np.append(o[: p.size], o[p.size :].sum())
            p = np.append(p, 0.0)
    return o, p


def chi_square_gof(
    observed_counts: ArrayLike,
    expected_probs: ArrayLike,
    *,
    method: str = "chi2",
    min_expected: float = 5.0,
) -> GofResult:
    """Test observed counts against predicted probabilities, with pooled bins.

    Parameters
    ----------
    observed_counts : array_like of float
        Counts of the outcomes 0, 1, ...; a last entry may count everything beyond the pmf's
        support (it is aligned with the tail bin). Shorter than the bins: padded with zeros.
    expected_probs : array_like of float
        Predicted probabilities of 0..kmax; the tail bin ``1 - sum`` is added when positive.
    method : {"chi2", "g"}
        Pearson's chi-square or the likelihood-ratio G statistic; both are asymptotically
        chi-square with ``pooled bins - 1`` degrees of freedom under the model.
    min_expected : float
        Minimum expected count per pooled bin (see :func:`pool_bins`).

    Returns
    -------
    GofResult
        Statistic, degrees of freedom, p-value, total variation, n and the pooled bin count. An
        observation in a bin of probability 0 makes the model impossible: statistic ``inf``,
        p-value 0.
    """
    from scipy import stats

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    o, p = _observed_and_expected(observed_counts, expected_probs)
    n = float(o.sum())
    if n <= 0:
        raise ValueError("no observations to test")
    tv = 0.5 * float(np.abs(o / n - p).sum())
    labels = pool_bins(n * p, min_expected)
    o_pooled = np.bincount(labels, weights=o)
    e_pooled = np.bincount(labels, weights=n * p)
    n_pooled = o_pooled.size
    dof = n_pooled - 1
    n_int = int(round(n))
    if np.any((p == 0) & (o > 0)):
        return GofResult(math.inf, dof, 0.0, tv, n_int, n_pooled, method)
    if method == "chi2":
        statistic = float(np.sum((o_pooled - e_pooled) ** 2 / e_pooled))
    else:
        # 0 log 0 = 0: empty pooled bins contribute nothing to G.
        nonzero = o_pooled > 0
        ratio = o_pooled[nonzero] / e_pooled[nonzero]
        statistic = 2.0 * float(np.sum(o_pooled[nonzero] * np.log(ratio)))
    p_value = float(stats.chi2.sf(statistic, dof)) if dof > 0 else 1.0
    return GofResult(statistic, dof, p_value, tv, n_int, n_pooled, method)


def empirical_tv_noise_floor(expected_probs: ArrayLike, n: int, *, method: str = "exact") -> float:
    """Expected empirical TV distance from the true law, for ``n`` observations of that law.

    Even when the prediction is exactly right, the empirical frequencies ``O_k / n`` scatter around
    ``p_k``, so the empirical TV ``1/2 sum_k |O_k / n - p_k|`` sits above 0. By linearity its
    expectation is ``1/2 sum_k E|O_k / n - p_k|`` with ``O_k ~ Binomial(n, p_k)``.

    ``method="normal"``: for large counts ``O_k / n`` is close to ``N(p_k, p_k (1 - p_k) / n)``,
    and a normal variable's mean absolute deviation is ``sigma sqrt(2 / pi)``, giving
    ``1/2 sum_k sqrt(2 p_k (1 - p_k) / (pi n))``. It overestimates bins that expect only a few
    counts (their absolute deviation is smaller than the normal one).

    ``method="exact"`` (default): De Moivre's closed form for the binomial mean absolute deviation,
    ``E|O - n p| = 2 v (1 - p) Binomial(v; n, p)`` with ``v = floor(n p) + 1``, exact for every
    bin and equal to the normal value in the large-count limit.

    Parameters
    ----------
    expected_probs : array_like of float
        Probabilities of 0..kmax (the tail bin ``1 - sum`` is added when positive, as in
        :func:`chi_square_gof`, so the floor matches the TV that function reports).
    n : int
        Number of observations.
    method : {"exact", "normal"}
        See above.

    Returns
    -------
    float
        The expected empirical TV under the model.
    """
    from scipy import stats

    p = with_tail_bin(expected_probs)
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if method == "normal":
        return 0.5 * float(np.sum(np.sqrt(2.0 * p * (1.0 - p) / (math.pi * n))))
    if method != "exact":
        raise ValueError(f"unknown method {method!r}; choose 'exact' or 'normal'")
    # subnormal probabilities (far tails of a pmf at lam ~ 1e4) overflow scipy's binomial pmf;
    # their bins add at most ~n p < 1e-290 to the floor
    pc = np.where(p < 1e-300, 0.0, np.clip(p, 0.0, 1.0))
    v = np.floor(n * pc) + 1.0
    mad = 2.0 * v * (1.0 - pc) * stats.binom.pmf(v, n, pc)  # E|O_k - n p_k|
    return 0.5 * float(np.sum(mad)) / n


@dataclass(frozen=True)
class TVNullLaw:
    """The law of the empirical TV ``1/2 sum_k |O_k / n - p_k|`` when the counts follow ``truth``.

    From ``draws`` parametric-bootstrap histograms of ``n`` observations of ``truth``: the mean,
    standard deviation and skewness of the empirical TV, and ``population``, the TV between
    ``truth`` and the reference on the same bins (what the empirical TV estimates, with bias
    ``mean - population``: its noise floor).
    """

    mean: float
    sd: float
    skewness: float
    population: float
    draws: int

    @property
    def bias(self) -> float:
        return self.mean - self.population


#: entries (draws x bins) of one block of bootstrap histograms: bounds the memory at large lam
_NULL_BLOCK_ENTRIES = 1 << 20


def empirical_tv_null_law(
    truth_probs: ArrayLike,
    expected_probs: ArrayLike,
    n: int,
    rng: np.random.Generator,
    draws: int = 4000,
) -> TVNullLaw:
    """The null law of the TV :func:`chi_square_gof` reports, by parametric bootstrap.

    The empirical TV between ``n`` observations and ``expected_probs`` is not centred on the
    population distance: each bin adds its own ``E|O_k/n - p_k|``, so the statistic sits above
    the distance by about its noise floor, and where the distance is below that floor it is a
    sum of folded normals (right-skewed, neither normal nor centred). Its law at this ``n`` is
    computed instead, by drawing ``draws`` multinomial histograms of ``n`` observations of
    ``truth_probs`` (this is calibration of the statistic under a known law, not a simulation of
    the counts) and measuring their TV exactly as :func:`chi_square_gof` measures the observed one.

    Parameters
    ----------
    truth_probs : array_like of float
        Probabilities of the observed histogram's bins, in its layout (0..kmax, then a last
        "beyond kmax" bin when the histogram has one).
    expected_probs : array_like of float
        The reference pmf, as given to :func:`chi_square_gof`.
    n : int
        Number of observations of the histogram under test.
    rng : numpy.random.Generator
        Where the bootstrap draws come from (a stream of its own: it must not shift the
        simulation's numbers).
    draws : int
        Bootstrap histograms; the mean is known to ``sd / sqrt(draws)``, the skewness to about
        ``sqrt(6 / draws)``.

    Returns
    -------
    TVNullLaw
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if draws < 3:
        raise ValueError(f"draws must be >= 3, got {draws}")
    # aligned on the bins chi_square_gof compares (the tail bin, an overflow of probability 0):
    # pooling bins is linear, so drawing on the aligned bins has the law of aligning the draws
    truth, p = _observed_and_expected(truth_probs, expected_probs)
    truth = np.clip(truth, 0.0, None)
    truth = truth / truth.sum()
    population = 0.5 * float(np.abs(truth - p).sum())
    block = max(1, _NULL_BLOCK_ENTRIES // truth.size)
    tvs = []
    for start in range(0, draws, block):
        counts = rng.multinomial(n, truth, size=min(block, draws - start))
        tvs.append(0.5 * np.abs(counts / n - p).sum(axis=1))
    tv = np.concatenate(tvs)
    mean = float(tv.mean())
    centred = tv - mean
    m2 = float(np.mean(centred**2))
    skewness = float(np.mean(centred**3)) / m2**1.5 if m2 > 0 else 0.0
    sd = math.sqrt(m2 * draws / (draws - 1))
    return TVNullLaw(mean, sd, skewness, population, int(draws))


def gof_resolution(
    expected_probs: ArrayLike, n: int, alpha_level: float, power: float = 0.9
) -> float:
    """Smallest departure from the predicted law that the chi-square test detects with ``power``.

    Under an alternative ``p1`` close to the model ``p0``, Pearson's statistic over the pooled bins
    is approximately noncentral chi-square with ``dof`` degrees of freedom and noncentrality
    ``lam = n w^2``, where ``w = sqrt(sum_g (p1_g - p0_g)^2 / p0_g)`` is Cohen's effect size. We
    find ``lam*`` at which the test at level ``alpha_level`` rejects with probability ``power``,
    and report ``w* = sqrt(lam* / n)``.

    Reading ``w*``: it is the root-mean-square relative deviation ``delta_g = (p1_g - p0_g) / p0_g``
    (weighted by ``p0``) that is detected, so a law off by the same relative amount ``delta`` in
    every pooled bin is caught when ``|delta| >= w*``. In total variation, Cauchy-Schwarz gives
    ``TV <= w / 2``, so every alternative whose TV over the pooled bins exceeds ``w* / 2`` is
    detected with at least that power.

    Parameters
    ----------
    expected_probs : array_like of float
        Model probabilities of 0..kmax (tail bin added when positive); bins are pooled at ``n`` as
        in :func:`chi_square_gof`.
    n : int
        Number of observations.
    alpha_level : float
        Level of the test, e.g. the Holm/Bonferroni share of the family-wise error rate.
    power : float
        Detection probability, 0.9 by default.

    Returns
    -------
    float
        ``w*``; ``inf`` when pooling leaves a single bin (nothing can be detected), 0 when
        ``alpha_level >= power``.
    """
    p = with_tail_bin(expected_probs)
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not (0.0 < alpha_level < 1.0 and 0.0 < power < 1.0):
        raise ValueError("alpha_level and power must lie in (0, 1)")
    dof = int(pool_bins(n * p).max()) if p.size else 0
    if dof < 1:
        return math.inf
    if alpha_level >= power:
        return 0.0
    return chi_square_effect_resolution(dof, n, alpha_level, power)


def chi_square_effect_resolution(dof: int, n: int, level: float, power: float = 0.9) -> float:
    """Smallest Cohen's effect size ``w`` a chi-square test with ``dof`` detects with ``power``.

    ``w = sqrt(sum_k (p1_k - p0_k)^2 / p0_k)``; the statistic is then approximately noncentral
    chi-square with noncentrality ``n w^2``; we solve for the noncentrality that gives ``power``
    at ``level``.
    """
    from scipy import optimize, stats

    critical = stats.chi2.isf(level, dof)

    def shortfall(nc: float) -> float:
        return float(stats.ncx2.sf(critical, dof, nc)) - power

    hi = 1.0
    while shortfall(hi) < 0.0:
        hi *= 2.0
    nc_star = optimize.brentq(shortfall, 0.0, hi, xtol=1e-12, rtol=1e-10)
    return math.sqrt(nc_star / n)

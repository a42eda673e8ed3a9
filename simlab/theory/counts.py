"""Laws of the number of kept units: Binomial, Poisson, and how far apart they are.

No random numbers here. ``simlab kept-units`` compares simulated counts with these laws; the
Poisson law is only the M -> infinity limit of Binomial(M, lam/M), and the exact total variation
distance between the two says, at each M, how far from the limit the finite law still is. Le Cam's
and Barbour & Hall's bounds bracket that distance (Le Cam 1960; Barbour & Hall 1984).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "barbour_hall_bounds",
    "binomial_pmf",
    "le_cam_bound",
    "poisson_pmf",
    "tv_binomial_poisson",
]


def binomial_pmf(k: ArrayLike, M: int, q: float) -> np.ndarray:
    """Binomial(M, q) probability of ``k`` kept units out of ``M``.

    Parameters
    ----------
    k : array_like of int
        Counts (any shape; values outside 0..M have probability 0).
    M : int
        Number of units.
    q : float
        Keep probability in [0, 1].

    Returns
    -------
    numpy.ndarray of float
        ``comb(M, k) q**k (1-q)**(M-k)``, same shape as ``k``.
    """
    from scipy import stats

    return np.asarray(stats.binom.pmf(k, M, q), dtype=float)


def poisson_pmf(k: ArrayLike, lam: float) -> np.ndarray:
    """Poisson(lam) probability of ``k``.

    Parameters
    ----------
    k : array_like of int
        Counts (any shape).
    lam : float
        Mean, ``lam >= 0``.

    Returns
    -------
    numpy.ndarray of float
        ``exp(-lam) lam**k / k!``, same shape as ``k``.
    """
    from scipy import stats

    return np.asarray(stats.poisson.pmf(k, lam), dtype=float)


def _check_M_lam(M: int, lam: float) -> tuple[int, float]:
    if isinstance(M, float):
        if not M.is_integer():
            raise ValueError(f"M must be an integer, got {M!r}")
        M = int(M)
    M = int(M)
    lam = float(lam)
    if M < 1:
        raise ValueError(f"M must be >= 1, got {M}")
    if not (0.0 < lam <= M):
        raise ValueError(f"lam must satisfy 0 < lam <= M (so that q = lam/M <= 1), got {lam!r}")
    return M, lam


def tv_binomial_poisson(M: int, lam: float) -> float:
    """Exact total variation distance between Binomial(M, lam/M) and Poisson(lam).

    ``TV = 1/2 sum_{k>=0} |Bin(k; M, lam/M) - Pois(k; lam)|``, where the binomial vanishes for
    ``k > M`` so that part of the sum is the Poisson tail ``P(Pois > M)``.

    Accuracy: for large M the two pmfs agree to about ``lam/M`` and subtracting them would lose
    that many digits. The difference is computed instead as ``Pois(k) * expm1(L_k)`` with the log
    ratio ``L_k = log(Bin(k)/Pois(k)) = sum_{j<k} log1p(-j/M) + (M-k) log1p(-q) + lam``, each term
    of which is accurate, so the relative error of the result stays near machine precision for M
    up to 1e6 and beyond. Terms beyond ``lam + 40 sqrt(lam) + 60`` are dropped: both pmfs there
    sum to less than 1e-30 of the result's scale (Poisson tails beyond 40 standard deviations and
    60 counts; the binomial's tail is lighter still).

    Parameters
    ----------
    M : int
        Number of units, ``M >= 1``.
    lam : float
        Poisson mean, ``0 < lam <= M``.

    Returns
    -------
    float
        The distance, in [0, 1].
    """
    from scipy import stats

    M, lam = _check_M_lam(M, lam)
    q = lam / M
    k_far = int(math.ceil(lam + 40.0 * math.sqrt(lam) + 60.0))
    k_max = min(M, k_far)
    k = np.arange(k_max + 1)
    pois = stats.poisson.pmf(k, lam)
    if q < 0.5:
        # log(M! / ((M-k)! M^k)) = sum_{j<k} log1p(-j/M): a cumulative sum of small accurate terms.
        log_falling = np.concatenate(([0.0], np.cumsum(np.log1p(-k[:-1] / M))))
        # (M-k) log1p(-q) + lam = M (log1p(-q) + q) - k log1p(-q): the cancelling part
        # log1p(-q) + q ~ -q^2/2 is small and computed on its own.
        l1q = math.log1p(-q)
        log_ratio = log_falling + M * _log1p_plus(q) - k * l1q
        diff = pois * np.expm1(log_ratio)
    else:
        # q >= 1/2 means lam >= M/2: the laws are far apart (TV is of order one), no cancellation.
        diff = stats.binom.pmf(k, M, q) - pois
    total = 0.5 * float(np.sum(np.abs(diff)))
    if k_max == M:
        total += 0.5 * float(stats.poisson.sf(M, lam))  # Poisson mass where the binomial has none
    return min(total, 1.0)


def _log1p_plus(x: float) -> float:
    """``log1p(-x) + x`` without cancellation for small x (it is ``-x^2/2 - x^3/3 - ...``)."""
    if x > 1e-2:
        return math.log1p(-x) + x
    # Series: terms fall by a factor below 1e-2 each, so 12 terms reach 1e-24 relative.
    term_sum = 0.0
    power = x * x
    for j in range(2, 14):
        term_sum -= power / j
        power *= x
    return term_sum


def le_cam_bound(M: int, lam: float) -> float:
    """Le Cam's bound on the distance: ``TV(Bin(M, lam/M), Pois(lam)) <= lam**2 / M``.

    Parameters
    ----------
    M : int
        Number of units.
    lam : float
        Poisson mean.

    Returns
    -------
    float
        ``lam**2 / M`` (Le Cam 1960: ``sum p_i^2`` with ``p_i = lam/M``).
    """
    return float(lam) ** 2 / float(M)


def barbour_hall_bounds(M: int, lam: float) -> tuple[float, float]:
    """Barbour & Hall's two-sided bounds on the distance.

    For a sum of independent Bernoulli(p_i) with ``lam = sum p_i`` (Barbour & Hall 1984),
    ``(1/32) min(1, 1/lam) sum p_i^2 <= TV <= (1 - e^-lam)/lam sum p_i^2``; with ``p_i = lam/M``,
    ``sum p_i^2 = lam^2/M``.

    Parameters
    ----------
    M : int
        Number of units.
    lam : float
        Poisson mean, ``lam > 0``.

    Returns
    -------
    lower, upper : float
        ``(1/32) min(1, 1/lam) lam^2/M`` and ``(1 - e^-lam) lam/M``.
    """
    M = float(M)
    lam = float(lam)
    lower = min(1.0, 1.0 / lam) * lam**2 / (32.0 * M)
    upper = -math.expm1(-lam) * lam / M
    return lower, upper

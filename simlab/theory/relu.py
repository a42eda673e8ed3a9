"""Moments and laws of ReLU units of Gaussian pre-activations, before and after dropout.

No random numbers here: these are the predictions that the dropout experiment checks.
For ``z ~ N(mu, s^2)`` and ``h = relu(z)``, with ``Phi``, ``phi`` the standard normal cdf and pdf:
``E[h] = mu Phi(mu/s) + s phi(mu/s)`` and ``E[h^2] = (mu^2 + s^2) Phi(mu/s) + mu s phi(mu/s)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

#: sqrt(2 pi), the standard normal density's normaliser (as scipy.stats spells it)
_SQRT_2PI = np.sqrt(2 * np.pi)


def std_normal_cdf(x: np.ndarray | float) -> np.ndarray:
    """``Phi(x)``: ``scipy.special.ndtr``, what ``scipy.stats.norm.cdf`` computes, without
    importing scipy.stats (~0.7 s: every process that draws the dropout figures paid it)."""
    from scipy import special

    return special.ndtr(x)


def std_normal_pdf(x: np.ndarray | float) -> np.ndarray:
    """``phi(x) = exp(-x^2/2) / sqrt(2 pi)``, the same arithmetic as ``scipy.stats.norm.pdf``
    (so the same bits), without importing scipy.stats."""
    x = np.asarray(x, dtype=float)
    return np.exp(-(x**2) / 2.0) / _SQRT_2PI


def relu_mean(mu: np.ndarray | float, s: np.ndarray | float) -> np.ndarray:
    """``E[relu(z)]`` for ``z ~ N(mu, s^2)``."""
    mu, s = np.asarray(mu, float), np.asarray(s, float)
    a = mu / s
    return mu * std_normal_cdf(a) + s * std_normal_pdf(a)


def relu_second(mu: np.ndarray | float, s: np.ndarray | float) -> np.ndarray:
    """``E[relu(z)^2]`` for ``z ~ N(mu, s^2)``."""
    mu, s = np.asarray(mu, float), np.asarray(s, float)
    a = mu / s
    return (mu * mu + s * s) * std_normal_cdf(a) + mu * s * std_normal_pdf(a)


@functools.cache
def _gauss_legendre(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def relu_cross(mu: float, s1: np.ndarray, s2: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """``E[relu(z1) relu(z2)]`` for jointly normal ``z1, z2`` with common mean ``mu``.

    Conditioning on ``z1 = mu + s1 u`` leaves ``z2 ~ N(mu + s2 rho u, s2^2 (1 - rho^2))``, whose
    ReLU mean is closed form; the remaining integral over ``u > -mu/s1`` (where ``relu(z1) > 0``)
    is smooth, so Gauss-Legendre on a truncated range is accurate to ~1e-12.
    """
    nodes, weights = _gauss_legendre()
    s1, s2, rho = (np.atleast_1d(np.asarray(a, float)) for a in (s1, s2, rho))
    lo = -mu / s1
    hi = np.maximum(lo, 0.0) + 12.0
    half = (hi - lo) / 2.0
    u = lo[:, None] + half[:, None] * (nodes[None, :] + 1.0)
    cond_sd = s2[:, None] * np.sqrt(np.clip(1.0 - rho[:, None] ** 2, 0.0, None))
    cond_mu = mu + (s2 * rho)[:, None] * u
    inner = np.where(
        cond_sd > 0,
        relu_mean(cond_mu, np.where(cond_sd > 0, cond_sd, 1.0)),
        np.maximum(cond_mu, 0.0),
    )
    integrand = (mu + s1[:, None] * u) * inner * std_normal_pdf(u)
    return half * (integrand * weights[None, :]).sum(axis=1)


@dataclass(frozen=True)
class DropoutMoments:
    """The seven predicted quantities of SPEC 1.1, pooled over units."""

    mean_before: float
    second_before: float
    var_before: float
    mean_after: float
    second_after: float
    var_after: float
    cov_after: float

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def dropout_moments(
    mu: float,
    s: np.ndarray,
    q: float,
    rescale: bool,
    pair_rho: np.ndarray | None = None,
) -> DropoutMoments:
    """Predictions for units ``h_i = relu(z_i)``, ``z_i ~ N(mu, s_i^2)``, kept with probability q.

    Quantities are pooled over units: ``mean`` is the average of the units' means, ``second`` of
    their second moments, ``var = second - mean^2``, and ``cov_after`` is the average cross moment
    of neighbours ``(i, i+1)`` minus ``mean_after^2``. When all units share one law (orthonormal
    weights) these are the per-unit moments and the covariance of two distinct units.
    ``pair_rho[i]`` is the correlation of ``z_i`` and ``z_{i+1}`` (``None``: independent units).
    """
    s = np.atleast_1d(np.asarray(s, float))
    m1 = relu_mean(mu, s)
    m2 = relu_second(mu, s)
    mean_before, second_before = float(m1.mean()), float(m2.mean())
    independent = pair_rho is None
    if independent:
        cross = m1[:-1] * m1[1:]
    else:
        cross = relu_cross(mu, s[:-1], s[1:], pair_rho)
    # A mask m ~ Bernoulli(q) independent of h: E[m] = q, E[m^2] = q, E[m_i m_j] = q^2 (i != j).
    scale = 1.0 / q if rescale else 1.0
    mean_after = q * scale * mean_before
    second_after = q * scale * scale * second_before
    cross_after = float((q * scale) ** 2 * cross.mean()) if s.size > 1 else float("nan")
    return DropoutMoments(
        mean_before=mean_before,
        second_before=second_before,
        var_before=second_before - mean_before**2,
        mean_after=mean_after,
        second_after=second_after,
        var_after=second_after - mean_after**2,
        # Independent units: exactly 0, not a difference of two rounded numbers.
        cov_after=0.0 if independent else cross_after - mean_after**2,
    )


def relu_law(
    mu: float, s: np.ndarray, q: float = 1.0, rescale: bool = True
) -> tuple[float, callable]:
    """The law of a unit (averaged over units) after optional dropout: point mass and density.

    Returns ``(mass_at_zero, density)`` where ``density(t)`` is the density for ``t > 0``. Before
    dropout use ``q = 1``. With inverted dropout a kept unit is ``h / q``, so the density of the
    kept part is ``q * q * f_h(q t)``; without rescaling it is ``q * f_h(t)``.
    """
    s = np.atleast_1d(np.asarray(s, float))
    mass = float(((1.0 - q) + q * std_normal_cdf(-mu / s)).mean())
    c = q if rescale else 1.0

    def density(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, float)
        x = c * t[..., None]
        return q * c * (std_normal_pdf((x - mu) / s) / s).mean(axis=-1)

    return mass, density

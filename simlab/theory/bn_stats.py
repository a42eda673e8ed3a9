"""Batch norm over random batches: what the statistics of ``simlab batchnorm stats`` converge to,
Samuelson's bound on ``|xhat|`` and the column Jacobian whose norm is why eps exists (SPEC 1.3,
``stats``). Shapes follow :mod:`simlab.theory.bn_forward`."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from simlab.theory.bn_forward import _as_param, bn_forward

__all__ = [
    "bn_jacobian",
    "expected_batch_var",
    "expected_v_ratio",
    "expected_v_ratio_curve",
    "jacobian_norm",
    "jacobian_norm_prediction",
    "predicted_yhat_batch_var",
    "samuelson_bound",
    "var_out_prediction",
]

Array = NDArray[np.float64]


def _check_B(B: int) -> int:
    if int(B) != B or B < 2:
        raise ValueError(f"B must be an integer >= 2, got {B}")
    return int(B)


def expected_batch_var(B: int, sigma2: ArrayLike) -> Array | float:
    """``E[v] = (B - 1)/B sigma^2`` for the biased batch variance of iid inputs of variance sigma^2
    (any law with finite variance)."""
    B = _check_B(B)
    return (B - 1) / B * np.asarray(sigma2, dtype=np.float64)


def scaled_variance_density(x: ArrayLike, B: int) -> Array:
    """Density of ``B v / sigma^2`` for Gaussian features: chi-squared with ``B - 1`` degrees of
    freedom (scipy.special only: scipy.stats costs ~0.7 s to import in a figure worker)."""
    from scipy import special

    k = (_check_B(B) - 1) / 2.0
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_pdf = special.xlogy(k - 1.0, x) - x / 2.0 - special.gammaln(k) - k * math.log(2.0)
    return np.where(x >= 0, np.exp(log_pdf), 0.0)


def scaled_variance_quantile(p: float, B: int) -> float:
    """The ``p`` quantile of ``B v / sigma^2`` for Gaussian features (chi-squared, ``B - 1``)."""
    from scipy import special

    return float(special.chdtri(_check_B(B) - 1, 1.0 - p))


def _chi2_ratio_deficit(k: int, c: float) -> float:
    """``E[c / (X + c)]`` for ``X ~ chi2_k``, ``c > 0``, by quadrature.

    Writing ``1/(X + c) = int_0^inf exp(-u (X + c)) du`` and using the chi2 Laplace transform
    ``E exp(-u X) = (1 + 2u)^(-k/2)``, then ``w = c u``::

        E[c / (X + c)] = int_0^inf exp(-w) (1 + 2 w / c)^(-k/2) dw,

    a smooth, bounded integrand (unlike the chi2 density, singular at 0 for k = 1). It is
    integrated in ``t = log w`` with a breakpoint at ``log c``, where the integrand turns over, so
    tiny and huge c are both resolved to ~1e-12 relative.
    """
    import scipy.integrate

    half_k = 0.5 * k
    log_c = math.log(c)

    def integrand(t: float) -> float:
        w = math.exp(t)
        return math.exp(t - w - half_k * math.log1p(2.0 * w / c))

    total = 0.0
    edges = _deficit_edges(log_c)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b > a:
            val, _ = scipy.integrate.quad(
                integrand, float(a), float(b), epsabs=0.0, epsrel=1e-13, limit=400
            )
            total += val
    return total


#: the range of ``t = log w`` integrated: from this far below ``min(log c, 0)`` (where
#: ``exp(t)`` is negligible) up to ``log 800`` (where ``exp(-w)`` is)
_T_BELOW, _T_MAX = 40.0, math.log(800.0)


def _deficit_edges(log_c: ArrayLike) -> list[ArrayLike]:
    """The sub-intervals in ``t`` of :func:`_chi2_ratio_deficit`'s integral, for a scalar or an
    array of ``log c``: from the lower end to the upper, with breakpoints at 0 and at ``log c``
    (where the integrand turns over, kept inside the range), in order; an interval may be
    empty (``log c = 0``)."""
    lo = np.minimum(log_c, 0.0) - _T_BELOW
    turn = np.clip(log_c, lo + 1.0, _T_MAX - 1.0)
    return [lo, np.minimum(turn, 0.0), np.maximum(turn, 0.0), _T_MAX]


def expected_v_ratio(
    B: int,
    eps: float,
    sigma2: float,
    input: Literal["gaussian", "uniform", "exponential", "student_t"] | str = "gaussian",
) -> float | None:
    """``E[v / (v + eps)]`` for the biased batch variance ``v`` of B iid inputs of variance sigma2.

    For Gaussian input, ``v ~ sigma2 chi2_{B-1} / B`` exactly, so with ``X ~ chi2_{B-1}`` and
    ``c = B eps / sigma2``, ``E[v/(v+eps)] = E[X/(X+c)] = 1 - E[c/(X+c)]``, a one-dimensional
    integral computed by quadrature (see the Laplace-transform form in the source; it is checked in
    the tests against ``scipy.stats.chi2.expect`` and Monte Carlo).

    Special cases: exactly 1 when ``eps = 0`` and ``sigma2 > 0``; exactly 0 when ``sigma2 = 0`` and
    ``eps > 0`` (v = 0 surely); NaN when both are 0 (0/0).

    Returns
    -------
    float or None
        None for a non-Gaussian ``input``: the law of v is then not a known one-dimensional law, and
        the caller must estimate (and label) the expectation instead.
    """
    B = _check_B(B)
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if not sigma2 >= 0:
        raise ValueError(f"sigma2 must be >= 0, got {sigma2}")
    if input != "gaussian":
        return None
    if sigma2 == 0:
        return math.nan if eps == 0 else 0.0
    if eps == 0:
        return 1.0
    c = B * eps / sigma2
    if not math.isfinite(c):
        return 0.0
    return 1.0 - _chi2_ratio_deficit(B - 1, c)


#: Gauss-Legendre nodes per sub-interval of :func:`expected_v_ratio_curve` (within 5e-14 of the
#: adaptive quadrature for B up to 8192; 48 nodes were 3e-8 off at B = 128)
_CURVE_NODES = 128


def expected_v_ratio_curve(B: int, eps: float, sigma2: ArrayLike) -> Array:
    """:func:`expected_v_ratio` for Gaussian input at many variances at once, for a figure's
    theory curve: the same integral (see :func:`_chi2_ratio_deficit`), in ``t = log w`` over
    the same sub-intervals, each by a fixed Gauss-Legendre rule, all variances in one array
    operation (a 200-point curve in about a millisecond against 0.05-0.5 s adaptively)."""
    B = _check_B(B)
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    sigma2 = np.asarray(sigma2, dtype=np.float64)
    if not np.all(sigma2 >= 0):  # NaN too, as the pointwise function
        raise ValueError("sigma2 must be >= 0")
    out = np.where(sigma2 > 0, 1.0, math.nan if eps == 0 else 0.0)
    if eps == 0:
        return out
    with np.errstate(divide="ignore"):
        c = B * eps / sigma2
    live = (sigma2 > 0) & np.isfinite(c) & (c > 0)  # c = 0 (an infinite variance): exactly 1
    out[(sigma2 > 0) & ~np.isfinite(c)] = 0.0
    c = c[live]
    edges = _deficit_edges(np.log(c))
    x, weights = np.polynomial.legendre.leggauss(_CURVE_NODES)
    half_k = 0.5 * (B - 1)
    deficit = np.zeros(c.shape)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        half = 0.5 * (b - a)  # an empty interval (a = b) adds 0
        t = (0.5 * (a + b))[:, None] + half[:, None] * x
        w = np.exp(t)
        deficit += half * (np.exp(t - w - half_k * np.log1p(2.0 * w / c[:, None])) @ weights)
    out[live] = 1.0 - deficit
    return out


def var_out_prediction(
    gamma: ArrayLike,
    B: int,
    eps: float,
    sigma2: float,
    input: str = "gaussian",
) -> Array | float | None:
    """``Var(Yhat[i, j]) = gamma^2 E[v / (v + eps)]`` over random batches (iid inputs).

    Exact: ``Yhat - beta`` has batch mean 0 and batch mean square ``gamma^2 v/(v+eps)``, and by
    exchangeability each entry has the same variance, the expectation of that. None for non-Gaussian
    input (see :func:`expected_v_ratio`).
    """
    r = expected_v_ratio(B, eps, sigma2, input)
    if r is None:
        return None
    return np.asarray(gamma, dtype=np.float64) ** 2 * r


def samuelson_bound(B: int) -> float:
    """``sqrt(B - 1)``: in training mode ``|xhat| <= sqrt(B - 1)`` for every entry, whatever eps
    (Samuelson's inequality; equality when one entry is an outlier and the other B - 1 are equal,
    at eps = 0)."""
    B = _check_B(B)
    return math.sqrt(B - 1)


def bn_jacobian(Y_col: ArrayLike, gamma: ArrayLike, eps: float) -> Array:
    """Full Jacobian ``J[k, i] = dYhat[k] / dY[i]`` of one feature column (ReLU not included).

    ``J = gamma s (I - 1 1^T / B - xhat xhat^T / B)``, symmetric.

    Parameters
    ----------
    Y_col : array_like, shape (..., B)
        One feature over the batch; leading axes are instances.
    gamma : array_like
        Scalar or shape (...,).
    eps : float

    Returns
    -------
    ndarray, shape (..., B, B)
    """
    y = np.asarray(Y_col, dtype=np.float64)
    if y.ndim < 1:
        raise ValueError("Y_col must have shape (..., B)")
    B = y.shape[-1]
    fwd = bn_forward(y[..., :, None], 1.0, 0.0, eps)
    xhat = fwd.xhat[..., 0]  # (..., B)
    s = fwd.s[..., 0, 0]  # (...,)
    g = np.asarray(gamma, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        P = np.eye(B) - 1.0 / B - xhat[..., :, None] * xhat[..., None, :] / B
        return (g * s)[..., None, None] * P


def jacobian_norm(Y_col: ArrayLike, gamma: ArrayLike, eps: float) -> Array | float:
    """Spectral norm of the column Jacobian :func:`bn_jacobian` (largest |eigenvalue|, since J is
    symmetric).

    The spectral norm is chosen over Frobenius because it is the worst-case gain of the backward
    pass (``||dl/dY|| <= ||J|| ||dl/dYhat||``) and does not grow with B. In closed form
    (:func:`jacobian_norm_prediction`): ``J = gamma s P`` with
    ``P = I - 1 1^T/B - xhat xhat^T/B``; ``1`` and ``xhat`` are orthogonal and
    ``||xhat||^2 / B = v/(v+eps)``, so P has eigenvalue 0 on ``1``, ``eps/(v+eps)`` on ``xhat`` and
    1 on the remaining ``B - 2`` directions. Hence ``||J|| = |gamma| s`` exactly for ``B >= 3``
    (P is an orthogonal projection only when ``eps = 0``); for ``B = 2`` there is no third
    direction and ``||J|| = |gamma| s eps/(v+eps)`` (0 at eps = 0: two points normalise to +-1
    whatever they are); for ``v = 0``, ``xhat = 0`` and ``J = gamma eps^(-1/2)`` times the
    centring projection, of norm ``|gamma| eps^(-1/2)``.

    Returns NaN (not an exception) where the Jacobian is not finite (``v = eps = 0``).
    """
    J = bn_jacobian(Y_col, gamma, eps)
    bad = ~np.all(np.isfinite(J), axis=(-2, -1))
    safe = np.where(bad[..., None, None], 0.0, J)
    norm = np.max(np.abs(np.linalg.eigvalsh(safe)), axis=-1)
    norm = np.where(bad, np.nan, norm)
    return float(norm) if norm.ndim == 0 else norm


def jacobian_norm_prediction(B: int, v: ArrayLike, gamma: ArrayLike, eps: float) -> Array | float:
    """Closed form of :func:`jacobian_norm`: ``|gamma| (v+eps)^(-1/2)`` for ``B >= 3``,
    ``|gamma| (v+eps)^(-1/2) eps/(v+eps)`` for ``B = 2`` (NaN when ``v + eps = 0``)."""
    B = _check_B(B)
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        base = np.abs(np.asarray(gamma, dtype=np.float64)) / np.sqrt(v + eps)
        out = base if B >= 3 else base * eps / (v + eps)
    return float(out) if np.ndim(out) == 0 else out


def predicted_yhat_batch_var(gamma: ArrayLike, v: ArrayLike, eps: float) -> Array:
    """``gamma^2 v / (v + eps)``: the exact batch variance of Yhat (NaN when ``v + eps = 0``)."""
    g = _as_param(gamma)
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return g * g * v / (v + eps)

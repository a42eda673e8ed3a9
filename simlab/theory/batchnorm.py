"""Batch normalization: the deterministic mathematics (no random numbers inside, except the
explicitly seeded :func:`random_correlation`, which takes the caller's generator).

This module is the theory behind ``simlab batchnorm`` (SPEC section 1.3). Everything here is a pure
function of its arguments, computed in float64.

Conventions
-----------
* A batch is an array ``Y`` of shape ``(..., B, M)``: the **batch axis is -2**, features are last,
  and any leading axes index independent instances (a stack of batches is processed at once).
* Per-feature quantities (``m``, ``v``, ``s``, ``d_gamma``, ``d_beta``, ``d_v``, ``d_m``) keep the
  batch axis with length 1, i.e. have shape ``(..., 1, M)``, so that they broadcast against ``Y``
  exactly as the claim language's ``sum(.)`` does (it sums over the batch axis and keeps it).
* ``gamma`` and ``beta`` may be scalars, of shape ``(M,)``, or per instance ``(..., M)`` /
  ``(..., 1, M)``.
* ``eps = 0`` is allowed: a constant feature then gives ``0/0 = NaN``. The functions compute such
  NaNs silently (inside ``np.errstate``) and never raise, so the NaN can be reported as such.

Contents
--------
Forward / backward
    :func:`bn_forward`, :func:`bn_backward`, :func:`batch_sum`, :func:`claim_namespace`,
    :func:`yhat_batch_moments`, :func:`predicted_yhat_batch_var`.
Finite differences
    :func:`finite_difference_grads`, :func:`kink_mask`, :func:`relative_error`,
    :func:`fd_tolerance`, :func:`fd_resolution`, :func:`grad_scales`, :func:`grad_check`,
    :data:`DEFAULT_STEP`, :data:`FD_SAFETY`.
Statistics
    :func:`expected_batch_var`, :func:`expected_v_ratio`, :func:`var_out_prediction`,
    :func:`samuelson_bound`, :func:`bn_jacobian`, :func:`jacobian_norm`,
    :func:`jacobian_norm_prediction`.
Whitening
    :func:`zca_whiten`, :func:`pca_whiten`, :func:`cholesky_whiten`, :func:`bn_standardize`,
    :func:`white_cov`, :func:`cross_cov`, :func:`sqrtm_psd`, :func:`inv_sqrtm_psd`,
    :func:`whitening_eps_deviation`, :func:`correlation_matrix`, :func:`random_correlation`,
    :func:`effective_rank`, :func:`condition_number`, :func:`null_tolerance`,
    :func:`matrix_relative_change`. Every rank / singularity decision compares eigenvalues with
    :func:`null_tolerance` (relative to the largest), never the sign of a rounding-level one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import scipy.integrate
import scipy.stats
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "FD_SAFETY",
    "DEFAULT_STEP",
    "GRAD_QUANTITIES",
    "BNForward",
    "BNGrads",
    "GradCheck",
    "Whitening",
    "batch_sum",
    "bn_backward",
    "bn_forward",
    "bn_jacobian",
    "bn_standardize",
    "cholesky_whiten",
    "claim_namespace",
    "condition_number",
    "correlation_matrix",
    "cross_cov",
    "effective_rank",
    "expected_batch_var",
    "expected_v_ratio",
    "fd_resolution",
    "fd_tolerance",
    "finite_difference_grads",
    "grad_check",
    "grad_scales",
    "inv_sqrtm_psd",
    "jacobian_norm",
    "jacobian_norm_prediction",
    "kink_mask",
    "matrix_relative_change",
    "null_tolerance",
    "pca_whiten",
    "predicted_yhat_batch_var",
    "random_correlation",
    "relative_error",
    "samuelson_bound",
    "sqrtm_psd",
    "var_out_prediction",
    "white_cov",
    "whitening_eps_deviation",
    "yhat_batch_moments",
    "zca_whiten",
]

Array = NDArray[np.float64]

#: Names of the gradient quantities, in SPEC order (also the field names of :class:`BNGrads`).
GRAD_QUANTITIES: tuple[str, ...] = ("d_gamma", "d_beta", "d_v", "d_m", "d_Y", "jac_diag")

_EPS_MACHINE = float(np.finfo(np.float64).eps)

#: Default relative step of the central differences.
#:
#: A central difference of a smooth ``f`` with step ``h`` errs by about
#: ``h**2 |f'''| / 6`` (truncation) plus ``eps_machine |f| / h`` (rounding of ``f`` divided by the
#: step). In units where the perturbed variable has its natural scale (see
#: :func:`finite_difference_grads`) both constants are O(1), so the total
#: ``step**2 + eps_machine / step`` is smallest near ``step = eps_machine**(1/3) ~ 6e-6``, where it
#: is ~5e-11. ``1e-5`` sits at that optimum (the error is flat around it; 1e-6 would already
#: double the rounding part) and is small enough that few entries lie within the step of the
#: ReLU kink (:func:`kink_mask` skips ~1% of columns at B = 32).
DEFAULT_STEP = 1e-5

#: Safety factor of :func:`fd_resolution` over its first-order error model.
FD_SAFETY = 10.0


# --------------------------------------------------------------------------------------------------
# Forward and backward
# --------------------------------------------------------------------------------------------------


def _as_param(x: ArrayLike) -> Array:
    """Per-feature parameter as float64, shaped to broadcast against ``(..., B, M)``."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim >= 2 and a.shape[-2] != 1:
        a = a[..., None, :]
    return a


def _as_batch(Y: ArrayLike) -> Array:
    a = np.asarray(Y, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"Y must have shape (..., B, M) with the batch on axis -2; got {a.shape}")
    if a.shape[-2] < 1:
        raise ValueError("Y has an empty batch axis")
    return a


def batch_sum(x: ArrayLike) -> Array:
    """Sum over the batch axis (-2), keeping it with length 1 (the claim language's ``sum``).

    Parameters
    ----------
    x : array_like, shape (..., B, M)

    Returns
    -------
    ndarray, shape (..., 1, M)
    """
    return np.sum(np.asarray(x, dtype=np.float64), axis=-2, keepdims=True)


def _batch_stats(Y: Array) -> tuple[Array, Array, Array]:
    """Batch mean, centred batch and biased batch variance along axis -2.

    A feature that is constant over the batch gets its mean set to that constant, so ``Y - m`` is
    exactly 0 and ``v`` exactly 0. (``mean`` of B equal floats need not round back to the same
    float; without this, a constant feature would get ``v ~ 1e-34`` and, at ``eps = 0``, a spurious
    ``xhat = +-1`` instead of the mathematically correct 0/0.)
    """
    m = np.mean(Y, axis=-2, keepdims=True)
    first = Y[..., :1, :]
    constant = np.all(Y == first, axis=-2, keepdims=True)
    m = np.where(constant, first, m)
    Yc = Y - m
    v = np.mean(Yc * Yc, axis=-2, keepdims=True)
    return m, Yc, v


def _normalise(Y: Array, m: Array, v: Array, gamma: Array, beta: Array, eps: float) -> Array:
    """``gamma (Y - m) (v + eps)^(-1/2) + beta`` with m and v as independent inputs."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = 1.0 / np.sqrt(v + eps)
        return gamma * ((Y - m) * s) + beta


@dataclass(frozen=True)
class BNForward:
    """The forward pass of batch norm followed by a ReLU, for a batch ``Y`` of shape (..., B, M).

    Attributes
    ----------
    Y : ndarray, shape (..., B, M)
        The input (float64 copy).
    m : ndarray, shape (..., 1, M)
        Batch mean (SPEC eq. 6).
    v : ndarray, shape (..., 1, M)
        **Biased** batch variance ``mean_i (Y - m)^2`` (SPEC eq. 7).
    s : ndarray, shape (..., 1, M)
        ``(v + eps)^(-1/2)`` (``inf`` when ``v + eps = 0``).
    Yc : ndarray, shape (..., B, M)
        Centred batch ``Y - m``.
    xhat : ndarray, shape (..., B, M)
        ``(Y - m) s`` (NaN for a constant feature at ``eps = 0``).
    Yhat : ndarray, shape (..., B, M)
        ``gamma xhat + beta``.
    H : ndarray, shape (..., B, M)
        ``relu(Yhat)`` (NaN stays NaN).
    eps : float
        The eps used.
    """

    Y: Array
    m: Array
    v: Array
    s: Array
    Yc: Array
    xhat: Array
    Yhat: Array
    H: Array
    eps: float

    @property
    def B(self) -> int:
        """Batch size (length of axis -2)."""
        return int(self.Y.shape[-2])


def bn_forward(Y: ArrayLike, gamma: ArrayLike, beta: ArrayLike, eps: float) -> BNForward:
    """Training-mode batch norm followed by a ReLU.

    ``m = mean_i Y``, ``v = mean_i (Y - m)^2`` (biased), ``s = (v + eps)^(-1/2)``,
    ``xhat = (Y - m) s``, ``Yhat = gamma xhat + beta``, ``H = relu(Yhat)``.

    Parameters
    ----------
    Y : array_like, shape (..., B, M)
        Batch (axis -2) of M features; leading axes are independent instances.
    gamma, beta : array_like
        Scale and shift: scalar, (M,), or per instance (..., M) or (..., 1, M).
    eps : float
        Non-negative constant added to the variance. ``eps = 0`` is allowed; a constant feature then
        gives NaN (computed silently, never raised).

    Returns
    -------
    BNForward
    """
    Y = _as_batch(Y)
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    g = _as_param(gamma)
    b = _as_param(beta)
    m, Yc, v = _batch_stats(Y)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = 1.0 / np.sqrt(v + eps)
        xhat = Yc * s
        Yhat = g * xhat + b
        H = np.maximum(Yhat, 0.0)  # NaN propagates
    return BNForward(Y=Y, m=m, v=v, s=s, Yc=Yc, xhat=xhat, Yhat=Yhat, H=H, eps=float(eps))


def yhat_batch_moments(fwd: BNForward, beta: ArrayLike) -> tuple[Array, Array]:
    """The two exact per-batch identities' left-hand sides.

    Returns
    -------
    batch_mean : ndarray, shape (..., 1, M)
        ``mean_i Yhat[i, j]``; equals ``beta[j]`` exactly (up to rounding).
    batch_var : ndarray, shape (..., 1, M)
        ``(1/B) sum_i (Yhat[i, j] - beta[j])^2``; equals :func:`predicted_yhat_batch_var`.
    """
    b = _as_param(beta)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = np.mean(fwd.Yhat, axis=-2, keepdims=True)
        dev = fwd.Yhat - b
        var = np.mean(dev * dev, axis=-2, keepdims=True)
    return mean, var


def predicted_yhat_batch_var(gamma: ArrayLike, v: ArrayLike, eps: float) -> Array:
    """``gamma^2 v / (v + eps)``: the exact batch variance of Yhat (NaN when ``v + eps = 0``)."""
    g = _as_param(gamma)
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return g * g * v / (v + eps)


@dataclass(frozen=True)
class BNGrads:
    """Gradients of a loss ``l`` through batch norm + ReLU (or anything shaped like them).

    Attributes
    ----------
    d_gamma, d_beta, d_v, d_m : ndarray, shape (..., 1, M)
        ``dl/dgamma``, ``dl/dbeta``, ``dl/dv``, ``dl/dm`` (the last two are partial derivatives
        with m and v as independent inputs of the normalisation).
    d_Y : ndarray, shape (..., B, M)
        ``dl/dY`` through the full forward (m and v depend on Y).
    jac_diag : ndarray, shape (..., B, M)
        ``dYhat[i, j] / dY[i, j]`` (no ReLU, no upstream gradient).

    The same container is used for boolean masks (:func:`kink_mask`) and scales
    (:func:`grad_scales`).
    """

    d_gamma: Array
    d_beta: Array
    d_v: Array
    d_m: Array
    d_Y: Array
    jac_diag: Array

    def as_dict(self) -> dict[str, Array]:
        """``{name: array}`` in :data:`GRAD_QUANTITIES` order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def bn_backward(G: ArrayLike, fwd: BNForward, gamma: ArrayLike) -> BNGrads:
    """Analytic backward pass of ``H = relu(BN(Y))`` for upstream gradient ``G = dl/dH``.

    With ``D = G * 1[Yhat > 0]`` and sums over the batch axis (kept):

    * ``d_gamma = sum_i D xhat``
    * ``d_beta = sum_i D``
    * ``d_v = -1/2 gamma (v + eps)^(-3/2) sum_i D (Y - m)``
    * ``d_m = -gamma s sum_i D`` -- the **partial** derivative holding v fixed. It equals Ioffe &
      Szegedy's (2015) ``dl/dmu``, whose second term ``dl/dv * (-2/B) sum_i (Y - m)`` vanishes
      because the deviations from the batch mean sum to zero.
    * ``d_Y = (gamma s / B) (B D - sum_i D - xhat sum_i (D xhat))``
      (= direct term + ``d_m / B`` + ``d_v * 2 (Y - m) / B``)
    * ``jac_diag = dYhat[i,j]/dY[i,j] = gamma s (1 - 1/B - xhat^2 / B)``

    Parameters
    ----------
    G : array_like, shape (..., B, M)
        Upstream gradient ``dl/dH``.
    fwd : BNForward
        The forward pass (from :func:`bn_forward`).
    gamma : array_like
        The scale used in the forward pass.

    Returns
    -------
    BNGrads
        NaN where the forward pass is NaN (``eps = 0`` and a constant feature); never raises.
    """
    G = np.asarray(G, dtype=np.float64)
    g = _as_param(gamma)
    B = fwd.B
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        D = G * (fwd.Yhat > 0)
        sum_D = batch_sum(D)
        sum_Dx = batch_sum(D * fwd.xhat)
        gs = g * fwd.s
        d_gamma = sum_Dx
        d_beta = sum_D
        d_v = -0.5 * g * fwd.s**3 * batch_sum(D * fwd.Yc)
        d_m = -gs * sum_D
        d_Y = (gs / B) * (B * D - sum_D - fwd.xhat * sum_Dx)
        jac_diag = gs * (1.0 - 1.0 / B - fwd.xhat**2 / B)
    shape = np.broadcast_shapes(fwd.Y.shape, G.shape)
    pshape = shape[:-2] + (1, shape[-1])
    return BNGrads(
        d_gamma=np.broadcast_to(d_gamma, pshape).copy(),
        d_beta=np.broadcast_to(d_beta, pshape).copy(),
        d_v=np.broadcast_to(d_v, pshape).copy(),
        d_m=np.broadcast_to(d_m, pshape).copy(),
        d_Y=np.broadcast_to(d_Y, shape).copy(),
        jac_diag=np.broadcast_to(jac_diag, shape).copy(),
    )


def claim_namespace(
    G: ArrayLike, fwd: BNForward, gamma: ArrayLike, beta: ArrayLike
) -> dict[str, Array | float | int]:
    """The SPEC names a gradient claim may use, as broadcast-ready arrays.

    Returns ``{D, G, Y, Yhat, m, v, s, xhat, gamma, beta, eps, B}``; per-feature names have shape
    (..., 1, M), per-entry names (..., B, M), ``eps`` is a float and ``B`` an int. Pair it with
    :func:`batch_sum` as the claim language's ``sum``.
    """
    G = np.asarray(G, dtype=np.float64)
    return {
        "D": G * (fwd.Yhat > 0),
        "G": G,
        "Y": fwd.Y,
        "Yhat": fwd.Yhat,
        "m": fwd.m,
        "v": fwd.v,
        "s": fwd.s,
        "xhat": fwd.xhat,
        "gamma": _as_param(gamma),
        "beta": _as_param(beta),
        "eps": fwd.eps,
        "B": fwd.B,
    }


# --------------------------------------------------------------------------------------------------
# Finite differences
# --------------------------------------------------------------------------------------------------


def fd_tolerance(step: float = DEFAULT_STEP) -> float:
    """Relative tolerance for comparing a gradient with :func:`finite_difference_grads` at this
    relative ``step``.

    The central-difference error, in units where the perturbed input has its natural scale, is
    ``step**2 |f'''| / 6 + eps_machine |f| / step`` with O(1) constants. The tolerance is that model
    times 100, a margin for the constants (third derivatives of ``(v + eps)^(-1/2)``, sums of B
    terms): ``fd_tolerance(1e-5) = 100 (1e-10 + 2.2e-11) ~ 1.2e-8``.

    It applies to entries that the finite difference resolves well. Entries that cancel to near 0,
    or whose loss is dominated by ``|beta| >> |gamma|`` or by a mean large against the spread, are
    resolved only to :func:`fd_resolution` in absolute terms: pass
    ``fd_resolution(...) / fd_tolerance(step)`` as the ``floor`` of :func:`relative_error` (as
    :func:`grad_check` does), so that the check reads
    ``|a - b| <= max(tol |a|, tol |b|, resolution)``. A wrong formula errs by ~1/B of the entry's
    terms (jac_diag without its -1/B) or ~1/sqrt(B) (the diagonal-only Jacobian), orders of
    magnitude above both.
    """
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    return 100.0 * (step**2 + _EPS_MACHINE / step)


def relative_error(a: ArrayLike, b: ArrayLike, floor: ArrayLike = 0.0) -> Array:
    """``|a - b| / max(|a|, |b|, floor)``, elementwise.

    ``floor`` (scalar or array broadcastable to ``a``) keeps entries whose true value cancels to
    ~0 from reporting amplified round-off; ``fd_resolution(...) / fd_tolerance(step)`` is the
    natural choice against finite differences. Two equal values (including two zeros) give 0; NaN
    in either gives NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        den = np.maximum(np.maximum(np.abs(a), np.abs(b)), np.asarray(floor, dtype=np.float64))
        diff = np.abs(a - b)
        return np.where(diff == 0, 0.0 * diff, diff / den)


def _steps(fwd: BNForward, gamma: Array, beta: Array, step: float) -> dict[str, Array]:
    """Absolute step per perturbed input (each with its natural scale), shape (..., 1, M).

    * gamma, beta: ``step (|gamma| + |beta|)`` -- the scale of ``Yhat``; the loss is linear in
      both, so only rounding (of size ``eps_machine |Yhat|``) matters.
    * m and each ``Y[i, j]``: ``step sqrt(v + eps)`` -- Yhat depends on them through
      ``(Y - m) / sqrt(v + eps)``.
    * v: ``step (v + eps)``.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.abs(gamma) + np.abs(beta)
        out = np.where(out > 0, out, 1.0)
        h_out = step * np.broadcast_to(out, fwd.m.shape)
        ve = fwd.v + fwd.eps
        return {
            "gamma": h_out,
            "beta": h_out,
            "m": step * np.sqrt(ve),
            "v": step * ve,
            "Y": step * np.sqrt(ve),
        }


def _column_loss(G: Array, Yhat: Array) -> Array:
    """``sum_i G relu(Yhat)`` per feature column, shape (..., 1, M).

    The loss ``l = sum over all entries`` is a sum of column losses, and column j depends only on
    the parameters and inputs of feature j; so perturbing *every* feature at once and reading each
    column's loss gives all per-feature derivatives in one pair of evaluations.
    """
    return batch_sum(G * np.maximum(Yhat, 0.0))


def finite_difference_grads(
    Y: ArrayLike,
    gamma: ArrayLike,
    beta: ArrayLike,
    eps: float,
    G: ArrayLike,
    step: float = DEFAULT_STEP,
) -> BNGrads:
    """Central finite differences (float64) of ``l = sum(G * relu(Yhat))``: the check on
    :func:`bn_backward`.

    * ``d_gamma``, ``d_beta``: perturb gamma, beta.
    * ``d_v``, ``d_m``: perturb v and m as **independent** inputs of
      ``Yhat = gamma (Y - m) / sqrt(v + eps) + beta`` (partial derivatives).
    * ``d_Y``: perturb each ``Y[i, j]`` through the full forward (m and v recomputed).
    * ``jac_diag``: perturb ``Y[i, j]`` and read ``Yhat[i, j]`` (no ReLU).

    Each input is stepped by ``step`` times its natural scale (:data:`DEFAULT_STEP` explains the
    choice): ``step (|gamma| + |beta|)`` for gamma and beta, ``step (v + eps)`` for v and
    ``step sqrt(v + eps)`` for m and Y. The divisor is the difference of the perturbed values as
    actually represented (``(x + h) - (x - h)``), which removes the rounding of the step itself.

    Entries whose stencil crosses the ReLU kink are computed anyway and are wrong; skip them with
    :func:`kink_mask`. Cost: 8 forward passes plus ``4 B`` for d_Y and jac_diag.

    Parameters
    ----------
    Y : array_like, shape (..., B, M)
    gamma, beta : array_like
        As in :func:`bn_forward`.
    eps : float
    G : array_like, shape (..., B, M)
        Upstream gradient ``dl/dH``.
    step : float
        Relative step.

    Returns
    -------
    BNGrads
    """
    Y = _as_batch(Y)
    G = np.broadcast_to(np.asarray(G, dtype=np.float64), Y.shape)
    g = np.broadcast_to(_as_param(gamma), Y.shape[:-2] + (1, Y.shape[-1]))
    b = np.broadcast_to(_as_param(beta), g.shape)
    fwd = bn_forward(Y, g, b, eps)
    h = _steps(fwd, g, b, step)
    m, v = fwd.m, fwd.v

    def central(x: Array, hx: Array, loss: Callable[[Array], Array]) -> Array:
        xp, xm = x + hx, x - hx
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return (loss(xp) - loss(xm)) / (xp - xm)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d_gamma = central(g, h["gamma"], lambda x: _column_loss(G, _normalise(Y, m, v, x, b, eps)))
        d_beta = central(b, h["beta"], lambda x: _column_loss(G, _normalise(Y, m, v, g, x, eps)))
        d_m = central(m, h["m"], lambda x: _column_loss(G, _normalise(Y, x, v, g, b, eps)))
        d_v = central(v, h["v"], lambda x: _column_loss(G, _normalise(Y, m, x, g, b, eps)))

        B = Y.shape[-2]
        d_Y = np.empty(Y.shape)
        jac = np.empty(Y.shape)
        hY = np.broadcast_to(h["Y"], g.shape)[..., 0, :]  # (..., M)
        for i in range(B):
            Yp = Y.copy()
            Ym = Y.copy()
            Yp[..., i, :] += hY
            Ym[..., i, :] -= hY
            den = Yp[..., i, :] - Ym[..., i, :]
            Hp = _forward_yhat(Yp, g, b, eps)
            Hm = _forward_yhat(Ym, g, b, eps)
            d_Y[..., i, :] = (_column_loss(G, Hp) - _column_loss(G, Hm))[..., 0, :] / den
            jac[..., i, :] = (Hp[..., i, :] - Hm[..., i, :]) / den
    return BNGrads(d_gamma=d_gamma, d_beta=d_beta, d_v=d_v, d_m=d_m, d_Y=d_Y, jac_diag=jac)


def _forward_yhat(Y: Array, g: Array, b: Array, eps: float) -> Array:
    m, _, v = _batch_stats(Y)
    return _normalise(Y, m, v, g, b, eps)


def kink_mask(
    Y: ArrayLike,
    gamma: ArrayLike,
    beta: ArrayLike,
    eps: float,
    step: float = DEFAULT_STEP,
    safety: float = 10.0,
) -> BNGrads:
    """Which finite-difference entries to skip: their stencil may cross the ReLU kink.

    Perturbing any per-feature input, or any ``Y[i, j]``, moves every ``Yhat[k, j]`` of column j.
    An entry is skipped when some ``|Yhat[k, j]|`` is within ``safety`` times the first-order
    change the step can cause:

    * gamma: ``h_gamma |xhat[k]|``; beta: ``h_beta``;
    * v: ``|gamma xhat[k]| h_v / (2 (v + eps)) = |gamma xhat[k]| step / 2``;
    * m: ``|gamma| s h_m = |gamma| step``;
    * ``Y[i, j]`` (d_Y): ``|gamma| s h_Y |delta_ki - 1/B - xhat_k xhat_i / B| <= 2 |gamma| step``
      (Samuelson: ``|xhat| <= sqrt(B - 1)``), so d_Y's mask is the same for the whole column.
    * jac_diag has no ReLU: never skipped.

    Parameters
    ----------
    Y, gamma, beta, eps, step
        As given to :func:`finite_difference_grads`.
    safety : float
        Multiplier on the first-order change (covers second-order terms with a wide margin).

    Returns
    -------
    BNGrads
        Boolean arrays, True = skip, shaped like the gradients. NaN entries are not masked (they
        are reported as NaN).
    """
    Y = _as_batch(Y)
    g = np.broadcast_to(_as_param(gamma), Y.shape[:-2] + (1, Y.shape[-1]))
    b = np.broadcast_to(_as_param(beta), g.shape)
    fwd = bn_forward(Y, g, b, eps)
    h = _steps(fwd, g, b, step)
    a = np.abs(fwd.Yhat)
    ax = np.abs(fwd.xhat)
    ag = np.abs(g)

    def near(change: Array) -> Array:
        with np.errstate(invalid="ignore"):
            return np.any(a <= safety * change, axis=-2, keepdims=True)

    col_Y = near(2.0 * ag * step * np.ones_like(a))
    return BNGrads(
        d_gamma=near(h["gamma"] * ax),
        d_beta=near(h["beta"] * np.ones_like(a)),
        d_v=near(0.5 * ag * ax * step),
        d_m=near(ag * step * np.ones_like(a)),
        d_Y=np.broadcast_to(col_Y, Y.shape).copy(),
        jac_diag=np.zeros(Y.shape, dtype=bool),
    )


def grad_scales(G: ArrayLike, fwd: BNForward, gamma: ArrayLike) -> BNGrads:
    """Natural magnitude of each gradient entry: the sum of the absolute values of its terms.

    * d_gamma: ``sum_i |D xhat|``; d_beta: ``sum_i |D|``;
    * d_v: ``1/2 |gamma| (v + eps)^(-3/2) sum_i |D (Y - m)|``; d_m: ``|gamma| s sum_i |D|``;
    * d_Y: ``(|gamma| s / B) (B |D| + sum_i |D| + |xhat| sum_i |D xhat|)``;
    * jac_diag: ``|gamma| s (1 + 1/B + xhat^2 / B)``.

    A wrong formula typically errs by ~1/B of this scale or more; the truncation part of
    :func:`fd_resolution` is ``step**2`` times it.
    """
    G = np.asarray(G, dtype=np.float64)
    ag = np.abs(_as_param(gamma))
    B = fwd.B
    shape = np.broadcast_shapes(fwd.Y.shape, G.shape)
    pshape = shape[:-2] + (1, shape[-1])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        aD = np.abs(G * (fwd.Yhat > 0))
        ax = np.abs(fwd.xhat)
        sD = batch_sum(aD)
        sDx = batch_sum(aD * ax)
        gs = ag * fwd.s
        d_v = 0.5 * ag * fwd.s**3 * batch_sum(aD * np.abs(fwd.Yc))
        return BNGrads(
            d_gamma=np.broadcast_to(sDx, pshape).copy(),
            d_beta=np.broadcast_to(sD, pshape).copy(),
            d_v=np.broadcast_to(d_v, pshape).copy(),
            d_m=np.broadcast_to(gs * sD, pshape).copy(),
            d_Y=np.broadcast_to((gs / B) * (B * aD + sD + ax * sDx), shape).copy(),
            jac_diag=np.broadcast_to(gs * (1.0 + 1.0 / B + ax**2 / B), shape).copy(),
        )


def fd_resolution(
    G: ArrayLike,
    fwd: BNForward,
    gamma: ArrayLike,
    beta: ArrayLike,
    step: float = DEFAULT_STEP,
) -> BNGrads:
    """Estimated absolute error of :func:`finite_difference_grads`, entry by entry.

    ``FD_SAFETY * (eps_machine A / h + step**2 scale)``: ``h`` is the absolute step of the
    perturbed input, ``scale`` is :func:`grad_scales` (the truncation term is ``step**2`` in
    natural units) and ``A`` is the magnitude of the rounding of the differenced function. With
    the rounding magnitude of one Yhat entry ``R = |gamma xhat| + |beta| + |gamma| s (|Y| + |m|)``,
    ``A = sum_k |G_k| R_k`` (the column loss) for every quantity except jac_diag, where ``A = R``.
    The ``|beta|`` and ``|Y| + |m|`` terms are why an instance with ``|beta| >> |gamma|``, or with
    a mean large against its spread, is resolved less finely than :func:`fd_tolerance` suggests.
    """
    G = np.asarray(G, dtype=np.float64)
    g = _as_param(gamma)
    b = _as_param(beta)
    ag = np.abs(g)
    h = _steps(fwd, g, b, step)
    scale = grad_scales(G, fwd, gamma)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        R = ag * np.abs(fwd.xhat) + np.abs(b) + ag * fwd.s * (np.abs(fwd.Y) + np.abs(fwd.m))
        A = batch_sum(np.abs(G) * R)

        def res(name: str, magnitude: Array, hq: Array) -> Array:
            sc = getattr(scale, name)
            out = FD_SAFETY * (_EPS_MACHINE * magnitude / hq + step**2 * sc)
            return np.broadcast_to(out, sc.shape).copy()

        return BNGrads(
            d_gamma=res("d_gamma", A, h["gamma"]),
            d_beta=res("d_beta", A, h["beta"]),
            d_v=res("d_v", A, h["v"]),
            d_m=res("d_m", A, h["m"]),
            d_Y=res("d_Y", A, h["Y"]),
            jac_diag=res("jac_diag", R, h["Y"]),
        )


@dataclass(frozen=True)
class GradCheck:
    """Result of :func:`grad_check`.

    Attributes
    ----------
    candidate : dict of str to ndarray
        The values checked (analytic by default, or a claim's arrays), broadcast to gradient shape.
    numeric : BNGrads
        Central finite differences.
    skip : BNGrads
        Kink mask (True = skipped).
    resolution : BNGrads
        :func:`fd_resolution`: the absolute error allowed where a relative test cannot resolve.
    rel_error : dict of str to ndarray
        ``relative_error(candidate, numeric, floor=resolution / tolerance)`` per quantity; NaN
        where skipped (and where the inputs are NaN).
    tolerance : float
        :func:`fd_tolerance` of the step used.
    """

    candidate: dict[str, Array]
    numeric: BNGrads
    skip: BNGrads
    resolution: BNGrads
    rel_error: dict[str, Array]
    tolerance: float

    def errors(self, name: str) -> Array:
        """1-D array of the relative errors of the entries not skipped (may contain NaN)."""
        return self.rel_error[name][~getattr(self.skip, name)]

    def max_error(self, name: str) -> float:
        """Largest relative error over the entries not skipped (NaN if any is NaN; 0 if none)."""
        e = self.errors(name)
        return float(np.max(e)) if e.size else 0.0

    def passed(self, name: str) -> bool:
        """True when every non-skipped entry is finite and within the tolerance."""
        e = self.errors(name)
        return bool(np.all(np.isfinite(e)) and np.all(e <= self.tolerance))


def grad_check(
    Y: ArrayLike,
    gamma: ArrayLike,
    beta: ArrayLike,
    eps: float,
    G: ArrayLike,
    candidate: Mapping[str, ArrayLike] | None = None,
    step: float = DEFAULT_STEP,
) -> GradCheck:
    """Compare gradients with central finite differences, skipping kink-crossing entries.

    Each entry passes when ``|a - b| <= max(tol |a|, tol |b|, resolution)`` with
    ``tol = fd_tolerance(step)`` and ``resolution = fd_resolution(...)``.

    Parameters
    ----------
    Y, gamma, beta, eps, G
        The instance(s), as in :func:`finite_difference_grads`.
    candidate : mapping of str to array_like, optional
        Values to check for some or all of :data:`GRAD_QUANTITIES` (e.g. a claim's arrays; each is
        broadcast to the gradient's shape). Missing quantities use :func:`bn_backward`.
    step : float
        Relative finite-difference step.

    Returns
    -------
    GradCheck
    """
    Y = _as_batch(Y)
    G = np.broadcast_to(np.asarray(G, dtype=np.float64), Y.shape)
    fwd = bn_forward(Y, gamma, beta, eps)
    analytic = bn_backward(G, fwd, gamma).as_dict()
    numeric = finite_difference_grads(Y, gamma, beta, eps, G, step)
    skip = kink_mask(Y, gamma, beta, eps, step)
    resolution = fd_resolution(G, fwd, gamma, beta, step)
    tol = fd_tolerance(step)
    cand: dict[str, Array] = {}
    rel: dict[str, Array] = {}
    for name in GRAD_QUANTITIES:
        target = getattr(numeric, name)
        if candidate is not None and name in candidate:
            value = np.asarray(candidate[name], dtype=np.float64)
            cand[name] = np.broadcast_to(value, target.shape).copy()
        else:
            cand[name] = analytic[name]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = relative_error(cand[name], target, getattr(resolution, name) / tol)
        rel[name] = np.where(getattr(skip, name), np.nan, r)
    return GradCheck(
        candidate=cand,
        numeric=numeric,
        skip=skip,
        resolution=resolution,
        rel_error=rel,
        tolerance=tol,
    )


# --------------------------------------------------------------------------------------------------
# Statistics over batches
# --------------------------------------------------------------------------------------------------


def _check_B(B: int) -> int:
    if int(B) != B or B < 2:
        raise ValueError(f"B must be an integer >= 2, got {B}")
    return int(B)


def expected_batch_var(B: int, sigma2: ArrayLike) -> Array | float:
    """``E[v] = (B - 1)/B sigma^2`` for the biased batch variance of iid inputs of variance sigma^2
    (any law with finite variance)."""
    B = _check_B(B)
    return (B - 1) / B * np.asarray(sigma2, dtype=np.float64)


def _chi2_ratio_deficit(k: int, c: float) -> float:
    """``E[c / (X + c)]`` for ``X ~ chi2_k``, ``c > 0``, by quadrature.

    Writing ``1/(X + c) = int_0^inf exp(-u (X + c)) du`` and using the chi2 Laplace transform
    ``E exp(-u X) = (1 + 2u)^(-k/2)``, then ``w = c u``::

        E[c / (X + c)] = int_0^inf exp(-w) (1 + 2 w / c)^(-k/2) dw,

    a smooth, bounded integrand (unlike the chi2 density, singular at 0 for k = 1). It is
    integrated in ``t = log w`` with a breakpoint at ``log c``, where the integrand turns over, so
    tiny and huge c are both resolved to ~1e-12 relative.
    """
    half_k = 0.5 * k
    log_c = math.log(c)

    def integrand(t: float) -> float:
        w = math.exp(t)
        return math.exp(t - w - half_k * math.log1p(2.0 * w / c))

    lo = min(log_c, 0.0) - 40.0
    hi = math.log(800.0)
    points = sorted({min(max(log_c, lo + 1.0), hi - 1.0), 0.0})
    total = 0.0
    edges = [lo, *points, hi]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b > a:
            val, _ = scipy.integrate.quad(integrand, a, b, epsabs=0.0, epsrel=1e-13, limit=400)
            total += val
    return total


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


# --------------------------------------------------------------------------------------------------
# Whitening
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Whitening:
    """A whitened batch and the matrices that produced it (shapes for one batch; a stack of
    batches adds leading axes).

    Attributes
    ----------
    method : str
        ``"zca"``, ``"pca"``, ``"cholesky"`` or ``"bn"``.
    Ytilde : ndarray, shape (B, M)
        ``Yc @ W``; NaN for a batch whose ``Sigma + eps I`` is numerically singular (see
        ``singular``).
    Yc : ndarray, shape (B, M)
        Centred batch.
    mean : ndarray, shape (1, M)
        Batch mean.
    Sigma : ndarray, shape (M, M)
        ``Yc^T Yc / B`` (biased, like BN's v).
    W : ndarray, shape (M, M)
        The whitening matrix (applied on the right); NaN where ``Ytilde`` is.
    eigvals : ndarray, shape (M,), or None
        Eigenvalues of Sigma (ZCA: ascending, as from ``eigh``; PCA: descending); the numerically
        null ones (at or below ``tol``) are set to exactly 0.
    eigvecs : ndarray, shape (M, M), or None
        Matching eigenvectors in columns (PCA: with the sign convention of :func:`pca_whiten`).
    L : ndarray, shape (M, M), or None
        Cholesky factor of ``Sigma + eps I`` (Cholesky whitening only).
    eps : float
    rank : int or ndarray of int, shape (...), or None
        Numerical rank of Sigma: the number of its eigenvalues above ``tol``; -1 for a non-finite
        Sigma. None for ``"bn"`` (which does not use the spectrum).
    singular : bool or ndarray of bool, shape (...), or None
        ``rank < M``: Sigma is numerically singular (always when ``B <= M``). With ``eps`` at or
        below ``tol`` (in particular ``eps = 0``) ``Sigma + eps I`` is then numerically singular
        too and that batch's ``W`` and ``Ytilde`` are NaN: the whitening is undefined, and it is
        said so on every BLAS, instead of finite numbers made of a rounding-level eigenvalue.
    tol : float or ndarray, shape (...), or None
        The threshold :func:`null_tolerance` used, ``max(B, M) eps_machine lambda_max``.
    """

    method: str
    Ytilde: Array
    Yc: Array
    mean: Array
    Sigma: Array
    W: Array
    eps: float
    eigvals: Array | None = None
    eigvecs: Array | None = None
    L: Array | None = None
    rank: Array | int | None = None
    singular: Array | bool | None = None
    tol: Array | float | None = None


def _T(A: Array) -> Array:
    return np.swapaxes(A, -1, -2)


def _centre_cov(Y: ArrayLike) -> tuple[Array, Array, Array]:
    Y = _as_batch(Y)
    m, Yc, _ = _batch_stats(Y)
    Sigma = _T(Yc) @ Yc / Y.shape[-2]
    Sigma = 0.5 * (Sigma + _T(Sigma))
    return m, Yc, Sigma


def _check_eps(eps: float) -> float:
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return float(eps)


def null_tolerance(lam_max: ArrayLike, n: int) -> Array | float:
    """``n eps_machine lambda_max``: eigenvalues of a symmetric PSD matrix at or below this are
    numerically zero.

    A float64 eigen-decomposition (and a covariance formed as a sum of products) is exact only to
    about ``eps_machine lambda_max`` times a modest factor of the size, so a smaller eigenvalue is
    rounding: its sign and size depend on the BLAS / LAPACK kernel (OpenBLAS picks one per CPU)
    and must not decide anything. ``n`` is the matrix size M for a given matrix (the default of
    ``numpy.linalg.matrix_rank``) and ``max(B, M)`` for a covariance formed from B samples (the
    forward error of a sum of B products). The null eigenvalues of rank-deficient batch
    covariances, measured over B, M from 2 to 8192, stay below ``2.3 eps_machine lambda_max``.
    """
    t = n * _EPS_MACHINE * np.maximum(np.asarray(lam_max, dtype=np.float64), 0.0)
    return float(t) if np.ndim(t) == 0 else t


@dataclass(frozen=True)
class _Spectrum:
    lam: Array  # ascending; numerically null eigenvalues exactly 0; NaN for a non-finite matrix
    U: Array | None  # eigenvectors in columns (None when not asked for)
    rank: Array  # -1 for a non-finite matrix
    singular: Array  # rank < M (False for a non-finite matrix)
    tol: Array  # null_tolerance(lambda_max, n)


def _spectrum(S: ArrayLike, n: int | None = None, vectors: bool = True) -> _Spectrum:
    """Spectrum of symmetric PSD matrices (stackable) with the numerically null eigenvalues (at
    or below ``null_tolerance(lambda_max, n)``, n = M by default) set to exactly 0 -- round-off
    makes them slightly negative or positive depending on the kernel. Non-finite matrices give
    NaN instead of raising."""
    S = np.asarray(S, dtype=np.float64)
    M = S.shape[-1]
    bad = ~np.all(np.isfinite(S), axis=(-2, -1))
    safe = np.where(bad[..., None, None], 0.0, S)
    sym = 0.5 * (safe + _T(safe))
    if vectors:
        lam, U = np.linalg.eigh(sym)
        U = np.where(bad[..., None, None], np.nan, U)
    else:
        lam, U = np.linalg.eigvalsh(sym), None
    tol = np.asarray(null_tolerance(lam[..., -1], M if n is None else n))
    null = lam <= tol[..., None]
    lam = np.where(null, 0.0, lam)
    rank = np.where(bad, -1, M - np.sum(null, axis=-1))
    lam = np.where(bad[..., None], np.nan, lam)
    tol = np.where(bad, np.nan, tol)
    return _Spectrum(lam, U, rank, (rank < M) & ~bad, tol)


def _undefined(sp: _Spectrum, eps: float, n: int) -> Array:
    """Where ``Sigma + eps I`` is numerically singular: Sigma is, and eps is at or below the
    tolerance of ``Sigma + eps I`` (its null eigenvalues become exactly eps)."""
    lam_max = np.where(np.isnan(sp.tol), 0.0, sp.lam[..., -1])
    return sp.singular & (eps <= null_tolerance(lam_max + eps, n))


def _flags(sp: _Spectrum) -> dict[str, Array | int | bool | float]:
    """The ``rank``, ``singular`` and ``tol`` fields of :class:`Whitening` (scalars for one
    batch)."""
    if sp.rank.ndim == 0:
        return {"rank": int(sp.rank), "singular": bool(sp.singular), "tol": float(sp.tol)}
    return {"rank": sp.rank, "singular": sp.singular, "tol": sp.tol}


def _cov_n(Yc: Array) -> int:
    """The ``n`` of :func:`null_tolerance` for a covariance from the batch Yc: max(B, M)."""
    return max(Yc.shape[-2], Yc.shape[-1])


def _eigh_psd(S: Array, n: int | None = None) -> tuple[Array, Array]:
    """Eigen-decomposition of symmetric PSD matrices, numerically null eigenvalues set to 0
    (:func:`_spectrum`)."""
    sp = _spectrum(S, n)
    return sp.lam, sp.U


def sqrtm_psd(S: ArrayLike) -> Array:
    """Symmetric square root ``U diag(sqrt(lambda)) U^T`` of a symmetric PSD matrix (stackable);
    numerically null eigenvalues (:func:`null_tolerance` with n = M, including negative
    round-off) count as 0."""
    lam, U = _eigh_psd(np.asarray(S, dtype=np.float64))
    return (U * np.sqrt(lam)[..., None, :]) @ _T(U)


def inv_sqrtm_psd(S: ArrayLike, eps: float = 0.0) -> Array:
    """``(S + eps I)^(-1/2)`` for symmetric PSD S via ``eigh`` (stackable).

    Where ``S + eps I`` is numerically singular (S has an eigenvalue at or below
    :func:`null_tolerance` with n = M, and eps is at or below it too, e.g. ``eps = 0``) the result
    is NaN (no exception), whatever the sign of the rounding-level eigenvalue.
    """
    eps = _check_eps(eps)
    S = np.asarray(S, dtype=np.float64)
    sp = _spectrum(S)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = 1.0 / np.sqrt(sp.lam + eps)
        R = (sp.U * d[..., None, :]) @ _T(sp.U)
    return np.where(_undefined(sp, eps, S.shape[-1])[..., None, None], np.nan, R)


def white_cov(Ytilde: ArrayLike) -> Array:
    """``Ytilde^T Ytilde / B`` (the batch covariance of whitened, centred data)."""
    Yt = _as_batch(Ytilde)
    with np.errstate(invalid="ignore", over="ignore"):
        return _T(Yt) @ Yt / Yt.shape[-2]


def cross_cov(Ytilde: ArrayLike, Yc: ArrayLike) -> Array:
    """``Ytilde^T Yc / B``. For ZCA this is ``Sigma^(1/2)`` (up to eps), not I."""
    Yt = _as_batch(Ytilde)
    Yc = _as_batch(Yc)
    with np.errstate(invalid="ignore", over="ignore"):
        return _T(Yt) @ Yc / Yt.shape[-2]


def zca_whiten(Y: ArrayLike, eps: float) -> Whitening:
    """ZCA whitening ``Ytilde = Yc (Sigma + eps I)^(-1/2)``, via ``eigh``.

    The whitening matrix is symmetric: of all whitening matrices it keeps ``Ytilde`` closest to
    ``Yc`` (Huang et al. 2018), so it does not rotate the features, and it is a smooth function of
    Sigma (stable from batch to batch even when eigenvalues are close).

    Parameters
    ----------
    Y : array_like, shape (..., B, M)
    eps : float
        ``>= 0``. A numerically singular Sigma (always when ``B <= M``) is flagged
        (``singular``, ``rank``); with ``eps = 0`` (or eps at rounding level) that batch's output
        is NaN.
    """
    eps = _check_eps(eps)
    m, Yc, Sigma = _centre_cov(Y)
    n = _cov_n(Yc)
    sp = _spectrum(Sigma, n)
    lam, U = sp.lam, sp.U
    undefined = _undefined(sp, eps, n)[..., None, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        W = (U * (1.0 / np.sqrt(lam + eps))[..., None, :]) @ _T(U)
        W = np.where(undefined, np.nan, W)
        Yt = Yc @ W
    return Whitening("zca", Yt, Yc, m, Sigma, W, eps, eigvals=lam, eigvecs=U, **_flags(sp))


def pca_whiten(Y: ArrayLike, eps: float) -> Whitening:
    """PCA whitening ``Ytilde = Yc U (Lambda + eps)^(-1/2)``: output in the rotated (principal)
    basis.

    Deterministic convention: eigenvalues in **descending** order, and each eigenvector's sign
    chosen so that its entry of largest absolute value is positive (first such entry on ties; as
    scikit-learn's ``svd_flip``). This removes LAPACK's arbitrary signs only; no alignment with
    another batch is attempted, so when the eigenvalue order or the principal axes change between
    consecutive batches the output columns swap or rotate -- the "stochastic axis swapping" of
    Huang et al. (2018), exposed rather than hidden. (The basis of a null space, ``B <= M``, is
    LAPACK's choice and the columns of W on it are not determined.)

    Parameters
    ----------
    Y : array_like, shape (..., B, M)
    eps : float
        As for :func:`zca_whiten` (NaN for a numerically singular Sigma at ``eps = 0``).
    """
    eps = _check_eps(eps)
    m, Yc, Sigma = _centre_cov(Y)
    n = _cov_n(Yc)
    sp = _spectrum(Sigma, n)
    lam = sp.lam[..., ::-1]
    U = sp.U[..., :, ::-1]
    idx = np.argmax(np.abs(np.nan_to_num(U)), axis=-2)[..., None, :]
    sign = np.sign(np.take_along_axis(U, idx, axis=-2))
    sign = np.where(sign == 0, 1.0, sign)
    U = U * sign
    undefined = _undefined(sp, eps, n)[..., None, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        W = U * (1.0 / np.sqrt(lam + eps))[..., None, :]
        W = np.where(undefined, np.nan, W)
        Yt = Yc @ W
    return Whitening("pca", Yt, Yc, m, Sigma, W, eps, eigvals=lam, eigvecs=U, **_flags(sp))


def cholesky_whiten(Y: ArrayLike, eps: float) -> Whitening:
    """Cholesky whitening ``Ytilde = Yc L^(-T)`` where ``Sigma + eps I = L L^T``.

    ``white_cov = L^-1 Sigma L^-T = I - eps (Sigma + eps I)^(-1)``. Whether ``Sigma + eps I`` is
    numerically singular is decided from the eigenvalues of Sigma with :func:`null_tolerance`, as
    for ZCA and PCA (``eps = 0`` and ``B <= M``, or a constant feature): that batch gives NaN, not
    whatever a factorisation of a rounding-level pivot happens to give on this BLAS. (A batch
    that ``numpy.linalg.cholesky`` still refuses also gives NaN; it never raises.)
    """
    eps = _check_eps(eps)
    m, Yc, Sigma = _centre_cov(Y)
    M = Sigma.shape[-1]
    n = _cov_n(Yc)
    sp = _spectrum(Sigma, n, vectors=False)
    S = Sigma + eps * np.eye(M)
    flat = S.reshape(-1, M, M)
    todo = ~_undefined(sp, eps, n).reshape(-1) & np.all(np.isfinite(flat), axis=(-2, -1))
    Ls = np.full_like(flat, np.nan)
    try:
        Ls[todo] = np.linalg.cholesky(flat[todo])
    except np.linalg.LinAlgError:  # some batch is not numerically positive definite after all
        for k in np.flatnonzero(todo):
            try:
                Ls[k] = np.linalg.cholesky(flat[k])
            except np.linalg.LinAlgError:
                pass
    L = Ls.reshape(S.shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        good = np.all(np.isfinite(L), axis=(-2, -1))
        Linv = np.linalg.inv(np.where(good[..., None, None], L, np.eye(M)))
        W = np.where(good[..., None, None], _T(Linv), np.nan)
        Yt = Yc @ W
    return Whitening("cholesky", Yt, Yc, m, Sigma, W, eps, L=L, **_flags(sp))


def bn_standardize(Y: ArrayLike, eps: float) -> Whitening:
    """Standard BN (gamma = 1, beta = 0) in the same form: ``W = diag(Sigma_jj + eps)^(-1/2)``.

    It scales each feature but leaves the off-diagonal correlations in place. It does not use the
    spectrum (``rank``, ``singular``, ``tol`` are None); a constant feature has exactly
    ``Sigma_jj = 0`` and gives NaN at ``eps = 0``.
    """
    eps = _check_eps(eps)
    m, Yc, Sigma = _centre_cov(Y)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d = 1.0 / np.sqrt(np.diagonal(Sigma, axis1=-2, axis2=-1) + eps)
        W = d[..., :, None] * np.eye(Sigma.shape[-1])
        Yt = Yc * d[..., None, :]
    return Whitening("bn", Yt, Yc, m, Sigma, W, eps)


def whitening_eps_deviation(Sigma: ArrayLike, eps: float) -> dict[str, Array]:
    """Exact size (spectral norm) of the eps-induced deviations in the whitening identities.

    * ``white_cov``: for ZCA, PCA and Cholesky, ``white_cov - I`` has spectral norm
      ``eps / (lambda_min + eps)`` (ZCA and Cholesky: ``white_cov = I - eps (Sigma + eps I)^-1``;
      PCA: ``diag(lambda / (lambda + eps))``). Small when ``B > M`` (``lambda_min > 0``); exactly 1
      when Sigma is singular (``B <= M``): the identity then fails, not by rounding.
    * ``cross_cov`` (ZCA): ``Sigma^(1/2) - (Sigma + eps I)^(-1/2) Sigma`` has spectral norm
      ``max_k sqrt(lambda_k) - lambda_k / sqrt(lambda_k + eps)``, at most ~0.3 sqrt(eps).

    Numerically null eigenvalues (:func:`null_tolerance`, n = M) count as exactly 0, so a singular
    Sigma at ``eps = 0`` gives NaN (0/0: the whitening is undefined there), on every BLAS.
    Use these (plus a rounding allowance) as the tolerances of the exact checks.
    """
    eps = _check_eps(eps)
    lam, _ = _eigh_psd(np.asarray(Sigma, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        wc = eps / (lam[..., 0] + eps)
        cc = np.max(np.sqrt(lam) - lam / np.sqrt(lam + eps), axis=-1)
    return {"white_cov": wc, "cross_cov": cc}


def correlation_matrix(rho: float, M: int) -> Array:
    """Equicorrelated ``(1 - rho) I + rho 1 1^T`` (M x M).

    Positive definite iff ``-1/(M - 1) < rho < 1`` (eigenvalues ``1 + (M-1) rho`` once and
    ``1 - rho`` M-1 times); outside that range a ValueError is raised. Note that ``|rho| < 1`` is
    not enough for negative rho when ``M >= 3``.
    """
    if int(M) != M or M < 1:
        raise ValueError(f"M must be a positive integer, got {M}")
    M = int(M)
    lo = -1.0 / (M - 1) if M > 1 else -math.inf
    if not (lo < rho < 1.0):
        raise ValueError(
            f"rho = {rho} does not give a positive-definite {M}x{M} correlation matrix; "
            f"need {lo:.6g} < rho < 1"
        )
    return (1.0 - rho) * np.eye(M) + rho * np.ones((M, M))


def random_correlation(rng: np.random.Generator, M: int, alpha: float = 1.0) -> Array:
    """A random M x M correlation matrix with random spectrum.

    Eigenvalues ``M * Dirichlet(alpha, ..., alpha)`` (positive, summing to M = the trace of a
    correlation matrix), then ``scipy.stats.random_correlation`` draws a random matrix with that
    spectrum and unit diagonal. Larger ``alpha`` gives a flatter spectrum (better conditioned).
    The only function here that uses random numbers, all from ``rng``.
    """
    if int(M) != M or M < 1:
        raise ValueError(f"M must be a positive integer, got {M}")
    M = int(M)
    if M == 1:
        return np.ones((1, 1))
    w = rng.dirichlet(np.full(M, float(alpha)))
    w = np.maximum(w, 1e-6)
    eigs = M * w / w.sum()
    eigs *= M / eigs.sum()
    C = scipy.stats.random_correlation.rvs(eigs, random_state=rng)
    C = 0.5 * (C + C.T)
    np.fill_diagonal(C, 1.0)
    return C


def effective_rank(S: ArrayLike, tol: float | None = None) -> Array | int:
    """Numerical rank of symmetric PSD S (stackable): eigenvalues above ``tol * lambda_max``.

    ``tol`` defaults to ``M * eps_machine`` (as ``numpy.linalg.matrix_rank``). A batch covariance
    from B samples has rank at most ``min(B - 1, M)`` (:class:`Whitening`'s ``rank`` uses
    ``max(B, M) * eps_machine`` for it, :func:`null_tolerance`). S must be finite (``eigvalsh``
    raises ``LinAlgError`` otherwise).
    """
    S = np.asarray(S, dtype=np.float64)
    M = S.shape[-1]
    rel = M * _EPS_MACHINE if tol is None else float(tol)
    lam = np.linalg.eigvalsh(S)
    top = lam[..., -1:]
    r = np.sum(lam > rel * top, axis=-1)
    return int(r) if np.ndim(r) == 0 else r


def condition_number(S: ArrayLike, tol: float | None = None) -> Array | float:
    """``lambda_max / lambda_min`` of symmetric PSD S (stackable); ``inf`` when S is numerically
    singular, i.e. ``lambda_min <= tol * lambda_max`` (``tol`` defaults to ``M * eps_machine``,
    :func:`null_tolerance`; the same rule as :func:`effective_rank`), never decided by the sign
    of a rounding-level ``lambda_min``; NaN for a non-finite S."""
    S = np.asarray(S, dtype=np.float64)
    M = S.shape[-1]
    rel = M * _EPS_MACHINE if tol is None else float(tol)
    bad = ~np.all(np.isfinite(S), axis=(-2, -1))
    lam = np.linalg.eigvalsh(np.where(bad[..., None, None], 0.0, S))
    top = lam[..., -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(lam[..., 0] > rel * np.maximum(top, 0.0), top / lam[..., 0], np.inf)
        c = np.where(bad, np.nan, c)
    return float(c) if np.ndim(c) == 0 else c


def matrix_relative_change(A: ArrayLike, B: ArrayLike) -> Array | float:
    """``||A - B||_F / ||A||_F`` over the last two axes: e.g. the change of a whitening matrix
    between consecutive batches (PCA's axis swapping shows as O(1) jumps, ZCA's stays small)."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.linalg.norm(A - B, axis=(-2, -1)) / np.linalg.norm(A, axis=(-2, -1))
    return float(r) if np.ndim(r) == 0 else r

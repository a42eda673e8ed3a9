"""Central finite differences of batch norm + ReLU in float64: the reference the analytic backward
(:mod:`simlab.theory.bn_grads`) is checked against, with its error model (step, tolerance,
resolution) and the entries whose stencil crosses the ReLU kink."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from simlab.theory.bn_forward import (
    BNForward,
    _as_batch,
    _as_param,
    _batch_stats,
    _normalise,
    batch_sum,
    bn_forward,
)
from simlab.theory.bn_grads import GRAD_QUANTITIES, BNGrads, bn_backward

__all__ = [
    "DEFAULT_STEP",
    "FD_SAFETY",
    "GradCheck",
    "fd_resolution",
    "fd_tolerance",
    "finite_difference_grads",
    "grad_check",
    "grad_scales",
    "kink_mask",
    "relative_error",
]

Array = NDArray[np.float64]

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

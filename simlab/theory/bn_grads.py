"""The analytic backward pass of ``H = relu(BN(Y))``: the formulas ``simlab batchnorm grads``
predicts (SPEC 1.3, ``grads``). Shapes follow :mod:`simlab.theory.bn_forward`."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike, NDArray

from simlab.theory.bn_forward import BNForward, _as_param, batch_sum

__all__ = ["GRAD_QUANTITIES", "BNGrads", "bn_backward", "claim_namespace"]

Array = NDArray[np.float64]

#: Names of the gradient quantities, in SPEC order (also the field names of :class:`BNGrads`).
GRAD_QUANTITIES: tuple[str, ...] = ("d_gamma", "d_beta", "d_v", "d_m", "d_Y", "jac_diag")


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

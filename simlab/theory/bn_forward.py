"""Batch normalization's forward pass, in float64: ``m``, the biased ``v``, ``xhat``, ``Yhat``.

Conventions shared by every ``bn_*`` theory module
--------------------------------------------------
* A batch is an array ``Y`` of shape ``(..., B, M)``: the **batch axis is -2**, features are last,
  and any leading axes index independent instances (a stack of batches is processed at once).
* Per-feature quantities (``m``, ``v``, ``s``, ``d_gamma``, ``d_beta``, ``d_v``, ``d_m``) keep the
  batch axis with length 1, i.e. have shape ``(..., 1, M)``, so that they broadcast against ``Y``
  exactly as the claim language's ``sum(.)`` does (it sums over the batch axis and keeps it).
* ``gamma`` and ``beta`` may be scalars, of shape ``(M,)``, or per instance ``(..., M)`` /
  ``(..., 1, M)``.
* ``eps = 0`` is allowed: a constant feature then gives ``0/0 = NaN``. The functions compute such
  NaNs silently (inside ``np.errstate``) and never raise, so the NaN can be reported as such.

Everything here is a pure function of its arguments (SPEC section 1.3, eqs. 6-7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "BNForward",
    "batch_sum",
    "bn_forward",
    "yhat_batch_moments",
]

Array = NDArray[np.float64]


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
        ``(1/B) sum_i (Yhat[i, j] - beta[j])^2``; equals
        :func:`simlab.theory.bn_stats.predicted_yhat_batch_var`.
    """
    b = _as_param(beta)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = np.mean(fwd.Yhat, axis=-2, keepdims=True)
        dev = fwd.Yhat - b
        var = np.mean(dev * dev, axis=-2, keepdims=True)
    return mean, var

"""Whitening beside batch norm: ZCA, PCA and Cholesky whitening of a batch, standard BN in the
same form, the identities they satisfy and the eps effect on them (SPEC 1.3, ``whiten``).

Every rank / singularity decision compares eigenvalues with :func:`null_tolerance` (relative to
the largest), never the sign of a rounding-level one. :func:`random_correlation` is the only
function that uses random numbers, all from the caller's generator. Shapes follow
:mod:`simlab.theory.bn_forward`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from simlab.theory.bn_forward import _as_batch, _batch_stats

__all__ = [
    "Whitening",
    "bn_standardize",
    "cholesky_whiten",
    "condition_number",
    "correlation_matrix",
    "cross_cov",
    "effective_rank",
    "inv_sqrtm_psd",
    "matrix_relative_change",
    "null_tolerance",
    "pca_whiten",
    "random_correlation",
    "sqrtm_psd",
    "white_cov",
    "whitening_eps_deviation",
    "zca_whiten",
]

Array = NDArray[np.float64]

_EPS_MACHINE = float(np.finfo(np.float64).eps)


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
    import scipy.stats

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

"""``simlab batchnorm whiten``: ZCA, PCA and Cholesky whitening beside batch norm (SPEC 1.3).

Gaussian features with an equicorrelated (``rho``) or random correlation matrix; ZCA, PCA and
Cholesky whitening beside standard BN (:mod:`simlab.theory.whitening`). ``white_cov`` stacks the
three whitenings of the first batches and is checked against I with the eps effect
``eps/(lambda_min + eps)`` (plus rounding) as tolerance; for B <= M it is a negative control
(Sigma is singular, the identity fails by 1). ``cross_cov`` (ZCA) is checked against
``sqrtm(Sigma)``; ``rank`` over every batch against ``min(B-1, M)``; ``bn_corr`` against the exact
mean of a sample correlation. Matrix claims may use ``I``, ``Sigma`` (each batch's covariance),
``sqrtm``, ``inv``, ``@``. ``cond`` and ``seconds`` are descriptive.

The figures' studies (rank and conditioning against B, time per batch against M) are measured here,
per point, from the point's study streams; the timings once per process.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simlab.engine.seeding import SharedStudy, run_entropy, shared_study_rng, study_rng
from simlab.errors import SimlabInputError
from simlab.experiments.base import Experiment, Predictions, Quantity, Simulated, WrongClaim
from simlab.experiments.batchnorm_common import (
    Kept,
    describe,
    either_if,
    keep_limit,
    read_only,
)
from simlab.experiments.batchnorm_whiten_figures import (
    FIGURES,
    RankStudy,
    WallTimes,
    WhitenFigureData,
)
from simlab.params import Param, count
from simlab.stats import Collected, Moments
from simlab.theory import bn_stats, whitening
from simlab.theory.bn_forward import bn_forward
from simlab.verdicts.estimates import IDENTITY, ExactEstimate, Prediction, ScalarEstimate

WHITENINGS = ("zca", "pca", "cholesky")
_ROUNDING = 100.0  # safety factor on the rounding models of the whitening identities
_WHITEN = {
    "zca": whitening.zca_whiten,
    "pca": whitening.pca_whiten,
    "cholesky": whitening.cholesky_whiten,
    "bn": whitening.bn_standardize,
}
_EPS_MACHINE = float(np.finfo(np.float64).eps)
#: batches per batch size of the rank study
_RANK_REPS = 30


def expected_sample_correlation(rho: Any, n: int) -> np.ndarray:
    """``E[r]`` of the sample correlation of n iid bivariate normal pairs with correlation rho.

    ``E[r] = rho Gamma(n/2)^2 / (Gamma((n-1)/2) Gamma((n+1)/2)) 2F1(1/2, 1/2; (n+1)/2; rho^2)``
    (Olkin & Pratt 1958); ``r`` is biased towards 0 by about ``rho (1 - rho^2) / (2n)``. At n = 2
    it is ``(2/pi) arcsin(rho)``.
    """
    rho = np.asarray(rho, dtype=np.float64)
    c = math.exp(2 * math.lgamma(n / 2) - math.lgamma((n - 1) / 2) - math.lgamma((n + 1) / 2))
    import scipy.special  # here, not at import: start-up time

    return rho * c * scipy.special.hyp2f1(0.5, 0.5, (n + 1) / 2, rho * rho)


def claim_sqrtm(x: Any) -> np.ndarray:
    """Matrix square root for claims: symmetric PSD (stacks too) by ``eigh``; a number: sqrt.

    A matrix that is not symmetric positive semi-definite (beyond round-off) goes to
    ``scipy.linalg.sqrtm``, whose complex result the claim evaluator then reports.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2:
        return np.sqrt(a)
    finite = np.all(np.isfinite(a))
    sym = finite and np.allclose(a, np.swapaxes(a, -1, -2), rtol=1e-10, atol=1e-12)
    if sym:
        lam = np.linalg.eigvalsh(a)
        big = np.max(np.abs(lam), axis=-1, keepdims=True)
        if np.all(lam >= -1e-10 * np.maximum(big, 1e-300)):
            return whitening.sqrtm_psd(a)
    if not finite:
        return np.full(a.shape, np.nan)
    flat = a.reshape(-1, *a.shape[-2:])
    import scipy.linalg  # here, not at import: start-up time

    return np.stack([scipy.linalg.sqrtm(m) for m in flat]).reshape(a.shape)


def claim_inv(x: Any) -> np.ndarray:
    """Matrix inverse for claims (stacks too); a number: 1/x. A numerically singular matrix
    (smallest singular value at or below ``whitening.null_tolerance`` of the largest, as
    ``numpy.linalg.matrix_rank``) gives NaN, not the rounding-made inverse LAPACK may return."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2:
        with np.errstate(divide="ignore"):
            return 1.0 / a
    flat = a.reshape(-1, *a.shape[-2:])
    out = np.full(flat.shape, np.nan)
    for k, m in enumerate(flat):
        if np.all(np.isfinite(m)):
            sv = np.linalg.svd(m, compute_uv=False)
            if not sv[-1] > whitening.null_tolerance(sv[0], max(m.shape)):
                continue
            try:
                out[k] = np.linalg.inv(m)
            except np.linalg.LinAlgError:
                pass
    return out.reshape(a.shape)


@dataclass
class WhitenChunk:
    """Per-batch aggregates, timings, ranks and the first batches (for the exact checks)."""

    corr: Moments  # mean off-diagonal entry of BN's output covariance, per batch
    cond: Moments
    seconds: Moments  # per chunk: seconds per batch of ZCA, PCA, Cholesky, BN
    ranks: Collected  # every batch's rank, joined once
    kept: Kept
    singular_batches: int  # batches whose Sigma is singular (cond = inf, left out of cond)
    eps: float

    def merge(self, other: WhitenChunk) -> WhitenChunk:
        return WhitenChunk(
            self.corr.merge(other.corr),
            self.cond.merge(other.cond),
            self.seconds.merge(other.seconds),
            self.ranks.merge(other.ranks),
            self.kept.merge(other.kept),
            self.singular_batches + other.singular_batches,
            self.eps,
        )

    def checks(self) -> dict[str, Any]:
        """The whitenings of the kept batches and their identities (computed once)."""
        return self.kept.derived("checks", lambda: whiten_checks(self.kept.arrays["Y"], self.eps))

    def estimates(self) -> dict[str, ExactEstimate | ScalarEstimate]:
        w = self.checks()
        M = w["Sigma"].shape[-1]
        I = np.eye(M)  # noqa: E741 (the claim name)
        n3 = len(WHITENINGS)
        estimates: dict[str, Any] = {
            "white_cov": ExactEstimate(
                w["white"],
                w["white_tol"],
                1.0,
                {"I": I, "Sigma": np.concatenate([w["Sigma"]] * n3)},
            ),
            "cross_cov": ExactEstimate(
                w["cross"], w["cross_tol"], w["cross_floor"], {"I": I, "Sigma": w["Sigma"]}
            ),
            "rank": ExactEstimate(self.ranks.arrays["rank"], 0.0, 1.0, {}),
            "bn_corr": _scalar(self.corr),
            "cond": _scalar(self.cond),
            "seconds": _scalar(self.seconds, 0),
        }
        if self.singular_batches:
            estimates["cond"] = ScalarEstimate(math.inf, math.nan, self.cond.n)
        return estimates


def _scalar(moments: Moments, column: int = 0) -> ScalarEstimate:
    value = float(moments.mean[column])
    se = float(moments.sem[column]) if moments.n > 1 else math.nan
    kurt = float(moments.excess_kurtosis[column]) if moments.n > 3 else None
    return ScalarEstimate(value, se, moments.n, kurt)


def batch_rank(Yc: np.ndarray) -> np.ndarray:
    """Rank of each centred batch ``Yc`` (stack of B x M), which is the rank of ``Sigma``.

    Measured by SVD of ``Yc`` (threshold ``max(B, M) eps_machine s_max``, as
    ``numpy.linalg.matrix_rank``) rather than from the eigenvalues of ``Sigma = Yc^T Yc / B``:
    forming Sigma squares the singular values, so a full-rank but ill-conditioned batch
    (B - 1 = M is a square Gaussian matrix, whose smallest singular value is often tiny) would
    fall below the threshold about a million times more often.
    """
    return np.linalg.matrix_rank(Yc).astype(float)


def _cond(Sigma: np.ndarray, B: int) -> np.ndarray:
    """Condition number of a stack of batch covariances from B samples (NaN-safe); inf when
    numerically singular (smallest eigenvalue at or below ``whitening.null_tolerance``, as the
    whitenings decide it; not by the sign of a rounding-level eigenvalue)."""
    lam = np.linalg.eigvalsh(np.nan_to_num(Sigma))
    tol = whitening.null_tolerance(lam[..., -1], max(B, Sigma.shape[-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.where(lam[..., 0] > tol, lam[..., -1] / lam[..., 0], np.inf)
    bad = ~np.all(np.isfinite(Sigma), axis=(-2, -1))
    return np.where(bad, np.nan, cond)


class WhitenSampler:
    """Simulates chunks of correlated Gaussian batches and whitens each four ways."""

    def __init__(self, point: Mapping[str, Any], L: np.ndarray) -> None:
        self.point = dict(point)
        self.L_t = np.ascontiguousarray(L.T)
        self.keep = keep_limit(point["B"], point["M"])
        C = L @ L.T
        self.off = ~np.eye(len(C), dtype=bool)
        self.sign = np.sign(C[self.off])

    def __call__(self, rng: np.random.Generator, size: int) -> WhitenChunk:
        p = self.point
        B, eps = p["B"], p["eps"]
        Y = rng.standard_normal((size, B, p["M"])) @ self.L_t
        timings = []
        results = {}
        for method in ("zca", "pca", "cholesky", "bn"):
            t0 = time.perf_counter()
            results[method] = _WHITEN[method](Y, eps)
            timings.append((time.perf_counter() - t0) / size)
        wc = whitening.white_cov(results["bn"].Ytilde)
        corr = np.mean(wc[..., self.off] * self.sign, axis=-1)
        rank = batch_rank(results["zca"].Yc)
        cond = _cond(results["zca"].Sigma, B)
        return WhitenChunk(
            Moments.from_batch(corr[:, None]),
            Moments.from_batch(np.where(np.isfinite(cond), cond, 0.0)[:, None]),
            Moments.from_batch(np.array([timings])),
            Collected({"rank": rank}),
            Kept(self.keep, {"Y": Y[: self.keep]}),
            int(np.count_nonzero(~np.isfinite(cond))),
            eps,
        )


def _finite_max(x: np.ndarray) -> float:
    """Largest finite entry (0 when none: the check is then undefined by its NaN entries)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.max()) if x.size else 0.0


def whiten_checks(Y: np.ndarray, eps: float) -> dict[str, Any]:
    """White and cross covariances of the kept batches, with their eps-aware tolerances."""
    out = {m: _WHITEN[m](Y, eps) for m in (*WHITENINGS, "bn")}
    Sigma = out["zca"].Sigma
    M = Sigma.shape[-1]
    lam = np.linalg.eigvalsh(np.nan_to_num(Sigma))
    top = lam[..., -1]
    # numerically null eigenvalues count as exactly 0 (their rounding sign is the BLAS's choice)
    nonnull = lam > whitening.null_tolerance(top, max(Y.shape[-2], M))[..., None]
    lam = np.where(nonnull, lam, 0.0)
    lam_min = np.min(np.where(nonnull, lam, np.inf), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        # eps effect over the non-null spectrum (B <= M: the null directions are a true failure)
        white_dev = eps / (lam_min + eps)
        cond_eff = (top + eps) / (lam[..., 0] + eps)
        # rounding: ~M eps_machine cond for white_cov, ~M eps_machine sqrt(cond) for cross_cov
        # (measured worst cases 3 and 1 times that over M = 2..64, B = M+1..8M, rho up to 0.95)
        rounding = _ROUNDING * M * _EPS_MACHINE * np.where(np.isfinite(cond_eff), cond_eff, 1.0)
        cross_dev = whitening.whitening_eps_deviation(Sigma, eps)["cross_cov"]
        scale = np.sqrt(np.maximum(top, 1e-300))
        white_tol = _finite_max(white_dev + rounding)
        cross_tol = _finite_max(
            cross_dev / scale + _ROUNDING * M * _EPS_MACHINE * np.sqrt(np.abs(cond_eff))
        )
    return {
        "methods": out,
        "Sigma": Sigma,
        "white": np.concatenate([whitening.white_cov(out[m].Ytilde) for m in WHITENINGS]),
        "cross": whitening.cross_cov(out["zca"].Ytilde, out["zca"].Yc),
        "white_tol": white_tol,
        "cross_tol": cross_tol,
        "cross_floor": scale[:, None, None],
    }


def rank_study(L: np.ndarray, eps: float, rng: np.random.Generator) -> RankStudy:
    """Rank, conditioning and the whitening identity's deviation as B falls through M."""
    M = len(L)
    Bs = np.unique(np.round(np.geomspace(2, 8 * M, 24)).astype(int))
    Bs = np.unique(np.concatenate([Bs, [M - 1, M, M + 1, M + 2]]))
    Bs = Bs[Bs >= 2]
    shape = (len(Bs), _RANK_REPS)
    rank, cond, dev, dev_theory = (np.zeros(shape) for _ in range(4))
    for i, B in enumerate(Bs):
        Y = rng.standard_normal((_RANK_REPS, B, M)) @ L.T
        z = whitening.zca_whiten(Y, eps)
        rank[i] = batch_rank(z.Yc)
        cond[i] = whitening.condition_number(z.Sigma)
        wc = whitening.white_cov(z.Ytilde)
        ok = np.all(np.isfinite(wc), axis=(1, 2))  # eps = 0 and B <= M: NaN, not a number
        dev[i] = np.nan
        if ok.any():
            dev[i, ok] = np.linalg.norm(wc[ok] - np.eye(M), ord=2, axis=(1, 2))
        dev_theory[i] = whitening.whitening_eps_deviation(z.Sigma, eps)["white_cov"]
    return RankStudy(Bs, rank, cond, dev, dev_theory, float(np.linalg.cond(L @ L.T)))


@functools.lru_cache(maxsize=8)
def shared_rank_study(entropy: int, rho: float, M: int, eps: float) -> RankStudy:
    """The rank study of run ``entropy`` for the equicorrelated C of (rho, M), at eps.

    It runs its own range of B, so it depends on a point only through C and eps: drawn from
    the stream they key (:func:`shared_study_rng`), computed once per process and shared by
    the points that agree on them (the quick course's two, B = 8 and 128). A random C is
    drawn per point, and so is its study.
    """
    L = np.linalg.cholesky(whitening.correlation_matrix(rho, M))
    stream = shared_study_rng(entropy, SharedStudy.WHITENING_RANK, (rho, M, eps))
    return read_only(rank_study(L, eps, stream))


def _bn_train(Y: np.ndarray, eps: float):
    """Standard BN as a network runs it: per-feature mean and variance only, O(BM)."""
    return bn_forward(Y, 1.0, 0.0, eps)


_TIMED = {
    "bn": _bn_train,
    "zca": whitening.zca_whiten,
    "pca": whitening.pca_whiten,
    "cholesky": whitening.cholesky_whiten,
}
_WALL_TIMES: dict[tuple[float, int, tuple[int, ...]], WallTimes] = {}
#: the timing study's sizes: small M (overhead-dominated, shown) and M >= _FIT_FROM (fitted),
#: in steps of sqrt(2) so that a slope rests on seven sizes
_TIMED_M = (4, 8, 16, 32, 45, 64, 91, 128, 181, 256)
_FIT_FROM = 32
#: bootstrap resamples of the rounds, for the slopes' standard errors
_BOOTSTRAPS = 400


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Theil-Sen line of ``y`` on ``x`` over the last axis (``y`` may be a stack): the median of
    the pairwise slopes, and the median of ``y - slope x`` as intercept. A few disturbed
    points (a burst of load on one size) move it little, unlike a least-squares fit."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    i, j = np.triu_indices(x.shape[-1], k=1)
    slope = np.median((y[..., j] - y[..., i]) / (x[j] - x[i]), axis=-1)
    intercept = np.median(y - slope[..., None] * x, axis=-1)
    return slope, intercept


def fit_slopes(
    Ms: np.ndarray, seconds: Mapping[str, np.ndarray], fit_from: int, rng: np.random.Generator
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Per method, the log-log slope of the fastest round's time against M over
    ``M >= fit_from`` (Theil-Sen), its intercept, and its standard error: the standard deviation
    of the slope over bootstrap resamples of the rounds (``seconds[name]`` is rounds x M)."""
    fit = Ms >= fit_from
    log_m = np.log(Ms[fit])
    slopes, intercepts, ses = {}, {}, {}
    rounds = next(iter(seconds.values())).shape[0]
    resamples = rng.integers(0, rounds, size=(_BOOTSTRAPS, rounds))
    for name, t in seconds.items():
        log_t = np.log(t[:, fit])
        slope, intercept = theil_sen(log_m, log_t.min(axis=0))
        boot, _ = theil_sen(log_m, log_t[resamples].min(axis=1))
        slopes[name], intercepts[name] = float(slope), float(intercept)
        ses[name] = float(np.std(boot, ddof=1))
    return slopes, intercepts, ses


def wall_times(
    eps: float,
    rng: np.random.Generator,
    B: int = 512,
    Ms: tuple[int, ...] = _TIMED_M,
    rounds: tuple[int, int] = (4, 15),
    budget: float = 0.3,
) -> WallTimes:
    """Time of BN and of each whitening on one B x M batch, per M, over repeated rounds, and
    each method's fitted log-log slope with its standard error.

    A measurement of this machine, not a Monte Carlo check: it depends on the point only through
    eps, so it is measured once per process, eps and sizes (the batches' values do not matter,
    the rounds' order and the bootstrap come from ``rng``, a study stream). Rounds
    are interleaved (every method and M once per round, in an order shuffled per round), so a
    burst of load from other processes spoils one round of everything rather than every run of
    one M, and no size always follows the same one. At least ``rounds[0]`` rounds, then more
    while under ``budget`` seconds, up to ``rounds[1]``. The default buys the four rounds
    (0.32 s on this 2-core machine; twelve rounds took 1.05 s for slopes within 0.16 of the
    four rounds', standard errors 0.01-0.04 against 0.02-0.07). The fastest round per M is the
    undisturbed time the slopes are fitted to (:func:`fit_slopes`); every round is kept, for the
    figure to show the spread. BLAS runs on one thread: a multi-threaded BLAS on a busy machine
    turns every product above its threading threshold into a wait for a time slice, which would
    hide the O(BM) vs O(BM^2 + M^3) scaling. With BLAS held to this thread, the clock is the
    thread's CPU time, which the other processes of a busy machine barely inflate (at a load of
    15 on 2 cores one size's time spread over rounds by 8-57% of its mean in wall time, 2-5% in
    thread CPU time; one round's ZCA slope ranged over 1.1-2.6 in wall time, 1.7-1.9 in CPU
    time). Without that limit, or with a coarse thread clock, it has to be wall time (BLAS
    threads' work would escape a thread clock).
    """
    from threadpoolctl import threadpool_limits

    eps = max(eps, 1e-5)
    key = (eps, B, tuple(Ms))
    if key in _WALL_TIMES:
        return _WALL_TIMES[key]
    batches = [rng.standard_normal((B, M)) for M in Ms]
    jobs = [(i, name) for i in range(len(Ms)) for name in _TIMED]
    times: list[dict[str, np.ndarray]] = []
    start = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas") as limits:
        one_thread = bool(limits.get_original_num_threads())
        fine = time.get_clock_info("thread_time").resolution <= 1e-6
        clock = time.thread_time if one_thread and fine else time.perf_counter
        while len(times) < rounds[0] or (
            len(times) < rounds[1] and time.perf_counter() - start < budget
        ):
            this_round = {name: np.empty(len(Ms)) for name in _TIMED}
            for k in rng.permutation(len(jobs)):
                i, name = jobs[k]
                t0 = clock()
                _TIMED[name](batches[i], eps)
                this_round[name][i] = clock() - t0
            times.append(this_round)
    seconds = {name: np.array([r[name] for r in times]) for name in _TIMED}
    Ms_array = np.array(Ms)
    fit_from = _FIT_FROM if np.count_nonzero(Ms_array >= _FIT_FROM) >= 3 else int(Ms_array[0])
    slopes, intercepts, ses = fit_slopes(Ms_array, seconds, fit_from, rng)
    cpu = clock is time.thread_time
    _WALL_TIMES[key] = WallTimes(Ms_array, B, cpu, seconds, fit_from, slopes, intercepts, ses)
    return _WALL_TIMES[key]


@dataclass(frozen=True)
class WhitenSetup:
    """The fixed parts of a point: the correlation matrix, its Cholesky factor, and the seed
    sequence of its set-up, whose study streams the studies its figures show draw from."""

    C: np.ndarray
    L: np.ndarray
    seeds: np.random.SeedSequence


class BatchnormWhiten(Experiment[WhitenSetup, WhitenChunk]):
    name = "batchnorm whiten"
    summary = "ZCA, PCA and Cholesky whitening beside batch norm, on correlated features."
    params = (
        count("B", 128, "batch size", low=2),
        count("M", 16, "number of features", low=2),
        Param(
            "rho",
            "float",
            0.5,
            "correlation of every pair of features (corr = equi); -1/(M-1) < rho < 1",
            low=-1.0,
            high=1.0,
            low_open=True,
            high_open=True,
        ),
        Param(
            "corr",
            "choice",
            "equi",
            "equicorrelated (rho), or a random correlation matrix drawn per point",
            choices=("equi", "random"),
        ),
        Param("eps", "float", 1e-5, "added to the covariance's eigenvalues / variances", low=0.0),
    )
    quantities = (
        Quantity("white_cov", "exact", "Ytilde^T Ytilde / B for ZCA, PCA and Cholesky (= I)"),
        Quantity("cross_cov", "exact", "Ytilde^T Yc / B for ZCA (= Sigma^(1/2), not I)"),
        Quantity(
            "bn_corr",
            "statistical",
            "mean over pairs of BN's output correlation, each signed like the population one "
            "(the correlation BN leaves in place)",
        ),
        Quantity("rank", "exact", "rank of the batch covariance Sigma (SVD of the centred batch)"),
        Quantity(
            "cond",
            "descriptive",
            "condition number of Sigma, mean over batches (its mean need not exist near B = M + 1:"
            " no --target-se)",
        ),
        Quantity(
            "seconds",
            "descriptive",
            "seconds per batch of ZCA whitening (a wall-time measurement: no --target-se)",
        ),
    )
    default_samples = 2000
    default_chunk_size = 128
    claim_names = ("I", "Sigma")
    known_wrong = (
        WrongClaim(
            "cross_cov=I",
            "whitened outputs are uncorrelated with each other (white_cov = I), but ZCA's "
            "output against its centred input is Sigma^(1/2), not I",
        ),
    )
    claim_functions = {"sqrtm": claim_sqrtm, "inv": claim_inv}
    formulas = {
        "white_cov": "I (up to eps/(lambda_min+eps)) for B > M; must fail for B <= M",
        "cross_cov": "sqrtm(Sigma) (up to ~0.3 sqrt(eps))",
        "bn_corr": "mean over pairs of E[r](|C_jk|, B) (Olkin-Pratt)",
        "rank": "min(B-1, M)",
    }
    figures = FIGURES
    budgets = {
        "quick": {"B": [8, 128], "M": 16, "samples": 400},
        "standard": {"B": [8, 16, 17, 128], "corr": ["equi", "random"], "samples": 2000},
        "thorough": {
            "B": [8, 16, 17, 128, 1024],
            "corr": ["equi", "random"],
            "rho": [-0.05, 0.5, 0.9],
            "samples": 4000,
        },
    }

    def validate(self, point: dict[str, Any], where) -> None:
        M, rho = point["M"], point["rho"]
        if point["corr"] == "equi" and not rho > -1.0 / (M - 1):
            raise SimlabInputError(
                f"{where('rho')}: {rho:g} does not give a positive-definite {M}x{M} "
                f"equicorrelation matrix; need -1/(M-1) = {-1.0 / (M - 1):.4g} < rho < 1"
            )

    def label(self, point: Mapping[str, Any]) -> str:
        return describe(self.name, point)

    def setup(self, point: Mapping[str, Any], rng: np.random.Generator) -> WhitenSetup:
        if point["corr"] == "random":
            C = whitening.random_correlation(rng, point["M"])
        else:
            C = whitening.correlation_matrix(point["rho"], point["M"])
        return WhitenSetup(C, np.linalg.cholesky(C), rng.bit_generator.seed_seq)

    def sampler(self, point: Mapping[str, Any], setup: WhitenSetup) -> WhitenSampler:
        return WhitenSampler(point, setup.L)

    def predict(self, sim: Simulated[WhitenSetup, WhitenChunk]) -> Predictions:
        B, M, eps = sim.point["B"], sim.point["M"], sim.point["eps"]
        singular = B <= M
        surely_nan = singular and eps == 0
        Sigma = sim.estimates["cross_cov"].names["Sigma"]
        predictions: dict[str, Prediction] = {
            "cross_cov": Prediction(
                whitening.sqrtm_psd(Sigma),
                IDENTITY
                + ("; Sigma is singular at eps = 0: NaN is the answer" if surely_nan else ""),
                expect=either_if(surely_nan),
            ),
            "rank": Prediction(float(min(B - 1, M)), "identity (almost surely)"),
        }
        I = np.eye(M)  # noqa: E741 (the claim name)
        if not singular:
            predictions["white_cov"] = Prediction(I, IDENTITY)
        elif eps > 0:
            # B <= M: Sigma is singular and the identity fails by 1 on its null directions (not
            # by rounding, the tolerance allows only the eps effect on the non-null spectrum):
            # kept as a negative control that the run must reject
            predictions["white_cov"] = Prediction(
                I, "identity only for B > M; here B <= M (negative control)", expect="fail"
            )
        C = sim.setup.C
        ratio = bn_stats.expected_v_ratio(B, eps, 1.0)
        predictions["bn_corr"] = Prediction(
            float(np.mean(expected_sample_correlation(np.abs(C[~np.eye(M, dtype=bool)]), B))),
            "exact in expectation at eps = 0 (Gaussian); eps shrinks it by at most "
            "2 (1 - E[v/(v+eps)])",
            tolerance=2.0 * (1.0 - ratio),
        )
        return predictions

    def figure_data(self, sim: Simulated[WhitenSetup, WhitenChunk]) -> WhitenFigureData:
        point, setup = sim.point, sim.setup
        if point["corr"] == "random":
            ranks = rank_study(setup.L, point["eps"], study_rng(setup.seeds, 0))
        else:
            rho, eps = float(point["rho"]) + 0.0, float(point["eps"]) + 0.0  # -0.0 is 0.0
            ranks = shared_rank_study(run_entropy(setup.seeds), rho, int(point["M"]), eps)
        methods = sim.stats.checks()["methods"]
        return WhitenFigureData(
            C=sim.setup.C,
            bn_first=methods["bn"].Ytilde[0],
            zca_first=methods["zca"].Ytilde[0],
            matrices={m: methods[m].W for m in WHITENINGS},
            pca_axes=methods["pca"].eigvecs,
            rank_study=ranks,
            wall_times=wall_times(point["eps"], study_rng(setup.seeds, 1)),
        )

    def memory_bytes(self, point: Mapping[str, Any], chunk_size: int) -> tuple[int, int]:
        B, M = point["B"], point["M"]
        # the rank study: 30 batches of up to 8M rows, whitened (~8 arrays of the batch size)
        setup = 8 * (4 * M * M + 8 * _RANK_REPS * 8 * M * M)
        # per chunk: Y and, per whitening, its centred batch, output and M x M matrices (~10
        # batch-sized and ~12 matrix-sized arrays in all); the kept batches
        per_batch = 10 * B * M + 12 * M * M
        kept = min(chunk_size, keep_limit(B, M)) * B * M
        return setup, 8 * (chunk_size * per_batch + kept)

    def claim_trial_values(self, point: Mapping[str, Any], quantity: str) -> dict[str, Any]:
        values = super().claim_trial_values(point, quantity)
        M = point["M"]
        kept = keep_limit(point["B"], M)  # batches checked (white_cov: three whitenings each)
        if quantity in ("white_cov", "cross_cov"):
            n = kept * len(WHITENINGS) if quantity == "white_cov" else kept
            values.update(I=np.eye(M), Sigma=np.ones((n, M, M)))
        return values


__all__ = [
    "BatchnormWhiten",
    "WhitenChunk",
    "WhitenSampler",
    "claim_inv",
    "claim_sqrtm",
    "expected_sample_correlation",
]

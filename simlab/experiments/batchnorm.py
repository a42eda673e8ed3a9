"""``simlab batchnorm stats | grads | whiten``: batch normalization by simulation (SPEC 1.3).

Every formula lives in :mod:`simlab.theory.batchnorm`; this module draws the batches, measures,
and hands estimates and predictions to the verdict machinery.

``stats``
    Batches ``X`` (B x N, rows iid from ``input``, standardised to mean 0 and variance 1, times
    ``sigma``), ``Y = X W^T + b^T`` with ``W`` (M x N) of unit-norm random rows (so every feature
    has variance ``sigma^2`` whatever N; for N = 1 a feature follows the input law itself) and
    ``b ~ N(0, 1)``, both fixed per sweep point. Then training-mode BN with the biased batch
    variance. One sample is one whole batch, and each batch contributes per-batch averages over
    its features, so standard errors stay honest though features of one batch are correlated.
    ``student_t`` has 5 degrees of freedom (finite variance and fourth moment, so ``E[v]`` and the
    standard error of its estimate exist; heavy tails are flagged by the kurtosis note).
    Exact identities are checked on the first batches of the run plus one deterministic
    *probe batch*: in feature j one entry sticks out and the other B-1 are equal, with the feature
    variance falling over twelve decades across the features, so Samuelson's bound is attained and
    ``v << eps`` is exercised at every run.
``grads``
    Random instances (Y with random per-feature mean and spread, gamma of either sign, beta,
    upstream gradient G): the analytic backward against central finite differences in float64
    (:func:`simlab.theory.batchnorm.grad_check`), kink-crossing entries skipped.
``whiten``
    Gaussian features with an equicorrelated (``rho``) or random correlation matrix; ZCA, PCA and
    Cholesky whitening beside standard BN. ``white_cov`` stacks the three whitenings of the first
    batches and is checked against I with the eps effect ``eps/(lambda_min + eps)`` (plus
    rounding) as tolerance; for B <= M it is a negative control (Sigma is singular, the identity
    fails by 1). ``cross_cov`` (ZCA) is checked against ``sqrtm(Sigma)``; ``rank`` over every
    batch against ``min(B-1, M)``; ``bn_corr`` against the exact mean of a sample correlation.
    Matrix claims may use ``I``, ``Sigma`` (each batch's covariance), ``sqrtm``, ``inv``, ``@``.

Numerics: everything runs in float64 (the identities are checked to ~1e-10 of the rounding scale of
their operands, see :data:`IDENTITY_TOL`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import scipy.special

from simlab.engine.seeding import setup_rng
from simlab.errors import SimlabInputError
from simlab.experiments.base import Experiment, PointContext, PointResult, Quantity, WrongClaim
from simlab.params import Param, count
from simlab.stats import CoMoments, Histogram, Moments
from simlab.theory import batchnorm as bn
from simlab.verdicts.estimates import (
    EXACT_IN_EXPECTATION,
    IDENTITY,
    ExactEstimate,
    Prediction,
    ScalarEstimate,
)

INPUT_LAWS = ("gaussian", "uniform", "exponential", "student_t")
#: degrees of freedom of the ``student_t`` input (finite variance and fourth moment)
STUDENT_T_DOF = 5
#: relative tolerance of the floating-point identities, measured against the rounding scale of
#: their operands (the ``floor`` of each check): float64 rounding is ~1e-16 times B there, so 1e-10
#: leaves a margin of ~1e4 up to B ~ 1e4 and is still 1e5 below the smallest eps effect
#: (``eps / v`` = 1e-5 at the defaults) a wrong formula would miss.
IDENTITY_TOL = 1e-10
#: at most this many random batches (and this many numbers, B * M per batch) feed the exact checks
KEEP_BATCHES = 64
_KEEP_NUMBERS = 2_000_000
#: numbers of the B x B column Jacobians behind the jac_norm check (B = 32: 4096 columns)
_JAC_NUMBERS = 1 << 22
#: entries per vectorised block inside a chunk (bounds memory whatever B and M)
_BLOCK_NUMBERS = 1 << 20
_V_BINS = 60
_EPS_MACHINE = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------------------
# shared pieces
# --------------------------------------------------------------------------------------------------


def draw_input(rng: np.random.Generator, law: str, shape: tuple[int, ...]) -> np.ndarray:
    """iid entries of the named law, standardised to mean 0 and variance 1 (float64)."""
    if law == "gaussian":
        return rng.standard_normal(shape)
    if law == "uniform":
        return rng.uniform(-math.sqrt(3.0), math.sqrt(3.0), shape)
    if law == "exponential":
        return rng.standard_exponential(shape) - 1.0
    if law == "student_t":
        dof = STUDENT_T_DOF
        return rng.standard_t(dof, shape) * math.sqrt((dof - 2) / dof)
    raise ValueError(f"unknown input law {law!r}")


def feature_map(rng: np.random.Generator, M: int, N: int) -> tuple[np.ndarray, np.ndarray]:
    """``W`` (M x N) with unit-norm random rows and ``b ~ N(0, 1)`` (M,)."""
    W = rng.standard_normal((M, N))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    return W, rng.standard_normal(M)


def _blocks(size: int, per_item: int) -> list[tuple[int, int]]:
    step = max(1, _BLOCK_NUMBERS // max(per_item, 1))
    return [(a, min(size, a + step)) for a in range(0, size, step)]


def _keep_limit(B: int, M: int) -> int:
    return int(max(2, min(KEEP_BATCHES, _KEEP_NUMBERS // (B * M))))


@dataclass
class Kept:
    """The first ``limit`` items (batches, instances) of a run, in chunk order: mergeable."""

    limit: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    def merge(self, other: Kept) -> Kept:
        room = self.limit - self.n
        if room <= 0 or not other.arrays:
            return self
        if not self.arrays:
            return Kept(self.limit, {k: v[:room] for k, v in other.arrays.items()})
        return Kept(
            self.limit,
            {k: np.concatenate([v, other.arrays[k][:room]]) for k, v in self.arrays.items()},
        )


def _either_if(undefined: bool) -> str:
    """``expect`` of a built-in prediction: "either" where 0/0 is certain (NaN is the answer)."""
    return "either" if undefined else "pass"


def _rounding_scale(fwd: bn.BNForward) -> np.ndarray:
    """``s (|m| + sqrt(v))``: the raw numbers of ``Y - m`` in units of xhat (at least 1).

    The rounding of the batch mean, ~1e-16 |m|, reaches xhat multiplied by s; when the mean is
    large against the spread (a feature whose variance falls towards 0) this is what limits every
    identity's accuracy, so it is each check's floor.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        r = fwd.s * (np.abs(fwd.m) + np.sqrt(fwd.v))
        return np.where(np.isnan(r), np.nan, np.maximum(r, 1.0))


# --------------------------------------------------------------------------------------------------
# stats
# --------------------------------------------------------------------------------------------------

_STATS_FEATURES = ("dev", "dev2", "v", "ratio")  # per batch, averaged over features


@dataclass
class StatsChunk:
    """Mergeable statistics of a chunk of batches."""

    features: CoMoments
    tails: Moments
    v_hist: Histogram
    kept: Kept
    nan_batches: int

    def merge(self, other: StatsChunk) -> StatsChunk:
        return StatsChunk(
            self.features.merge(other.features),
            self.tails.merge(other.tails),
            self.v_hist.merge(other.v_hist),
            self.kept.merge(other.kept),
            self.nan_batches + other.nan_batches,
        )

    def estimates(self, beta: float) -> dict[str, ScalarEstimate]:
        """mean_v, mean_out, var_out (delta method) and the estimated ratio, over batches.

        The per-batch features hold ``Yhat - beta`` (no cancellation), so beta is added back.
        """
        f = self.features
        mean = f.mean
        cov = f.cov_of_mean()
        kurt = self.tails.excess_kurtosis
        n = f.n

        def est(value: float, grad: np.ndarray, feature: int) -> ScalarEstimate:
            var = float(grad @ cov @ grad)
            se = math.sqrt(var) if var > 0 else (0.0 if var == 0 else math.nan)
            return ScalarEstimate(float(value), se, n, float(kurt[feature]))

        d, d2 = mean[0], mean[1]
        return {
            "mean_v": est(mean[2], np.array([0.0, 0.0, 1.0, 0.0]), 2),
            "mean_out": est(beta + d, np.array([1.0, 0.0, 0.0, 0.0]), 0),
            "var_out": est(d2 - d * d, np.array([-2.0 * d, 1.0, 0.0, 0.0]), 1),
            "ratio": est(mean[3], np.array([0.0, 0.0, 0.0, 1.0]), 3),
        }


class StatsSampler:
    """Simulates chunks of batches for one sweep point (W and b fixed for the point)."""

    def __init__(self, point: dict[str, Any], W: np.ndarray, b: np.ndarray, edges: np.ndarray):
        self.point = point
        self.W_t = np.ascontiguousarray(W.T)
        self.b = b
        self.edges = edges
        self.keep = _keep_limit(point["B"], point["M"])

    def __call__(self, rng: np.random.Generator, size: int) -> StatsChunk:
        p = self.point
        B, N, M = p["B"], p["N"], p["M"]
        gamma, beta, eps, sigma = p["gamma"], p["beta"], p["eps"], p["sigma"]
        rows = np.empty((size, 4))
        v_scale = B / (sigma * sigma) if sigma > 0 else 0.0
        hist = Histogram.empty(self.edges)
        kept = Kept(self.keep)
        nan_batches = 0
        for a, z in _blocks(size, B * max(N, M)):
            X = draw_input(rng, p["input"], (z - a, B, N))
            Y = sigma * (X @ self.W_t) + self.b
            del X
            if kept.n < self.keep:
                kept = kept.merge(Kept(self.keep, {"Y": Y[: self.keep - kept.n].copy()}))
            fwd = bn.bn_forward(Y, gamma, beta, eps)
            with np.errstate(invalid="ignore", divide="ignore"):
                dev = fwd.Yhat[:, 0, :] - beta  # row 0: exchangeable with every other row
                ratio = gamma * gamma * fwd.v[:, 0, :] / (fwd.v[:, 0, :] + eps)
            rows[a:z, 0] = dev.mean(axis=1)
            rows[a:z, 1] = (dev * dev).mean(axis=1)
            rows[a:z, 2] = fwd.v[:, 0, :].mean(axis=1)
            rows[a:z, 3] = ratio.mean(axis=1)
            nan_batches += int(np.count_nonzero(np.isnan(rows[a:z]).any(axis=1)))
            hist = hist.merge(Histogram.from_batch(fwd.v[:, 0, :] * v_scale, self.edges))
        return StatsChunk(
            CoMoments.from_batch(rows), Moments.from_batch(rows), hist, kept, nan_batches
        )


def probe_batch(B: int, M: int, b: np.ndarray, scale: float) -> np.ndarray:
    """One deterministic batch (1, B, M) where Samuelson's bound is attained in every feature.

    Feature j is ``b_j`` everywhere except one entry ``b_j + c_j``; ``c_j`` is chosen so that the
    batch variance ``c^2 (B-1)/B^2`` runs from ``scale^2`` down to ``1e-12 scale^2`` across the
    features (for ``v << eps`` and ``v >> eps`` alike).
    """
    v = scale * scale * np.logspace(0.0, -12.0, M) if M > 1 else np.array([scale * scale])
    c = np.sqrt(v) * B / math.sqrt(B - 1)
    Y = np.broadcast_to(b, (B, M)).copy()
    Y[B // 2] += c
    return Y[None]


def jacobian_columns(n_batches: int, B: int, M: int) -> np.ndarray:
    """Which (batch, feature) columns get their B x B Jacobian (mask of shape (n, 1, M)).

    A column costs B^2 numbers and an eigen-decomposition, so at most ``_JAC_NUMBERS / B^2`` of
    them: the probe batch (the last; evenly spread over its features when they do not all fit)
    first, then the random batches in order.
    """
    budget = max(1, _JAC_NUMBERS // (B * B))
    mask = np.zeros((n_batches, 1, M), dtype=bool)
    if budget >= M:
        mask[-1, 0, :] = True
        rest = budget - M
    else:
        mask[-1, 0, np.unique(np.linspace(0, M - 1, budget).round().astype(int))] = True
        rest = 0
    mask[:-1].reshape(-1)[:rest] = True
    return mask


def _stats_exact(fwd: bn.BNForward, point: dict[str, Any]) -> dict[str, tuple]:
    """(reference, prediction, floor, mask) of the four per-batch identities on ``fwd``."""
    B, gamma, beta, eps = fwd.B, point["gamma"], point["beta"], point["eps"]
    ag, ab = abs(gamma), abs(beta)
    R = _rounding_scale(fwd)
    mean, var = bn.yhat_batch_moments(fwd, beta)
    columns = jacobian_columns(fwd.Y.shape[0], B, fwd.Y.shape[-1])
    with np.errstate(invalid="ignore", over="ignore"):
        xmax = np.max(np.abs(fwd.xhat), axis=-2, keepdims=True)
        bound = bn.samuelson_bound(B) * np.sqrt(fwd.v) * fwd.s  # sqrt(B-1) sqrt(v/(v+eps))
        chosen = np.swapaxes(fwd.Y, -1, -2)[columns[:, 0, :]]  # (columns, B)
        jac = np.zeros(fwd.v.shape)
        jac[columns] = bn.jacobian_norm(chosen, gamma, eps)
        jac_floor = np.maximum(ag * fwd.s * R, 1e-300)[columns]
        mean_floor = ag * R + ab + (ag == 0) * max(ag + ab, 1e-300)
    scale_out = max(ag + ab, 1e-300)
    return {
        "batch_mean": (mean, np.asarray(beta, float), mean_floor, None),
        "batch_var": (
            var,
            bn.predicted_yhat_batch_var(gamma, fwd.v, eps),
            ag * (ag + ab) + (ag == 0) * scale_out,
            None,
        ),
        # an inequality: the prediction is the observation capped at the bound, so the check
        # measures the relative excess over Samuelson's bound (0 when it holds)
        "max_abs_xhat": (xmax, np.minimum(xmax, bound), R, None),
        "jac_norm": (
            jac,
            bn.jacobian_norm_prediction(B, fwd.v, gamma, eps),
            jac_floor,
            columns,
        ),
    }


def _names(fwd: bn.BNForward, point: dict[str, Any]) -> dict[str, Any]:
    """Per-feature names a claim on a per-batch identity may use (shape (K, 1, M))."""
    return {
        "v": fwd.v,
        "m": fwd.m,
        "s": fwd.s,
        "B": float(fwd.B),
        "eps": float(point["eps"]),
        "gamma": float(point["gamma"]),
        "beta": float(point["beta"]),
    }


class BatchnormStats(Experiment):
    name = "batchnorm stats"
    summary = "Batch-norm output statistics over random batches, and why eps exists."
    params = (
        count("B", 32, "batch size (biased batch variance needs B >= 2)", low=2),
        count("N", 8, "input width (N = 1: each feature follows the input law itself)"),
        count("M", 32, "number of features"),
        Param("gamma", "float", 1.0, "BN scale gamma (every feature)"),
        Param("beta", "float", 0.0, "BN shift beta (every feature)"),
        Param("eps", "float", 1e-5, "added to the batch variance (0 allowed)", low=0.0),
        Param(
            "input",
            "choice",
            "gaussian",
            f"law of the inputs, standardised (student_t: {STUDENT_T_DOF} dof)",
            choices=INPUT_LAWS,
        ),
        Param(
            "sigma",
            "float",
            1.0,
            "standard deviation of every feature (0: constant features)",
            low=0.0,
        ),
    )
    quantities = (
        Quantity("batch_mean", "exact", "mean_i Yhat_ij per batch and feature (= beta)"),
        Quantity(
            "batch_var",
            "exact",
            "(1/B) sum_i (Yhat_ij - beta)^2 per batch and feature (= gamma^2 v/(v+eps))",
        ),
        Quantity("mean_v", "statistical", "E(v), the biased batch variance, over batches"),
        Quantity("mean_out", "statistical", "E(Yhat_ij) over batches"),
        Quantity("var_out", "statistical", "Var(Yhat_ij) over batches"),
        Quantity(
            "max_abs_xhat",
            "exact",
            "max_i |xhat_ij| per batch and feature (<= sqrt(B-1) sqrt(v/(v+eps)))",
        ),
        Quantity(
            "jac_norm",
            "exact",
            "spectral norm of the B x B Jacobian dYhat_.j/dY_.j per batch and feature",
        ),
    )
    default_samples = 50_000
    default_chunk_size = 1024
    claim_names = ("v", "m", "s")
    known_wrong = (
        WrongClaim(
            "mean_v=sigma**2",
            "the unbiased variance's mean: BN normalises with the biased batch variance "
            "v = (1/B) sum (Y - m)^2, so E[v] = (B-1)/B sigma^2 (3% less at B = 32); the "
            "unbiased one only feeds PyTorch's running_var",
        ),
    )
    formulas = {
        "batch_mean": "beta (identity)",
        "batch_var": "gamma^2 v/(v+eps) (identity)",
        "mean_v": "(B-1)/B sigma^2",
        "mean_out": "beta",
        "var_out": "gamma^2 E[v/(v+eps)] (quadrature, v ~ sigma^2 chi2_{B-1}/B)",
        "max_abs_xhat": "<= sqrt(B-1) sqrt(v/(v+eps)) <= sqrt(B-1) (Samuelson; excess over it)",
        "jac_norm": "|gamma| (v+eps)^(-1/2) (B >= 3; x eps/(v+eps) at B = 2)",
    }
    budgets = {
        "quick": {
            "input": ["gaussian", "student_t"],
            "sigma": [1.0, 0.003],
            "samples": 4000,
        },
        "standard": {
            "input": list(INPUT_LAWS),
            "sigma": [1.0, 0.003],
            "gamma": 1.5,
            "beta": -0.5,
            "samples": 40_000,
        },
        "thorough": {
            "B": [4, 32],
            "input": list(INPUT_LAWS),
            "sigma": [1.0, 0.003],
            "eps": [0.0, 1e-5],
            "gamma": 1.5,
            "beta": -0.5,
            "samples": 100_000,
        },
    }

    def run_point(self, point: dict[str, Any], ctx: PointContext) -> PointResult:
        start = time.perf_counter()
        B, eps, sigma, gamma = point["B"], point["eps"], point["sigma"], point["gamma"]
        W, b = feature_map(setup_rng(ctx.entropy, ctx.point_index), point["M"], point["N"])
        heavy = 4.0 if point["input"] != "gaussian" else 1.0
        top = heavy * (B - 1 + 8.0 * math.sqrt(2.0 * (B - 1)))
        edges = np.linspace(0.0, top, _V_BINS + 1)
        sampler = StatsSampler(point, W, b, edges)
        run = ctx.run(sampler, f"batchnorm stats {_describe(point)}")
        stats: StatsChunk = run.stats
        surely_nan = sigma == 0 and eps == 0  # every feature constant: 0/0 everywhere
        expect = _either_if(surely_nan)

        probe = probe_batch(B, point["M"], b, sigma if sigma > 0 else 1.0)
        both = bn.bn_forward(
            np.concatenate([stats.kept.arrays["Y"], probe]), gamma, point["beta"], eps
        )
        names = _names(both, point)
        estimates: dict[str, Any] = {}
        predictions: dict[str, Prediction] = {}
        nan_note = (
            "; constant features at eps = 0 give 0/0: NaN is the answer" if surely_nan else ""
        )
        for quantity, (ref, value, floor, mask) in _stats_exact(both, point).items():
            estimates[quantity] = ExactEstimate(
                reference=ref, tolerance=IDENTITY_TOL, floor=floor, names=names, mask=mask
            )
            predictions[quantity] = Prediction(value, IDENTITY + nan_note, expect=expect)

        scalar = stats.estimates(float(point["beta"]))
        v_pred = float(bn.expected_batch_var(B, sigma * sigma))
        ratio = bn.expected_v_ratio(B, eps, sigma * sigma, point["input"])
        if ratio is None and eps == 0 and sigma > 0:
            ratio = 1.0  # v > 0 surely for a continuous law: v/(v+0) = 1 whatever the law
        var_pred = None if ratio is None else gamma * gamma * ratio
        if sigma > 0:
            estimates.update({k: scalar[k] for k in ("mean_v", "mean_out", "var_out")})
            holds = EXACT_IN_EXPECTATION
        else:
            # constant features: every batch gives the same numbers, so the "statistical"
            # quantities are deterministic and are checked exactly on the kept batches
            random = bn.bn_forward(stats.kept.arrays["Y"], gamma, point["beta"], eps)
            estimates.update(_constant_feature_estimates(random, point))
            holds = IDENTITY + nan_note
        # v itself is never 0/0: its check stands even where everything else is NaN
        predictions["mean_v"] = Prediction(v_pred, holds.replace(nan_note, ""))
        predictions["mean_out"] = Prediction(float(point["beta"]), holds, expect=expect)
        if var_pred is not None:
            predictions["var_out"] = Prediction(float(var_pred), holds, expect=expect)
        return PointResult(
            params=dict(point),
            estimates=estimates,
            predictions=predictions,
            n_samples=run.n_samples,
            seconds=time.perf_counter() - start,
            extras={
                "stats": stats,
                "ratio": scalar["ratio"],
                "ratio_predicted": ratio,
                "entropy": ctx.entropy,
                "point_index": ctx.point_index,
                "checked_batches": both,  # the kept random batches, then the probe batch
            },
        )

    def figures(
        self, points: list[PointResult], folder: Path, formats: tuple[str, ...]
    ) -> list[Path]:
        from simlab.experiments import batchnorm_figures

        return batchnorm_figures.render_stats(points, folder, formats)


def _constant_feature_estimates(fwd: bn.BNForward, point: dict[str, Any]) -> dict:
    """mean_v, mean_out, var_out as exact checks on the kept batches (sigma = 0)."""
    beta, gamma = point["beta"], point["gamma"]
    names = _names(fwd, point)
    floor = abs(gamma) + abs(beta) or 1.0
    with np.errstate(invalid="ignore"):
        dev = fwd.Yhat[..., :1, :] - beta
    return {
        "mean_v": ExactEstimate(fwd.v, IDENTITY_TOL, 1.0, names),
        "mean_out": ExactEstimate(fwd.Yhat[..., :1, :], IDENTITY_TOL, floor, names),
        "var_out": ExactEstimate(dev * dev, IDENTITY_TOL, floor * floor, names),
    }


def _describe(point: dict[str, Any]) -> str:
    keys = ("B", "eps", "sigma", "input", "rho", "corr")
    return " ".join(
        f"{k}={point[k]:g}" if isinstance(point[k], float) else f"{k}={point[k]}"
        for k in keys
        if k in point
    )


# --------------------------------------------------------------------------------------------------
# grads
# --------------------------------------------------------------------------------------------------


def claim_sum(x: Any) -> np.ndarray:
    """The claim language's ``sum``: over the batch axis (-2), keeping it (a float is one entry)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2:
        return a
    return bn.batch_sum(a)


def _batch_sum_for(shape: tuple[int, ...]):
    """``sum`` bound to one point's batch shape: a scalar or a per-feature value broadcasts over
    the batch first, so ``sum(1) = B`` and ``sum(s) = B s``, as written on paper."""

    def batch_sum(x: Any) -> np.ndarray:
        a = np.asarray(x, dtype=np.float64)
        full = np.broadcast_shapes(a.shape, shape)
        return bn.batch_sum(np.broadcast_to(a, full))

    return batch_sum


#: wrong formulas shown beside the analytic backward in the error figure (name, quantity, fn)
WRONG_FORMULAS = (
    (
        "jac_diag = s - (Y-m)^2 s^3/B (forgets gamma and -1/B)",
        "jac_diag",
        lambda n: n["s"] - (n["Y"] - n["m"]) ** 2 * n["s"] ** 3 / n["B"],
    ),
    (
        "d_Y = gamma s D (diagonal only)",
        "d_Y",
        lambda n: n["gamma"] * n["s"] * n["D"],
    ),
)


class GradChunk:
    """Instances and their gradient comparisons in chunk order.

    Merging only collects the chunks (concatenating at every merge would copy the growing arrays
    once per chunk: quadratic); ``arrays`` joins them once, when the point is evaluated.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self._parts: list[dict[str, np.ndarray]] = [arrays]

    def merge(self, other: GradChunk) -> GradChunk:
        merged = GradChunk.__new__(GradChunk)
        merged._parts = self._parts + other._parts
        return merged

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        if len(self._parts) > 1:
            keys = self._parts[0]
            self._parts = [{k: np.concatenate([p[k] for p in self._parts]) for k in keys}]
        return self._parts[0]


#: bytes a grads instance keeps per batch entry (measured: ~70 over 30 arrays) and the budget
GRAD_BYTES_PER_ENTRY = 72
GRAD_MEMORY = 2 * 2**30


class GradsSampler:
    """Random instances and their analytic and finite-difference gradients."""

    def __init__(self, point: dict[str, Any]) -> None:
        self.point = point

    def instances(self, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
        p = self.point
        B, M, sigma = p["B"], p["M"], p["sigma"]
        mu = rng.standard_normal((size, 1, M))
        spread = np.exp(rng.uniform(math.log(0.3), math.log(3.0), (size, 1, M)))
        Y = sigma * (mu + spread * rng.standard_normal((size, B, M)))
        magnitude = p["gamma"] * np.exp(rng.uniform(math.log(0.5), math.log(2.0), (size, 1, M)))
        gamma = magnitude * rng.choice([-1.0, 1.0], (size, 1, M))
        beta = p["beta"] + 0.5 * magnitude * rng.standard_normal((size, 1, M))
        G = rng.standard_normal((size, B, M))
        return {"Y": Y, "gamma": gamma, "beta": beta, "G": G}

    def __call__(self, rng: np.random.Generator, size: int) -> GradChunk:
        inst = self.instances(rng, size)
        check = bn.grad_check(inst["Y"], inst["gamma"], inst["beta"], self.point["eps"], inst["G"])
        out = dict(inst)
        for q in bn.GRAD_QUANTITIES:
            out[f"numeric_{q}"] = getattr(check.numeric, q)
            out[f"analytic_{q}"] = check.candidate[q]
            out[f"skip_{q}"] = getattr(check.skip, q)
            out[f"res_{q}"] = getattr(check.resolution, q)
        return GradChunk(out)


class BatchnormGrads(Experiment):
    name = "batchnorm grads"
    summary = "The batch-norm backward pass against central finite differences."
    params = (
        count("B", 32, "batch size", low=2),
        count("M", 8, "features per instance"),
        Param(
            "gamma",
            "float",
            1.0,
            "typical |gamma|: each feature draws gamma x U-log(0.5, 2) with a random sign",
            low=0.0,
            low_open=True,
        ),
        Param("beta", "float", 0.0, "centre of beta (each feature: beta + 0.5 |gamma| N(0,1))"),
        Param("eps", "float", 1e-5, "added to the batch variance", low=0.0),
        Param(
            "sigma",
            "float",
            1.0,
            "scale of Y (per feature: sigma (mu + spread z), spread log-uniform in [0.3, 3])",
            low=0.0,
            low_open=True,
        ),
    )
    quantities = tuple(
        Quantity(q, "exact", text)
        for q, text in (
            ("d_gamma", "dl/dgamma = sum_i D xhat"),
            ("d_beta", "dl/dbeta = sum_i D"),
            ("d_v", "dl/dv (m, v independent inputs)"),
            ("d_m", "dl/dm (m, v independent inputs)"),
            ("d_Y", "dl/dY through the full forward"),
            ("jac_diag", "dYhat_ij/dY_ij (no ReLU)"),
        )
    )
    default_samples = 300
    default_chunk_size = 50
    claim_names = ("D", "G", "Y", "Yhat", "m", "v", "s", "xhat")
    known_wrong = (
        WrongClaim(
            "d_Y=gamma*s*D",
            "the diagonal-only Jacobian: treats BN as elementwise gamma (Y - m) s and forgets "
            "that m and v depend on every sample of the batch",
        ),
    )
    claim_functions = {"sum": claim_sum}
    formulas = {
        "d_gamma": "sum(D*xhat)",
        "d_beta": "sum(D)",
        "d_v": "-gamma/2 (v+eps)^(-3/2) sum(D*(Y-m))",
        "d_m": "-gamma*s*sum(D)",
        "d_Y": "gamma*s/B*(B*D - sum(D) - xhat*sum(D*xhat))",
        "jac_diag": "gamma*s*(1 - 1/B - xhat**2/B)",
    }
    budgets = {
        "quick": {"B": [2, 32], "eps": [0.0, 1e-5], "samples": 100},
        "standard": {"B": [2, 3, 32], "eps": [0.0, 1e-5, 0.1], "beta": 0.5, "samples": 400},
        "thorough": {
            "B": [2, 3, 32, 128],
            "eps": [0.0, 1e-5, 0.1],
            "beta": 0.5,
            "sigma": [1e-3, 1.0],
            "samples": 1000,
        },
    }

    def max_samples(self, point: dict[str, Any]) -> tuple[int, str] | None:
        # every instance is kept (claims are evaluated on the batch arrays): bound the memory
        per_instance = GRAD_BYTES_PER_ENTRY * point["B"] * point["M"]
        return (
            max(GRAD_MEMORY // per_instance, 1),
            f"every instance is kept for claims (~{per_instance / 1024:.0f} KiB each at "
            f"B = {point['B']}, M = {point['M']}; at most {GRAD_MEMORY / 2**30:g} GiB)",
        )

    def run_point(self, point: dict[str, Any], ctx: PointContext) -> PointResult:
        start = time.perf_counter()
        run = ctx.run(GradsSampler(point), f"batchnorm grads {_describe(point)}")
        a = run.stats.arrays
        fwd = bn.bn_forward(a["Y"], a["gamma"], a["beta"], point["eps"])
        names = bn.claim_namespace(a["G"], fwd, a["gamma"], a["beta"])
        names["B"] = float(names["B"])
        full = a["Y"].shape
        tol = bn.fd_tolerance()
        estimates: dict[str, Any] = {}
        predictions: dict[str, Prediction] = {}
        rel_errors: dict[str, np.ndarray] = {}
        skipped: dict[str, float] = {}
        for q in bn.GRAD_QUANTITIES:
            # every reference is broadcast to the batch shape, so a claim that varies along the
            # batch (a forgotten sum, say) is compared entry by entry instead of failing to fit
            ref = np.broadcast_to(a[f"numeric_{q}"], full).copy()
            keep = ~np.broadcast_to(a[f"skip_{q}"], full)
            floor = np.broadcast_to(a[f"res_{q}"] / tol, full)[keep]
            estimates[q] = ExactEstimate(ref, tol, floor, names, keep)
            predictions[q] = Prediction(
                np.broadcast_to(a[f"analytic_{q}"], full).copy(),
                "identity (to the finite-difference error)",
            )
            own = ~a[f"skip_{q}"]
            rel_errors[q] = bn.relative_error(
                a[f"analytic_{q}"], a[f"numeric_{q}"], a[f"res_{q}"] / tol
            )[own]
            skipped[q] = 1.0 - own.mean()
        wrong = {}
        for label, q, formula in WRONG_FORMULAS:
            value = np.broadcast_to(formula(names), a[f"numeric_{q}"].shape)
            own = ~a[f"skip_{q}"]
            wrong[label] = (
                q,
                bn.relative_error(value, a[f"numeric_{q}"], a[f"res_{q}"] / tol)[own],
            )
        return PointResult(
            params=dict(point),
            estimates=estimates,
            predictions=predictions,
            n_samples=run.n_samples,
            seconds=time.perf_counter() - start,
            extras={"rel_errors": rel_errors, "skipped": skipped, "wrong": wrong, "tol": tol},
        )

    def claim_values(self, result: PointResult, quantity: str) -> dict[str, Any]:
        values = super().claim_values(result, quantity)
        values["sum"] = _batch_sum_for(np.shape(values["Y"]))
        return values

    def figures(
        self, points: list[PointResult], folder: Path, formats: tuple[str, ...]
    ) -> list[Path]:
        from simlab.experiments import batchnorm_figures

        return batchnorm_figures.render_grads(points, folder, formats)


# --------------------------------------------------------------------------------------------------
# whiten
# --------------------------------------------------------------------------------------------------

WHITENINGS = ("zca", "pca", "cholesky")
_ROUNDING = 100.0  # safety factor on the rounding models of the whitening identities
_WHITEN = {
    "zca": bn.zca_whiten,
    "pca": bn.pca_whiten,
    "cholesky": bn.cholesky_whiten,
    "bn": bn.bn_standardize,
}


def expected_sample_correlation(rho: Any, n: int) -> np.ndarray:
    """``E[r]`` of the sample correlation of n iid bivariate normal pairs with correlation rho.

    ``E[r] = rho Gamma(n/2)^2 / (Gamma((n-1)/2) Gamma((n+1)/2)) 2F1(1/2, 1/2; (n+1)/2; rho^2)``
    (Olkin & Pratt 1958); ``r`` is biased towards 0 by about ``rho (1 - rho^2) / (2n)``. At n = 2
    it is ``(2/pi) arcsin(rho)``.
    """
    rho = np.asarray(rho, dtype=np.float64)
    c = math.exp(2 * math.lgamma(n / 2) - math.lgamma((n - 1) / 2) - math.lgamma((n + 1) / 2))
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
            return bn.sqrtm_psd(a)
    if not finite:
        return np.full(a.shape, np.nan)
    flat = a.reshape(-1, *a.shape[-2:])
    return np.stack([scipy.linalg.sqrtm(m) for m in flat]).reshape(a.shape)


def claim_inv(x: Any) -> np.ndarray:
    """Matrix inverse for claims (stacks too); a number: 1/x. A numerically singular matrix
    (smallest singular value at or below ``bn.null_tolerance`` of the largest, as
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
            if not sv[-1] > bn.null_tolerance(sv[0], max(m.shape)):
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
    ranks: np.ndarray
    kept: Kept
    singular_batches: int = 0  # batches whose Sigma is singular (cond = inf, left out of cond)

    def merge(self, other: WhitenChunk) -> WhitenChunk:
        return WhitenChunk(
            self.corr.merge(other.corr),
            self.cond.merge(other.cond),
            self.seconds.merge(other.seconds),
            np.concatenate([self.ranks, other.ranks]),
            self.kept.merge(other.kept),
            self.singular_batches + other.singular_batches,
        )


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
    numerically singular (smallest eigenvalue at or below ``bn.null_tolerance``, as the
    whitenings decide it; not by the sign of a rounding-level eigenvalue)."""
    lam = np.linalg.eigvalsh(np.nan_to_num(Sigma))
    tol = bn.null_tolerance(lam[..., -1], max(B, Sigma.shape[-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.where(lam[..., 0] > tol, lam[..., -1] / lam[..., 0], np.inf)
    bad = ~np.all(np.isfinite(Sigma), axis=(-2, -1))
    return np.where(bad, np.nan, cond)


class WhitenSampler:
    def __init__(self, point: dict[str, Any], L: np.ndarray) -> None:
        self.point = point
        self.L_t = np.ascontiguousarray(L.T)
        self.keep = _keep_limit(point["B"], point["M"])
        C = L @ L.T
        self.off = ~np.eye(len(C), dtype=bool)
        self.sign = np.sign(C[self.off])

    def __call__(self, rng: np.random.Generator, size: int) -> WhitenChunk:
        p = self.point
        B, M, eps = p["B"], p["M"], p["eps"]
        Y = rng.standard_normal((size, B, M)) @ self.L_t
        timings = []
        results = {}
        for method in ("zca", "pca", "cholesky", "bn"):
            t0 = time.perf_counter()
            results[method] = _WHITEN[method](Y, eps)
            timings.append((time.perf_counter() - t0) / size)
        wc = bn.white_cov(results["bn"].Ytilde)
        corr = np.mean(wc[..., self.off] * self.sign, axis=-1)
        rank = batch_rank(results["zca"].Yc)
        cond = _cond(results["zca"].Sigma, B)
        return WhitenChunk(
            Moments.from_batch(corr[:, None]),
            Moments.from_batch(np.where(np.isfinite(cond), cond, 0.0)[:, None]),
            Moments.from_batch(np.array([timings])),
            rank,
            Kept(self.keep, {"Y": Y[: self.keep]}),
            int(np.count_nonzero(~np.isfinite(cond))),
        )


def _finite_max(x: np.ndarray) -> float:
    """Largest finite entry (0 when none: the check is then undefined by its NaN entries)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.max()) if x.size else 0.0


def _whiten_checks(Y: np.ndarray, eps: float) -> dict[str, Any]:
    """White and cross covariances of the kept batches, with their eps-aware tolerances."""
    out = {m: _WHITEN[m](Y, eps) for m in (*WHITENINGS, "bn")}
    Sigma = out["zca"].Sigma
    M = Sigma.shape[-1]
    lam = np.linalg.eigvalsh(np.nan_to_num(Sigma))
    top = lam[..., -1]
    # numerically null eigenvalues count as exactly 0 (their rounding sign is the BLAS's choice)
    nonnull = lam > bn.null_tolerance(top, max(Y.shape[-2], M))[..., None]
    lam = np.where(nonnull, lam, 0.0)
    lam_min = np.min(np.where(nonnull, lam, np.inf), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        # eps effect over the non-null spectrum (B <= M: the null directions are a true failure)
        white_dev = eps / (lam_min + eps)
        cond_eff = (top + eps) / (lam[..., 0] + eps)
        # rounding: ~M eps_machine cond for white_cov, ~M eps_machine sqrt(cond) for cross_cov
        # (measured worst cases 3 and 1 times that over M = 2..64, B = M+1..8M, rho up to 0.95)
        rounding = _ROUNDING * M * _EPS_MACHINE * np.where(np.isfinite(cond_eff), cond_eff, 1.0)
        cross_dev = bn.whitening_eps_deviation(Sigma, eps)["cross_cov"]
        scale = np.sqrt(np.maximum(top, 1e-300))
        white_tol = _finite_max(white_dev + rounding)
        cross_tol = _finite_max(
            cross_dev / scale + _ROUNDING * M * _EPS_MACHINE * np.sqrt(np.abs(cond_eff))
        )
    return {
        "methods": out,
        "Sigma": Sigma,
        "white": np.concatenate([bn.white_cov(out[m].Ytilde) for m in WHITENINGS]),
        "cross": bn.cross_cov(out["zca"].Ytilde, out["zca"].Yc),
        "white_tol": white_tol,
        "cross_tol": cross_tol,
        "cross_floor": scale[:, None, None],
    }


class BatchnormWhiten(Experiment):
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
        Quantity("cond", "statistical", "condition number of Sigma, mean over batches"),
        Quantity("seconds", "statistical", "seconds per batch of ZCA whitening (descriptive)"),
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

    def correlation(self, point: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        if point["corr"] == "random":
            return bn.random_correlation(rng, point["M"])
        return bn.correlation_matrix(point["rho"], point["M"])

    def run_point(self, point: dict[str, Any], ctx: PointContext) -> PointResult:
        start = time.perf_counter()
        B, M, eps = point["B"], point["M"], point["eps"]
        C = self.correlation(point, setup_rng(ctx.entropy, ctx.point_index))
        L = np.linalg.cholesky(C)
        run = ctx.run(WhitenSampler(point, L), f"batchnorm whiten {_describe(point)}")
        stats: WhitenChunk = run.stats
        Y = stats.kept.arrays["Y"]
        w = _whiten_checks(Y, eps)
        I = np.eye(M)  # noqa: E741 (the claim name)
        n3 = len(WHITENINGS)
        singular = B <= M
        surely_nan = singular and eps == 0
        expect = _either_if(surely_nan)
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
            "rank": ExactEstimate(stats.ranks, 0.0, 1.0, {}),
        }
        predictions: dict[str, Prediction] = {
            "cross_cov": Prediction(
                bn.sqrtm_psd(w["Sigma"]),
                IDENTITY
                + ("; Sigma is singular at eps = 0: NaN is the answer" if surely_nan else ""),
                expect=expect,
            ),
            "rank": Prediction(float(min(B - 1, M)), "identity (almost surely)"),
        }

        def scalar(moments: Moments, column: int = 0) -> ScalarEstimate:
            value = float(moments.mean[column])
            se = float(moments.sem[column]) if moments.n > 1 else math.nan
            kurt = float(moments.excess_kurtosis[column]) if moments.n > 3 else None
            return ScalarEstimate(value, se, moments.n, kurt)

        if not singular:
            predictions["white_cov"] = Prediction(I, IDENTITY)
        elif eps > 0:
            # B <= M: Sigma is singular and the identity fails by 1 on its null directions (not
            # by rounding, the tolerance allows only the eps effect on the non-null spectrum):
            # kept as a negative control that the run must reject
            predictions["white_cov"] = Prediction(
                I, "identity only for B > M; here B <= M (negative control)", expect="fail"
            )
        estimates["bn_corr"] = scalar(stats.corr)
        estimates["cond"] = scalar(stats.cond)
        if stats.singular_batches:
            estimates["cond"] = ScalarEstimate(math.inf, math.nan, stats.cond.n)
        estimates["seconds"] = scalar(stats.seconds, 0)
        off = ~np.eye(M, dtype=bool)
        ratio = bn.expected_v_ratio(B, eps, 1.0)
        predictions["bn_corr"] = Prediction(
            float(np.mean(expected_sample_correlation(np.abs(C[off]), B))),
            "exact in expectation at eps = 0 (Gaussian); eps shrinks it by at most "
            "2 (1 - E[v/(v+eps)])",
            tolerance=2.0 * (1.0 - ratio),
        )
        return PointResult(
            params=dict(point),
            estimates=estimates,
            predictions=predictions,
            n_samples=run.n_samples,
            seconds=time.perf_counter() - start,
            extras={
                "C": C,
                "kept": w,
                "seconds": stats.seconds,
                "entropy": ctx.entropy,
                "point_index": ctx.point_index,
            },
        )

    def figures(
        self, points: list[PointResult], folder: Path, formats: tuple[str, ...]
    ) -> list[Path]:
        from simlab.experiments import batchnorm_figures

        return batchnorm_figures.render_whiten(points, folder, formats)


__all__ = [
    "BatchnormGrads",
    "BatchnormStats",
    "BatchnormWhiten",
    "claim_inv",
    "claim_sqrtm",
    "claim_sum",
    "draw_input",
    "expected_sample_correlation",
    "probe_batch",
]

"""``simlab batchnorm stats``: batch-norm output statistics over random batches (SPEC 1.3).

Batches ``X`` (B x N, rows iid from ``input``, standardised to mean 0 and variance 1, times
``sigma``), ``Y = X W^T + b^T`` with ``W`` (M x N) of unit-norm random rows (so every feature has
variance ``sigma^2`` whatever N; for N = 1 a feature follows the input law itself) and
``b ~ N(0, 1)``, both fixed per sweep point. Then training-mode BN with the biased batch variance.
One sample is one whole batch, and each batch contributes per-batch averages over its features, so
standard errors stay honest though features of one batch are correlated. ``student_t`` has 5
degrees of freedom (finite variance and fourth moment, so ``E[v]`` and the standard error of its
estimate exist; heavy tails are flagged by the kurtosis note).

Exact identities are checked on the first batches of the run plus one deterministic *probe
batch*: in feature j one entry sticks out and the other B-1 are equal, with the feature variance
falling over twelve decades across the features, so Samuelson's bound is attained and ``v << eps``
is exercised at every run. The formulas live in :mod:`simlab.theory.bn_stats`.

Numerics: everything runs in float64 (the identities are checked to ~1e-10 of the rounding scale of
their operands, see :data:`IDENTITY_TOL`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simlab.engine.seeding import SharedStudy, run_entropy, shared_study_rng
from simlab.engine.stopping import RELATIVE
from simlab.errors import SimlabInputError
from simlab.experiments.base import Experiment, Predictions, Quantity, Simulated, WrongClaim
from simlab.experiments.batchnorm_common import (
    Kept,
    describe,
    either_if,
    keep_limit,
    read_only,
)
from simlab.experiments.batchnorm_stats_figures import FIGURES, EpsStudy, StatsFigureData
from simlab.params import Param, count
from simlab.stats import CoMoments, Histogram, Moments
from simlab.theory import bn_stats
from simlab.theory.bn_forward import BNForward, bn_forward, yhat_batch_moments
from simlab.verdicts.estimates import (
    EXACT_IN_EXPECTATION,
    IDENTITY,
    ExactEstimate,
    JointEstimate,
    Prediction,
    ScalarEstimate,
)

INPUT_LAWS = ("gaussian", "uniform", "exponential", "student_t")
#: the scalar quantities estimated jointly (a claim on one may name the others)
JOINT_QUANTITIES = ("mean_v", "mean_out", "var_out")
#: degrees of freedom of the ``student_t`` input (finite variance and fourth moment)
STUDENT_T_DOF = 5
#: relative tolerance of the floating-point identities, measured against the rounding scale of
#: their operands (the ``floor`` of each check): float64 rounding is ~1e-16 times B there, so 1e-10
#: leaves a margin of ~1e4 up to B ~ 1e4 and is still 1e5 below the smallest eps effect
#: (``eps / v`` = 1e-5 at the defaults) a wrong formula would miss.
IDENTITY_TOL = 1e-10
#: numbers of the B x B column Jacobians behind the jac_norm check (B = 32: 4096 columns)
_JAC_NUMBERS = 1 << 22
#: entries per vectorised block inside a chunk (bounds memory whatever B and M)
_BLOCK_NUMBERS = 1 << 20
_V_BINS = 60
#: the eps study of the figures: its eps grid beside the run's, its variance grid, its batches
_STUDY_EPS = (0.0, 1e-8, 1e-2)
_STUDY_VARIANCES = np.concatenate([np.logspace(-12, 1, 27), [0.0]])
_STUDY_BATCHES = 2000


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


def _rounding_scale(fwd: BNForward) -> np.ndarray:
    """``s (|m| + sqrt(v))``: the raw numbers of ``Y - m`` in units of xhat (at least 1).

    The rounding of the batch mean, ~1e-16 |m|, reaches xhat multiplied by s; when the mean is
    large against the spread (a feature whose variance falls towards 0) this is what limits every
    identity's accuracy, so it is each check's floor.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        r = fwd.s * (np.abs(fwd.m) + np.sqrt(fwd.v))
        return np.where(np.isnan(r), np.nan, np.maximum(r, 1.0))


@dataclass(frozen=True)
class BNSetting:
    """The point's BN parameters and probe batch: what the estimates of every chunk need."""

    gamma: float
    beta: float
    eps: float
    sigma: float
    probe: np.ndarray  # (1, B, M), see probe_batch

    def names(self, fwd: BNForward) -> dict[str, Any]:
        """Per-feature names a claim on a per-batch identity may use (shape (K, 1, M))."""
        return {
            "v": fwd.v,
            "m": fwd.m,
            "s": fwd.s,
            "B": float(fwd.B),
            "eps": self.eps,
            "gamma": self.gamma,
            "beta": self.beta,
        }


def identity_estimates(Y: np.ndarray, bn: BNSetting) -> dict[str, ExactEstimate]:
    """The four per-batch identities' measured sides, on the batches ``Y`` plus the probe batch."""
    fwd = bn_forward(np.concatenate([Y, bn.probe]), bn.gamma, bn.beta, bn.eps)
    B, ag, ab = fwd.B, abs(bn.gamma), abs(bn.beta)
    R = _rounding_scale(fwd)
    mean, var = yhat_batch_moments(fwd, bn.beta)
    columns = jacobian_columns(fwd.Y.shape[0], B, fwd.Y.shape[-1])
    with np.errstate(invalid="ignore", over="ignore"):
        xmax = np.max(np.abs(fwd.xhat), axis=-2, keepdims=True)
        chosen = np.swapaxes(fwd.Y, -1, -2)[columns[:, 0, :]]  # (columns, B)
        jac = np.zeros(fwd.v.shape)
        jac[columns] = bn_stats.jacobian_norm(chosen, bn.gamma, bn.eps)
        jac_floor = np.maximum(ag * fwd.s * R, 1e-300)[columns]
        mean_floor = ag * R + ab + (ag == 0) * max(ag + ab, 1e-300)
    scale_out = max(ag + ab, 1e-300)
    names = bn.names(fwd)
    floors = {
        "batch_mean": (mean, mean_floor, None),
        "batch_var": (var, ag * (ag + ab) + (ag == 0) * scale_out, None),
        # an inequality: the prediction is the observation capped at the bound, so the check
        # measures the relative excess over Samuelson's bound (0 when it holds)
        "max_abs_xhat": (xmax, R, None),
        "jac_norm": (jac, jac_floor, columns),
    }
    return {
        q: ExactEstimate(reference=ref, tolerance=IDENTITY_TOL, floor=floor, names=names, mask=mask)
        for q, (ref, floor, mask) in floors.items()
    }


def constant_feature_estimates(Y: np.ndarray, bn: BNSetting) -> dict[str, ExactEstimate]:
    """mean_v, mean_out, var_out as exact checks on the kept batches (sigma = 0: every batch is
    the same, so the "statistical" quantities are deterministic)."""
    fwd = bn_forward(Y, bn.gamma, bn.beta, bn.eps)
    names = bn.names(fwd)
    floor = abs(bn.gamma) + abs(bn.beta) or 1.0
    with np.errstate(invalid="ignore"):
        dev = fwd.Yhat[..., :1, :] - bn.beta
    return {
        "mean_v": ExactEstimate(fwd.v, IDENTITY_TOL, 1.0, names),
        "mean_out": ExactEstimate(fwd.Yhat[..., :1, :], IDENTITY_TOL, floor, names),
        "var_out": ExactEstimate(dev * dev, IDENTITY_TOL, floor * floor, names),
    }


@dataclass
class StatsChunk:
    """Mergeable statistics of a chunk of batches (per-batch feature averages, v's histogram) and
    the first batches, for the exact checks."""

    features: CoMoments  # per batch, averaged over features: Yhat - beta, its square, v, ratio
    tails: Moments
    v_hist: Histogram
    kept: Kept
    bn: BNSetting

    def merge(self, other: StatsChunk) -> StatsChunk:
        return StatsChunk(
            self.features.merge(other.features),
            self.tails.merge(other.tails),
            self.v_hist.merge(other.v_hist),
            self.kept.merge(other.kept),
            self.bn,
        )

    def estimates(self) -> dict[str, ScalarEstimate | ExactEstimate]:
        """The per-batch identities on the kept and probe batches, then mean_v, mean_out and
        var_out over batches (exact on the kept batches when sigma = 0)."""
        Y = self.kept.arrays["Y"]
        out: dict[str, Any] = dict(
            self.kept.derived("identities", lambda: identity_estimates(Y, self.bn))
        )
        if self.bn.sigma > 0:
            scalars = self.delta_estimates()
            out.update({k: scalars[k] for k in ("mean_v", "mean_out", "var_out")})
        else:
            out.update(
                self.kept.derived("constant", lambda: constant_feature_estimates(Y, self.bn))
            )
        return out

    def delta_estimates(self) -> dict[str, ScalarEstimate]:
        """mean_v, mean_out, var_out (delta method) and the estimated ratio E[v/(v+eps)].

        The per-batch features hold ``Yhat - beta`` (no cancellation), so beta is added back.
        """
        f = self.features
        mean = f.mean
        cov = f.cov_of_mean()
        kurt = self.tails.excess_kurtosis

        def est(value: float, grad: np.ndarray, feature: int) -> ScalarEstimate:
            var = float(grad @ cov @ grad)
            se = math.sqrt(var) if var > 0 else (0.0 if var == 0 else math.nan)
            return ScalarEstimate(float(value), se, f.n, float(kurt[feature]))

        d, d2 = mean[0], mean[1]
        return {
            "mean_v": est(mean[2], np.array([0.0, 0.0, 1.0, 0.0]), 2),
            "mean_out": est(self.bn.beta + d, np.array([1.0, 0.0, 0.0, 0.0]), 0),
            "var_out": est(d2 - d * d, np.array([-2.0 * d, 1.0, 0.0, 0.0]), 1),
            "ratio": est(mean[3], np.array([0.0, 0.0, 0.0, 1.0]), 3),
        }

    def joint_estimates(self) -> JointEstimate | None:
        """mean_v, mean_out and var_out (as in :meth:`delta_estimates`) with the covariance of
        their estimates, ``G C G^T`` over the per-batch features; None for constant features
        (sigma = 0), where they are exact, not estimated."""
        if self.bn.sigma <= 0:
            return None
        f = self.features
        d, d2, v = f.mean[0], f.mean[1], f.mean[2]
        grads = np.array([[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [-2.0 * d, 1.0, 0.0, 0.0]])
        values = np.array([v, self.bn.beta + d, d2 - d * d])
        cov = grads @ f.cov_of_mean() @ grads.T
        return JointEstimate(JOINT_QUANTITIES, values, cov, f.n)


def _blocks(size: int, per_item: int) -> list[tuple[int, int]]:
    step = max(1, _BLOCK_NUMBERS // max(per_item, 1))
    return [(a, min(size, a + step)) for a in range(0, size, step)]


class StatsSampler:
    """Simulates chunks of batches for one sweep point (W and b fixed for the point)."""

    def __init__(
        self, point: Mapping[str, Any], setup: StatsSetup, bn: BNSetting, keep: int
    ) -> None:
        self.point = dict(point)
        self.W_t = np.ascontiguousarray(setup.W.T)
        self.b = setup.b
        self.edges = setup.edges
        self.bn = bn
        self.keep = keep

    def __call__(self, rng: np.random.Generator, size: int) -> StatsChunk:
        p = self.point
        B, N, M = p["B"], p["N"], p["M"]
        gamma, beta, eps, sigma = p["gamma"], p["beta"], p["eps"], p["sigma"]
        rows = np.empty((size, 4))
        v_scale = B / (sigma * sigma) if sigma > 0 else 0.0
        hist = Histogram.empty(self.edges)
        kept = Kept(self.keep)
        for a, z in _blocks(size, B * max(N, M)):
            X = draw_input(rng, p["input"], (z - a, B, N))
            Y = sigma * (X @ self.W_t) + self.b
            del X
            if kept.n < self.keep:
                kept = kept.merge(Kept(self.keep, {"Y": Y[: self.keep - kept.n].copy()}))
            fwd = bn_forward(Y, gamma, beta, eps)
            with np.errstate(invalid="ignore", divide="ignore"):
                dev = fwd.Yhat[:, 0, :] - beta  # row 0: exchangeable with every other row
                ratio = gamma * gamma * fwd.v[:, 0, :] / (fwd.v[:, 0, :] + eps)
            rows[a:z, 0] = dev.mean(axis=1)
            rows[a:z, 1] = (dev * dev).mean(axis=1)
            rows[a:z, 2] = fwd.v[:, 0, :].mean(axis=1)
            rows[a:z, 3] = ratio.mean(axis=1)
            hist = hist.merge(Histogram.from_batch(fwd.v[:, 0, :] * v_scale, self.edges))
        return StatsChunk(CoMoments.from_batch(rows), Moments.from_batch(rows), hist, kept, self.bn)


def eps_study(B: int, gamma: float, eps_run: float, rng: np.random.Generator) -> EpsStudy:
    """Gaussian features of variance falling to exactly 0, normalised with several eps.

    Per (eps, variance): Var(Yhat)/gamma^2 from row 0 (mean and SE over batches), the max |xhat|
    over the batches, and per-batch (v, ||J||) pairs for the first batches (40 at most, fewer for
    large B). The same standard normals serve every variance (common random numbers).
    """
    eps_grid = tuple(sorted({*_STUDY_EPS, float(eps_run)}))
    variances = _STUDY_VARIANCES
    batches = int(np.clip((1 << 22) // B, 200, _STUDY_BATCHES))
    Z = rng.standard_normal((batches, B, 1))
    n_jac = int(max(2, min(40, (1 << 20) // (B * B))))  # B x B Jacobians per dot
    per_block = max(1, (1 << 16) // (batches * B))  # variances at once (cache-sized arrays)
    shape = (len(eps_grid), len(variances))
    ratio, ratio_se, xmax = np.empty(shape), np.empty(shape), np.empty(shape)
    v, jac = np.empty((*shape, n_jac)), np.empty((*shape, n_jac))
    for e, eps in enumerate(eps_grid):
        for a in range(0, len(variances), per_block):
            cols = slice(a, a + per_block)
            fwd = bn_forward(np.sqrt(variances[cols]) * Z, gamma, 0.0, eps)
            with np.errstate(invalid="ignore"):
                # per batch, mean_i xhat^2 = v/(v+eps): Var(Yhat)/gamma^2 is its mean
                per_batch = np.mean(fwd.xhat**2, axis=1)  # (batches, variances)
                ratio[e, cols] = np.mean(per_batch, axis=0)
                ratio_se[e, cols] = np.std(per_batch, axis=0, ddof=1) / math.sqrt(batches)
                xmax[e, cols] = np.max(np.abs(fwd.xhat), axis=(0, 1))
            columns = np.moveaxis(fwd.Y[:n_jac], -1, 0)  # (variances, n_jac, B)
            jac[e, cols] = bn_stats.jacobian_norm(columns, gamma, eps)
            v[e, cols] = fwd.v[:n_jac, 0, :].T
    return EpsStudy(
        B, gamma, float(eps_run), eps_grid, variances, batches, ratio, ratio_se, xmax, v, jac
    )


@functools.lru_cache(maxsize=8)
def shared_eps_study(entropy: int, B: int, gamma: float, eps_run: float) -> EpsStudy:
    """The eps study of run ``entropy`` at (B, gamma, eps), computed once per process.

    It depends on a point only through these (not on sigma nor the input law), so it draws from
    the stream they key (:func:`shared_study_rng`) and every point that agrees on them shares
    one study: a sweep over sigma and the input law (the quick course's four points) computes
    it once, not four times (~0.2 CPU-s each, mostly the Jacobians' eigenvalues). Its arrays are
    made read-only, as it is shared.
    """
    stream = shared_study_rng(entropy, SharedStudy.BATCHNORM_EPS, (B, gamma, eps_run))
    return read_only(eps_study(B, gamma, eps_run, stream))


@dataclass(frozen=True)
class StatsSetup:
    """The fixed parts of a point: the feature map, v's histogram bins, the probe batch, and the
    run's root entropy (the eps study its figure shows draws from the run's shared stream)."""

    W: np.ndarray  # (M, N), unit-norm rows
    b: np.ndarray  # (M,)
    edges: np.ndarray  # bins of B v / sigma^2
    probe: np.ndarray  # (1, B, M)
    entropy: int


class BatchnormStats(Experiment[StatsSetup, StatsChunk]):
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
            "standard deviation of every feature (0: constant features; else at least 1e-9)",
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
        Quantity(
            "mean_v", "statistical", "E(v), the biased batch variance, over batches", RELATIVE
        ),
        Quantity("mean_out", "statistical", "E(Yhat_ij) over batches"),
        Quantity("var_out", "statistical", "Var(Yhat_ij) over batches", RELATIVE),
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
    joint_quantities = JOINT_QUANTITIES
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
    figures = FIGURES
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

    def validate(self, point: dict[str, Any], where: Callable[[str], str]) -> None:
        sigma = point["sigma"]
        if 0.0 < sigma < 1e-9:  # its square underflows against eps: the identities lose meaning
            raise SimlabInputError(
                f"{where('sigma')}: {sigma:g} is not allowed; expected 0 (constant features) or "
                "a number in [1e-09, 1e+12]"
            )

    def label(self, point: Mapping[str, Any]) -> str:
        return describe(self.name, point)

    def relation_quantities(self, point: Mapping[str, Any]) -> tuple[str, ...]:
        # constant features (sigma = 0): mean_v, mean_out and var_out are exact, not estimated
        return self.joint_quantities if point["sigma"] > 0 else ()

    def setup(self, point: Mapping[str, Any], rng: np.random.Generator) -> StatsSetup:
        B, sigma = point["B"], point["sigma"]
        W, b = feature_map(rng, point["M"], point["N"])
        heavy = 4.0 if point["input"] != "gaussian" else 1.0
        top = heavy * (B - 1 + 8.0 * math.sqrt(2.0 * (B - 1)))
        edges = np.linspace(0.0, top, _V_BINS + 1)
        probe = probe_batch(B, point["M"], b, sigma if sigma > 0 else 1.0)
        return StatsSetup(W, b, edges, probe, run_entropy(rng))

    def sampler(self, point: Mapping[str, Any], setup: StatsSetup) -> StatsSampler:
        bn = BNSetting(
            float(point["gamma"]),
            float(point["beta"]),
            float(point["eps"]),
            float(point["sigma"]),
            setup.probe,
        )
        return StatsSampler(point, setup, bn, keep_limit(point["B"], point["M"]))

    def predict(self, sim: Simulated[StatsSetup, StatsChunk]) -> Predictions:
        point = sim.point
        B, eps, sigma, gamma = point["B"], point["eps"], point["sigma"], point["gamma"]
        surely_nan = sigma == 0 and eps == 0  # every feature constant: 0/0 everywhere
        expect = either_if(surely_nan)
        nan_note = (
            "; constant features at eps = 0 give 0/0: NaN is the answer" if surely_nan else ""
        )
        identity = IDENTITY + nan_note
        # the identities hold given each batch's own v (and s), measured with the estimates
        names = sim.estimates["batch_var"].names
        v, s = names["v"], names["s"]
        xmax = sim.estimates["max_abs_xhat"].reference
        with np.errstate(invalid="ignore", over="ignore"):
            bound = bn_stats.samuelson_bound(B) * np.sqrt(v) * s  # sqrt(B-1) sqrt(v/(v+eps))
        predictions: dict[str, Prediction] = {
            "batch_mean": Prediction(np.asarray(point["beta"], float), identity, expect=expect),
            "batch_var": Prediction(
                bn_stats.predicted_yhat_batch_var(gamma, v, eps), identity, expect=expect
            ),
            "max_abs_xhat": Prediction(np.minimum(xmax, bound), identity, expect=expect),
            "jac_norm": Prediction(
                bn_stats.jacobian_norm_prediction(B, v, gamma, eps), identity, expect=expect
            ),
        }
        v_pred = float(bn_stats.expected_batch_var(B, sigma * sigma))
        ratio = bn_stats.expected_v_ratio(B, eps, sigma * sigma, point["input"])
        if ratio is None and eps == 0 and sigma > 0:
            ratio = 1.0  # v > 0 surely for a continuous law: v/(v+0) = 1 whatever the law
        # constant features (sigma = 0): the same numbers in every batch, checked exactly
        holds = EXACT_IN_EXPECTATION if sigma > 0 else identity
        # v itself is never 0/0: its check stands even where everything else is NaN
        predictions["mean_v"] = Prediction(v_pred, holds.replace(nan_note, ""))
        predictions["mean_out"] = Prediction(float(point["beta"]), holds, expect=expect)
        if ratio is not None:
            predictions["var_out"] = Prediction(float(gamma * gamma * ratio), holds, expect=expect)
        return predictions

    def figure_data(self, sim: Simulated[StatsSetup, StatsChunk]) -> StatsFigureData:
        ratio = sim.stats.delta_estimates()["ratio"] if sim.point["sigma"] > 0 else None
        point = sim.point
        gamma = point["gamma"] if point["gamma"] != 0 else 1.0
        # + 0.0: -0.0 is 0.0 (the cache sees them as one key; so does the stream)
        eps = float(point["eps"]) + 0.0
        study = shared_eps_study(sim.setup.entropy, point["B"], float(gamma), eps)
        return StatsFigureData(sim.stats.v_hist, ratio, study)

    def memory_bytes(self, point: Mapping[str, Any], chunk_size: int) -> tuple[int, int]:
        B, N, M = point["B"], point["N"], point["M"]
        # the feature map, the probe batch; the eps study normalises one block of variances at
        # once (input, centred, xhat, Yhat, H and the squares: ~10 arrays of the block's size)
        batches = int(np.clip((1 << 22) // B, 200, _STUDY_BATCHES))
        study = 10 * 8 * max(1 << 16, batches * B)
        setup = 8 * (M * N + M + B * M) + study
        # per chunk: one block of X, Y and bn_forward's arrays (~9 of Y's size), the kept batches
        block = min(chunk_size, max(1, _BLOCK_NUMBERS // (B * max(N, M))))
        kept = min(chunk_size, keep_limit(B, M)) * B * M
        per_chunk = 8 * (block * B * (N + 9 * M) + kept + 12 * chunk_size)
        return setup, per_chunk

    def claim_trial_values(self, point: Mapping[str, Any], quantity: str) -> dict[str, Any]:
        values = super().claim_trial_values(point, quantity)
        identity = quantity in ("batch_mean", "batch_var", "max_abs_xhat", "jac_norm")
        if identity or point["sigma"] == 0:
            # per batch (kept batches and the probe) and feature, as in BNSetting.names
            per_feature = np.ones((keep_limit(point["B"], point["M"]) + 1, 1, point["M"]))
            values.update(v=per_feature, m=per_feature, s=per_feature)
        return values


__all__ = [
    "BatchnormStats",
    "StatsChunk",
    "StatsSampler",
    "StatsSetup",
    "draw_input",
    "eps_study",
    "probe_batch",
]

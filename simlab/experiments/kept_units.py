"""``simlab kept-units``: how many units dropout keeps (SPEC 1.2).

Three experiments, one per command of the ``kept-units`` group:

``binomial``
    ``M`` units, each kept with probability ``q = 1 - p``; ``K ~ Binomial(M, q)``.
``poisson-limit``
    ``q = lam/M`` for a list of ``M``; ``K`` is exactly Binomial(M, lam/M) and tends to
    Poisson(lam). The exact total variation distance ``TV_M`` says how far from the limit each
    finite ``M`` is; the chi-square test against Poisson(lam) must fail where the sample resolves
    ``TV_M`` and may pass only where it does not.
``thinning``
    ``M ~ Poisson(lam)`` units per trial, each kept with probability ``q``: ``K ~ Poisson(lam q)``,
    ``M - K ~ Poisson(lam p)``, independent of each other.

Every unit's Bernoulli(q) mask is simulated (:func:`simlab.masks.count_kept`, exact unit by unit:
random bytes compared with q's expansion, or geometric gaps between kept units when q is small);
no count is ever drawn from ``rng.binomial`` or ``rng.poisson``. In ``thinning`` the number of units
``M`` is drawn from Poisson: that is the setup, not the result under test.

A sample is one trial (one mask of M units). Each chunk of trials returns mergeable statistics:
running moments of ``K`` (and of ``K, M - K, K (M - K)`` for thinning) and integer histograms of
``K`` over a fixed support ``0..kmax`` plus one overflow bin, merged by adding. Standard errors:

- mean: ``s / sqrt(n)``;
- variance: the sample variance ``s^2`` has ``Var(s^2) = (mu4 - (n-3)/(n-1) sigma^4) / n``
  (``mu4`` the fourth central moment), estimated with the running fourth moment;
- ``cov_kept_dropped``: ``E[K D] - E[K] E[D]`` from the per-trial products, by the delta method
  over the co-moments of ``(K, D, K D)``;
- ``tv`` (poisson-limit): the plug-in distance ``TV(P_n, Poisson)`` of the empirical law ``P_n``
  is within ``TV(P_n, Binomial(M, lam/M))`` of the exact ``TV_M`` (triangle inequality), on every
  run. The SE reported is the root-mean-square of that bound (the binomial noise floor and its
  spread), so the z-test is conservative: the noise floor never rejects a right value, and the
  check resolves a distance only down to about the floor, which its resolution states.

Negative controls (a known-false law checked on purpose: Binomial(M, p) with p and q swapped,
Poisson(lam) at finite M, Poisson(lam) for the thinned count) carry the verdict they must give at
this sample size, from the power of the chi-square test against the true law
(:func:`detectability`): ``fail`` where the sample resolves the difference, ``pass`` where it
cannot, ``either`` in between.

The numbers of a run depend on the seed, the chunk size (samples per chunk) and the way units are
decided; the latter is fixed per point (:data:`CHUNK_UNITS` and ``choose_method(q)``), never
derived from the number of workers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from simlab.errors import SimlabInputError
from simlab.experiments.base import (
    Experiment,
    PointContext,
    PointResult,
    Quantity,
    WrongClaim,
)
from simlab.masks import choose_method, count_kept, count_kept_thinning
from simlab.params import Param, count
from simlab.stats import CoMoments, Moments
from simlab.theory.counts import (
    barbour_hall_bounds,
    binomial_pmf,
    le_cam_bound,
    poisson_pmf,
    tv_binomial_poisson,
)
from simlab.verdicts.estimates import (
    EXACT_IN_EXPECTATION,
    CountsEstimate,
    ExactEstimate,
    Prediction,
    ScalarEstimate,
)
from simlab.verdicts.gof import chi_square_gof, empirical_tv_noise_floor, pool_bins

#: Largest working array of the mask counters, in units. Fixed: with ``method`` it decides the
#: order in which random numbers are consumed, hence the numbers of a run.
CHUNK_UNITS = 1 << 20

#: Family-wise error rate assumed when a run does not say (``simlab.runner.DEFAULT_ALPHA``).
_DEFAULT_ALPHA = 1e-3
#: Holm's strictest threshold is ``alpha / m``; a negative control is expected to fail only when it
#: is rejected with probability >= 1 - alpha even at ``alpha / _FAMILY`` (families of up to 1000
#: tests): a control then misses no more often than a correct claim raises a false alarm.
_FAMILY = 1000
#: A known-false law is expected to pass when its rejection probability at level alpha (Holm's most
#: lenient threshold) is at most this multiple of alpha: the sample cannot see the difference.
_BLIND = 2.0

#: Probability left beyond the pmf support (it goes to the overflow and tail bins).
_TAIL = 1e-18
#: Bounds that keep the pmf support (every k from 0 up) small enough to bin and test.
_MAX_M_BINOMIAL = 1_000_000
_MAX_LAM = 10_000.0

#: The default sweep of ``poisson-limit`` (SPEC 1.2): 10 to 1e5 units.
DEFAULT_M_SWEEP = (10, 30, 100, 300, 1000, 3000, 10_000, 100_000)


def support_max(law, mean: float, sd: float, cap: int | None = None) -> int:
    """Largest k kept as its own bin: where the true ``law`` (a frozen scipy law) has tail < 1e-18.

    Outcomes beyond it are counted in the overflow bin, and every predicted pmf's mass beyond it
    forms the goodness-of-fit tail bin, so the tests lose nothing. A short support keeps claims
    such as ``comb(M,k)*q**k*(1-q)**(M-k)`` finite at M = 1e5 (``comb`` overflows far out).
    The search stops 40 standard deviations and 60 counts past the mean (tails < 1e-30 there).
    """
    grid = np.arange(int(math.ceil(mean + 40.0 * sd + 60.0)) + 1)
    if cap is not None:
        grid = grid[grid <= cap]
    thin = np.flatnonzero(law.sf(grid) < _TAIL)
    return int(grid[thin[0]]) if thin.size else int(grid[-1])


def _bincount(values: np.ndarray, kmax: int) -> np.ndarray:
    """Counts of ``values`` at 0..kmax, and of everything above kmax in one last entry."""
    return np.bincount(np.minimum(values, kmax + 1), minlength=kmax + 2).astype(np.int64)


def counts_estimate(hist: np.ndarray) -> CountsEstimate:
    """A :class:`CountsEstimate` from a histogram whose last entry is the overflow."""
    return CountsEstimate(np.arange(hist.size - 1), hist[:-1].copy(), int(hist[-1]))


def _with_tail(probs: np.ndarray) -> np.ndarray:
    """Probabilities of 0..kmax and of "beyond kmax" (the gof tail bin, possibly 0)."""
    probs = np.clip(np.asarray(probs, dtype=float), 0.0, None)
    return np.append(probs, max(0.0, 1.0 - float(probs.sum())))


def scalar_or_exact(value: float, se: float, n: int, kurtosis: float | None = None):
    """A :class:`ScalarEstimate`, or an exact comparison when the quantity has no randomness.

    With ``p = 0`` every unit is kept (or, with ``q = lam/M = 1``, ``K = M``): the per-trial
    values are constant and the standard error is 0, so the estimate is compared exactly instead
    of z-tested.
    """
    if se > 0 or not math.isfinite(se):
        return ScalarEstimate(float(value), float(se), int(n), kurtosis)
    return ExactEstimate(np.array([float(value)]), tolerance=1e-9, floor=1e-12)


def mean_and_var(m: Moments) -> tuple[Any, Any]:
    """Estimates of the mean and of the variance, with standard errors (see the module doc)."""
    n = m.n
    mean = float(m.mean)
    s2 = float(m.var)
    mu4 = float(m.m4) / n
    var_of_s2 = max(mu4 - (n - 3) / (n - 1) * s2 * s2, 0.0) / n if n > 3 else math.inf
    kurt = float(m.excess_kurtosis) if s2 > 0 else None
    return (
        scalar_or_exact(mean, math.sqrt(s2 / n), n, kurt),
        scalar_or_exact(s2, math.sqrt(var_of_s2), n),
    )


# --------------------------------------------------------------------------------------------------
# what the chi-square test can see: expectations of the negative controls
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Detectability:
    """How surely a chi-square test of ``model`` rejects it when the counts follow ``truth``.

    ``power`` is computed with the noncentral chi-square on the bins pooled as the test pools them
    (noncentrality ``n sum_g (truth_g - model_g)^2 / model_g``), at the strictest level a family of
    up to 1000 tests uses (``alpha/1000``); ``power_lenient`` at ``alpha`` itself. ``expect`` is
    ``fail`` when ``power >= 1 - alpha``, ``pass`` when ``power_lenient <= 2 alpha`` (the
    difference is below what the sample resolves), ``either`` in between.
    """

    expect: str
    power: float
    power_lenient: float
    noncentrality: float


def detectability(truth: np.ndarray, model: np.ndarray, n: int, alpha: float) -> Detectability:
    """See :class:`Detectability`; ``truth`` and ``model`` are pmfs on the same 0..kmax."""
    p1, p0 = _with_tail(truth), _with_tail(model)
    impossible = float(p1[p0 <= 0].sum())  # mass where the model has none: one count refutes it
    labels = pool_bins(n * p0)
    g0 = np.bincount(labels, weights=p0)
    g1 = np.bincount(labels, weights=p1)
    dof = g0.size - 1
    ok = g0 > 0
    nc = float(n * np.sum((g1[ok] - g0[ok]) ** 2 / g0[ok]))
    seen = -math.expm1(n * math.log1p(-impossible)) if impossible < 1 else 1.0

    def power(level: float) -> float:
        if dof < 1:
            return seen
        return max(seen, float(stats.ncx2.sf(stats.chi2.isf(level, dof), dof, nc)))

    strict, lenient = power(alpha / _FAMILY), power(alpha)
    if strict >= 1.0 - alpha:
        expect = "fail"
    elif lenient <= _BLIND * alpha:
        expect = "pass"
    else:
        expect = "either"
    return Detectability(expect, strict, lenient, nc)


def _negative_control(
    truth: np.ndarray, model: np.ndarray, n: int, alpha: float, label: str, holds: str
) -> Prediction:
    """A known-false law, expected to fail exactly where the sample resolves it."""
    d = detectability(truth, model, n, alpha)
    verdict = {
        "fail": "this sample resolves the difference (chi-square power {p:.2f}): expected to fail",
        "either": "the difference is at the edge of what this sample resolves "
        "(rejected with probability {lenient:.2g} at level alpha): either verdict is expected",
        "pass": "the difference is below what this sample resolves "
        "(rejected with probability {lenient:.2g} at level alpha): expected to pass",
    }[d.expect]
    return Prediction(
        model,
        holds,
        expect=d.expect,
        label=label,
        note=verdict.format(p=d.power, lenient=d.power_lenient),
    )


# --------------------------------------------------------------------------------------------------
# per-chunk statistics and samplers
# --------------------------------------------------------------------------------------------------
@dataclass
class KeptStats:
    """Mergeable statistics of the kept counts of a chunk of trials."""

    moments: Moments  # of K, up to the fourth central moment
    hist: np.ndarray  # counts of K = 0..kmax, then of K > kmax

    def merge(self, other: KeptStats) -> KeptStats:
        return KeptStats(self.moments.merge(other.moments), self.hist + other.hist)

    def estimates(self) -> dict[str, Any]:
        mean, var = mean_and_var(self.moments)
        return {"mean": mean, "var": var, "pmf": counts_estimate(self.hist)}


class FixedUnitsSampler:
    """``size`` trials of ``M`` units each, every unit kept with probability ``q``."""

    def __init__(self, M: int, q: float, kmax: int) -> None:
        self.M, self.q, self.kmax = M, q, kmax
        self.method = choose_method(q)  # a function of q alone: fixed for the point

    def __call__(self, rng: np.random.Generator, size: int) -> KeptStats:
        kept = count_kept(rng, size, self.M, self.q, method=self.method, chunk_units=CHUNK_UNITS)
        return KeptStats(Moments.from_batch(kept.astype(np.float64)), _bincount(kept, self.kmax))


@dataclass
class ThinningStats:
    """Mergeable statistics of (K, D = M - K) over a chunk of thinning trials."""

    features: CoMoments  # of (K, D, K D): the covariance by the delta method
    moments: Moments  # of K, up to the fourth central moment
    hist: np.ndarray  # counts of K = 0..kmax, then of K > kmax
    joint: np.ndarray  # (K, D) table, each clipped at jmax + 1 (for the figure)

    def merge(self, other: ThinningStats) -> ThinningStats:
        return ThinningStats(
            self.features.merge(other.features),
            self.moments.merge(other.moments),
            self.hist + other.hist,
            self.joint + other.joint,
        )

    def estimates(self) -> dict[str, Any]:
        mean, var = mean_and_var(self.moments)
        f = self.features
        mk, md, _ = f.mean
        cov = float(f.mean[2] - mk * md)
        grad = np.array([-md, -mk, 1.0])
        se = math.sqrt(max(float(grad @ f.cov_of_mean() @ grad), 0.0))
        return {
            "mean": mean,
            "var": var,
            "pmf": counts_estimate(self.hist),
            "cov_kept_dropped": scalar_or_exact(cov, se, f.n),
        }


class ThinningSampler:
    """``size`` trials of ``M ~ Poisson(lam)`` units, every unit kept with probability ``q``."""

    def __init__(self, lam: float, q: float, kmax: int, jmax: int) -> None:
        self.lam, self.q, self.kmax, self.jmax = lam, q, kmax, jmax
        self.method = choose_method(q)

    def __call__(self, rng: np.random.Generator, size: int) -> ThinningStats:
        units, kept = count_kept_thinning(
            rng, size, self.lam, self.q, method=self.method, chunk_units=CHUNK_UNITS
        )
        dropped = units - kept
        features = np.column_stack([kept, dropped, kept * dropped]).astype(np.float64)
        side = self.jmax + 2
        cell = np.minimum(kept, side - 1) * side + np.minimum(dropped, side - 1)
        joint = np.bincount(cell, minlength=side * side).reshape(side, side).astype(np.int64)
        return ThinningStats(
            CoMoments.from_batch(features),
            Moments.from_batch(kept.astype(np.float64)),
            _bincount(kept, self.kmax),
            joint,
        )


def _simulate(sampler, label: str, ctx: PointContext, scalar_names: tuple[str, ...]):
    """Run the chunks of one point; stop early at ``--target-se`` on the scalar quantities."""
    should_stop = None
    if ctx.target_se is not None and scalar_names:

        def should_stop(acc, n: int) -> bool:
            if n < 2 * ctx.chunk_size:
                return False
            est = acc.estimates()
            return all(
                not isinstance(est[k], ScalarEstimate) or est[k].se <= ctx.target_se
                for k in scalar_names
            )

    return ctx.run(sampler, label, should_stop=should_stop)


# --------------------------------------------------------------------------------------------------
# the experiments
# --------------------------------------------------------------------------------------------------
def _drop_param(default: float) -> Param:
    return Param(
        "p", "float", default, "drop probability (q = 1 - p keeps)", low=0.0, high=1.0,
        high_open=True,
    )  # fmt: skip


def _lam_param(default: float, help: str) -> Param:
    return Param("lam", "float", default, help, low=0.0, high=_MAX_LAM, low_open=True)


class _KeptUnits(Experiment):
    """What the three kept-units experiments share: claims in ``k`` and ``q``, the figures."""

    claim_names = ("k", "q")
    default_chunk_size = 1 << 16

    def keep_probability(self, params: dict[str, Any]) -> float:
        return 1.0 - params["p"]

    def claim_values(self, result: PointResult, quantity: str) -> dict[str, Any]:
        values = super().claim_values(result, quantity)
        values["q"] = self.keep_probability(result.params)
        return values

    def figures(
        self, points: list[PointResult], folder: Path, formats: tuple[str, ...]
    ) -> list[Path]:
        from simlab.experiments import kept_units_figures

        return kept_units_figures.render(self.name, points, folder, formats)


def _alpha(ctx: PointContext) -> float:
    return ctx.alpha


class KeptBinomial(_KeptUnits):
    name = "kept-units binomial"
    summary = "Units kept by dropout out of M: Binomial(M, 1 - p), tested as a distribution."
    params = (
        count("M", 50, "number of units", low=1),
        _drop_param(0.3),
    )
    quantities = (
        Quantity("mean", "statistical", "E[K], K the number of kept units"),
        Quantity("var", "statistical", "Var(K)"),
        Quantity("pmf", "distribution", "the law of K over k = 0..M (claims use k)"),
    )
    default_samples = 1_000_000
    formulas = {
        "mean": "M q",
        "var": "M q p",
        "pmf": "Binomial(M, q): comb(M, k) q^k p^(M-k)",
    }
    known_wrong = (
        WrongClaim(
            "pmf=comb(M,k)*p**k*(1-p)**(M-k)",
            "swaps p and 1 - p: p is the drop probability (PyTorch's convention), q = 1 - p keeps",
        ),
        WrongClaim("var=M*(1-p)", "the Poisson variance: forgets the factor p of M q p"),
        WrongClaim("mean=M*p", "counts the dropped units, not the kept ones"),
    )
    figure_captions = {
        "kept_units_binomial_pmf": "The law of the number K of kept units: every unit's mask is "
        "simulated, and K follows Binomial(M, q), P(K = k) = C(M, k) q^k p^(M−k), q = 1 − p",
        "kept_units_binomial_moments": "E[K] = M q and Var(K) = M q p: per unit, E[K]/M = q and "
        "Var(K)/M = p q against the drop probability",
    }
    budgets = {
        "quick": {
            "M": 50,
            "p": [0.3, 0.8],
            "samples": 100_000,
            "claims": ["pmf=comb(M,k)*(1-p)**k*p**(M-k)", "var=M*p*(1-p)"],
        },
        "standard": {"M": [10, 50, 200], "p": [0.1, 0.3, 0.8], "samples": 1_000_000},
        "thorough": {"M": [10, 50, 200], "p": [0.1, 0.3, 0.8], "samples": 10_000_000},
    }

    def validate(self, point: dict[str, Any], where: Callable[[str], str]) -> None:
        if point["M"] > _MAX_M_BINOMIAL:
            raise SimlabInputError(
                f"{where('M')}: {point['M']} is not allowed; expected at most "
                f"{_MAX_M_BINOMIAL:.0e} (the pmf check bins every k from 0 to M)"
            )

    def run_point(self, point: dict[str, Any], ctx: PointContext) -> PointResult:
        start = time.perf_counter()
        M, p = point["M"], point["p"]
        q = 1.0 - p
        kmax = support_max(stats.binom(M, q), M * q, math.sqrt(M * q * p), cap=M)
        sampler = FixedUnitsSampler(M, q, kmax)
        run = _simulate(sampler, f"binomial M={M} p={p:g}", ctx, ("mean", "var"))
        estimates = run.stats.estimates()
        k = np.arange(kmax + 1)
        law = binomial_pmf(k, M, q)
        swapped = binomial_pmf(k, M, p)
        exact_law = "exact law: a sum of M independent Bernoulli(q) units"
        predictions = {
            "mean": Prediction(M * q, EXACT_IN_EXPECTATION),
            "var": Prediction(M * q * p, EXACT_IN_EXPECTATION),
            "pmf": [
                Prediction(law, exact_law, label="Binomial(M, q)"),
                _negative_control(
                    law,
                    swapped,
                    run.n_samples,
                    _alpha(ctx),
                    label="swapped Binomial(M, p) (negative control)",
                    holds="a wrong law (keeps with the drop probability)",
                ),
            ],
        }
        return PointResult(
            params=dict(point),
            estimates=estimates,
            predictions=predictions,
            n_samples=run.n_samples,
            seconds=time.perf_counter() - start,
            extras={"q": q, "law": law, "method": sampler.method},
        )


class KeptPoissonLimit(_KeptUnits):
    name = "kept-units poisson-limit"
    summary = (
        "Binomial(M, lam/M) against its Poisson(lam) limit: exact TV distance, bounds, and when "
        "a sample can tell them apart."
    )
    params = (
        _lam_param(3.0, "mean number of kept units (q = lam/M)"),
        Param("M", "int", list(DEFAULT_M_SWEEP), "number of units (at least lam)", low=1),
    )
    quantities = (
        Quantity(
            "pmf",
            "distribution",
            "the law of K; tested against Binomial(M, lam/M) and its limit Poisson(lam)",
        ),
        Quantity(
            "tv",
            "statistical",
            "total variation distance between the law of K and Poisson(lam)",
        ),
    )
    default_samples = 2_000_000
    formulas = {
        "pmf": "Binomial(M, lam/M) (exact); Poisson(lam) (M -> inf limit)",
        "tv": "TV_M = 1/2 sum_k |Bin(k; M, lam/M) - Pois(k; lam)| (exact)",
    }
    known_wrong = (
        WrongClaim(
            "pmf=exp(-lam)*lam**k/factorial(k)",
            "the Poisson limit taken as exact at a finite number of units",
            {"M": 10},
        ),
        WrongClaim(
            "tv=lam**2/M", "Le Cam's inequality is an upper bound, not the distance", {"M": 10}
        ),
    )
    figure_captions = {
        "kept_units_poisson_limit_tv": "Total variation between Binomial(M, lam/M) and "
        "Poisson(lam) against M: exact TV_M, Le Cam's bound lam²/M, the Barbour–Hall band "
        "(1/32) min(1, 1/lam) lam²/M ≤ TV_M ≤ (1 − e^−lam) lam/M, and the empirical TV, "
        "which a sample resolves only above its noise floor",
        "kept_units_poisson_limit_pmf": "The law of K at q = lam/M against Binomial(M, lam/M) "
        "(exact) and Poisson(lam) (the M → ∞ limit): the residuals against Poisson are "
        "systematic at small M and sampling noise at large M",
    }
    budgets = {
        "quick": {"lam": 3.0, "M": [10, 100, 1000, 100_000], "samples": 500_000},
        "standard": {
            "lam": 3.0,
            "M": list(DEFAULT_M_SWEEP),
            "samples": 2_000_000,
        },
        "thorough": {
            "lam": [1.0, 3.0],
            "M": list(DEFAULT_M_SWEEP),
            "samples": 10_000_000,
        },
    }

    def keep_probability(self, params: dict[str, Any]) -> float:
        return params["lam"] / params["M"]

    def validate(self, point: dict[str, Any], where: Callable[[str], str]) -> None:
        lam, M = point["lam"], point["M"]
        if lam > M:
            raise SimlabInputError(
                f"{where('M')}: {M} is not allowed with lam = {lam:g}; the keep probability "
                f"q = lam/M = {lam / M:.3g} must be at most 1, so M must be at least lam"
            )

    def run_point(self, point: dict[str, Any], ctx: PointContext) -> PointResult:
        start = time.perf_counter()
        lam, M = point["lam"], point["M"]
        q = lam / M
        kmax = support_max(stats.binom(M, q), lam, math.sqrt(lam), cap=M)
        sampler = FixedUnitsSampler(M, q, kmax)
        run = _simulate(sampler, f"poisson-limit lam={lam:g} M={M}", ctx, ())
        n = run.n_samples
        hist = run.stats.hist
        k = np.arange(kmax + 1)
        law = binomial_pmf(k, M, q)
        pois = poisson_pmf(k, lam)
        alpha = _alpha(ctx)

        tv_exact = tv_binomial_poisson(M, lam)
        tv_empirical = chi_square_gof(hist, pois).tv  # same bins as the pmf check
        floor_binomial = empirical_tv_noise_floor(law, n)
        floor_poisson = empirical_tv_noise_floor(pois, n)
        # |TV(P_n, Pois) - TV_M| <= TV(P_n, Bin) for the empirical law P_n (triangle inequality);
        # its mean is the binomial noise floor and its variance about (1 - 2/pi) sum b(1-b) / 4n
        # (normal approximation per bin). Their root-mean-square bounds the estimate's error.
        b = _with_tail(law)
        spread = (1.0 - 2.0 / math.pi) * float(np.sum(b * (1.0 - b))) / (4.0 * n)
        tv_se = math.sqrt(floor_binomial**2 + spread)

        d = detectability(law, pois, n, alpha)
        if d.expect == "fail":
            words = (
                f"M -> inf limit, not yet reached: TV_M = {tv_exact:.3g} at M = {M}, which "
                f"{n:,} trials resolve (chi-square power {d.power:.2f} against Binomial(M, "
                "lam/M)); the finite-M law is not yet Poisson, so this check must fail"
            )
        elif d.expect == "pass":
            words = (
                f"M -> inf limit: TV_M = {tv_exact:.2g} at M = {M} is below what {n:,} trials "
                f"resolve (empirical-TV noise floor {floor_poisson:.2g}; rejected with "
                f"probability {d.power_lenient:.2g} at level alpha): Poisson cannot be told from "
                "the finite-M law at this sample size"
            )
        else:
            words = (
                f"M -> inf limit: TV_M = {tv_exact:.2g} at M = {M} is at the edge of what "
                f"{n:,} trials resolve (rejected with probability {d.power_lenient:.2g} at level "
                f"alpha, {d.power:.2g} at alpha/{_FAMILY}): either verdict is expected"
            )
        predictions = {
            "pmf": [
                Prediction(
                    law,
                    "exact law: a sum of M independent Bernoulli(lam/M) units",
                    label="Binomial(M, lam/M)",
                ),
                Prediction(
                    pois,
                    "M -> inf limit",
                    expect=d.expect,
                    label="Poisson(lam) limit",
                    note=words,
                ),
            ],
            "tv": Prediction(
                tv_exact,
                "exact value; the empirical TV is off by at most TV(empirical law, "
                f"Binomial(M, lam/M)), whose root-mean-square {tv_se:.2g} is the SE",
                calibrated=False,  # that SE is a deliberately cautious bound
            ),
        }
        lower, upper = barbour_hall_bounds(M, lam)
        return PointResult(
            params=dict(point),
            estimates={
                "pmf": counts_estimate(hist),
                "tv": scalar_or_exact(tv_empirical, tv_se, n),
            },
            predictions=predictions,
            n_samples=n,
            seconds=time.perf_counter() - start,
            extras={
                "q": q,
                "law": law,
                "poisson": pois,
                "tv_exact": tv_exact,
                "tv_empirical": tv_empirical,
                "tv_se": tv_se,
                "floor_poisson": floor_poisson,
                "floor_binomial": floor_binomial,
                "le_cam": le_cam_bound(M, lam),
                "barbour_hall": (lower, upper),
                "poisson_expect": d.expect,
                "poisson_power": d.power,
                "method": sampler.method,
            },
        )


class KeptThinning(_KeptUnits):
    name = "kept-units thinning"
    summary = (
        "Poisson thinning: M ~ Poisson(lam) units, each kept with probability 1 - p; "
        "K ~ Poisson(lam q) independent of M - K ~ Poisson(lam p)."
    )
    params = (
        _lam_param(7.0, "mean number of units per trial (M ~ Poisson(lam))"),
        _drop_param(0.3),
    )
    quantities = (
        Quantity("mean", "statistical", "E[K], K the number of kept units"),
        Quantity("var", "statistical", "Var(K)"),
        Quantity("pmf", "distribution", "the law of K (claims use k)"),
        Quantity("cov_kept_dropped", "statistical", "Cov(K, M - K)"),
    )
    default_samples = 1_000_000
    formulas = {
        "mean": "lam q",
        "var": "lam q",
        "pmf": "Poisson(lam q): exp(-lam q) (lam q)^k / k!",
        "cov_kept_dropped": "0 (K and M - K are independent)",
    }
    known_wrong = (
        WrongClaim(
            "pmf=exp(-lam)*lam**k/factorial(k)",
            "the law of the number of units M, not of the kept ones: forgets the thinning",
        ),
        WrongClaim(
            "var=lam*(1-p)*p",
            "the binomial variance M q p with M replaced by its mean: forgets that M varies",
        ),
        WrongClaim(
            "cov_kept_dropped=-lam*p*(1-p)",
            "the multinomial covariance -M p q of a fixed M: with M ~ Poisson it vanishes",
        ),
    )
    figure_captions = {
        "kept_units_thinning_pmf": "The law of K when M ~ Poisson(lam) units are each kept "
        "with probability q: K ~ Poisson(lam q), not Poisson(lam)",
        "kept_units_thinning_joint": "The joint law of kept and dropped units against the "
        "product Poisson(lam q) × Poisson(lam p): K and M − K are independent",
    }
    budgets = {
        "quick": {
            "lam": 7.0,
            "p": 0.3,
            "samples": 200_000,
            "claims": ["pmf=exp(-lam*(1-p))*(lam*(1-p))**k/factorial(k)"],
        },
        "standard": {"lam": [1.0, 7.0, 30.0], "p": [0.3, 0.7], "samples": 1_000_000},
        "thorough": {"lam": [1.0, 7.0, 30.0], "p": [0.3, 0.7], "samples": 10_000_000},
    }

    def run_point(self, point: dict[str, Any], ctx: PointContext) -> PointResult:
        start = time.perf_counter()
        lam, p = point["lam"], point["p"]
        q = 1.0 - p
        kmax = support_max(stats.poisson(lam * q), lam * q, math.sqrt(lam * q))
        jmax = int(math.ceil(lam + 8.0 * math.sqrt(lam) + 8.0))
        sampler = ThinningSampler(lam, q, kmax, jmax)
        run = _simulate(
            sampler, f"thinning lam={lam:g} p={p:g}", ctx, ("mean", "var", "cov_kept_dropped")
        )
        k = np.arange(kmax + 1)
        law = poisson_pmf(k, lam * q)
        unthinned = poisson_pmf(k, lam)
        predictions = {
            "mean": Prediction(lam * q, EXACT_IN_EXPECTATION),
            "var": Prediction(lam * q, EXACT_IN_EXPECTATION),
            "pmf": [
                Prediction(law, "exact law (Poisson thinning)", label="Poisson(lam q)"),
                _negative_control(
                    law,
                    unthinned,
                    run.n_samples,
                    _alpha(ctx),
                    label="unthinned Poisson(lam) (negative control)",
                    holds="a wrong law (the law of M, not of K)",
                ),
            ],
            "cov_kept_dropped": Prediction(0.0, EXACT_IN_EXPECTATION),
        }
        return PointResult(
            params=dict(point),
            estimates=run.stats.estimates(),
            predictions=predictions,
            n_samples=run.n_samples,
            seconds=time.perf_counter() - start,
            extras={"q": q, "law": law, "joint": run.stats.joint, "method": sampler.method},
        )


__all__ = [
    "CHUNK_UNITS",
    "FixedUnitsSampler",
    "KeptBinomial",
    "KeptPoissonLimit",
    "KeptThinning",
    "ThinningSampler",
    "detectability",
]

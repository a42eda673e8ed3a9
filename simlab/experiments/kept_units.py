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
- ``tv`` (poisson-limit): the plug-in distance ``T = TV(P_n, Poisson)`` of the empirical law
  ``P_n`` is neither centred on the exact ``TV_M`` nor normal: every bin adds its own
  ``E|O_k/n - p_k|``, so ``T`` sits above ``TV_M`` by about the noise floor, and where ``TV_M``
  is below the floor ``T`` is a right-skewed sum of folded normals. Its law under the claim (counts
  of Binomial(M, lam/M), the law the masks follow) is computed at this n by parametric bootstrap
  (:func:`simlab.verdicts.gof.empirical_tv_null_law`, :data:`TV_NULL_DRAWS` multinomial
  histograms from the point's study stream: this calibrates the statistic, the counts themselves
  are simulated unit by unit): its sd is the SE, its mean minus ``TV_M`` the bias and its
  skewness the Pearson III shape of the z-test (:func:`simlab.verdicts.checks.skewed_z`), so the
  p-value is right, not only safe. The check resolves a distance only down to about the floor,
  which its resolution states. (The figure's error bars are still the triangle-inequality bound
  ``TV(P_n, Binomial(M, lam/M))`` on ``|T - TV_M|``, root-mean-square: :class:`TVEstimate`.)

``--target-se`` reads as an absolute standard error for every one of these (the engine stops a
point at the first chunk boundary where all of them reach it).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simlab.engine.seeding import study_rng
from simlab.errors import SimlabInputError
from simlab.experiments.base import (
    Experiment,
    PointResult,
    Predictions,
    Quantity,
    Simulated,
    WrongClaim,
)
from simlab.experiments.kept_units_figures import (
    BINOMIAL_FIGURES,
    POISSON_LIMIT_FIGURES,
    THINNING_FIGURES,
    BinomialFigureData,
    PoissonLimitFigureData,
    ThinningFigureData,
    TVCurve,
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
    JointEstimate,
    Prediction,
    ScalarEstimate,
)
from simlab.verdicts.gof import (
    TVNullLaw,
    chi_square_gof,
    empirical_tv_noise_floor,
    empirical_tv_null_law,
    pool_bins,
)

#: Largest working array of the mask counters, in units. Fixed: with ``method`` it decides the
#: order in which random numbers are consumed, hence the numbers of a run.
CHUNK_UNITS = 1 << 20

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

#: Parametric-bootstrap histograms behind the null law of the empirical TV: its mean is then known
#: to 1.6% of its sd and its skewness to about 0.04 (~5 ms of CPU per point at the quick budget).
TV_NULL_DRAWS = 4000
#: the study stream (of the point's setup stream) the TV's null law is drawn from
_TV_NULL_STUDY = 0
#: a stream as (entropy, spawn key) of its SeedSequence
NullSeed = tuple[int, tuple[int, ...]]

#: The default sweep of ``poisson-limit`` (SPEC 1.2): 10 to 1e5 units.
DEFAULT_M_SWEEP = (10, 30, 100, 300, 1000, 3000, 10_000, 100_000)


def _law(name: str, *args: float):
    """A frozen scipy.stats law (imported here: scipy.stats costs ~0.4 s of start-up)."""
    from scipy import stats

    return getattr(stats, name)(*args)


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
        from scipy import stats  # here, not at import: scipy.stats costs ~0.4 s of start-up

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

    def joint_estimates(self) -> JointEstimate:
        """mean and var with the covariance of their estimates: ``Cov(mean, s^2) = mu3 / n``
        (exact for iid trials), the variances as in :func:`mean_and_var`."""
        m = self.moments
        n = m.n
        s2 = float(m.var)
        mu3, mu4 = float(m.m3) / n, float(m.m4) / n
        var_of_s2 = max(mu4 - (n - 3) / (n - 1) * s2 * s2, 0.0) / n if n > 3 else math.inf
        cov = np.array([[s2 / n, mu3 / n], [mu3 / n, var_of_s2]])
        return JointEstimate(("mean", "var"), np.array([float(m.mean), s2]), cov, n)


@dataclass(frozen=True)
class TVEstimate:
    """The plug-in distance from the empirical law of K to Poisson(lam): its null law (what the
    check tests with) and its error bound (what the figure draws)."""

    empirical: float  # TV(P_n, Poisson(lam)) over the pmf check's bins
    se: float  # root-mean-square of the bound TV(P_n, Binomial(M, lam/M)) on its error
    floor_binomial: float  # E[TV(P_n, Binomial(M, lam/M))]: the bound's mean
    n: int
    #: the law of ``empirical`` when the counts follow Binomial(M, lam/M), at this n
    null: TVNullLaw


@dataclass
class LimitStats:
    """Kept counts at q = lam/M, and the two laws the distance estimate needs (never merged)."""

    hist: np.ndarray  # counts of K = 0..kmax, then of K > kmax
    law: np.ndarray  # Binomial(M, lam/M) on 0..kmax: the law under which the TV is tested
    poisson: np.ndarray  # Poisson(lam) on 0..kmax: what the distance is measured to
    #: the stream the TV's null law is drawn from, as (entropy, spawn key): plain ints, so a
    #: checkpoint holding these statistics loads (None: a sampler built outside a run)
    null_seed: NullSeed | None = None
    _tv: TVEstimate | None = field(default=None, repr=False, compare=False)

    def merge(self, other: LimitStats) -> LimitStats:
        return LimitStats(self.hist + other.hist, self.law, self.poisson, self.null_seed)

    def tv(self) -> TVEstimate:
        """``TV(P_n, Poisson)``, its law under Binomial(M, lam/M) and its error bound.

        The null law comes from a fresh generator on :attr:`null_seed` each time (so the same
        counts always get the same law, however often they are asked; computed once per
        instance). The bound: ``|TV(P_n, Poisson) - TV_M| <= TV(P_n, Binomial)`` by the triangle
        inequality, on every run; its mean is the binomial noise floor and its variance about
        ``(1 - 2/pi) sum b (1 - b) / 4n`` (normal approximation per bin); ``se`` is their
        root-mean-square.
        """
        if self._tv is not None:
            return self._tv
        n = int(self.hist.sum())
        empirical = chi_square_gof(self.hist, self.poisson).tv  # same bins as the pmf check
        floor = empirical_tv_noise_floor(self.law, n)
        b = _with_tail(self.law)
        spread = (1.0 - 2.0 / math.pi) * float(np.sum(b * (1.0 - b))) / (4.0 * n)
        # outside a run (a sampler built by hand) there is no study stream: a fixed one
        entropy, key = self.null_seed if self.null_seed is not None else (0, ())
        seed = np.random.SeedSequence(entropy, spawn_key=key)
        null = empirical_tv_null_law(b, self.poisson, n, np.random.default_rng(seed), TV_NULL_DRAWS)
        self._tv = TVEstimate(empirical, math.sqrt(floor**2 + spread), floor, n, null)
        return self._tv

    def estimates(self) -> dict[str, Any]:
        tv = self.tv()
        null = tv.null
        estimate: Any = ScalarEstimate(
            float(tv.empirical), null.sd, tv.n, bias=null.bias, skewness=null.skewness
        )
        if not null.sd > 0:  # K = M on every trial (lam = M): the distance is known exactly
            estimate = scalar_or_exact(tv.empirical, 0.0, tv.n)
        return {"pmf": counts_estimate(self.hist), "tv": estimate}


class FixedUnitsSampler:
    """``size`` trials of ``M`` units each, every unit kept with probability ``q``."""

    def __init__(self, M: int, q: float, kmax: int) -> None:
        self.M, self.q, self.kmax = M, q, kmax
        self.method = choose_method(q)  # a function of q alone: fixed for the point

    def counts(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """The number of kept units of each of ``size`` trials, every unit decided."""
        return count_kept(rng, size, self.M, self.q, method=self.method, chunk_units=CHUNK_UNITS)

    def __call__(self, rng: np.random.Generator, size: int) -> KeptStats:
        kept = self.counts(rng, size)
        return KeptStats(Moments.from_batch(kept.astype(np.float64)), _bincount(kept, self.kmax))


class LimitSampler(FixedUnitsSampler):
    """Trials of ``M`` units kept with probability ``lam/M``; each chunk carries the two laws."""

    def __init__(
        self,
        M: int,
        q: float,
        law: np.ndarray,
        poisson: np.ndarray,
        null_seed: NullSeed | None = None,
    ) -> None:
        super().__init__(M, q, law.size - 1)
        self.law, self.poisson, self.null_seed = law, poisson, null_seed

    def __call__(self, rng: np.random.Generator, size: int) -> LimitStats:
        hist = _bincount(self.counts(rng, size), self.kmax)
        return LimitStats(hist, self.law, self.poisson, self.null_seed)


@dataclass
class ThinningStats:
    """Mergeable statistics of (K, D = M - K) over a chunk of thinning trials."""

    features: CoMoments  # of (K, D, K D): the covariance by the delta method
    moments: Moments  # of K, up to the fourth central moment
    hist: np.ndarray  # counts of K = 0..kmax, then of K > kmax
    joint: np.ndarray  # (K, D) table, each clipped at jmax + 1 (for the figure)
    # of (K, K^2, D, K D): the joint covariance of mean, var and cov_kept_dropped (relations).
    # Kept apart from ``features`` so that the built-in estimates keep their exact numbers.
    relation_features: CoMoments

    def merge(self, other: ThinningStats) -> ThinningStats:
        return ThinningStats(
            self.features.merge(other.features),
            self.moments.merge(other.moments),
            self.hist + other.hist,
            self.joint + other.joint,
            self.relation_features.merge(other.relation_features),
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

    def joint_estimates(self) -> JointEstimate:
        """mean, var and cov_kept_dropped (their values as in :meth:`estimates`) with the
        covariance of their estimates, ``G C G^T`` over the co-moments of ``(K, K^2, D, K D)``."""
        m, f, g = self.moments, self.features, self.relation_features
        n = g.n
        values = np.array([float(m.mean), float(m.var), float(f.mean[2] - f.mean[0] * f.mean[1])])
        mk, _, md, _ = g.mean
        unbiased = n / max(n - 1, 1)  # var is the unbiased s^2 = n/(n-1) (E[K^2] - E[K]^2)
        grads = np.array(
            [
                [1.0, 0.0, 0.0, 0.0],
                [-2.0 * mk * unbiased, unbiased, 0.0, 0.0],
                [-md, 0.0, -mk, 1.0],
            ]
        )
        cov = grads @ g.cov_of_mean() @ grads.T
        return JointEstimate(("mean", "var", "cov_kept_dropped"), values, cov, n)


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
        k = kept.astype(np.float64)  # once, for the moments and the relation features
        relation = np.column_stack([k, k * k, features[:, 1], features[:, 2]])
        return ThinningStats(
            CoMoments.from_batch(features),
            Moments.from_batch(k),
            _bincount(kept, self.kmax),
            joint,
            CoMoments.from_batch(relation),
        )


# --------------------------------------------------------------------------------------------------
# memory: what a point holds (see Experiment.memory_bytes)
# --------------------------------------------------------------------------------------------------
#: Bytes of a point's setup besides its arrays (scipy's frozen law), measured with tracemalloc.
_SETUP_BASE = 50_000
#: Bytes per entry of the grid :func:`support_max` searches: the grid, its tail, the comparison.
_GRID_BYTES = 48
#: Bytes per unit decided by the byte comparison: a random byte and a flag for a fixed M; also a
#: running int64 sum and a tie flag when all trials' units are laid end to end (thinning).
_UNIT_BYTES, _SEGMENT_UNIT_BYTES = 3, 12
#: Bytes per kept (or dropped) unit found by geometric skips: its gap, position and trial label.
_EVENT_BYTES = 32
#: Bytes per trial: the int64 counts, their float64 copy, the moments' temporaries; thinning adds
#: M and M - K, the (K, D, K D) and (K, K^2, D, K D) features, their co-moments and the trials'
#: unit offsets.
_TRIAL_BYTES, _THINNING_TRIAL_BYTES = 32, 180


def _memory(
    mean: float,
    sd: float,
    q: float,
    units: float,
    chunk_size: int,
    *,
    cap: int | None = None,
    thinning: bool = False,
    table: int = 0,
) -> tuple[int, int]:
    """(setup bytes, bytes per chunk in flight) of a count law of this ``mean`` and ``sd``.

    ``units`` per trial are decided (on average), at most :data:`CHUNK_UNITS` at a time; ``table``
    is the bytes of any further table a chunk's statistics hold.
    """
    grid = mean + 40.0 * sd + 61.0  # what support_max searches; kmax is at most this
    kmax = grid if cap is None else min(grid, cap)
    if choose_method(q) == "bytes":
        per_unit = _SEGMENT_UNIT_BYTES if thinning else _UNIT_BYTES
        work = per_unit * min(units * chunk_size, CHUNK_UNITS)
    else:
        work = _EVENT_BYTES * min(min(q, 1.0 - q) * units * chunk_size, CHUNK_UNITS)
    trials = (_THINNING_TRIAL_BYTES if thinning else _TRIAL_BYTES) * chunk_size
    histograms = 4 * 8 * (kmax + 2)  # a chunk's histogram, its merge, the laws it carries
    return int(_SETUP_BASE + _GRID_BYTES * grid), int(trials + work + histograms + table)


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


@dataclass(frozen=True)
class CountSetup:
    """The fixed parts of a point: the keep probability and the largest count binned alone."""

    q: float
    kmax: int


@dataclass(frozen=True)
class LimitSetup(CountSetup):
    """A poisson-limit point: the exact law of K and its Poisson limit on 0..kmax."""

    law: np.ndarray  # Binomial(M, lam/M)
    poisson: np.ndarray  # Poisson(lam)
    #: the study stream of the TV's null law (None when the setup was drawn without a stream)
    null_seed: NullSeed | None = None


@dataclass(frozen=True)
class ThinningSetup(CountSetup):
    """A thinning point: also the largest K and M - K the joint table keeps alone."""

    jmax: int


class _KeptUnits(Experiment):
    """What the three kept-units experiments share: claims in ``k`` and ``q``."""

    claim_names = ("k", "q")
    default_chunk_size = 1 << 16

    def keep_probability(self, params: Mapping[str, Any]) -> float:
        return 1.0 - params["p"]

    def claim_values(self, result: PointResult, quantity: str) -> dict[str, Any]:
        values = super().claim_values(result, quantity)
        values["q"] = self.keep_probability(result.params)
        return values

    def claim_trial_values(self, point: Mapping[str, Any], quantity: str) -> dict[str, Any]:
        values = super().claim_trial_values(point, quantity)
        values["q"] = self.keep_probability(point)
        if "k" in values:  # the support the pmf claims are evaluated on
            values["k"] = np.arange(self.setup(point, None).kmax + 1, dtype=float)
        return values


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
    figures = BINOMIAL_FIGURES
    joint_quantities = ("mean", "var")
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

    def label(self, point: Mapping[str, Any]) -> str:
        return f"binomial M={point['M']} p={point['p']:g}"

    def setup(self, point: Mapping[str, Any], rng: np.random.Generator | None) -> CountSetup:
        M, p = point["M"], point["p"]
        q = 1.0 - p
        return CountSetup(q, support_max(_law("binom", M, q), M * q, math.sqrt(M * q * p), cap=M))

    def sampler(self, point: Mapping[str, Any], setup: CountSetup) -> FixedUnitsSampler:
        return FixedUnitsSampler(point["M"], setup.q, setup.kmax)

    def memory_bytes(self, point: Mapping[str, Any], chunk_size: int) -> tuple[int, int]:
        M, q = point["M"], 1.0 - point["p"]
        return _memory(M * q, math.sqrt(M * q * point["p"]), q, M, chunk_size, cap=M)

    def predict(self, sim: Simulated[CountSetup, KeptStats]) -> Predictions:
        M, p = sim.point["M"], sim.point["p"]
        q = sim.setup.q
        k = np.arange(sim.setup.kmax + 1)
        law = binomial_pmf(k, M, q)
        return {
            "mean": Prediction(M * q, EXACT_IN_EXPECTATION),
            "var": Prediction(M * q * p, EXACT_IN_EXPECTATION),
            "pmf": [
                Prediction(
                    law,
                    "exact law: a sum of M independent Bernoulli(q) units",
                    label="Binomial(M, q)",
                ),
                _negative_control(
                    law,
                    binomial_pmf(k, M, p),
                    sim.n_samples,
                    sim.alpha,
                    label="swapped Binomial(M, p) (negative control)",
                    holds="a wrong law (keeps with the drop probability)",
                ),
            ],
        }

    def figure_data(self, sim: Simulated[CountSetup, KeptStats]) -> BinomialFigureData:
        M, p, q = sim.point["M"], sim.point["p"], sim.setup.q
        k = np.arange(sim.setup.kmax + 1)
        # the negative control's law over its own support (its mass lies beyond the check's
        # support when q is small), computed here: the figures only draw
        k_swapped = np.arange(
            support_max(_law("binom", M, p), M * p, math.sqrt(M * p * q), cap=M) + 1
        )
        return BinomialFigureData(
            q=q, law=binomial_pmf(k, M, q), swapped=binomial_pmf(k_swapped, M, p)
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
    figures = POISSON_LIMIT_FIGURES
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

    def keep_probability(self, params: Mapping[str, Any]) -> float:
        return params["lam"] / params["M"]

    def validate(self, point: dict[str, Any], where: Callable[[str], str]) -> None:
        lam, M = point["lam"], point["M"]
        if lam > M:
            raise SimlabInputError(
                f"{where('M')}: {M} is not allowed with lam = {lam:g}; the keep probability "
                f"q = lam/M = {lam / M:.3g} must be at most 1, so M must be at least lam"
            )

    def label(self, point: Mapping[str, Any]) -> str:
        return f"poisson-limit lam={point['lam']:g} M={point['M']}"

    def setup(self, point: Mapping[str, Any], rng: np.random.Generator | None) -> LimitSetup:
        lam, M = point["lam"], point["M"]
        q = lam / M
        kmax = support_max(_law("binom", M, q), lam, math.sqrt(lam), cap=M)
        k = np.arange(kmax + 1)
        return LimitSetup(q, kmax, binomial_pmf(k, M, q), poisson_pmf(k, lam), _null_seed(rng))

    def sampler(self, point: Mapping[str, Any], setup: LimitSetup) -> LimitSampler:
        return LimitSampler(point["M"], setup.q, setup.law, setup.poisson, setup.null_seed)

    def memory_bytes(self, point: Mapping[str, Any], chunk_size: int) -> tuple[int, int]:
        lam, M = point["lam"], point["M"]
        return _memory(lam, math.sqrt(lam), lam / M, M, chunk_size, cap=M)

    def predict(self, sim: Simulated[LimitSetup, LimitStats]) -> Predictions:
        setup, point, n = sim.setup, sim.point, sim.n_samples
        lam, M = point["lam"], point["M"]
        tv_exact = tv_binomial_poisson(M, lam)
        d = detectability(setup.law, setup.poisson, n, sim.alpha)
        floor = empirical_tv_noise_floor(setup.poisson, n)
        return {
            "pmf": [
                Prediction(
                    setup.law,
                    "exact law: a sum of M independent Bernoulli(lam/M) units",
                    label="Binomial(M, lam/M)",
                ),
                Prediction(
                    setup.poisson,
                    "M -> inf limit",
                    expect=d.expect,
                    label="Poisson(lam) limit",
                    note=_limit_note(d, tv_exact, M, n, floor),
                ),
            ],
            "tv": Prediction(tv_exact, _tv_holds(sim.stats.tv())),
        }

    def figure_data(self, sim: Simulated[LimitSetup, LimitStats]) -> PoissonLimitFigureData:
        setup, n = sim.setup, sim.n_samples
        lam, M = sim.point["lam"], sim.point["M"]
        tv = sim.stats.tv()
        d = detectability(setup.law, setup.poisson, n, sim.alpha)
        return PoissonLimitFigureData(
            q=setup.q,
            law=setup.law,
            poisson=setup.poisson,
            tv_exact=tv_binomial_poisson(M, lam),
            tv_empirical=tv.empirical,
            tv_se=tv.se,
            floor_binomial=tv.floor_binomial,
            floor_poisson=empirical_tv_noise_floor(setup.poisson, n),
            le_cam=le_cam_bound(M, lam),
            barbour_hall=barbour_hall_bounds(M, lam),
            tv_curve=TVCurve.of(lam, M),
            poisson_expect=d.expect,
            poisson_power=d.power,
        )


def _null_seed(rng: np.random.Generator | None) -> NullSeed | None:
    """The study stream of the TV's null law: apart from the chunks, so it never shifts the
    simulated counts. None when ``rng`` is not a point's setup stream (claims' trial setups,
    hand-built setups in tests): the null law then uses a fixed stream."""
    seq = getattr(rng.bit_generator, "seed_seq", None) if rng is not None else None
    if not isinstance(seq, np.random.SeedSequence) or len(seq.spawn_key) != 2:
        return None
    study = study_rng(rng, _TV_NULL_STUDY).bit_generator.seed_seq
    return int(study.entropy), tuple(int(k) for k in study.spawn_key)


def _tv_holds(tv: TVEstimate) -> str:
    """How the empirical TV is tested against the exact distance."""
    null = tv.null
    return (
        f"exact value; the empirical TV of {tv.n:,} trials is tested against its law when the "
        f"counts are Binomial(M, lam/M): mean TV_M + {null.bias:.2g} (the plug-in's bias, up "
        f"to its noise floor), sd {null.sd:.2g} (the SE), skewness {null.skewness:+.2f}, from "
        f"{null.draws} parametric bootstrap histograms"
    )


def _limit_note(d: Detectability, tv_exact: float, M: int, n: int, floor: float) -> str:
    """What the Poisson(lam) check of a poisson-limit point must do, and why."""
    if d.expect == "fail":
        return (
            f"M -> inf limit, not yet reached: TV_M = {tv_exact:.3g} at M = {M}, which "
            f"{n:,} trials resolve (chi-square power {d.power:.2f} against Binomial(M, "
            "lam/M)); the finite-M law is not yet Poisson, so this check must fail"
        )
    if d.expect == "pass":
        return (
            f"M -> inf limit: TV_M = {tv_exact:.2g} at M = {M} is below what {n:,} trials "
            f"resolve (empirical-TV noise floor {floor:.2g}; rejected with "
            f"probability {d.power_lenient:.2g} at level alpha): Poisson cannot be told from "
            "the finite-M law at this sample size"
        )
    return (
        f"M -> inf limit: TV_M = {tv_exact:.2g} at M = {M} is at the edge of what "
        f"{n:,} trials resolve (rejected with probability {d.power_lenient:.2g} at level "
        f"alpha, {d.power:.2g} at alpha/{_FAMILY}): either verdict is expected"
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
    figures = THINNING_FIGURES
    joint_quantities = ("mean", "var", "cov_kept_dropped")
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

    def label(self, point: Mapping[str, Any]) -> str:
        return f"thinning lam={point['lam']:g} p={point['p']:g}"

    def setup(self, point: Mapping[str, Any], rng: np.random.Generator | None) -> ThinningSetup:
        lam, q = point["lam"], 1.0 - point["p"]
        kmax = support_max(_law("poisson", lam * q), lam * q, math.sqrt(lam * q))
        return ThinningSetup(q, kmax, _joint_max(lam))

    def sampler(self, point: Mapping[str, Any], setup: ThinningSetup) -> ThinningSampler:
        return ThinningSampler(point["lam"], setup.q, setup.kmax, setup.jmax)

    def memory_bytes(self, point: Mapping[str, Any], chunk_size: int) -> tuple[int, int]:
        lam, q = point["lam"], 1.0 - point["p"]
        side = _joint_max(lam) + 2
        table = 2 * 8 * side * side  # the joint table, counted then converted
        return _memory(lam * q, math.sqrt(lam * q), q, lam, chunk_size, thinning=True, table=table)

    def predict(self, sim: Simulated[ThinningSetup, ThinningStats]) -> Predictions:
        lam, q = sim.point["lam"], sim.setup.q
        k = np.arange(sim.setup.kmax + 1)
        law = poisson_pmf(k, lam * q)
        return {
            "mean": Prediction(lam * q, EXACT_IN_EXPECTATION),
            "var": Prediction(lam * q, EXACT_IN_EXPECTATION),
            "pmf": [
                Prediction(law, "exact law (Poisson thinning)", label="Poisson(lam q)"),
                _negative_control(
                    law,
                    poisson_pmf(k, lam),
                    sim.n_samples,
                    sim.alpha,
                    label="unthinned Poisson(lam) (negative control)",
                    holds="a wrong law (the law of M, not of K)",
                ),
            ],
            "cov_kept_dropped": Prediction(0.0, EXACT_IN_EXPECTATION),
        }

    def figure_data(self, sim: Simulated[ThinningSetup, ThinningStats]) -> ThinningFigureData:
        lam, q = sim.point["lam"], sim.setup.q
        k = np.arange(sim.setup.kmax + 1)
        j = np.arange(sim.setup.jmax + 1)
        # The product law of (K, M - K) on the joint table's cells, its last row and column "more".
        product = np.outer(
            _with_tail(poisson_pmf(j, lam * q)), _with_tail(poisson_pmf(j, lam * (1.0 - q)))
        )
        joint = sim.stats.joint
        return ThinningFigureData(
            q=q,
            law=poisson_pmf(k, lam * q),
            unthinned=poisson_pmf(k, lam),
            joint=joint,
            product=product,
            joint_gof=chi_square_gof(joint.ravel(), product.ravel()),
        )


def _joint_max(lam: float) -> int:
    """Largest K and M - K the joint table keeps in cells of their own (8 SD past lam)."""
    return int(math.ceil(lam + 8.0 * math.sqrt(lam) + 8.0))


__all__ = [
    "CHUNK_UNITS",
    "FixedUnitsSampler",
    "KeptBinomial",
    "KeptPoissonLimit",
    "KeptThinning",
    "LimitSampler",
    "ThinningSampler",
    "detectability",
]

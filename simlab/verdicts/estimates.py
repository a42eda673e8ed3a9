"""What an experiment hands to the verdict machinery: estimates and predictions.

An estimate says what the simulation measured and how uncertain it is; a prediction says what theory
claims and how far that claim holds. :mod:`simlab.verdicts.checks` turns a pair into a check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IDENTITY = "identity"
EXACT_IN_EXPECTATION = "exact in expectation"


@dataclass(frozen=True)
class ScalarEstimate:
    """A Monte Carlo estimate of one number with its standard error.

    ``n`` is the number of independent samples behind it (per-sample aggregates, so the SE is
    honest when units inside one sample are correlated). ``excess_kurtosis`` of the per-sample
    values flags heavy tails, where a normal approximation to the estimate's law is shaky.
    """

    value: float
    se: float
    n: int
    excess_kurtosis: float | None = None
    #: The law of ``(value - truth) / se`` under the prediction, when a normal law centred at 0 is
    #: not right: its mean is ``bias / se`` (``bias`` in the estimate's units) and its skewness
    #: ``skewness``; the z-test then reads p from the Pearson type III law with those three
    #: moments (see :func:`simlab.verdicts.checks.skewed_z`). Both 0: the plain z-test.
    bias: float = 0.0
    skewness: float = 0.0


@dataclass(frozen=True)
class VectorEstimate:
    """Estimates of one quantity along an index (per layer, say) with their joint covariance.

    ``cov`` is the covariance matrix of the estimate vector (not of one sample), from per-sample
    co-moments, so correlations between the entries (layers of one network) are honest. ``index``
    holds the index values (``l = 1..L``) and ``index_name`` their claim name.
    """

    values: np.ndarray
    cov: np.ndarray
    n: int
    index: np.ndarray
    index_name: str = "l"

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))


@dataclass(frozen=True)
class JointEstimate:
    """Several scalar estimates from the same samples, with the covariance matrix of the estimates.

    What a claim between measured quantities (``second_after=second_before/(1-p)``) is tested
    with: the estimates come from the same samples, so they are correlated, and the standard
    error of ``Q - f(others)`` needs their joint covariance (delta method), never their separate
    standard errors as if they were independent. ``values`` are the quantities' estimates as
    reported elsewhere; ``cov`` is the covariance of the estimate vector (not of one sample).
    """

    names: tuple[str, ...]
    values: np.ndarray
    cov: np.ndarray
    n: int

    def value(self, name: str) -> float:
        return float(self.values[self.names.index(name)])


@dataclass(frozen=True)
class CountsEstimate:
    """Observed counts of an integer outcome over ``support`` (beyond it: ``overflow``)."""

    support: np.ndarray
    counts: np.ndarray
    overflow: int = 0

    @property
    def n(self) -> int:
        return int(self.counts.sum()) + self.overflow


@dataclass(frozen=True)
class ExactEstimate:
    """A deterministic reference (an identity's other side, a finite difference) to compare with.

    ``reference`` is the array the prediction must reproduce to within ``tolerance`` (relative, with
    ``floor`` as the absolute scale below which errors are compared absolutely). ``names`` are the
    arrays a user's claim may be written in (for batch-norm gradients: D, G, Y, xhat, ...).
    """

    reference: np.ndarray
    tolerance: float
    floor: float = 1e-12
    names: dict[str, object] = field(default_factory=dict)
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class Prediction:
    """What theory predicts and how far the prediction holds.

    ``holds`` is one of :data:`IDENTITY`, :data:`EXACT_IN_EXPECTATION` or a sentence naming the
    limit and its error order. A limit carries ``tolerance``: the absolute deviation it allows at
    this size, so it is never z-tested as if it were exact.
    """

    value: float | np.ndarray
    holds: str = EXACT_IN_EXPECTATION
    tolerance: float | np.ndarray = 0.0
    #: what the verdict should be: "pass" for a true claim, "fail" for a known-false one kept as a
    #: negative control (Poisson at small M, say), "either" where the run cannot tell
    expect: str = "pass"
    #: names this prediction when a quantity has several built-in ones (shown as the expression)
    label: str = ""
    #: a sentence for the reader (why a negative control must fail, say); shown with the check
    note: str = ""
    #: False when the check's p-value is deliberately conservative (not uniform under the claim),
    #: so calibration leaves it out of its uniformity test (a tolerance implies it, unless it is
    #: negligible against the standard error: :func:`simlab.verdicts.checks.tolerance_negligible`)
    calibrated: bool = True

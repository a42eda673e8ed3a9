"""The check record and the tests that fill it: z-tests, goodness of fit, exact comparisons.

One machinery for every experiment. A check is built without a verdict (``verdict=None``) from an
estimate and a prediction; :func:`decide` then applies Holm-Bonferroni over the whole run's
statistical and distribution checks and fills thresholds, resolutions and verdicts.

Verdicts (see :func:`decide`):

- ``fail``: the test rejected the prediction (Holm at the run's alpha), or an exact comparison is
  beyond its tolerance. A rejection needs no power to be believed, so it is never hidden.
- ``pass``: not rejected, *and* the check could have seen an error that matters: its resolution
  (the smallest relative deviation it detects with 90% power) is at or below the run's target
  (``--resolution``, default :data:`DEFAULT_RESOLUTION`).
- ``undecided``: not rejected, but the resolution is coarser than the target: the sample could not
  tell. The record says how many samples would decide it (``samples_needed``; resolution scales
  like 1/sqrt(n)). A negative control the sample cannot resolve is undecided, not pass.
- ``undefined``: no verdict at all: the check could not be evaluated (a NaN estimate or
  prediction, a shape mismatch, a zero standard error). Kept apart from ``undecided`` because it
  usually means something is wrong with the claim or the run, not that more samples would help;
  it counts as not as expected unless the check was built to accept either outcome.

The target applies to relative resolutions and to the effect size w of goodness-of-fit checks (w
is the root-mean-square relative deviation of the pmf). It does not apply to exact checks (their
resolution is their tolerance, not a property of the sample) nor to checks whose prediction is 0
(their resolution is absolute, in the quantity's units, with no scale to compare a relative
target with).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from simlab.verdicts.estimates import (
    CountsEstimate,
    ExactEstimate,
    Prediction,
    ScalarEstimate,
    VectorEstimate,
)
from simlab.verdicts.gof import chi_square_effect_resolution

POWER = 0.9  # resolutions are the deviations detected with this probability
#: the default target resolution: a check passes only when it could have seen a relative
#: deviation this large. Every built-in check expected to pass meets it at the quick budget (the
#: coarsest, the finite-width second moment at width 10, resolves 22%), except the noise-floor
#: TV checks of the Poisson limit, which are undecided by nature at large M.
DEFAULT_RESOLUTION = 0.25
#: the verdicts a decided check can have
VERDICTS = ("pass", "fail", "undecided", "undefined")
HEAVY_TAIL_KURTOSIS = 20.0  # excess kurtosis of per-sample values above which we warn
_SKEWED_Z_CAP = 38.0  # |z| where a two-sided normal p-value underflows to 0
#: A tolerance at most this many standard errors (on every entry) leaves the p-value uniform to
#: within what any calibration sees: it moves z by at most that much, so the law of the p-value
#: by at most ~2 phi(0) x 0.02 = 0.016 (KS over 400 p-values notices ~0.08). Such a check is
#: still calibrated (an eps effect of 1e-5 beside a sampling SE of 1e-2, say).
NEGLIGIBLE_TOLERANCE = 0.02


@dataclass(frozen=True)
class Check:
    """One quantity at one parameter point against one prediction (fields as in results.json)."""

    id: str
    experiment: str
    quantity: str
    params: dict[str, Any]
    kind: str  # statistical | distribution | exact
    source: str  # builtin | user
    expression: str
    holds: str
    estimate: float | None
    se: float | None
    predicted: float | None
    z: float | None
    p_value: float | None
    statistic: float | None
    dof: float | None
    tolerance: float | None
    threshold: float | None = None
    resolution: float | None = None
    resolution_kind: str = "relative"
    verdict: str | None = None  # pass | fail | undecided | undefined (see the module's doc)
    note: str = ""
    n: int | None = None
    expected: str = "pass"  # pass | fail | either (see Prediction.expect)
    calibrated: bool = True  # see Prediction.calibrated
    #: the target resolution the verdict was decided against (None: the target does not apply)
    target: float | None = None
    #: for an undecided check: the sample count (in the units of ``n``) that would resolve the
    #: target; None when no sample count can (a tolerance alone coarser than the target)
    samples_needed: float | None = None
    #: profile checks: the index (``l``) of the entry shown (the largest |z|), and its name
    index_name: str | None = None
    index: float | None = None
    #: statistical checks with a tolerance: the largest |deviation| as a fraction of it
    tolerance_used: float | None = None

    @property
    def as_expected(self) -> bool:
        """Whether the verdict agrees with what the check was built to give.

        An undecided check contradicts no expectation (the sample could not tell), so it counts
        as expected here; ``--strict`` is what turns it into a non-zero exit status.
        """
        from simlab.verdicts.format import as_expected

        return as_expected(self)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def make_check(
    *,
    experiment: str,
    quantity: str,
    params: dict[str, Any],
    estimate: ScalarEstimate | CountsEstimate | ExactEstimate,
    prediction: Prediction,
    source: str,
    expression: str,
    id_suffix: str = "",
) -> Check:
    """Compare ``estimate`` with ``prediction``; the verdict waits for :func:`decide`."""
    setting = ",".join(f"{k}={_fmt(v)}" for k, v in params.items())
    check_id = f"{experiment}/{quantity}[{setting}]{id_suffix}/{source}"
    common = dict(
        id=check_id,
        experiment=experiment,
        quantity=quantity,
        params=dict(params),
        source=source,
        expression=expression,
        holds=prediction.holds,
        expected=prediction.expect,
        # a limit's tolerance forgives deviations up to it, so p = 1 inside it: conservative,
        # unless it is negligible against the standard error
        calibrated=prediction.calibrated
        and tolerance_negligible(prediction.tolerance, getattr(estimate, "se", None)),
    )
    if isinstance(estimate, ScalarEstimate):
        check = _z_check(common, estimate, prediction)
    elif isinstance(estimate, VectorEstimate):
        check = _vector_check(common, estimate, prediction)
    elif isinstance(estimate, CountsEstimate):
        check = _gof_check(common, estimate, prediction)
    elif isinstance(estimate, ExactEstimate):
        check = _exact_check(common, estimate, prediction)
    else:
        raise TypeError(f"no check for estimates of type {type(estimate).__name__}")
    if prediction.note:
        check = replace(check, note=_join(prediction.note, check.note))
    return check


def tolerance_negligible(tolerance: float | np.ndarray, se: float | np.ndarray | None) -> bool:
    """Whether a prediction's tolerance leaves its check's p-value uniform under the claim.

    True without a tolerance, and when every entry's tolerance is at most
    :data:`NEGLIGIBLE_TOLERANCE` of its standard error; False when there is no standard error to
    compare with (a tolerance then decides alone).
    """
    tol = np.asarray(tolerance, dtype=float)
    if not np.any(tol > 0):
        return True
    if se is None:
        return False
    try:
        tol, se = np.broadcast_arrays(tol, np.asarray(se, dtype=float))
    except ValueError:
        return False
    with np.errstate(invalid="ignore"):
        return bool(np.all((tol <= 0) | (tol <= NEGLIGIBLE_TOLERANCE * se)))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _z_check(common: dict, est: ScalarEstimate, pred: Prediction) -> Check:
    from scipy import stats

    predicted = float(np.asarray(pred.value, dtype=float))
    tol = float(pred.tolerance)
    deviation = est.value - predicted
    note = ""
    if not (math.isfinite(est.value) and math.isfinite(predicted)) or not est.se > 0:
        z = p = None
        if not math.isfinite(predicted):
            note = "the prediction is not a finite number"
        elif not math.isfinite(est.value):
            note = "the estimate is not a finite number"
        else:
            note = "the standard error is zero: nothing to test against"
    else:
        # A limit prediction allows |deviation| up to its tolerance; only the excess is tested.
        excess = max(abs(deviation) - tol, 0.0)
        z = math.copysign(excess / est.se, deviation)
        if est.bias or est.skewness:
            z = skewed_z(z - est.bias / est.se, est.skewness)
        p = float(2.0 * stats.norm.sf(abs(z)))
    if est.excess_kurtosis is not None and est.excess_kurtosis > HEAVY_TAIL_KURTOSIS:
        note = _join(
            note,
            f"heavy tails: per-sample excess kurtosis {est.excess_kurtosis:.3g}; the normal "
            "approximation behind z may be optimistic",
        )
    used = None
    if tol > 0 and math.isfinite(deviation):
        used = abs(deviation) / tol
    return Check(
        kind="statistical",
        estimate=_finite(est.value),
        se=_finite(est.se),
        predicted=_finite(predicted),
        z=z,
        p_value=p,
        statistic=z,
        dof=None,
        tolerance=tol,
        note=note,
        n=est.n,
        tolerance_used=used,
        **common,
    )


def skewed_z(u: float, skewness: float) -> float:
    """The normal score of ``u``, a draw of a law with mean 0, sd 1 and this skewness.

    The law is Pearson's type III (a shifted, scaled gamma; normal at skewness 0), matched to the
    three moments; each tail is read on its own side (``cdf`` below the median, ``sf`` above) so
    that far tails keep their precision. Used where a statistic's skewness is known to the order
    that matters: the studentized mean of heavy-tailed values (Hall 1992: its mean is
    ``-gamma/(2 sqrt n)`` and its skewness ``-2 gamma/sqrt n``, ``gamma`` the skewness of one
    value), or a statistic whose null law was computed from the exact law.
    """
    from scipy import stats

    if abs(skewness) < 1e-6:  # the gamma's shape 4/skewness^2 overflows: it is the normal
        return float(u)
    lower = float(stats.pearson3.cdf(u, skewness))
    z = (
        float(stats.norm.ppf(lower))
        if lower < 0.5
        else float(stats.norm.isf(stats.pearson3.sf(u, skewness)))
    )
    # beyond the gamma's finite end (or a tail below double precision) the value is impossible
    # under the law: the largest score a double-precision p-value can carry
    return z if math.isfinite(z) else math.copysign(_SKEWED_Z_CAP, u)


def _vector_check(common: dict, est: VectorEstimate, pred: Prediction) -> Check:
    """All entries at once: Hotelling's T^2 with the estimated joint covariance.

    ``T^2 = e^T C^-1 e`` (``e`` the deviations beyond each entry's tolerance, ``C`` the covariance
    of the estimate vector); with ``k`` entries and ``n`` samples, ``T^2 (n-k) / (k (n-1))`` follows
    F(k, n-k) under the prediction. When the covariance cannot be inverted (``n <= k`` or a
    degenerate entry) the test falls back to the largest |z| with a Bonferroni correction.
    The record shows the entry with the largest |z|.
    """
    from scipy import stats

    values = np.asarray(est.values, float)
    predicted = np.broadcast_to(np.asarray(pred.value, float), values.shape)
    tol = np.broadcast_to(np.asarray(pred.tolerance, float), values.shape)
    se = est.se
    dev = values - predicted
    excess = np.sign(dev) * np.maximum(np.abs(dev) - tol, 0.0)
    k = values.size
    note = ""
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(predicted))) or np.any(se <= 0):
        bad = "the prediction" if not np.all(np.isfinite(predicted)) else "the estimate"
        if np.all(np.isfinite(values)) and np.all(np.isfinite(predicted)):
            bad = "a standard error"
            note = f"{bad} is zero: nothing to test against"
        else:
            note = f"{bad} has entries that are not finite numbers"
        return _unevaluated(
            common,
            "statistical",
            dof=float(k),
            tolerance=float(tol.max()),
            note=note,
            n=est.n,
        )
    z = excess / se
    worst = int(np.argmax(np.abs(z)))
    statistic = None
    p_value = None
    if est.n > k + 1:
        try:
            t2 = float(excess @ np.linalg.solve(est.cov, excess))
            if np.isfinite(t2) and t2 >= 0:
                statistic = t2
                f = t2 * (est.n - k) / (k * (est.n - 1))
                p_value = float(stats.f.sf(f, k, est.n - k))
        except np.linalg.LinAlgError:
            pass
    if p_value is None:
        p_value = float(min(1.0, k * 2.0 * stats.norm.sf(abs(z[worst]))))
        note = "covariance not invertible: largest |z| with Bonferroni over entries"
    note = _join(note, f"largest deviation at {est.index_name} = {est.index[worst]:g} of {k}")
    used = None
    if np.any(tol > 0):
        with_tol = tol > 0
        used = float(np.max(np.abs(dev[with_tol]) / tol[with_tol]))
    return Check(
        kind="statistical",
        estimate=_finite(values[worst]),
        se=_finite(se[worst]),
        predicted=_finite(predicted[worst]),
        z=_finite(z[worst]),
        p_value=p_value,
        statistic=statistic,
        dof=float(k),
        tolerance=float(tol[worst]),
        note=note,
        n=est.n,
        index_name=est.index_name,
        index=float(est.index[worst]),
        tolerance_used=used,
        **common,
    )


def _gof_check(common: dict, est: CountsEstimate, pred: Prediction) -> Check:
    from simlab.verdicts.gof import chi_square_gof

    probs = np.asarray(pred.value, dtype=float)
    observed = np.append(est.counts, est.overflow).astype(float)
    expected = np.append(probs, max(0.0, 1.0 - probs.sum()))
    note = ""
    if not np.all(np.isfinite(expected)) or np.any(expected < -1e-12):
        return _unevaluated(
            common,
            "distribution",
            dof=None,
            tolerance=0.0,
            n=est.n,
            note="the predicted pmf is not a set of finite non-negative probabilities",
        )
    if abs(expected.sum() - 1.0) > 1e-6:
        note = f"the predicted pmf sums to {probs.sum():.6g}, not 1"
    result = chi_square_gof(observed, np.clip(expected, 0.0, None))
    return Check(
        kind="distribution",
        estimate=_finite(result.tv),
        se=None,
        predicted=0.0,
        z=None,
        p_value=_finite(result.p_value),
        statistic=_finite(result.statistic),
        dof=float(result.dof),
        tolerance=0.0,
        resolution_kind="effect size w",
        note=note,
        n=est.n,
        **common,
    )


def _exact_check(common: dict, est: ExactEstimate, pred: Prediction) -> Check:
    ref = np.asarray(est.reference, dtype=float)
    try:
        value = np.broadcast_to(np.asarray(pred.value, dtype=float), ref.shape)
    except ValueError:
        shape = np.shape(pred.value)
        return _unevaluated(
            common,
            "exact",
            dof=None,
            tolerance=est.tolerance,
            n=int(ref.size),
            note=f"the prediction has shape {shape}, which does not match the "
            f"quantity's shape {ref.shape}",
        )
    if est.mask is not None:
        ref, value = ref[est.mask], value[est.mask]
    with np.errstate(invalid="ignore", divide="ignore"):
        abs_err = np.abs(value - ref)
        scale = np.maximum(np.maximum(np.abs(value), np.abs(ref)), est.floor)
        rel_err = abs_err / scale
    note = ""
    if ref.size == 0:
        worst = float("nan")
        note = "no entries to compare"
    elif np.any(~np.isfinite(rel_err)):
        worst = float("nan")
        note = f"{int(np.count_nonzero(~np.isfinite(rel_err)))} entries are NaN or infinite"
    else:
        worst = float(rel_err.max())
    return Check(
        kind="exact",
        estimate=_finite(worst),
        se=None,
        predicted=0.0,
        z=None,
        p_value=None,
        statistic=_finite(float(abs_err.max())) if abs_err.size else None,
        dof=None,
        tolerance=est.tolerance,
        resolution=est.tolerance,
        resolution_kind="max relative error",
        note=note,
        n=int(ref.size),
        **common,
    )


def _unevaluated(common: dict, kind: str, **fields: object) -> Check:
    """A check that cannot be decided (a NaN, a shape mismatch): no estimate, no p-value."""
    empty = dict(estimate=None, se=None, predicted=None, z=None, p_value=None, statistic=None)
    return Check(kind=kind, **{**empty, **fields}, **common)


def _join(a: str, b: str) -> str:
    return "; ".join(part for part in (a, b) if part)


def holm_thresholds(p_values: list[float], alpha: float) -> tuple[list[float], list[bool]]:
    """Holm-Bonferroni step-down: each p-value's threshold and whether it is rejected.

    The i-th smallest p-value is compared with ``alpha / (m - i)``; rejection stops at the first
    p-value above its threshold. Controls the family-wise error rate at ``alpha``.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    thresholds = [0.0] * m
    rejected = [False] * m
    still_rejecting = True
    for rank, i in enumerate(order):
        thresholds[i] = alpha / (m - rank)
        if still_rejecting and p_values[i] <= thresholds[i]:
            rejected[i] = True
        else:
            still_rejecting = False
    return thresholds, rejected


def decide(
    checks: list[Check],
    alpha: float,
    target: float | Sequence[float] = DEFAULT_RESOLUTION,
) -> list[Check]:
    """Verdicts for a whole run: Holm over statistical and distribution checks, tolerances else.

    Each tested check also gets its resolution: the smallest deviation it detects with 90% power at
    the Bonferroni level ``alpha / m`` (Holm's most stringent threshold, so the statement is safe).
    A check that is not rejected passes only when that resolution is at or below ``target`` (one
    value, or one per check); otherwise it is undecided, with the samples that would decide it.
    """
    from scipy import stats

    targets = (
        [float(target)] * len(checks)
        if isinstance(target, int | float)
        else [float(t) for t in target]
    )
    if len(targets) != len(checks):
        raise ValueError(f"{len(targets)} targets for {len(checks)} checks")
    tested = [i for i, c in enumerate(checks) if c.kind != "exact" and c.p_value is not None]
    m = max(len(tested), 1)
    thresholds, rejected = holm_thresholds([checks[i].p_value for i in tested], alpha)
    z_needed = stats.norm.isf(alpha / m / 2.0) + stats.norm.isf(1.0 - POWER)
    out = list(checks)
    for j, i in enumerate(tested):
        c = checks[i]
        resolution = _resolution(c, alpha / m, z_needed)
        kind = (
            c.resolution_kind
            if c.kind == "distribution"
            else ("relative" if c.predicted else "absolute")
        )
        applies = resolution is not None and kind != "absolute"
        verdict, needed, note = "pass", None, ""
        if rejected[j]:
            verdict = "fail"  # a rejection needs no power to be believed
        elif applies and resolution > targets[i]:
            verdict = "undecided"
            needed = _samples_needed(c, kind, resolution, targets[i], z_needed)
            note = _undecided_note(c, kind, resolution, targets[i], needed)
        out[i] = replace(
            c,
            threshold=thresholds[j],
            verdict=verdict,
            resolution=resolution,
            resolution_kind=kind,
            target=targets[i] if applies else None,
            samples_needed=needed,
            note=_join(c.note, note) if note else c.note,
        )
    for i, c in enumerate(checks):
        if c.kind == "exact":
            if c.estimate is None:
                verdict = "undefined"
            else:
                verdict = "pass" if c.estimate <= c.tolerance else "fail"
            out[i] = replace(c, verdict=verdict)
        elif c.p_value is None:
            out[i] = replace(c, verdict="undefined")
    return out


def _resolution(c: Check, level: float, z_needed: float) -> float | None:
    if c.kind == "distribution":
        if not c.dof or not c.n:
            return None
        return chi_square_effect_resolution(int(c.dof), c.n, level, POWER)
    if c.se is None:
        return None
    absolute = z_needed * c.se + (c.tolerance or 0.0)
    if c.predicted:
        return absolute / abs(c.predicted)
    return absolute


def _samples_needed(
    c: Check, kind: str, resolution: float, target: float, z_needed: float
) -> float | None:
    """Samples (in the units of ``c.n``) at which the resolution would reach ``target``.

    The noise part of a resolution scales like 1/sqrt(n) (for w exactly: the noncentrality
    n w^2 needed is fixed by the level, the power and the dof); a tolerance does not shrink, so
    when the tolerance alone is coarser than the target no sample count decides the check.
    """
    if not c.n:
        return None
    if kind == "effect size w" or c.kind == "distribution":
        return float(c.n * (resolution / target) ** 2)
    if c.se is None or not c.predicted:
        return None
    room = target * abs(c.predicted) - (c.tolerance or 0.0)
    if room <= 0:
        return None
    return float(c.n * (z_needed * c.se / room) ** 2)


def _undecided_note(
    c: Check, kind: str, resolution: float, target: float, needed: float | None
) -> str:
    shown = f"w = {resolution:.2g}" if c.kind == "distribution" else f"{resolution:.0%}"
    wanted = f"w = {target:.2g}" if c.kind == "distribution" else f"{target:.0%}"
    text = f"undecided: resolution {shown}, coarser than the target {wanted}"
    if needed is None:
        return text + "; no sample count decides it (its tolerance alone is coarser)"
    return text + f"; about {needed:.2g} samples (n now {c.n:,}) would decide it"

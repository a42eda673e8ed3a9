"""Are the verdicts calibrated? Rerun the course over many seeds and measure.

Verdicts are pass, fail and undecided (a check whose resolution is coarser than the target):
false alarms and power count failures only, as before; the undecided rates are reported beside
them (on correct claims: the fraction of checks undecided; on wrong ones: the seeds on which the
formula escaped rejection because the sample could not resolve it).

(a) False alarms: over independent seeds, how often does a run reject some correct built-in
claim? With Holm-Bonferroni at family-wise ``alpha`` this must be at most about ``alpha``. At the
default ``alpha = 0.001`` a handful of seeds cannot see such a rate, so the same runs are also
decided at a larger ``alpha_wide`` (0.05) where the rate is measurable, and the p-values of the
correct checks are tested for uniformity (they should be uniform when the claims are true).

Per-quantity uniformity: the p-values of each quantity's correct built-in checks, pooled over its
sweep points, must look U(0, 1) (KS, Holm over the quantities at family-wise
:data:`UNIFORMITY_KS_P`, from :data:`UNIFORMITY_MIN_SEEDS` seeds on); a miss exits 1. Heavy-tailed
and biased statistics meet it with a right interval, not a wide one (the norm-ratio moments:
Hall's skewness correction; the Poisson limit's ``tv``: its null law by parametric bootstrap).
Left out, by design, are checks whose p-value cannot be uniform under the claim, each quantity
with its reason and sweep points in ``excluded_from_uniformity_why``:

- a prediction with a tolerance that is not negligible against the SE (more than
  :data:`simlab.verdicts.checks.NEGLIGIBLE_TOLERANCE` SE): p = 1 while the deviation is within it,
  so its p-values pile towards 1. ``propagation signal/r`` with zero bias at narrow widths is one:
  a dead network (some hidden layer all off, probability ``1 - prod(1 - 2^-n_k)``) zeroes every
  r_l below the top, so E[r_{L-1}] is low by exactly that probability but the lower layers only
  by less (measured, no formula): its Hotelling T^2 is on the excess beyond the tolerance
  ``r_l P(dead)``, with no exact null law to be uniform under. Where P(dead) is negligible
  (width 24 at the quick budget: 1e-7 beside an SE of 3e-3; every standard-budget point) the
  check is calibrated and in the target. ``propagation correlation/rho`` (the infinite-width
  arc-cosine map, O(1/width) off at finite width) is another.
- a prediction that marks its SE as a deliberately cautious bound (``calibrated=False``: the
  norm-ratio moments with too few networks for the skewness correction).

(b) Power: every experiment's library of known-wrong formulas (``Experiment.known_wrong``), run as
user claims at the budget (the formulas of one experiment that share their parameters share one
run, as a user checking several claims would); the fraction of seeds on which each is rejected,
and its weakest rejection over the seeds. A handful of seeds cannot show a power of 0.99 by
counting alone (20/20 rejections only bound it below by 0.83), so the weakest rejection is also
stated as a margin: how many standard errors the least significant seed still lay beyond its Holm
critical value (a margin m means a power of about Phi(m) or more under the normal approximation:
m >= 2.33 is 0.99), and for exact checks how many tolerances the error still was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from simlab.course import budget_raw, budget_specs
from simlab.engine.progress import NullProgress
from simlab.experiments import REGISTRY
from simlab.experiments.base import Experiment, WrongClaim
from simlab.runspec import build_spec
from simlab.simulate import decide_runs, simulate
from simlab.verdicts.checks import Check, holm_thresholds

#: the family-wise rates at which the same runs are re-decided for the false-alarm curve
CURVE_ALPHAS = np.geomspace(1e-4, 0.3, 22)

#: |z| above which a two-sided normal p-value underflows to 0 in double precision.
_Z_CAP = 38.0

#: Per-quantity uniformity target: the p-values of each calibrated quantity's correct checks,
#: pooled over its sweep points, must not be rejected as U(0, 1) by KS at this family-wise rate
#: (Holm over the ~40 quantities: at 0.01 each, one of 40 uniform quantities would miss by
#: chance in a third of calibrations) ...
UNIFORMITY_KS_P = 0.01
#: ... judged only from this many seeds on (fewer cannot see a conservative SE reliably)
UNIFORMITY_MIN_SEEDS = 100


def z_margin(p_value: float, threshold: float) -> float:
    """Standard errors by which a rejection cleared its threshold: z(p) - z(threshold).

    Both are two-sided normal quantiles, so for a z-test this is |z| minus the critical |z|; a
    p-value that underflowed to 0 counts as |z| = 38.
    """
    z = _Z_CAP if p_value <= 0 else float(stats.norm.isf(p_value / 2))
    return min(z, _Z_CAP) - float(stats.norm.isf(threshold / 2))


@dataclass
class WrongResult:
    """How one known-wrong formula fared over the seeds."""

    experiment: str
    claim: str
    why: str
    rejected: int = 0
    runs: int = 0
    #: seeds on which the claim was not rejected and some point of it was undecided (the sample
    #: could not resolve it there): not counted as power, reported beside it
    undecided: int = 0
    min_abs_z: float | None = None  # over seeds, of the seed's largest |z| (statistical checks)
    min_margin: float | None = None  # over seeds, of the seed's best z_margin (tested checks)
    min_error_ratio: float | None = None  # over seeds, of the seed's largest error/tolerance

    @property
    def power(self) -> float:
        return self.rejected / self.runs if self.runs else float("nan")

    def record(self, checks: list[Check]) -> None:
        """Add one seed's user checks of this claim (one per sweep point)."""
        self.runs += 1
        rejected = any(c.verdict == "fail" for c in checks)
        self.rejected += rejected
        self.undecided += not rejected and any(c.verdict == "undecided" for c in checks)
        # A claim is rejected when any point rejects it; its evidence on a seed is therefore its
        # strongest point, and the weakest seed is what the power statement rests on.
        zs = [abs(c.z) for c in checks if c.z is not None]
        margins = [
            z_margin(c.p_value, c.threshold)
            for c in checks
            if c.p_value is not None and c.threshold
        ]
        ratios = [
            c.estimate / c.tolerance
            for c in checks
            if c.kind == "exact" and c.estimate is not None and c.tolerance
        ]
        self.min_abs_z = _min_of_max(self.min_abs_z, zs)
        self.min_margin = _min_of_max(self.min_margin, margins)
        self.min_error_ratio = _min_of_max(self.min_error_ratio, ratios)


def _min_of_max(so_far: float | None, values: list[float]) -> float | None:
    if not values:
        return so_far
    best = max(values)
    return best if so_far is None else min(so_far, best)


@dataclass
class Calibration:
    budget: str
    seeds: list[int]
    alpha: float
    alpha_wide: float
    false_alarms: int = 0
    false_alarms_wide: int = 0
    correct_checks_per_run: int = 0
    #: correct checks that came out undecided, over every seed (a pass needs the resolution)
    undecided_correct: int = 0
    p_values: list[float] = field(default_factory=list)
    p_values_by_check: dict[str, list[float]] = field(default_factory=dict)
    #: quantities whose correct checks are conservative by design (``calibrated=False``: an SE
    #: bound, or a limit's tolerance), left out of the uniformity tests: for each, the sweep
    #: points left out and why (see the module notes)
    excluded: dict[str, dict[str, str]] = field(default_factory=dict)
    #: per seed: the Holm family's p-values, which of them test correct claims, and whether a
    #: correct exact check failed (that false alarm does not depend on alpha)
    families: list[tuple[np.ndarray, np.ndarray, bool]] = field(default_factory=list)
    wrong: list[WrongResult] = field(default_factory=list)
    parts: tuple[str, ...] = ("correct", "wrong")
    #: False when Ctrl-C or SIGTERM stopped it: ``seeds`` are then the seeds finished
    complete: bool = True
    seeds_requested: list[int] = field(default_factory=list)

    def false_alarm_curve(self, alphas: np.ndarray) -> np.ndarray:
        """Fraction of seeds with a false alarm when the same runs are decided at each alpha."""
        counts = [sum(_false_alarm(f, float(a)) for f in self.families) for a in alphas]
        return np.asarray(counts) / max(len(self.families), 1)

    @property
    def uniformity_judged(self) -> bool:
        """Whether enough seeds ran for the per-quantity uniformity target to be held."""
        return len(self.seeds) >= UNIFORMITY_MIN_SEEDS

    def ks_by_check(self) -> list[dict[str, Any]]:
        """KS uniformity per quantity (experiment/quantity, pooled over its sweep points), least
        uniform first, with whether it meets the target (None: too few seeds to judge).

        A conservative standard error passes every false-alarm count yet piles its p-values
        towards 1; this is where it shows, quantity by quantity.
        """
        rows: list[dict[str, Any]] = []
        for key, values in self.p_values_by_check.items():
            if len(values) >= 5:
                res = stats.kstest(values, "uniform")
                rows.append(
                    {
                        "check": key,
                        "n": len(values),
                        "ks_statistic": float(res.statistic),
                        "ks_p": float(res.pvalue),
                        "fraction_below_0.05": float(np.mean(np.asarray(values) < 0.05)),
                        "histogram_10": np.histogram(values, bins=10, range=(0, 1))[0].tolist(),
                    }
                )
        thresholds, rejected = holm_thresholds([r["ks_p"] for r in rows], UNIFORMITY_KS_P)
        for row, threshold, missed in zip(rows, thresholds, rejected, strict=True):
            row["ks_p_threshold"] = threshold  # Holm's, at family-wise UNIFORMITY_KS_P
            row["meets_target"] = (not missed) if self.uniformity_judged else None
        return sorted(rows, key=lambda r: r["ks_p"])

    def quantities_missing_uniformity(self) -> list[str]:
        """The calibrated quantities whose p-values miss the uniformity target."""
        return [r["check"] for r in self.ks_by_check() if r["meets_target"] is False]

    def ks_uniform(self) -> tuple[float, float]:
        """Kolmogorov-Smirnov test of the correct checks' p-values against U(0, 1)."""
        if not self.p_values:
            return float("nan"), float("nan")
        result = stats.kstest(self.p_values, "uniform")
        return float(result.statistic), float(result.pvalue)

    def as_dict(self) -> dict[str, Any]:
        n = len(self.seeds)
        ks, ks_p = self.ks_uniform()
        return {
            "status": "complete" if self.complete else "partial",
            "budget": self.budget,
            "parts": list(self.parts),
            "seeds": self.seeds,
            "seeds_requested": self.seeds_requested or self.seeds,
            "alpha": self.alpha,
            "false_alarm_runs": self.false_alarms,
            "false_alarm_rate": self.false_alarms / n if n else None,
            "false_alarm_rate_ci95": clopper_pearson(self.false_alarms, n),
            "alpha_wide": self.alpha_wide,
            "false_alarm_runs_wide": self.false_alarms_wide,
            "false_alarm_rate_wide": self.false_alarms_wide / n if n else None,
            "false_alarm_rate_wide_ci95": clopper_pearson(self.false_alarms_wide, n),
            "correct_checks_per_run": self.correct_checks_per_run,
            # a correct check is a false alarm only when it fails; undecided is neither
            "undecided_checks": self.undecided_correct,
            "undecided_rate": (
                self.undecided_correct / (n * self.correct_checks_per_run)
                if n and self.correct_checks_per_run
                else None
            ),
            "p_values_tested": len(self.p_values),
            "p_value_ks_statistic": ks,
            "p_value_ks_p": ks_p,
            "p_value_ks_by_check": self.ks_by_check(),
            "uniformity_target": {
                "ks_p_above": UNIFORMITY_KS_P,
                "min_seeds": UNIFORMITY_MIN_SEEDS,
                "judged": self.uniformity_judged,
            },
            "quantities_missing_uniformity": self.quantities_missing_uniformity(),
            "excluded_from_uniformity": sorted(self.excluded),
            "excluded_from_uniformity_why": {
                name: _exclusion_reason(self.excluded[name]) for name in sorted(self.excluded)
            },
            # the raw p-values, so a suspicious check can be looked at without rerunning
            "p_values_by_check": self.p_values_by_check,
            "false_alarm_curve": [
                {"alpha": float(a), "rate": float(r)}
                for a, r in zip(CURVE_ALPHAS, self.false_alarm_curve(CURVE_ALPHAS), strict=True)
            ]
            if self.families
            else [],
            "wrong_formulas": [
                {
                    "experiment": w.experiment,
                    "claim": w.claim,
                    "why": w.why,
                    "rejected": w.rejected,
                    "runs": w.runs,
                    "power": w.power,
                    "power_ci95": clopper_pearson(w.rejected, w.runs),
                    "undecided_runs": w.undecided,
                    "undecided_rate": w.undecided / w.runs if w.runs else None,
                    "min_abs_z": w.min_abs_z,
                    "min_margin_se": w.min_margin,
                    "min_error_over_tolerance": w.min_error_ratio,
                }
                for w in self.wrong
            ],
        }


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval for a rate k/n."""
    if n == 0:
        return (float("nan"), float("nan"))
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return (lo, hi)


PARTS = ("correct", "wrong")


def _wrong_groups() -> list[
    tuple[Experiment, dict[str, Any], list[tuple[WrongClaim, WrongResult]]]
]:
    """The wrong-formula library grouped into runs: one per experiment and parameter override."""
    groups: dict[tuple[str, str], tuple[Experiment, dict[str, Any], list]] = {}
    for exp in REGISTRY.values():
        for w in exp.known_wrong:
            key = (exp.name, repr(sorted(w.params.items())))
            groups.setdefault(key, (exp, dict(w.params), []))[2].append(
                (w, WrongResult(exp.name, w.claim, w.why))
            )
    return list(groups.values())


def calibrate(
    budget: str,
    seeds: list[int],
    alpha: float = 0.001,
    alpha_wide: float = 0.05,
    workers: Any = None,
    progress: NullProgress | None = None,
    parts: tuple[str, ...] = PARTS,
    runner: Any = None,
) -> Calibration:
    """Run the correct built-ins and/or the wrong-formula library once per seed.

    Ctrl-C (or SIGTERM) stops the calibration: the seeds finished before it are kept and the
    result is marked incomplete (``complete`` is False, ``seeds`` lists the finished ones,
    ``seeds_requested`` all). A seed is counted whole or not at all, so a partial calibration is
    exactly a calibration over fewer seeds.

    With ``runner`` (a Dask runner, :mod:`simlab.engine.dask_backend`) each seed is one task on
    the cluster: the seeds are independent, and a seed's runs are small enough (seconds) that
    spreading seeds beats spreading chunks. Seeds are recorded in seed order, so the result is
    the same as on threads, to the byte.
    """
    progress = progress or NullProgress()
    result = Calibration(budget, [], alpha, alpha_wide, parts=tuple(parts))
    result.seeds_requested = list(seeds)
    groups = _wrong_groups() if "wrong" in parts else []
    result.wrong = [record for _, _, members in groups for _, record in members]
    if runner is not None:
        _calibrate_on_cluster(result, groups, seeds, runner, progress)
        return result
    for seed in seeds:
        try:
            simulated = simulate_seed(budget, result.parts, seed, workers, progress)
        except KeyboardInterrupt:  # outside the engine's chunks: the seed is unfinished
            simulated = None
        if simulated is None:
            result.complete = False
            break
        _commit(result, groups, *simulated)
        result.seeds.append(seed)
    return result


def _calibrate_on_cluster(
    result: Calibration, groups: list, seeds: list[int], runner: Any, progress: NullProgress
) -> None:
    """Every seed as one task (one thread each: the cluster's threads are the parallelism)."""
    progress.start(f"calibrate --budget {result.budget}: seeds", len(seeds))
    jobs = ((result.budget, result.parts, seed, 1) for seed in seeds)
    done = runner.map_ordered(simulate_seed, jobs, label="calibrate")
    try:
        for seed, simulated in zip(seeds, done, strict=False):
            _commit(result, groups, *simulated)
            result.seeds.append(seed)
            progress.advance(1)
    except KeyboardInterrupt:  # the seeds recorded so far are whole; the others are cancelled
        result.complete = False
    finally:
        done.close()


class _Interrupted(Exception):
    """A run of this seed was cut short by Ctrl-C: the seed is dropped."""


def _simulate_whole(spec: Any, progress: NullProgress) -> Any:
    run = simulate(spec, progress, figures=False)  # a seed's checks; its figures are never drawn
    if not run.complete:
        raise _Interrupted
    return run


def simulate_seed(
    budget: str,
    parts: tuple[str, ...],
    seed: int,
    workers: Any = None,
    progress: NullProgress | None = None,
) -> tuple[list[Any] | None, list[Any]] | None:
    """One seed's runs, undecided: (the course's runs or None, one run per wrong-formula group
    in :func:`_wrong_groups` order), or None if it was interrupted. Runs on a cluster worker too.
    """
    progress = progress or NullProgress()
    try:
        correct = None
        if "correct" in parts:
            specs = budget_specs(budget, seed, workers)
            correct = [_simulate_whole(spec, progress) for spec in specs]
        wrong = []
        for exp, params, members in _wrong_groups() if "wrong" in parts else []:
            raw = {**budget_raw(exp, budget), **params, "seed": seed}
            if workers is not None:
                raw["workers"] = workers
            claims = [w.claim for w, _ in members]
            spec = build_spec(exp, raw, claims, lambda k, n=exp.name: f"known_wrong {n}: {k}")
            wrong.append(_simulate_whole(spec, progress))
    except _Interrupted:
        return None
    return correct, wrong


def _commit(
    result: Calibration,
    groups: list[tuple[Experiment, dict[str, Any], list[tuple[WrongClaim, WrongResult]]]],
    correct: list[Any] | None,
    wrong: list[Any],
) -> None:
    """Record one simulated seed: decide its runs and count what they say."""
    if correct is not None:
        _record_correct(result, correct)
    for run, (_, _, members) in zip(wrong, groups, strict=True):
        decide_runs([run], result.alpha)
        for wrong_claim, record in members:
            claimed = wrong_claim.claim
            record.record([c for c in run.checks if _is_user_check_of(c, claimed)])


def _is_user_check_of(check: Any, claim_text: str) -> bool:
    """Whether ``check`` is the user check of the claim ``QUANTITY=EXPRESSION``."""
    quantity, _, expression = claim_text.partition("=")
    return (
        check.source == "user"
        and check.quantity == quantity.strip()
        and check.expression == expression.strip()
    )


def _false_alarm(family: tuple[np.ndarray, np.ndarray, bool], alpha: float) -> bool:
    """Whether one seed's run, decided by Holm at ``alpha``, rejects a correct claim."""
    p_values, correct, exact_alarm = family
    _, rejected = holm_thresholds(list(p_values), alpha)
    return exact_alarm or bool(np.any(np.asarray(rejected) & correct))


def _record_correct(result: Calibration, runs: list[Any]) -> None:
    """One seed of the course's built-in claims: false alarms at both rates, and p-values."""
    decide_runs(runs, result.alpha)
    correct = [c for run in runs for c in run.checks if c.expected == "pass"]
    result.correct_checks_per_run = len(correct)
    result.false_alarms += any(c.verdict == "fail" for c in correct)
    result.undecided_correct += sum(c.verdict == "undecided" for c in correct)
    everything = [c for run in runs for c in run.checks]
    family = [c for c in everything if c.kind != "exact" and c.p_value is not None]
    result.families.append(
        (
            np.array([c.p_value for c in family]),
            np.array([c.expected == "pass" for c in family]),
            any(c.verdict == "fail" for c in correct if c.kind == "exact"),
        )
    )
    # the same runs at the wider rate: Holm again over the family (exact verdicts do not move)
    result.false_alarms_wide += _false_alarm(result.families[-1], result.alpha_wide)
    for c in correct:
        # a budget's user claims restate built-in formulas: their p-values would count twice
        if c.p_value is not None and c.kind != "exact" and c.source != "user" and not c.calibrated:
            setting = c.id.partition("[")[2].partition("]")[0]
            why = "tolerance" if c.tolerance_used is not None else "bound"
            result.excluded.setdefault(f"{c.experiment}/{c.quantity}", {})[setting] = why
        if c.p_value is not None and c.kind != "exact" and c.calibrated and c.source != "user":
            result.p_values.append(c.p_value)
            result.p_values_by_check.setdefault(f"{c.experiment}/{c.quantity}", []).append(
                c.p_value
            )


_EXCLUSION_WHY = {
    "tolerance": "its prediction allows a tolerance that is not negligible against the SE "
    "(p = 1 while the deviation is within it, so its p-values pile towards 1)",
    "bound": "its SE is a deliberately cautious bound (the prediction marks it uncalibrated)",
}


def _exclusion_reason(settings: dict[str, str]) -> str:
    """Why a quantity's checks are left out of the uniformity target, and at which points."""
    parts = []
    for why in sorted(set(settings.values())):
        points = "; ".join(s or "every point" for s, w in sorted(settings.items()) if w == why)
        parts.append(f"{_EXCLUSION_WHY[why]}, at {points}")
    return " / ".join(parts)


#: margins beyond this many SE come from p-values that underflowed (|z| capped at 38): drawn as
#: "at least" this far
_MARGIN_UNDERFLOW = 30.0
#: the margin at which a normal z-test's power is 0.99: Phi(2.33) = 0.99
_MARGIN_POWER_99 = float(stats.norm.isf(0.01))


def figures(cal: Calibration, folder: Path, formats: tuple[str, ...]) -> list[Path]:
    """Draw :func:`calibration_figure` into ``folder/calibration.<fmt>``; return the files."""
    from simlab.figure_layout import save

    fig = calibration_figure(cal)
    return [] if fig is None else save(fig, folder, "calibration", formats)


def calibration_figure(cal: Calibration) -> Any:
    """False alarms against alpha and the QQ plot of correct p-values, when the correct claims
    were run; the weakest rejection of each known-wrong formula (its margin in standard errors,
    or its error in tolerances for exact checks), when the wrong ones were. Panels are lettered
    only when there are several. None when there is nothing to draw."""
    import matplotlib.pyplot as plt

    tested = [w for w in cal.wrong if w.min_margin is not None or w.min_error_ratio is None]
    exact = [w for w in cal.wrong if w.min_margin is None and w.min_error_ratio is not None]
    rows: list[tuple[str, float]] = []  # (part, height in inches)
    if "correct" in cal.parts:
        rows.append(("correct", 4.2))
    if "wrong" in cal.parts and tested:
        rows.append(("margins", 0.26 * len(tested) + 1.6))
    if "wrong" in cal.parts and exact:
        rows.append(("errors", 0.26 * len(exact) + 1.6))
    if not rows:
        return None
    heights = [h for _, h in rows]
    fig = plt.figure(figsize=(12.5, sum(heights) + 0.4), layout="constrained")
    # one subfigure per part: the formulas' long names widen their own panels' margin only
    subfigures = fig.subfigures(len(rows), 1, height_ratios=heights, squeeze=False)[:, 0]
    parts = dict(zip((name for name, _ in rows), subfigures, strict=True))
    n_panels = sum(2 if name == "correct" else 1 for name, _ in rows)
    letters = iter(f"({c}) " if n_panels > 1 else "" for c in "abcd")
    if "correct" in parts:
        false_alarms, p_values = parts["correct"].subplots(1, 2)
        _plot_false_alarms(false_alarms, cal, next(letters))
        _plot_p_values(p_values, cal, next(letters))
    if "margins" in parts:
        _plot_margins(parts["margins"].subplots(), cal, tested, next(letters))
    if "errors" in parts:
        _plot_exact_errors(parts["errors"].subplots(), cal, exact, next(letters))
    fa = cal.false_alarms_wide / max(len(cal.seeds), 1)
    title = f"Calibration over {len(cal.seeds)} seeds at the {cal.budget} budget"
    if "correct" in cal.parts:
        title += (
            f": runs with a false alarm {cal.false_alarms}/{len(cal.seeds)} at "
            f"α = {cal.alpha:g}, {cal.false_alarms_wide}/{len(cal.seeds)} ({fa:.0%}) at "
            f"α = {cal.alpha_wide:g}"
        )
    fig.suptitle(title)
    return fig


def _plot_false_alarms(ax: Any, cal: Calibration, letter: str = "") -> None:
    from simlab.figure_legends import place_legend

    n_seeds = len(cal.families)
    if n_seeds:
        rates = cal.false_alarm_curve(CURVE_ALPHAS)
        k = np.rint(rates * n_seeds).astype(int)
        band = np.array([clopper_pearson(int(j), n_seeds) for j in k])
        bottom = 0.2 / n_seeds  # the axis reaches below the smallest rate a run can show, 1/n
        ax.fill_between(
            CURVE_ALPHAS,
            np.maximum(band[:, 0], bottom / 10),  # 0 has no place on a log axis: past the edge
            band[:, 1],
            color="C0",
            alpha=0.2,
            label="95% CI (Clopper-Pearson)",
        )
        seen = rates > 0
        ax.plot(
            CURVE_ALPHAS[seen],
            rates[seen],
            "o-",
            color="C0",
            ms=4,
            label=f"fraction of {n_seeds} runs with a false alarm",
        )
        if (~seen).any():
            # a rate of 0 has no height on a log axis: marked on the bottom edge, and said so
            edge = ax.get_xaxis_transform()  # x in data, y in axes fractions
            ax.plot(
                CURVE_ALPHAS[~seen],
                np.full((~seen).sum(), 0.025),
                "v",
                color="C0",
                mfc="none",
                ms=5,
                transform=edge,
                clip_on=False,
                label=f"none in {n_seeds} runs (on the bottom edge)",
            )
            upper = clopper_pearson(0, n_seeds)[1]
            ax.text(
                0.02,
                0.06,
                f"▽ on the bottom edge: no false alarm in any of the {n_seeds} runs at that α\n"
                f"   (a rate of 0; its 95% upper bound is {upper:.2g})",
                transform=ax.transAxes,
                fontsize=7,
                va="bottom",
                bbox=dict(facecolor="white", alpha=0.85, lw=0, pad=1.5),
            )
        ax.plot(CURVE_ALPHAS, CURVE_ALPHAS, "k--", lw=1, label="declared α (Holm: rate ≤ α)")
        ax.axvline(cal.alpha, color="C3", lw=1, ls=":", label=f"default α = {cal.alpha:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(bottom, 1.1)
    ax.set_xlabel("family-wise α the same runs are decided at")
    ax.set_ylabel("fraction of runs rejecting a correct claim")
    ax.set_title(f"{letter}False alarms on correct claims")
    place_legend(ax, loc="upper left")  # elsewhere if it would cover a point
    ax.grid(alpha=0.3, which="both")


def _plot_p_values(ax: Any, cal: Calibration, letter: str = "") -> None:
    from simlab.figure_legends import place_legend

    p = np.sort(np.asarray(cal.p_values))
    n = len(p)
    if n:
        expected = (np.arange(1, n + 1) - 0.5) / n
        ranks = np.arange(1, n + 1)
        lo = stats.beta.ppf(0.025, ranks, n - ranks + 1)
        hi = stats.beta.ppf(0.975, ranks, n - ranks + 1)
        ax.fill_between(expected, lo, hi, color="0.8", label="95% pointwise band if uniform")
        ax.plot([expected[0], 1], [expected[0], 1], "k-", lw=1, label="uniform")
        ax.loglog(expected, p, ".", ms=3, label=f"{n} p-values of correct checks")
    ax.set_xlabel("expected quantile (uniform)")
    ax.set_ylabel("observed p-value")
    ks, ks_p = cal.ks_uniform()
    ax.set_title(f"{letter}p-values of correct checks vs uniform (KS p = {ks_p:.2g})")
    place_legend(ax, loc="upper left")
    ax.grid(alpha=0.3, which="both")


def _rejections(w: WrongResult) -> str:
    """``20/20 rejected`` (and the seeds on which the sample could not resolve it)."""
    text = f"{w.rejected}/{w.runs} seeds rejected"
    if w.undecided:
        text += f", {w.undecided} undecided"
    return text


def _formula_rows(ax: Any, wrong: list[WrongResult]) -> np.ndarray:
    """One row per formula, top to bottom, named on the left; its rejections on the right."""
    y = np.arange(len(wrong))[::-1].astype(float)
    ax.set_yticks(y, [f"{w.claim}  ({w.experiment})" for w in wrong], fontsize=7)
    ax.set_ylim(-0.7, len(wrong) - 0.3)
    right = ax.get_yaxis_transform()  # x in axes fractions, y in data
    for yi, w in zip(y, wrong, strict=True):
        ax.text(1.01, yi, _rejections(w), transform=right, va="center", fontsize=7)
    return y


def _legend_below(ax: Any) -> None:
    """The legend under the panel's x label: inside, it would hide the markers of some rows."""
    # room for the ticks, their labels and the x label, in font sizes (points / 7)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=2,
              borderaxespad=5.0)  # fmt: skip


def _plot_margins(ax: Any, cal: Calibration, wrong: list[WrongResult], letter: str = "") -> None:
    """Each formula's weakest rejection over the seeds, in standard errors beyond its Holm
    critical value (:func:`z_margin`): right of 0 it was rejected on every seed, and a margin m
    means a power of about Phi(m) (m = 2.33: 0.99)."""
    y = _formula_rows(ax, wrong)
    margins = np.array([np.nan if w.min_margin is None else w.min_margin for w in wrong])
    low = min(-1.0, float(np.nanmin(margins, initial=0.0)) - 1.0)
    ax.axvspan(low, 0.0, color="C3", alpha=0.08, lw=0)
    ax.axvline(0.0, color="C3", lw=1.2, label="Holm critical value: rejected to its right")
    ax.axvline(
        _MARGIN_POWER_99,
        color="k",
        ls="--",
        lw=1,
        label=f"margin {_MARGIN_POWER_99:.2f} SE: power ≥ 0.99 (normal approximation)",
    )
    finite = np.isfinite(margins)
    capped = finite & (margins > _MARGIN_UNDERFLOW)
    plain = finite & ~capped
    ax.plot(margins[plain], y[plain], "o", color="C0", ms=6, label="weakest seed's margin (SE)")
    if capped.any():
        ax.plot(
            margins[capped],
            y[capped],
            ">",
            color="C0",
            ms=7,
            label=f"beyond {_MARGIN_UNDERFLOW:g} SE: p-value underflowed, at least this",
        )
    for yi in y[~finite]:
        ax.text(0.5, yi, "no tested check (undecided)", va="center", fontsize=7)
    top = float(np.nanmax(margins, initial=_MARGIN_POWER_99))
    ax.set_xlim(low, max(top, _MARGIN_POWER_99) * 1.08 + 1.0)
    ax.set_xlabel(
        "weakest seed's margin: standard errors by which its strongest point cleared the Holm "
        "critical |z| (power ≈ Φ(margin))"
    )
    ax.set_title(
        f"{letter}Known-wrong formulas ({cal.budget} budget, α = {cal.alpha:g}): "
        f"the weakest rejection over {len(cal.seeds)} seeds, in standard errors"
    )
    # below the x label: inside, it would hide the formulas' markers at one end or the other
    _legend_below(ax)
    ax.grid(alpha=0.3, axis="x")


def _plot_exact_errors(
    ax: Any, cal: Calibration, wrong: list[WrongResult], letter: str = ""
) -> None:
    """Each exact formula's weakest rejection over the seeds: its error in tolerances (rejected
    above 1)."""
    y = _formula_rows(ax, wrong)
    ratios = np.array([w.min_error_ratio for w in wrong], dtype=float)
    ax.axvline(1.0, color="C3", lw=1.2, label="tolerance: rejected to its right")
    ax.plot(ratios, y, "o", color="C0", ms=6, label="weakest seed's error / tolerance")
    ax.set_xscale("log")
    ax.set_xlim(0.3, max(10.0, float(np.nanmax(ratios, initial=10.0)) * 5))
    ax.set_xlabel("weakest seed's largest error, in tolerances of the exact check")
    ax.set_title(
        f"{letter}Known-wrong formulas checked exactly: the smallest error over "
        f"{len(cal.seeds)} seeds, in tolerances"
    )
    _legend_below(ax)
    ax.grid(alpha=0.3, axis="x", which="both")

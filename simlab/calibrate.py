"""Are the verdicts calibrated? Rerun the course over many seeds and measure.

(a) False alarms: over independent seeds, how often does a run reject some correct built-in
claim? With Holm-Bonferroni at family-wise ``alpha`` this must be at most about ``alpha``. At the
default ``alpha = 0.001`` a handful of seeds cannot see such a rate, so the same runs are also
decided at a larger ``alpha_wide`` (0.05) where the rate is measurable, and the p-values of the
correct checks are tested for uniformity (they should be uniform when the claims are true).

(b) Power: every experiment's library of known-wrong formulas (``Experiment.known_wrong``), each
run as a user claim; the fraction of seeds on which it is rejected, and the smallest |z| seen.
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
from simlab.runner import build_spec, decide_runs, simulate
from simlab.verdicts.checks import decide


@dataclass
class WrongResult:
    experiment: str
    claim: str
    why: str
    rejected: int = 0
    runs: int = 0
    min_abs_z: float | None = None

    @property
    def power(self) -> float:
        return self.rejected / self.runs if self.runs else float("nan")


@dataclass
class Calibration:
    budget: str
    seeds: list[int]
    alpha: float
    alpha_wide: float
    false_alarms: int = 0
    false_alarms_wide: int = 0
    correct_checks_per_run: int = 0
    p_values: list[float] = field(default_factory=list)
    wrong: list[WrongResult] = field(default_factory=list)

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
            "budget": self.budget,
            "seeds": self.seeds,
            "alpha": self.alpha,
            "false_alarm_runs": self.false_alarms,
            "false_alarm_rate": self.false_alarms / n,
            "false_alarm_rate_ci95": clopper_pearson(self.false_alarms, n),
            "alpha_wide": self.alpha_wide,
            "false_alarm_runs_wide": self.false_alarms_wide,
            "false_alarm_rate_wide": self.false_alarms_wide / n,
            "false_alarm_rate_wide_ci95": clopper_pearson(self.false_alarms_wide, n),
            "correct_checks_per_run": self.correct_checks_per_run,
            "p_values_tested": len(self.p_values),
            "p_value_ks_statistic": ks,
            "p_value_ks_p": ks_p,
            "wrong_formulas": [
                {
                    "experiment": w.experiment,
                    "claim": w.claim,
                    "why": w.why,
                    "rejected": w.rejected,
                    "runs": w.runs,
                    "power": w.power,
                    "power_ci95": clopper_pearson(w.rejected, w.runs),
                    "min_abs_z": w.min_abs_z,
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


def calibrate(
    budget: str,
    seeds: list[int],
    alpha: float = 0.001,
    alpha_wide: float = 0.05,
    workers: Any = None,
    progress: NullProgress | None = None,
) -> Calibration:
    """Run the correct built-ins and the wrong-formula library once per seed."""
    progress = progress or NullProgress()
    result = Calibration(budget, list(seeds), alpha, alpha_wide)
    wrong = [
        (exp, w, WrongResult(exp.name, w.claim, w.why))
        for exp in REGISTRY.values()
        for w in exp.known_wrong
    ]
    result.wrong = [r for _, _, r in wrong]
    for seed in seeds:
        runs = [simulate(spec, progress) for spec in budget_specs(budget, seed, workers)]
        decide_runs(runs, alpha)
        correct = [c for run in runs for c in run.checks if c.expected == "pass"]
        result.correct_checks_per_run = len(correct)
        result.false_alarms += any(c.verdict == "fail" for c in correct)
        wide = decide([c for run in runs for c in run.checks], alpha_wide)
        result.false_alarms_wide += any(c.verdict == "fail" for c in wide if c.expected == "pass")
        result.p_values += [
            c.p_value
            for c in correct
            if c.p_value is not None and c.kind != "exact" and c.calibrated
        ]
        for exp, w, record in wrong:
            raw = budget_raw(exp, budget)
            raw.update(w.params)
            raw["seed"] = seed
            if workers is not None:
                raw["workers"] = workers
            spec = build_spec(
                exp, raw, [w.claim], lambda k, text=w.claim: f"known_wrong {text}: {k}"
            )
            run = simulate(spec, progress)
            decide_runs([run], alpha)
            user = [c for c in run.checks if c.source == "user"]
            record.runs += 1
            record.rejected += any(c.verdict == "fail" for c in user)
            zs = [abs(c.z) for c in user if c.z is not None]
            if zs:
                low = min(zs)
                record.min_abs_z = low if record.min_abs_z is None else min(record.min_abs_z, low)
    return result


def figures(cal: Calibration, folder: Path, formats: tuple[str, ...]) -> list[Path]:
    """QQ plot of the correct checks' p-values; power of each wrong formula."""
    from simlab.plotting import new_figure, save

    paths = []
    fig, axes = new_figure(ncols=2, width=5.6)
    ax = axes[0, 0]
    p = np.sort(np.asarray(cal.p_values))
    n = len(p)
    if n:
        expected = (np.arange(1, n + 1) - 0.5) / n
        ax.loglog(expected, p, ".", ms=3, label=f"{n} p-values of correct checks")
        lo = stats.beta.ppf(0.025, np.arange(1, n + 1), n - np.arange(1, n + 1) + 1)
        hi = stats.beta.ppf(0.975, np.arange(1, n + 1), n - np.arange(1, n + 1) + 1)
        ax.fill_between(expected, lo, hi, color="0.8", label="95% band if uniform")
        ax.plot([expected[0], 1], [expected[0], 1], "k-", lw=1, label="uniform")
    ax.set_xlabel("expected quantile (uniform)")
    ax.set_ylabel("observed p-value")
    ks, ks_p = cal.ks_uniform()
    ax.set_title(f"Correct claims: p-values vs uniform (KS p = {ks_p:.2g})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax = axes[0, 1]
    labels = [f"{w.experiment}: {w.claim.split('=')[0]}" for w in cal.wrong]
    power = [w.power for w in cal.wrong]
    cis = [clopper_pearson(w.rejected, w.runs) for w in cal.wrong]
    y = np.arange(len(labels))
    ax.barh(y, power, color="C3", alpha=0.7)
    ax.errorbar(
        power,
        y,
        xerr=[
            [pw - c[0] for pw, c in zip(power, cis, strict=True)],
            [c[1] - pw for pw, c in zip(power, cis, strict=True)],
        ],
        fmt="none",
        ecolor="k",
        capsize=3,
    )
    ax.axvline(0.99, color="k", ls="--", lw=1, label="target 0.99")
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel(f"power: fraction of {len(cal.seeds)} seeds rejecting (95% CI)")
    ax.set_title(f"Known-wrong formulas at the {cal.budget} budget, α = {cal.alpha:g}")
    ax.legend(fontsize=8, loc="lower left")
    fa = cal.false_alarms_wide / max(len(cal.seeds), 1)
    fig.suptitle(
        f"Calibration over {len(cal.seeds)} seeds: family-wise false alarms "
        f"{cal.false_alarms}/{len(cal.seeds)} at α = {cal.alpha:g}, "
        f"{cal.false_alarms_wide}/{len(cal.seeds)} ({fa:.0%}) at α = {cal.alpha_wide:g}"
    )
    paths += save(fig, folder, "calibration", formats)
    return paths

"""Figures of ``simlab kept-units``: pmfs against their laws, the Poisson limit, the joint table.

- ``kept_units_binomial_pmf`` / ``_moments``: the law of K against Binomial(M, q); E[K]/M and
  Var(K)/M against the drop probability.
- ``kept_units_poisson_limit_tv``: TV against M on log-log axes (exact, empirical with its noise
  floor, Le Cam's bound and the Barbour-Hall band); ``kept_units_poisson_limit_pmf``: the law of K
  at a few M against Binomial(M, lam/M) and Poisson(lam).
- ``kept_units_thinning_pmf`` / ``_joint``: the law of K against Poisson(lam q); the table of
  (K, M - K) against the product of Poisson(lam q) and Poisson(lam p).

Every error bar is +-2 standard errors (:data:`~simlab.plotting.ERRORBAR_SE`), and the figures
write the parameter ``lam`` as λ, as their legends do.

Each point's figure data is one of the frozen dataclasses below, filled by the experiment; the
renderers only draw (the theory curves on smooth grids come from :mod:`simlab.theory.counts`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simlab.figure_claims import draw_claims
from simlab.figure_layout import new_figure
from simlab.figure_legends import place_legend
from simlab.figures import FigureSpec
from simlab.plotting import (
    ERRORBAR_SE,
    THEORY_STYLE,
    finish_axes,
    log_errorbars,
    se_bars,
    setting_label,
    side_colorbar,
    simulated_points,
    simulated_vs_theory,
)
from simlab.theory.counts import (
    barbour_hall_bounds,
    le_cam_bound,
    tv_binomial_poisson,
)
from simlab.verdicts.gof import GofResult

if TYPE_CHECKING:
    from simlab.experiments.base import PointResult


@dataclass(frozen=True)
class BinomialFigureData:
    """What one ``kept-units binomial`` point contributes to its figures."""

    q: float  # keep probability
    law: np.ndarray  # Binomial(M, q) on 0..kmax
    swapped: np.ndarray  # Binomial(M, p), the negative control, on 0..its own support


@dataclass(frozen=True)
class TVCurve:
    """The exact TV_M and its bounds on a grid of M (the theory the TV figure draws)."""

    M: np.ndarray  # integers, increasing
    exact: np.ndarray
    le_cam: np.ndarray
    barbour_hall: np.ndarray  # (len(M), 2): lower and upper bounds

    @classmethod
    def of(cls, lam: float, M: int, size: int = 80) -> TVCurve:
        """For a point at ``M``: from ``ceil(lam)`` to ``1.5 M``, ``size`` steps apart on a log
        scale, and ``M / 1.5``, where the figure starts when this is its smallest M."""
        lo, hi = math.ceil(lam), int(M * 1.5)
        start = max(lo, int(M / 1.5))
        grid = np.unique(np.append(np.geomspace(lo, max(lo, hi), size).astype(int), start))
        return cls(
            grid,
            np.array([tv_binomial_poisson(int(m), lam) for m in grid]),
            np.array([le_cam_bound(int(m), lam) for m in grid]),
            np.array([barbour_hall_bounds(int(m), lam) for m in grid]).reshape(-1, 2),
        )

    @classmethod
    def joined(cls, curves: Sequence[TVCurve], lo: int, hi: int) -> TVCurve:
        """The curves' points (those of one lam) from ``lo`` to ``hi``, each M once."""
        M = np.concatenate([c.M for c in curves])
        M, first = np.unique(M, return_index=True)
        keep = (M >= lo) & (M <= hi)

        def pick(name: str) -> np.ndarray:
            return np.concatenate([getattr(c, name) for c in curves])[first][keep]

        return cls(M[keep], pick("exact"), pick("le_cam"), pick("barbour_hall"))


@dataclass(frozen=True)
class PoissonLimitFigureData:
    """What one ``kept-units poisson-limit`` point contributes to its figures."""

    q: float  # lam/M
    law: np.ndarray  # Binomial(M, lam/M) on 0..kmax (the exact law)
    poisson: np.ndarray  # Poisson(lam) on 0..kmax (the M -> inf limit)
    tv_exact: float  # TV_M between the two laws
    tv_empirical: float  # TV between the simulated counts and Poisson(lam)
    tv_se: float  # root-mean-square bound on the empirical TV's error
    floor_binomial: float  # E[empirical TV] to Binomial(M, lam/M): the bound's mean
    floor_poisson: float  # E[empirical TV] if the law were Poisson(lam)
    le_cam: float  # lam^2/M
    barbour_hall: tuple[float, float]  # (lower, upper) bounds on TV_M
    tv_curve: TVCurve  # the theory against M, from ceil(lam) to 1.5 M (TVCurve.of)
    poisson_expect: str  # the verdict the Poisson(lam) check must give: fail, pass or either
    poisson_power: float  # that check's chi-square power at the strictest Holm level


@dataclass(frozen=True)
class ThinningFigureData:
    """What one ``kept-units thinning`` point contributes to its figures."""

    q: float  # keep probability
    law: np.ndarray  # Poisson(lam q) on 0..kmax
    unthinned: np.ndarray  # Poisson(lam) on 0..kmax: the law of M, not of K
    joint: np.ndarray  # counts of (K, M - K) on 0..jmax, the last row and column "more"
    product: np.ndarray  # Poisson(lam q) x Poisson(lam p) on the same cells
    joint_gof: GofResult  # chi-square of the table against the product (descriptive)


Law = tuple[str, str, np.ndarray]  # legend label, short name, pmf on 0..kmax

_MAX_PANELS = 4
_EXPECT_STYLE = {
    "fail": ("C3", "resolved: not yet Poisson (check fails)"),
    "either": ("C1", "at the edge of resolution"),
    "pass": ("C2", "below resolution (check passes)"),
}


def _value(estimate) -> tuple[float, float]:
    """Value and standard error of a scalar estimate (an exact one has no error)."""
    if hasattr(estimate, "se"):
        return float(estimate.value), float(estimate.se)
    return float(estimate.reference[0]), 0.0


def _pick(points: Sequence[PointResult], most: int = _MAX_PANELS) -> list[PointResult]:
    """Up to ``most`` points spread evenly over the sweep (first and last included)."""
    if len(points) <= most:
        return list(points)
    idx = np.unique(np.round(np.linspace(0, len(points) - 1, most)).astype(int))
    return [points[i] for i in idx]


def _window(probs: np.ndarray, counts: np.ndarray, n: int) -> tuple[int, int]:
    """The range of k worth showing: where any law expects or the sample holds a count."""
    last = probs.size - 1
    seen = np.flatnonzero((n * probs >= 0.5) | (counts > 0))
    lo, hi = (int(seen[0]), int(seen[-1])) if seen.size else (0, last)
    while hi - lo < 8 and (lo > 0 or hi < last):  # a point mass still gets some context
        lo, hi = max(0, lo - 1), min(last, hi + 1)
    return lo, hi


def _integer_ticks(ax, *, y: bool = False) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if y:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


# --------------------------------------------------------------------------------------------------
# pmf against analytic laws, with standardized residuals
# --------------------------------------------------------------------------------------------------
def _negative_control(pt: PointResult) -> np.ndarray | None:
    """The pmf of the point's negative control: the known-false law its pmf check must reject
    (where the sample resolves it), from the point's built-in predictions."""
    predictions = pt.predictions.get("pmf")
    for prediction in predictions if isinstance(predictions, list) else [predictions]:
        if prediction is not None and "negative control" in prediction.label:
            return np.asarray(prediction.value, dtype=float)
    return None


def _binomial_laws(pt: PointResult) -> list[Law]:
    data: BinomialFigureData = pt.figure
    laws = [("Binomial(M, q), q = 1 − p", "Binomial(M, q)", data.law)]
    if _negative_control(pt) is not None:
        # over its own support: the check's ends where the true law's tail does, and the
        # swapped law's mass lies beyond it when q is small
        label = "negative control: Binomial(M, p),\np and q swapped"
        laws.append((label, "swapped Binomial(M, p)", data.swapped))
    return laws


def _limit_laws(pt: PointResult) -> list[Law]:
    data: PoissonLimitFigureData = pt.figure
    return [
        ("Binomial(M, λ/M): the exact law", "Binomial(M, λ/M)", data.law),
        ("Poisson(λ): the M → ∞ limit", "Poisson(λ)", data.poisson),
    ]


def _thinning_laws(pt: PointResult) -> list[Law]:
    data: ThinningFigureData = pt.figure
    return [
        ("Poisson(λq), q = 1 − p", "Poisson(λq)", data.law),
        ("negative control: Poisson(λ),\nthinning forgotten", "Poisson(λ)", data.unthinned),
    ]


_LAW_STYLES = (
    dict(marker="o", ms=3.5, ls="-", color="C3", mfc="C3"),
    dict(marker="s", ms=3, ls="--", color="0.35", mfc="none"),
)


def _padded(values: np.ndarray, size: int) -> np.ndarray:
    """``values`` on 0..size-1, zeros past their end (a law or counts beyond a support)."""
    values = np.asarray(values, dtype=float)[:size]
    return np.concatenate([values, np.zeros(size - values.size)])


def _pmf_panel(ax, pt: PointResult, laws: list[Law], k: np.ndarray) -> tuple[list, list[str]]:
    """Simulated frequencies as bars with +-2 SE, each law as points on a line; the legend's
    handles and labels (one legend serves the row: the laws are named alike in every panel)."""
    est = pt.estimates["pmf"]
    freq = _padded(est.counts, k[-1] + 1) / est.n
    se = np.sqrt(freq * (1.0 - freq) / est.n)
    bars = ax.bar(k, freq[k], width=0.8, color="C0", alpha=0.45)
    ticks = se_bars(ax, k, freq[k], se[k], color="C0", capsize=2, lw=1)
    handles, labels = [(bars, ticks)], [f"simulated ±{ERRORBAR_SE:g} SE"]
    for style, (label, _, law) in zip(_LAW_STYLES, laws, strict=False):
        (line,) = ax.plot(k, law[k], **{**THEORY_STYLE, "lw": 1.0}, **style)
        handles.append(line)
        labels.append(label)
    _integer_ticks(ax)
    draw_claims(ax, [pt], "pmf")
    finish_axes(ax, xlabel="k kept units", ylabel="P(K = k)", legend=False)
    ax.set_title(setting_label(pt.params, list(pt.params)), fontsize=9)
    return handles, labels


def _residual_panel(ax, pt: PointResult, laws: list[Law], k: np.ndarray) -> None:
    """(observed - expected) / SD per bin expecting at least 5 counts, against each law."""
    est = pt.estimates["pmf"]
    # past the support of the counts, none was seen (such outcomes are below 1e-18 under the law)
    counts, n = _padded(est.counts, k[-1] + 1), est.n
    ax.axhspan(-2, 2, color="0.85", zorder=0, label="±2: sampling noise")
    largest = 2.0
    for style, (_, short, law) in zip(_LAW_STYLES, laws, strict=False):
        expected = n * law[k]
        ok = (expected >= 5) & (law[k] < 1.0)  # a certain outcome has no spread
        z = (counts[k][ok] - expected[ok]) / np.sqrt(expected[ok] * (1.0 - law[k][ok]))
        largest = max(largest, float(np.abs(z).max(initial=0.0)))
        ax.plot(k[ok], z, **{**style, "ms": 3.5, "ls": "none"}, label=f"vs {short}")
    ax.axhline(0.0, color="k", lw=0.8)
    symlog = _residual_axis(ax, largest)
    _integer_ticks(ax)
    # the residual of a frequency in its standard errors: (count - n P) / sqrt(n P (1 - P))
    ylabel = "residual / SE" + ("\n(linear within ±4, log beyond)" if symlog else "")
    finish_axes(ax, xlabel="k kept units", ylabel=ylabel, legend=False)
    ax.set_title("(observed − expected) / SE, bins expecting ≥ 5", fontsize=9)


def _residual_axis(ax, largest: float) -> bool:
    """Linear within ±4, logarithmic beyond (so gross misfits and noise share one axis); whether
    the logarithmic part shows."""
    from matplotlib.ticker import FuncFormatter, NullLocator

    # headroom: 40% on the linear part, a factor 3 (half a decade) on the logarithmic one
    top = max(4.0, 1.4 * largest if 1.4 * largest <= 4.0 else 3.0 * largest)
    ax.set_yscale("symlog", linthresh=4.0, linscale=1.5)
    ax.set_ylim(-top, top)
    steps = (2, 4) if top < 10 else (2, 10, 100, 1e3, 1e4)
    ticks = sorted({0.0, *(sign * t for t in steps for sign in (-1, 1) if t <= top)})
    ax.set_yticks(ticks)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(NullLocator())
    return top > 4.0


def _pmf_figure(
    points: Sequence[PointResult], what: str, laws_of: Callable[[PointResult], list[Law]]
):
    shown = _pick(points)
    fig, axes = new_figure(
        ncols=len(shown), nrows=2, width=max(4.6, 6.0 - 0.6 * len(shown)), height=3.4
    )
    for col, pt in enumerate(shown):
        est = pt.estimates["pmf"]
        laws = laws_of(pt)
        size = max(est.counts.size, *(law.size for _, _, law in laws))
        laws = [(label, short, _padded(law, size)) for label, short, law in laws]
        counts = _padded(est.counts, size)
        lo, hi = _window(np.max([law for _, _, law in laws], axis=0), counts, est.n)
        k = np.arange(lo, hi + 1)
        handles, labels = _pmf_panel(axes[0, col], pt, laws, k)
        _residual_panel(axes[1, col], pt, laws, k)
        axes[1, col].set_xlim(axes[0, col].get_xlim())
    # one legend per row, in the first panel where it covers no data point, else below the row
    place_legend(axes[0, 0], handles, labels, panels=list(axes[0]), outside="below")
    place_legend(axes[1, 0], panels=list(axes[1]), outside="below")
    subset = "" if len(shown) == len(points) else f", {len(shown)} of {len(points)} points"
    fig.suptitle(f"{what}\n({shown[0].n_samples:,} trials per point{subset})", fontsize=11)
    return fig


def binomial_pmf_figure(points: Sequence[PointResult]):
    return _pmf_figure(points, "Kept units out of M against Binomial(M, q)", _binomial_laws)


def limit_pmf_figure(points: Sequence[PointResult]):
    what = "Kept units at q = λ/M: Binomial(M, λ/M) and its Poisson(λ) limit"
    return _pmf_figure(points, what, _limit_laws)


def thinning_pmf_figure(points: Sequence[PointResult]):
    return _pmf_figure(points, "Kept units of a Poisson(λ) layer: Poisson(λq)", _thinning_laws)


# --------------------------------------------------------------------------------------------------
# binomial: moments against p
# --------------------------------------------------------------------------------------------------
_MOMENT_PANELS = (
    ("mean", r"$E[K]/M$", lambda p: 1.0 - p, r"$q = 1 - p$", "mean of the kept count"),
    ("var", r"$Var(K)/M$", lambda p: p * (1.0 - p), r"$p\,q$", "variance of the kept count"),
)


def binomial_moments_figure(points: Sequence[PointResult]):
    if len({pt.params["p"] for pt in points}) == 1:
        return _moments_at_one_p(points)
    return _moments_against_p(points)


def _moments_at_one_p(points: Sequence[PointResult]):
    """One drop probability: E[K]/M and Var(K)/M side by side, one point per M beside the
    analytic value (the same for every M, per unit), and their relative deviations."""
    fig, axes = new_figure(ncols=2, width=4.8)
    ax, dev = axes[0, 0], axes[0, 1]
    Ms = sorted({pt.params["M"] for pt in points})
    p = points[0].params["p"]
    width = 0.6
    offsets = (np.arange(len(Ms)) - (len(Ms) - 1) / 2) * (width / max(len(Ms), 1))
    for x, (name, _, per_unit, _, _) in enumerate(_MOMENT_PANELS):
        ax.plot([x - 0.4, x + 0.4], [per_unit(p)] * 2, color="k", lw=2.2, solid_capstyle="butt",
                label="analytic value" if x == 0 else None)  # fmt: skip
        for i, M in enumerate(Ms):
            pts = [pt for pt in points if pt.params["M"] == M]
            value, se = _value(pts[0].estimates[name])
            pred = float(pts[0].predictions[name].value)
            scale = abs(pred) if pred else 1.0
            at = x + offsets[i]
            style = dict(color=f"C{i % 10}", label=f"M = {M}, simulated ±{ERRORBAR_SE:g} SE"
                         if x == 0 else None)  # fmt: skip
            simulated_points(ax, at, value / M, se / M, **style)
            simulated_points(dev, at, (value - pred) / scale, se / scale, **style)
            draw_claims(ax, pts, name, [at], y=lambda pt, v: v / pt.params["M"])
    ticks = [f"{ylabel}\n(theory {label})" for _, ylabel, _, label, _ in _MOMENT_PANELS]
    for panel in (ax, dev):
        panel.set_xticks(range(len(_MOMENT_PANELS)), ticks)
        panel.set_xlim(-0.6, len(_MOMENT_PANELS) - 0.4)
    dev.axhline(0.0, color="k", lw=1.2)
    ax.set_ylim(0.0, max(1.0 - p, p * (1.0 - p)) * 1.3 or 1.0)
    finish_axes(ax, xlabel="moment of K, per unit", ylabel="value per unit",
                title=f"per unit at p = {p:g} (±{ERRORBAR_SE:g} SE)", legend=False)  # fmt: skip
    place_legend(ax)
    finish_axes(dev, xlabel="moment of K", ylabel="(simulated − theory) / theory",
                title=f"relative deviation from theory (±{ERRORBAR_SE:g} SE)",
                legend=False)  # fmt: skip
    place_legend(dev)
    fig.suptitle(
        f"K ~ Binomial(M, 1 − p): E K = M q, Var K = M q p at p = {p:g}\n"
        f"({points[0].n_samples:,} trials per point)",
        fontsize=11,
    )
    return fig


def _moments_against_p(points: Sequence[PointResult]):
    fig, axes = new_figure(ncols=2, nrows=2, width=5.0, height=3.3)
    grid = np.linspace(0.0, 1.0, 201)
    Ms = sorted({pt.params["M"] for pt in points})
    for col, (name, ylabel, per_unit, curve_label, title) in enumerate(_MOMENT_PANELS):
        top, bottom = axes[0, col], axes[1, col]
        top.plot(grid, per_unit(grid), color="C3", **THEORY_STYLE, label=f"theory {curve_label}")
        for i, M in enumerate(Ms):
            pts = sorted((pt for pt in points if pt.params["M"] == M), key=lambda p: p.params["p"])
            ps = np.array([pt.params["p"] for pt in pts])
            vals = np.array([_value(pt.estimates[name]) for pt in pts])
            pred = np.array([float(pt.predictions[name].value) for pt in pts])
            scale = np.where(pred != 0, np.abs(pred), 1.0)
            color, label = f"C{i % 3}", f"M = {M}"
            # side by side when several M share a p (per unit, their values coincide)
            offset = 0.012 * (i - (len(Ms) - 1) / 2)
            simulated_vs_theory(top, ps, vals[:, 0] / M, vals[:, 1] / M, color=color, label=label,
                                offset=offset)  # fmt: skip
            simulated_vs_theory(
                bottom,
                ps,
                (vals[:, 0] - pred) / scale,
                vals[:, 1] / scale,
                color=color,
                label=label,
                offset=offset,
            )
            draw_claims(top, pts, name, ps, y=lambda pt, value: value / pt.params["M"])
        bottom.axhline(0.0, color="C3", lw=1.2)
        for ax in (top, bottom):
            ax.set_xlim(-0.02, 1.0)
        finish_axes(top, xlabel="drop probability p", ylabel=ylabel, title=title, legend=False)
        place_legend(top)
        # the colours are those of the panel above: no second legend
        finish_axes(bottom, xlabel="drop probability p", ylabel="(simulated − theory) / theory",
                    legend=False)  # fmt: skip
        bottom.set_title(f"relative deviation from theory (±{ERRORBAR_SE:g} SE)", fontsize=10)
    fig.suptitle(
        f"K ~ Binomial(M, 1 − p): E K = M q, Var K = M q p "
        f"({points[0].n_samples:,} trials per point)"
    )
    return fig


# --------------------------------------------------------------------------------------------------
# poisson-limit: TV against M
# --------------------------------------------------------------------------------------------------
def _tv_theory(ax, curve: TVCurve) -> None:
    """The exact TV_M, Le Cam's bound and the Barbour-Hall band on a grid of M."""
    grid = curve.M
    ax.fill_between(grid, curve.barbour_hall[:, 0], curve.barbour_hall[:, 1], color="C0",
                    alpha=0.15,
                    label=r"Barbour–Hall: $\frac{1}{32}\min(1,\frac{1}{\lambda})\frac{\lambda^2}{M}"
                    r" \leq TV \leq (1-e^{-\lambda})\frac{\lambda}{M}$")  # fmt: skip
    ax.plot(grid, curve.le_cam, color="C0", ls="--", lw=1.2,
            label=r"Le Cam bound $\lambda^2/M$")  # fmt: skip
    ax.plot(grid, curve.exact, color="k", **THEORY_STYLE, label=r"exact $TV_M$ (theory)")


def _tv_simulated(ax, pts: list[PointResult], grid: np.ndarray) -> np.ndarray:
    """The noise floor (flat past the sweep) and the empirical TV by expected verdict."""
    data: list[PoissonLimitFigureData] = [pt.figure for pt in pts]
    Ms = np.array([pt.params["M"] for pt in pts], dtype=float)
    floor_M = np.concatenate([[grid[0]], Ms, [grid[-1]]])
    floor = [d.floor_poisson for d in data]
    floor = np.array([floor[0], *floor, floor[-1]])  # it barely depends on M
    ax.plot(floor_M, floor, color="0.4", ls=":", lw=1.8,
            label="noise floor: E[empirical TV] if the law were Poisson")  # fmt: skip
    ax.fill_between(floor_M, 1e-300, floor, color="0.6", alpha=0.15, lw=0)
    # the estimate and the standard error the check uses (the bars keep the run's convention)
    emp, se = np.array([_value(pt.estimates["tv"]) for pt in pts]).T.reshape(2, -1)
    bars = log_errorbars(emp, se)  # ±2 SE, the lower bar cut to stay on the log axis
    for expect, (color, label) in _EXPECT_STYLE.items():
        sel = np.array([d.poisson_expect == expect for d in data])
        if sel.any():
            simulated_points(
                ax,
                Ms[sel],
                emp[sel],
                bars=bars[:, sel],
                hollow=False,
                color=color,
                ms=6,
                label=f"empirical TV to Poisson ±{ERRORBAR_SE:g} SE — {label}",
            )
    return emp


def poisson_limit_tv_figure(points: Sequence[PointResult]):
    lams = sorted({pt.params["lam"] for pt in points})
    fig, axes = new_figure(ncols=len(lams), width=8.0, height=6.4)
    for ax, lam in zip(axes[0], lams, strict=True):
        pts = sorted((pt for pt in points if pt.params["lam"] == lam), key=lambda p: p.params["M"])
        Ms = [pt.params["M"] for pt in pts]
        lo_M = max(math.ceil(lam), int(min(Ms) / 1.5))
        curve = TVCurve.joined([pt.figure.tv_curve for pt in pts], lo_M, int(max(Ms) * 1.5))
        grid = curve.M
        _tv_theory(ax, curve)
        emp = _tv_simulated(ax, pts, grid)
        ax.set_xscale("log")
        ax.set_yscale("log")
        top = max(float(curve.exact.max()), float(emp.max()), float(le_cam_bound(lo_M, lam)))
        bottom = min(float(curve.exact.min()), float(curve.barbour_hall[:, 0].min()))
        ax.set_ylim(bottom / 2, min(1.5, top * 2))
        ax.set_xlim(grid[0] / 1.1, grid[-1] * 1.1)
        ax.grid(alpha=0.08, which="minor")
        draw_claims(ax, pts, "tv", Ms)
        finish_axes(
            ax,
            xlabel="number of units M (q = λ/M)",
            ylabel="total variation distance to Poisson(λ)",
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            ncols=2,
        )
        ax.set_title(f"λ = {lam:g}, {pts[0].n_samples:,} trials per M", fontsize=10)
    fig.suptitle(
        "Binomial(M, λ/M) → Poisson(λ): the distance falls like 1/M;\n"
        "a sample resolves it only above its noise floor (grey)",
        fontsize=11,
    )
    return fig


# --------------------------------------------------------------------------------------------------
# thinning: the joint table of (K, M - K)
# --------------------------------------------------------------------------------------------------
def thinning_joint_figure(points: Sequence[PointResult]):
    from matplotlib.colors import LogNorm

    # A point with both kept and dropped units (p near 1/2) shows the independence best.
    pt = min(points, key=lambda r: abs(r.params["p"] - 0.5))
    data: ThinningFigureData = pt.figure
    lam, p = pt.params["lam"], pt.params["p"]
    table = data.joint.astype(float)
    n = float(table.sum())
    expected = n * data.product
    keep_k = np.flatnonzero((expected.sum(axis=1) >= 0.5) | (table.sum(axis=1) > 0))
    keep_d = np.flatnonzero((expected.sum(axis=0) >= 0.5) | (table.sum(axis=0) > 0))
    rk, rd = max(int(keep_k.max()) + 1, 6), max(int(keep_d.max()) + 1, 6)
    obs, exp_ = table[:rk, :rd] / n, data.product[:rk, :rd]
    positive = np.concatenate([obs[obs > 0], exp_[exp_ > 0]])
    norm = LogNorm(vmin=max(positive.min(), 0.5 / n), vmax=positive.max())
    fig, axes = new_figure(ncols=3, width=4.9, height=4.3)
    extent = (-0.5, rd - 0.5, -0.5, rk - 0.5)
    lam_q, lam_p = lam * data.q, lam * (1.0 - data.q)
    for ax, shown, title in (
        (axes[0, 0], np.ma.masked_equal(obs, 0.0),
         "simulated frequency of (K, M − K)\n(white: none observed)"),
        (axes[0, 1], exp_, f"product law\nPoisson({lam_q:.3g}) × Poisson({lam_p:.3g})"),
    ):  # fmt: skip
        im = ax.imshow(shown, origin="lower", norm=norm, cmap="viridis", extent=extent,
                       aspect="auto")  # fmt: skip
        _joint_axes(ax, title)
        # each panel its own scale (the same one), so neither is read against its neighbour's
        side_colorbar(fig, im, ax, label="probability")
    with np.errstate(divide="ignore", invalid="ignore"):
        resid = (table[:rk, :rd] - expected[:rk, :rd]) / np.sqrt(expected[:rk, :rd])
    resid = np.ma.masked_where(expected[:rk, :rd] < 5, resid)
    ax = axes[0, 2]
    ax.set_facecolor("0.9")
    im = ax.imshow(resid, origin="lower", cmap="RdBu_r", vmin=-4, vmax=4, extent=extent,
                   aspect="auto")  # fmt: skip
    side_colorbar(fig, im, ax, label="(observed − expected) / √expected")
    _joint_axes(ax, "standardized residuals (cells expecting ≥ 5;\ngrey: fewer)")
    gof = data.joint_gof
    fig.suptitle(
        f"Thinning at λ = {lam:g}, p = {p:g}: K and M − K are independent Poissons "
        f"({int(n):,} trials)\njoint table against the product law: χ² = {gof.statistic:.1f} "
        f"on {gof.dof} dof, p = {gof.p_value:.2g} (descriptive, not one of the run's verdicts)",
        fontsize=10,
    )
    return fig


def _joint_axes(ax, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("M − K dropped units")
    ax.set_ylabel("K kept units")
    _integer_ticks(ax, y=True)


_BARS = f" Error bars: ±{ERRORBAR_SE:g} standard errors."
_RESIDUALS = (
    " Residuals are in standard errors, (count − n P) / √(n P (1 − P)), on an axis linear within "
    "±4 and logarithmic beyond."
)

BINOMIAL_FIGURES = (
    FigureSpec(
        "kept_units_binomial_pmf",
        "The law of the number K of kept units: every unit's mask is simulated, and K follows "
        "Binomial(M, q), P(K = k) = C(M, k) q^k p^(M−k), q = 1 − p; the negative control "
        "Binomial(M, p) (p and q swapped) is drawn too, and must be rejected where the sample "
        "resolves it." + _BARS + _RESIDUALS,
        binomial_pmf_figure,
        quantities=("pmf",),
    ),
    FigureSpec(
        "kept_units_binomial_moments",
        "E[K] = M q and Var(K) = M q p: per unit, E[K]/M = q and Var(K)/M = p q, against the "
        "drop probability when it is swept, side by side at a single one." + _BARS,
        binomial_moments_figure,
        quantities=("mean", "var"),
    ),
)
POISSON_LIMIT_FIGURES = (
    FigureSpec(
        "kept_units_poisson_limit_tv",
        "Total variation between Binomial(M, λ/M) and Poisson(λ) against M: exact "
        "TV_M = ½ Σ_k |Bin(k; M, λ/M) − Pois(k; λ)|, Le Cam's bound λ²/M, the Barbour–Hall "
        "band (1/32) min(1, 1/λ) λ²/M ≤ TV_M ≤ (1 − e^−λ) λ/M, and the empirical TV, "
        "which a sample resolves only above its noise floor." + _BARS,
        poisson_limit_tv_figure,
        quantities=("tv",),
    ),
    FigureSpec(
        "kept_units_poisson_limit_pmf",
        "The law of K at q = λ/M is exactly Binomial(M, λ/M), C(M, k) q^k (1 − q)^(M−k), and "
        "tends to Poisson(λ), e^−λ λ^k / k!, as M → ∞: the residuals against Poisson are "
        "systematic at small M and sampling noise at large M." + _BARS + _RESIDUALS,
        limit_pmf_figure,
        quantities=("pmf",),
    ),
)
THINNING_FIGURES = (
    FigureSpec(
        "kept_units_thinning_pmf",
        "The law of K when M ~ Poisson(λ) units are each kept with probability q: "
        "K ~ Poisson(λq), P(K = k) = e^−λq (λq)^k / k!, not Poisson(λ) (the negative control)."
        + _BARS
        + _RESIDUALS,
        thinning_pmf_figure,
        quantities=("pmf",),
    ),
    FigureSpec(
        "kept_units_thinning_joint",
        "The joint law of kept and dropped units is the product P(K = k, M − K = j) = "
        "Pois(k; λq) Pois(j; λp): K and M − K are independent. No error bars: the residuals "
        "are (observed − expected) / √expected, in standard errors of each cell's count.",
        thinning_joint_figure,
    ),
)

__all__ = [
    "BINOMIAL_FIGURES",
    "POISSON_LIMIT_FIGURES",
    "THINNING_FIGURES",
    "BinomialFigureData",
    "PoissonLimitFigureData",
    "TVCurve",
    "ThinningFigureData",
]

"""The two figures of ``simlab batchnorm stats``: statistics over batches, and why eps exists.

The eps figure draws an :class:`EpsStudy` the experiment simulated for the point (from the point's
study stream); nothing here draws a random number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from simlab.figure_claims import CLAIM_COLORS, claims_of, draw_claims
from simlab.figure_layout import figure_legend_below, new_figure
from simlab.figure_style import decade_label
from simlab.figures import FigureSpec
from simlab.plotting import (
    THEORY_STYLE,
    finish_axes,
    mark_off_scale,
    se_bars,
    setting_label,
    simulated_points,
    swept_parameters,
)
from simlab.stats import Histogram
from simlab.theory import bn_stats

if TYPE_CHECKING:
    from simlab.experiments.base import PointResult
    from simlab.verdicts.estimates import ScalarEstimate


@dataclass(frozen=True)
class EpsStudy:
    """Gaussian features of variance falling to exactly 0, normalised with several eps.

    Arrays are indexed (eps, variance) and, for ``v`` and ``jac``, the first batches last.
    """

    B: int
    gamma: float
    eps_run: float  # the run's eps (one of ``eps``)
    eps: tuple[float, ...]
    variances: np.ndarray  # the features' variances, the last exactly 0
    batches: int  # batches per (eps, variance)
    ratio: np.ndarray  # Var(Yhat)/gamma^2 = mean over batches of v/(v+eps)
    ratio_se: np.ndarray
    xmax: np.ndarray  # max |xhat| over every batch
    v: np.ndarray  # batch variance of the first batches
    jac: np.ndarray  # and the spectral norm of their column Jacobian


@dataclass(frozen=True)
class StatsFigureData:
    """What one point of ``simlab batchnorm stats`` contributes to its figures."""

    v_hist: Histogram  # B v / sigma^2 over every batch and feature
    ratio: ScalarEstimate | None  # estimated E[v/(v+eps)] (None for constant features)
    eps_study: EpsStudy


def _zero_axis(ax, x0: float, lo: float, hi: float, label: str = "0") -> None:
    """Log x axis from ``lo`` to ``hi`` with the position ``x0`` (left of ``lo``) standing for
    the exact value 0, behind a dotted break."""
    first, last = math.ceil(math.log10(lo)), math.floor(math.log10(hi))
    step = max(1, (last - first) // 5)
    decades = list(range(last, first - 1, -step))[::-1]
    ax.set_xlim(x0 / 5, hi * 5)
    ax.set_xticks([x0] + [10.0**d for d in decades])
    # plain text, as every log axis of simlab's figures (figure_style.plain_log_labels)
    ax.set_xticklabels([label] + [decade_label(d) for d in decades])
    from matplotlib.ticker import NullLocator

    ax.xaxis.set_minor_locator(NullLocator())
    ax.axvline(math.sqrt(x0 * lo), color="0.5", lw=0.8, ls=(0, (2, 2)))


def _relative(name: str, pt: PointResult, value: float) -> float:
    """A claim's value as panel (b) shows it: its deviation from the built-in prediction."""
    pred = pt.predictions.get(name)
    if pred is None:
        return math.nan
    return (float(value) - float(pred.value)) / (abs(float(pred.value)) or 1.0)


# -- batchnorm_stats ------------------------------------------------------------------------------
#: the statistical checks of panel (b), each offset within its setting's row
_CHECKED = (("mean_v", r"$E[v]$"), ("mean_out", r"$E[\hat Y]$"), ("var_out", r"Var$(\hat Y)$"))
_ROW_OFFSET = 0.22


def _variance_law_panel(ax, live: Sequence[PointResult]) -> None:
    """(a) the law of B v / sigma^2 over every batch and feature, beside chi^2_{B-1}."""
    if not live:
        ax.text(0.5, 0.5, "sigma = 0: v = 0 in every batch", ha="center", transform=ax.transAxes)
        finish_axes(ax, xlabel=r"$B\,v/\sigma^2$", ylabel="density")
        return
    pt = live[0]
    hist = pt.figure.v_hist
    B = pt.params["B"]
    widths = np.diff(hist.edges)
    dens = hist.counts / (hist.total * widths)
    se = np.sqrt(hist.counts) / (hist.total * widths)
    centres = 0.5 * (hist.edges[:-1] + hist.edges[1:])
    ax.stairs(dens, hist.edges, color="C0", lw=1.2, label="simulated (all features), ±2 SE")
    se_bars(ax, centres, dens, se, color="C0", alpha=0.5)
    grid = np.linspace(hist.edges[0], hist.edges[-1], 400)
    gaussian = pt.params["input"] == "gaussian"
    reference = "exact for Gaussian input" if gaussian else "Gaussian reference only"
    ax.plot(
        grid,
        bn_stats.scaled_variance_density(grid, B),
        color="C3",
        **THEORY_STYLE,
        label=rf"$\chi^2_{{B-1}}$ ({reference})",
    )
    ax.axvline(B - 1, color="k", lw=0.8, ls=":", label=r"mean $B-1$: $E[v] = (B-1)\sigma^2/B$")
    ax.set_xlim(0, min(hist.edges[-1], bn_stats.scaled_variance_quantile(0.9995, B) * 1.6))
    finish_axes(
        ax,
        xlabel=r"$B\,v/\sigma^2$",
        ylabel="density",
        title=f"law of the batch variance (B = {B}, {pt.params['input']} input)",
        keep_clear=True,
    )


def _deviation(pt: PointResult, name: str) -> tuple[float, float] | None:
    """(simulated - predicted)/|predicted| (absolute where the prediction is 0) and its SE
    on the same scale; None where the point has no estimate with an SE or no prediction."""
    est, pred = pt.estimates.get(name), pt.predictions.get(name)
    if pred is None or not getattr(est, "se", None) or not np.isfinite(est.value):
        return None
    scale = abs(float(pred.value)) or 1.0
    return (est.value - float(pred.value)) / scale, est.se / scale


def _checks_panel(ax, points: Sequence[PointResult]) -> None:
    """(b) every statistical check as a relative deviation ±2 SE: one row per setting, its
    label written horizontally (a forest plot), the first setting on top."""
    rows = np.arange(len(points))
    # an empty band above the first row holds the legend, in one line: it covers no point
    ax.set_ylim(len(points) - 0.5, -1.5)
    missing = []
    for i, (name, label) in enumerate(_CHECKED):
        shown = [(j, d) for j, pt in enumerate(points) if (d := _deviation(pt, name))]
        if len(shown) < sum(pt.params["sigma"] > 0 for pt in points):
            missing.append(label)
        if shown:
            pos = [j + (i - 1) * _ROW_OFFSET for j, _ in shown]
            dev = [d for _, (d, _) in shown]
            ses = [se for _, (_, se) in shown]
            simulated_points(
                ax, pos, dev, ses, horizontal=True, hollow=False, color=f"C{i}", label=label
            )
    # the claims once every estimate is drawn (a claim far off keeps the estimates' x range),
    # each as its deviation from the built-in prediction, beside the estimate
    for i, (name, _) in enumerate(_CHECKED):
        offset = (i - 1) * _ROW_OFFSET
        draw_claims(ax, points, name, rows + offset, y=partial(_relative, name), horizontal=True)
    _claims_off_the_axis(ax, points)
    from matplotlib.transforms import blended_transform_factory

    for j, pt in enumerate(points):  # a row without points says why
        if pt.params["sigma"] == 0:
            ax.text(
                0.03,
                j,
                "sigma = 0: every batch is the same, so these are checked exactly",
                va="center",
                fontsize=7,
                color="0.3",
                transform=blended_transform_factory(ax.transAxes, ax.transData),
            )
    ax.axvline(0.0, color="k", lw=1)
    from matplotlib.ticker import MaxNLocator  # here: importing the module needs no matplotlib

    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # deviations like -0.0025 are wide labels
    swept = swept_parameters(points)
    ax.set_yticks(rows)
    # one parameter a line: the labels stay narrow, and the rows are tall enough for two lines
    labels = [setting_label(pt.params, swept).replace(", ", "\n") for pt in points]
    ax.set_yticklabels([label or "defaults" for label in labels], fontsize=7)
    ax.tick_params(axis="y", length=0, pad=7)  # room for a claim marked on the left edge
    finish_axes(
        ax,
        xlabel="(simulated − predicted) / |predicted|\n(absolute where the prediction is 0)",
        ylabel="setting",
        loc="upper center",
        ncols=len(_CHECKED),
        keep_clear=True,
    )
    title = "statistical checks, ±2 SE over independent batches"
    if missing:  # no prediction for E[v/(v+eps)] beyond Gaussian input (and eps = 0)
        title += f"\n(no {' or '.join(missing)} for non-Gaussian input at eps > 0: no closed form)"
    ax.set_title(title, fontsize=9)


def _claims_off_the_axis(ax, points: Sequence[PointResult]) -> None:
    """A claim so far off that the panel keeps the estimates' range is marked on the left or
    right edge in its row, in its colour, rather than left invisible."""
    lo, hi = sorted(ax.get_xlim())
    for i, (name, _) in enumerate(_CHECKED):
        for number, pairs in claims_of(points, name).items():
            row = {id(pt): j for j, pt in enumerate(points)}
            colour = CLAIM_COLORS[(number - 1) % len(CLAIM_COLORS)]
            for pt, mark in pairs:
                value = _relative(name, pt, mark.value)
                if not np.isfinite(value) or lo <= value <= hi:
                    continue
                edge, marker = ("right", ">") if value > hi else ("left", "<")
                y = row[id(pt)] + (i - 1) * _ROW_OFFSET
                mark_off_scale(ax, [y], edge=edge, marker=marker, color=colour, ms=7)


def _eps_effect_panel(ax, points: Sequence[PointResult]) -> None:
    """(c) Var(Yhat)/gamma^2 = E[v/(v+eps)] against sigma^2/eps, simulated beside quadrature."""
    live = [pt for pt in points if pt.params["sigma"] > 0]
    Bs = sorted({pt.params["B"] for pt in points})
    xs_live = [pt.params["sigma"] ** 2 / pt.params["eps"] for pt in live if pt.params["eps"] > 0]
    grid = np.logspace(-3, max(4.0, math.log10(max(xs_live, default=1.0)) + 0.5), 200)
    for k, B in enumerate(Bs):
        curve = bn_stats.expected_v_ratio_curve(B, 1.0, grid)
        ax.plot(grid, curve, color=f"C{k}", **THEORY_STYLE, label=f"quadrature, B = {B}")
    labelled = False  # the non-Gaussian entries, once
    for pt in live:
        eps, sigma, gamma = pt.params["eps"], pt.params["sigma"], pt.params["gamma"]
        if eps <= 0 or gamma == 0:
            continue
        x = sigma * sigma / eps
        colour = f"C{Bs.index(pt.params['B'])}"
        est = pt.estimates["var_out"]
        g2 = gamma * gamma
        if pt.params["input"] == "gaussian":
            simulated_points(ax, x, est.value / g2, est.se / g2, hollow=False, color=colour)
            continue
        x *= 1.6  # beside the Gaussian point of the same setting
        simulated_points(
            ax,
            x,
            est.value / g2,
            est.se / g2,
            color=colour,
            fmt="s",
            ms=5,
            label=None if labelled else "non-Gaussian input: simulated ±2 SE",
        )
        ax.plot(
            x,
            pt.figure.ratio.value / g2,
            "x",
            color="k",
            ms=8,
            zorder=5,
            label=None if labelled else "its E[v/(v+eps)], estimated (no closed form)",
        )
        labelled = True
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xscale("log")
    finish_axes(
        ax,
        xlabel=r"feature variance / eps  ($\sigma^2/\varepsilon$)",
        ylabel=r"Var$(\hat Y)/\gamma^2 = E[v/(v+\varepsilon)]$",
        which="both",
        title_fontsize=7,  # the legend's title
        loc="lower right",
        keep_clear=True,
    )
    ax.get_legend().set_title("Gaussian input: dots, ±2 SE")
    ax.set_title("eps shrinks the output variance when σ² ≲ eps", fontsize=10)


def stats_figure(points: Sequence[PointResult]):
    # the checks panel has one row per setting: a long sweep makes the figure taller
    fig, axes = new_figure(ncols=3, width=5.0, height=max(4.0, 1.6 + 0.3 * len(points)))
    _variance_law_panel(axes[0, 0], [pt for pt in points if pt.params["sigma"] > 0])
    _checks_panel(axes[0, 1], points)
    _eps_effect_panel(axes[0, 2], points)
    fig.suptitle(f"Batch norm over random batches ({points[0].n_samples:,} batches per point)")
    return fig


# -- batchnorm_eps --------------------------------------------------------------------------------
_UNDEFINED = "undefined, on the top edge: NaN = 0/0 (a constant feature, eps = 0)"


@dataclass(frozen=True)
class _VarianceAxis:
    """The eps study's variances on a log axis, the exact 0 drawn at ``x0`` behind a break."""

    x0: float  # where the exact 0 is drawn
    xs: np.ndarray  # the study's variances as drawn
    fine: np.ndarray  # a fine grid over the positive variances, for the curves
    lo: float
    hi: float

    @classmethod
    def of(cls, variances: np.ndarray) -> _VarianceAxis:
        positive = variances[variances > 0]
        lo, hi = float(positive.min()), float(positive.max())
        x0 = lo / 100.0
        fine = np.logspace(math.log10(lo), math.log10(hi), 300)
        return cls(x0, np.where(variances > 0, variances, x0), fine, lo, hi)

    def apply(self, ax) -> None:
        _zero_axis(ax, self.x0, self.lo, self.hi)


def _eps_label(study: EpsStudy, eps: float) -> str:
    return f"eps = {eps:g}" + (" (this run)" if eps == study.eps_run else "")


def _forward_panel(ax, study: EpsStudy, grid: _VarianceAxis) -> None:
    """(a) Var(Yhat)/gamma^2 = E[v/(v+eps)]: mean over batches ±2 SE, against quadrature."""
    for e, eps in enumerate(study.eps):
        ratio, ratio_se = study.ratio[e], study.ratio_se[e]
        finite = np.isfinite(ratio)
        theory = bn_stats.expected_v_ratio_curve(study.B, eps, grid.fine)
        ax.plot(grid.fine, theory, color=f"C{e}", **THEORY_STYLE)
        simulated_points(ax, grid.xs[finite], ratio[finite], ratio_se[finite], color=f"C{e}")
        if not finite.all():
            mark_off_scale(ax, grid.xs[~finite], **_nan_style(e))
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.1)
    finish_axes(
        ax,
        xlabel=r"feature variance $\sigma^2$",
        ylabel=r"Var$(\hat Y)/\gamma^2 = E[v/(v+\varepsilon)]$",
        which="both",
    )
    ax.set_title(
        "forward: output variance shrinks when σ² ≲ eps\n"
        "(dots: mean over batches ±2 SE; curves: quadrature)",
        fontsize=9,
    )


def _bound_panel(ax, study: EpsStudy, grid: _VarianceAxis) -> None:
    """(b) max |xhat| over the batches, under Samuelson's bound sqrt(B-1) sqrt(v/(v+eps))."""
    bound = bn_stats.samuelson_bound(study.B)
    for e, eps in enumerate(study.eps):
        xmax = study.xmax[e]
        finite = np.isfinite(xmax)
        with np.errstate(invalid="ignore", divide="ignore"):
            spike = (
                bound * np.sqrt(grid.fine / (grid.fine + eps))
                if eps > 0
                else np.full_like(grid.fine, bound)
            )
        ax.plot(grid.fine, spike, color=f"C{e}", **THEORY_STYLE)
        ax.plot(grid.xs[finite], xmax[finite], "o", color=f"C{e}", ms=4, mfc="white")
        if not finite.all():
            mark_off_scale(ax, grid.xs[~finite], **_nan_style(e))
    ax.axhline(bound, color="k", lw=1.2, ls="--")
    ax.set_xscale("log")
    ax.set_ylim(0, bound * 1.15)
    finish_axes(ax, xlabel=r"feature variance $\sigma^2$", ylabel=r"max $|\hat x|$", which="both")
    ax.set_title(
        "forward stays bounded: max |x̂| (dots: random batches;\n"
        "curves: one outlier, where the bound is attained)",
        fontsize=9,
    )


def _backward_panel(ax, study: EpsStudy, grid: _VarianceAxis) -> None:
    """(c) the spectral norm of one feature column's Jacobian against the batch's own v."""
    B, gamma = study.B, study.gamma
    for e, eps in enumerate(study.eps):
        vs, js = study.v[e].ravel(), study.jac[e].ravel()
        ok = np.isfinite(js)
        ax.plot(np.where(vs > 0, vs, grid.x0)[ok], js[ok], ".", color=f"C{e}", ms=3, alpha=0.5)
        with np.errstate(divide="ignore", invalid="ignore"):
            closed = bn_stats.jacobian_norm_prediction(B, grid.fine, gamma, eps)
        ax.plot(grid.fine, closed, color=f"C{e}", **THEORY_STYLE)
        if eps > 0:  # at v = 0 exactly: |gamma|/sqrt(eps)
            cap = bn_stats.jacobian_norm_prediction(B, 0.0, gamma, eps)
            ax.plot([grid.x0], [cap], "D", color=f"C{e}", ms=6)
        if not ok.all():
            mark_off_scale(ax, [grid.x0], **_nan_style(e))
    ax.set_xscale("log")
    ax.set_yscale("log")
    finish_axes(
        ax,
        xlabel=r"batch variance $v$ of the feature",
        ylabel=r"$\|\partial \hat Y/\partial Y\|_2$ (one feature column)",
        which="both",
    )
    if B >= 3:
        ax.set_title(
            r"backward blows up without eps: curves $|\gamma|/\sqrt{v+\varepsilon}$", fontsize=9
        )
    else:
        ax.set_title(
            r"B = 2: curves $|\gamma|\,\varepsilon/(v+\varepsilon)^{3/2}$; at eps = 0 the "
            "Jacobian is exactly 0\n(two points always normalise to ±1; eps = 0 dots are "
            "round-off)",
            fontsize=9,
        )


def _nan_style(e: int) -> dict:
    return dict(marker="X", color=f"C{e}", mec="k", ms=9)


def _eps_legend(fig, study: EpsStudy) -> None:
    """One legend below the panels: the eps colours and the marks every panel shares."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=f"C{e}", marker="o", mfc="white", ms=4, **THEORY_STYLE)
        for e in range(len(study.eps))
    ]
    labels = [_eps_label(study, eps) for eps in study.eps]
    grey = dict(color="0.35", mfc="white")
    handles += [
        Line2D([], [], ls="none", marker="o", ms=4, **grey),
        Line2D([], [], **THEORY_STYLE, color="0.35"),
        Line2D([], [], color="k", lw=1.2, ls="--"),
        Line2D([], [], ls="none", marker="D", color="0.35", ms=6),
    ]
    labels += [
        "dots: simulated",
        "curves: theory",
        r"Samuelson's bound $\sqrt{B-1}$ (middle)",
        r"at v = 0 exactly, eps > 0: capped at $|\gamma|/\sqrt{\varepsilon}$ (right)",
    ]
    if not np.all(np.isfinite(study.ratio)):
        handles.append(Line2D([], [], ls="none", **{**_nan_style(0), "color": "0.35"}))
        labels.append(_UNDEFINED)
    figure_legend_below(fig, handles, labels, ncols=5)


def eps_figure(points: Sequence[PointResult]):
    pt = next((p for p in points if p.params["sigma"] > 0), points[0])
    study: EpsStudy = pt.figure.eps_study
    grid = _VarianceAxis.of(study.variances)
    fig, axes = new_figure(ncols=3, width=5.0, height=4.2)
    _forward_panel(axes[0, 0], study, grid)
    _bound_panel(axes[0, 1], study, grid)
    _backward_panel(axes[0, 2], study, grid)
    for ax in axes[0]:
        grid.apply(ax)
    _eps_legend(fig, study)
    fig.suptitle(
        f"Why eps exists (B = {study.B}, |γ| = {abs(study.gamma):g}, Gaussian features, "
        f"{study.batches:,} batches per dot; the leftmost tick is a feature of variance exactly 0)"
    )
    return fig


FIGURES = (
    FigureSpec(
        "batchnorm_stats",
        "Batch norm over random batches: the biased batch variance has E[v] = (B−1)σ²/B "
        "(for Gaussian input Bv/σ² ~ χ²_{B−1}), the output has E[Ŷ] = β and "
        "Var(Ŷ) = γ² E[v/(v+ε)], which eps shrinks once σ² ≲ ε. Error bars: ±2 SE (the "
        "histogram's per bin, the checks' over independent batches)",
        stats_figure,
        quantities=("mean_v", "mean_out", "var_out"),
    ),
    FigureSpec(
        "batchnorm_eps",
        "Why eps exists: as a feature's variance falls to 0 the output variance γ² E[v/(v+ε)] "
        "vanishes and max|x̂| stays under Samuelson's √(B−1) √(v/(v+ε)), while the backward "
        "Jacobian's norm grows as |γ|/√(v+ε) (B ≥ 3): bounded by |γ|/√ε only because ε > 0; "
        "at ε = 0 a constant feature gives 0/0 = NaN, marked on the top edge as undefined. "
        "Error bars (left): ±2 SE over the batches; the middle panel shows a maximum and the "
        "right one single batches, which have none",
        eps_figure,
    ),
)

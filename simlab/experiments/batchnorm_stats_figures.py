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

from simlab.figures import FigureSpec
from simlab.plotting import (
    ERRORBAR_SE,
    SIM_STYLE,
    THEORY_STYLE,
    draw_claims,
    finish_axes,
    new_figure,
    setting_label,
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
    ax.set_xticklabels([label] + [f"$10^{{{d}}}$" for d in decades])
    from matplotlib.ticker import NullLocator

    ax.xaxis.set_minor_locator(NullLocator())
    ax.axvline(math.sqrt(x0 * lo), color="0.5", lw=0.8, ls=(0, (2, 2)))


def _relative(name: str, pt: PointResult, value: float) -> float:
    """A claim's value as panel (b) shows it: its deviation from the built-in prediction."""
    pred = pt.predictions.get(name)
    if pred is None:
        return math.nan
    return (float(value) - float(pred.value)) / (abs(float(pred.value)) or 1.0)


def stats_figure(points: Sequence[PointResult]):
    import scipy.stats

    fig, axes = new_figure(ncols=3, width=5.0, height=4.0)
    swept = swept_parameters(points)
    live = [pt for pt in points if pt.params["sigma"] > 0]

    # (a) the law of v
    ax = axes[0, 0]
    if live:
        pt = live[0]
        hist = pt.figure.v_hist
        B = pt.params["B"]
        widths = np.diff(hist.edges)
        dens = hist.counts / (hist.total * widths)
        se = np.sqrt(hist.counts) / (hist.total * widths)
        centres = 0.5 * (hist.edges[:-1] + hist.edges[1:])
        ax.stairs(dens, hist.edges, color="C0", lw=1.2, label="simulated (all features)")
        ax.errorbar(centres, dens, yerr=ERRORBAR_SE * se, fmt="none", ecolor="C0", alpha=0.5)
        grid = np.linspace(hist.edges[0], hist.edges[-1], 400)
        gaussian = pt.params["input"] == "gaussian"
        ax.plot(
            grid,
            scipy.stats.chi2.pdf(grid, B - 1),
            color="C3",
            **THEORY_STYLE,
            label=r"$\chi^2_{B-1}$ (exact for Gaussian input)"
            if gaussian
            else r"$\chi^2_{B-1}$ (Gaussian reference only)",
        )
        ax.axvline(B - 1, color="k", lw=0.8, ls=":", label=r"mean $B-1$: $E[v] = (B-1)\sigma^2/B$")
        ax.set_xlim(0, min(hist.edges[-1], scipy.stats.chi2.ppf(0.9995, B - 1) * 1.6))
        finish_axes(
            ax,
            xlabel=r"$B\,v/\sigma^2$",
            ylabel="density",
            title=f"law of the batch variance (B = {B}, {pt.params['input']} input)",
        )
    else:
        ax.text(0.5, 0.5, "sigma = 0: v = 0 in every batch", ha="center", transform=ax.transAxes)
        finish_axes(ax)

    # (b) every statistical check as a deviation in standard units
    ax = axes[0, 1]
    names = (("mean_v", r"$E[v]$"), ("mean_out", r"$E[\hat Y]$"), ("var_out", r"Var$(\hat Y)$"))
    xs = np.arange(len(points))
    for i, (name, label) in enumerate(names):
        dev, err, pos = [], [], []
        for j, pt in enumerate(points):
            est = pt.estimates.get(name)
            pred = pt.predictions.get(name)
            if pred is None or not hasattr(est, "se") or not est.se or not np.isfinite(est.value):
                continue
            scale = abs(float(pred.value)) or 1.0
            dev.append((est.value - float(pred.value)) / scale)
            err.append(ERRORBAR_SE * est.se / scale)
            pos.append(j + (i - 1) * 0.12)
        ax.errorbar(pos, dev, yerr=err, color=f"C{i}", **SIM_STYLE, label=label)
        # a claim on it, as its deviation from the built-in prediction, beside the estimate
        draw_claims(ax, points, name, xs + (i - 1) * 0.12, y=partial(_relative, name))
    if not any(pt.params["sigma"] > 0 for pt in points):
        ax.text(
            0.5,
            0.6,
            "sigma = 0: every batch is the same,\nso these quantities are checked exactly",
            ha="center",
            transform=ax.transAxes,
        )
    ax.axhline(0.0, color="k", lw=1)
    ax.set_xlim(-0.5, len(points) - 0.5)
    ax.set_xticks(xs)
    ax.set_xticklabels(
        [setting_label(pt.params, swept).replace(", ", "\n") or "defaults" for pt in points],
        fontsize=7 if len(points) < 8 else 5,
        rotation=0 if len(points) < 8 else 90,
    )
    finish_axes(ax, ylabel="(simulated − predicted) / |predicted|")
    ax.set_title(
        "statistical checks, ±2 SE over independent batches\n"
        "(mean_out: absolute deviation, the prediction beta may be 0)",
        fontsize=9,
    )

    # (c) Var(Yhat) / gamma^2 = E[v/(v+eps)] against sigma^2/eps
    ax = axes[0, 2]
    Bs = sorted({pt.params["B"] for pt in points})
    xs_live = [pt.params["sigma"] ** 2 / pt.params["eps"] for pt in live if pt.params["eps"] > 0]
    grid = np.logspace(-3, max(4.0, math.log10(max(xs_live, default=1.0)) + 0.5), 200)
    for k, B in enumerate(Bs):
        curve = [bn_stats.expected_v_ratio(B, 1.0, float(x)) for x in grid]
        ax.plot(grid, curve, color=f"C{k}", **THEORY_STYLE, label=f"quadrature, B = {B}")
    plotted_estimated = False
    for pt in live:
        eps, sigma, gamma = pt.params["eps"], pt.params["sigma"], pt.params["gamma"]
        if eps <= 0 or gamma == 0:
            continue
        x = sigma * sigma / eps
        k = Bs.index(pt.params["B"])
        est = pt.estimates["var_out"]
        g2 = gamma * gamma
        if pt.params["input"] == "gaussian":
            ax.errorbar(
                x, est.value / g2, yerr=ERRORBAR_SE * est.se / g2, color=f"C{k}", **SIM_STYLE
            )
        else:
            ratio = pt.figure.ratio
            x *= 1.6  # beside the Gaussian point of the same setting
            ax.errorbar(
                x,
                est.value / g2,
                yerr=ERRORBAR_SE * est.se / g2,
                color=f"C{k}",
                fmt="s",
                mfc="white",
                ms=5,
                capsize=3,
                label=None if plotted_estimated else "non-Gaussian input: simulated ±2 SE",
            )
            ax.plot(
                x,
                ratio.value / g2,
                "x",
                color="k",
                ms=8,
                zorder=5,
                label=None if plotted_estimated else "its E[v/(v+eps)], estimated (no closed form)",
            )
            plotted_estimated = True
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xscale("log")
    finish_axes(
        ax,
        xlabel=r"feature variance / eps  ($\sigma^2/\varepsilon$)",
        ylabel=r"Var$(\hat Y)/\gamma^2 = E[v/(v+\varepsilon)]$",
        title="eps shrinks the output variance when σ² ≲ eps",
        which="both",
        title_fontsize=7,
        loc="lower right",
    )
    ax.get_legend().set_title("Gaussian input: dots, ±2 SE")
    n = points[0].n_samples
    fig.suptitle(f"Batch norm over random batches ({n:,} batches per point)")
    return fig


def eps_figure(points: Sequence[PointResult]):
    pt = next((p for p in points if p.params["sigma"] > 0), points[0])
    study: EpsStudy = pt.figure.eps_study
    B, gamma, eps_run = study.B, study.gamma, study.eps_run
    variances = study.variances
    positive = variances[variances > 0]
    x0 = positive.min() / 100.0  # where the exact 0 is drawn
    xs = np.where(variances > 0, variances, x0)
    fine = np.logspace(math.log10(positive.min()), math.log10(positive.max()), 300)
    fig, axes = new_figure(ncols=3, width=5.0, height=4.2)
    colours = {eps: f"C{i}" for i, eps in enumerate(study.eps)}

    def eps_label(eps: float) -> str:
        tag = " (this run)" if eps == eps_run else ""
        return f"eps = {eps:g}{tag}"

    bound = bn_stats.samuelson_bound(B)
    for e, eps in enumerate(study.eps):
        c = colours[eps]
        ratio, ratio_se, xmax = study.ratio[e], study.ratio_se[e], study.xmax[e]
        finite = np.isfinite(ratio)
        # (a) Var(Yhat)/gamma^2
        ax = axes[0, 0]
        theory = [bn_stats.expected_v_ratio(B, eps, float(v)) for v in fine]
        ax.plot(fine, theory, color=c, **THEORY_STYLE)
        ax.errorbar(
            xs[finite],
            ratio[finite],
            yerr=ERRORBAR_SE * ratio_se[finite],
            color=c,
            mfc="white",
            **SIM_STYLE,
            label=eps_label(eps),
        )
        # (b) max |xhat|
        ax = axes[0, 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            spike = bound * np.sqrt(fine / (fine + eps)) if eps > 0 else np.full_like(fine, bound)
        ax.plot(fine, spike, color=c, **THEORY_STYLE)
        ax.plot(xs[finite], xmax[finite], "o", color=c, ms=4, mfc="white", label=eps_label(eps))
        for ax_nan in (axes[0, 0], axes[0, 1]):
            if not np.all(finite):
                ax_nan.plot(
                    xs[~finite],
                    np.full((~finite).sum(), 0.5 if ax_nan is axes[0, 0] else bound / 2),
                    "X",
                    color=c,
                    ms=10,
                    mec="k",
                    label="NaN: 0/0 (constant feature, eps = 0)",
                )
        # (c) ||J|| against the batch's own v
        ax = axes[0, 2]
        vs, js = study.v[e].ravel(), study.jac[e].ravel()
        ok = np.isfinite(js)
        xv = np.where(vs > 0, vs, x0)
        ax.plot(xv[ok], js[ok], ".", color=c, ms=3, alpha=0.5)
        with np.errstate(divide="ignore", invalid="ignore"):
            closed = bn_stats.jacobian_norm_prediction(B, fine, gamma, eps)
        ax.plot(fine, closed, color=c, **THEORY_STYLE, label=eps_label(eps))
        if eps > 0:
            ax.plot(
                [x0],
                [bn_stats.jacobian_norm_prediction(B, 0.0, gamma, eps)],
                "D",
                color=c,
                ms=6,
                label=r"v = 0: capped at $|\gamma|/\sqrt{\varepsilon}$"
                if eps == max(study.eps)
                else None,
            )
        if np.any(~ok):
            ax.plot(
                [x0],
                [abs(gamma) / math.sqrt(positive.min())],
                "X",
                color=c,
                ms=10,
                mec="k",
                label="NaN at v = 0, eps = 0",
            )

    ax = axes[0, 0]
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.1)
    finish_axes(
        ax,
        xlabel=r"feature variance $\sigma^2$",
        ylabel=r"Var$(\hat Y)/\gamma^2 = E[v/(v+\varepsilon)]$",
        which="both",
        loc="center left",
        bbox_to_anchor=(0.08, 0.5),
    )
    ax.set_title(
        "forward: output variance shrinks when σ² ≲ eps\n"
        "(dots: mean over batches ±2 SE; curves: quadrature)",
        fontsize=9,
    )
    ax = axes[0, 1]
    ax.axhline(bound, color="k", lw=1.2, ls="--", label=r"Samuelson: $\sqrt{B-1}$")
    ax.set_xscale("log")
    ax.set_ylim(0, bound * 1.15)
    finish_axes(
        ax,
        xlabel=r"feature variance $\sigma^2$",
        ylabel=r"max $|\hat x|$",
        which="both",
        loc="lower right",
    )
    ax.set_title(
        "forward stays bounded: max |x̂| (dots: random batches;\n"
        "curves: one outlier, where the bound is attained)",
        fontsize=9,
    )
    ax = axes[0, 2]
    ax.set_xscale("log")
    ax.set_yscale("log")
    finish_axes(
        ax,
        xlabel=r"batch variance $v$ of the feature",
        ylabel=r"$\|\partial \hat Y/\partial Y\|_2$ (one feature column)",
        which="both",
        loc="upper right",
    )
    closed_text = (
        r"$|\gamma|/\sqrt{v+\varepsilon}$"
        if B >= 3
        else r"$|\gamma|\,\varepsilon/(v+\varepsilon)^{3/2}$ (B = 2)"
    )
    if B >= 3:
        ax.set_title(f"backward blows up without eps: curves {closed_text}", fontsize=9)
    else:
        ax.set_title(
            f"B = 2: curves {closed_text}; at eps = 0 the Jacobian is exactly 0\n"
            "(two points always normalise to ±1; eps = 0 dots are round-off)",
            fontsize=9,
        )
    for ax in axes[0]:
        _zero_axis(ax, x0, positive.min(), positive.max())
    fig.suptitle(
        f"Why eps exists (B = {B}, |γ| = {abs(gamma):g}, Gaussian features, "
        f"{study.batches:,} batches per dot; the leftmost tick is a feature of variance exactly 0)"
    )
    return fig


FIGURES = (
    FigureSpec(
        "batchnorm_stats",
        "Batch norm over random batches: the biased batch variance has E[v] = (B−1)σ²/B "
        "(for Gaussian input Bv/σ² ~ χ²_{B−1}), the output has E[Ŷ] = β and "
        "Var(Ŷ) = γ² E[v/(v+ε)], which eps shrinks once σ² ≲ ε",
        stats_figure,
        quantities=("mean_v", "mean_out", "var_out"),
    ),
    FigureSpec(
        "batchnorm_eps",
        "Why eps exists: as a feature's variance falls to 0 the output variance γ² E[v/(v+ε)] "
        "vanishes and max|x̂| stays under Samuelson's √(B−1) √(v/(v+ε)), while the backward "
        "Jacobian's norm grows as |γ|/√(v+ε) (B ≥ 3): bounded by |γ|/√ε only because ε > 0; "
        "at ε = 0 a constant feature gives 0/0 = NaN",
        eps_figure,
    ),
)

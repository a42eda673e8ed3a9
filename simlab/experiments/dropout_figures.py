"""The three figures of ``simlab dropout``: moments against the sweep, laws, convergence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    simulated_vs_theory,
    sweep_axis,
)
from simlab.stats import Histogram
from simlab.theory.relu import dropout_moments, relu_law

if TYPE_CHECKING:
    from simlab.experiments.base import ConvergenceTrace, PointResult


@dataclass(frozen=True)
class DropoutFigureData:
    """What one point of ``simlab dropout`` contributes to its figures."""

    hist_before: Histogram  # unit values h (exact zeros counted below the first edge)
    hist_after: Histogram  # unit values after dropout
    law_s: np.ndarray  # each unit's pre-activation standard deviation
    q: float  # keep probability
    trace: ConvergenceTrace  # scalar estimates at growing sample counts


_PANELS = (
    ("before dropout", ("mean_before", "second_before", "var_before")),
    ("after dropout", ("mean_after", "second_after", "var_after")),
)
_LABELS = {
    "mean_before": r"$E[h]$",
    "second_before": r"$E[h^2]$",
    "var_before": r"$Var(h)$",
    "mean_after": r"$E[\tilde h]$",
    "second_after": r"$E[\tilde h^2]$",
    "var_after": r"$Var(\tilde h)$",
    "cov_after": r"$Cov(\tilde h_i, \tilde h_{i+1})$",
}


def _axis_label(axis: str) -> str:
    return "drop probability p" if axis == "p" else axis


def moments_figure(points: Sequence[PointResult]):
    axis = sweep_axis(points, "p")
    xs = np.array([float(pt.params[axis]) for pt in points])
    order = np.argsort(xs)
    fig, axes = new_figure(ncols=3)
    colors = ("C0", "C1", "C2")
    base = points[0]
    smooth = None
    if axis == "p" and all(
        {k: v for k, v in pt.params.items() if k != "p"}
        == {k: v for k, v in base.params.items() if k != "p"}
        for pt in points
    ):
        grid = np.linspace(0.0, max(0.95, xs.max()), 200)
        s = base.figure.law_s
        smooth = (
            grid,
            [
                dropout_moments(base.params["bias"], s, 1.0 - p, base.params["rescale"]).as_dict()
                for p in grid
            ],
        )
    for ax, (title, names) in zip(axes[0, :2], _PANELS, strict=True):
        for color, name in zip(colors, names, strict=True):
            est = np.array([pt.estimates[name].value for pt in points])[order]
            se = np.array([pt.estimates[name].se for pt in points])[order]
            pred = np.array([float(pt.predictions[name].value) for pt in points])[order]
            simulated_vs_theory(
                ax,
                xs[order],
                est,
                se,
                pred if smooth is None else [d[name] for d in smooth[1]],
                color=color,
                label=_LABELS[name],
                theory_x=None if smooth is None else smooth[0],
            )
        for name in names:
            draw_claims(ax, points, name, xs)
        finish_axes(ax, xlabel=_axis_label(axis), ylabel="moment", title=title)
    ax = axes[0, 2]
    offsets = np.linspace(-0.035, 0.035, 6) * (np.ptp(xs) or 1.0)
    for i, name in enumerate(
        ("mean_before", "second_before", "var_before", "mean_after", "second_after", "var_after")
    ):
        est = np.array([pt.estimates[name].value for pt in points])[order]
        se = np.array([pt.estimates[name].se for pt in points])[order]
        pred = np.array([float(pt.predictions[name].value) for pt in points])[order]
        ax.errorbar(
            xs[order] + offsets[i],
            (est - pred) / np.abs(pred),
            yerr=ERRORBAR_SE * se / np.abs(pred),
            color=f"C{i}",
            **SIM_STYLE,
            label=_LABELS[name],
        )
    ax.axhline(0.0, color="k", lw=1)
    finish_axes(
        ax,
        xlabel=_axis_label(axis),
        ylabel="(simulated − predicted) / predicted",
        title="relative deviation from theory (±2 SE)",
        ncols=2,
    )
    n = points[0].n_samples
    fig.suptitle(
        f"ReLU moments before and after dropout ({n:,} samples × "
        f"{points[0].params['M']} units per point)"
    )
    return fig


def _pick_point(points: Sequence[PointResult]) -> PointResult:
    """The point whose p is closest to 0.5 (a typical setting) for single-point figures."""
    return min(points, key=lambda pt: abs(float(pt.params["p"]) - 0.5))


def laws_figure(points: Sequence[PointResult]):
    pt = _pick_point(points)
    data: DropoutFigureData = pt.figure
    s, q = data.law_s, data.q
    mu, rescale = pt.params["bias"], pt.params["rescale"]
    fig, axes = new_figure(ncols=2)
    panels = (
        (data.hist_before, relu_law(mu, s), "h = relu(z)", "before dropout"),
        (
            data.hist_after,
            relu_law(mu, s, q, rescale),
            r"$\tilde h = m h / q$" if rescale else r"$\tilde h = m h$",
            f"after dropout (p = {pt.params['p']:g})",
        ),
    )
    for ax, (hist, (mass, density), xlabel, title) in zip(axes[0], panels, strict=True):
        total = hist.total
        widths = np.diff(hist.edges)
        dens = hist.counts / (total * widths)
        dens_se = np.sqrt(hist.counts) / (total * widths)
        centers = 0.5 * (hist.edges[:-1] + hist.edges[1:])
        ax.stairs(dens, hist.edges, color="C0", lw=1.2, label="simulated density (h > 0)")
        ax.errorbar(centers, dens, yerr=ERRORBAR_SE * dens_se, fmt="none", ecolor="C0", alpha=0.6)
        grid = np.linspace(hist.edges[0], hist.edges[-1], 400)
        ax.plot(grid, density(grid), color="C3", **THEORY_STYLE, label="analytic density")
        zero_frac = hist.below / total
        # The point mass dwarfs the density after dropout; the axis is scaled for the density and
        # the (clipped) bar at 0 carries its probability as text.
        top = 1.3 * max(float(np.max(density(grid))), float(dens.max()))
        bar_w = widths[0] * 2.0
        ax.bar(
            -bar_w,
            min(zero_frac, 0.92 * top),
            width=bar_w,
            color="C0",
            alpha=0.35,
            label="simulated P(0) (bar, clipped)",
        )
        ax.plot(
            [-bar_w],
            [min(mass, 0.92 * top)],
            marker="D",
            color="C3",
            ls="none",
            label="analytic P(0)",
        )
        ax.annotate(
            f"P(0): simulated {zero_frac:.4f}\n          analytic {mass:.4f}",
            xy=(-bar_w, 0.92 * top),
            xytext=(hist.edges[-1] * 0.35, 0.8 * top),
            fontsize=8,
            arrowprops=dict(arrowstyle="->", lw=0.8),
        )
        ax.set_ylim(0, top)
        finish_axes(ax, xlabel=xlabel, ylabel="density  (bar at 0: probability)", title=title)
    fig.suptitle(
        f"Law of a unit: point mass at 0 plus a (scaled) normal tail "
        f"({data.hist_before.total:,} unit values)"
    )
    return fig


def convergence_figure(points: Sequence[PointResult]):
    pt = _pick_point(points)
    trace = pt.figure.trace
    ns = np.array(trace.samples, dtype=float)
    fig, axes = new_figure()
    ax = axes[0, 0]
    for i, name in enumerate(_LABELS):
        if name not in ("mean_before", "var_before", "var_after"):
            continue
        pred = float(pt.predictions[name].value)
        err = np.array([abs(est[name].value - pred) for est in trace.estimates])
        se = np.array([est[name].se for est in trace.estimates])
        color = f"C{i}"
        ax.loglog(
            ns, np.maximum(err, 1e-300), ".", color=color, ms=4, label=f"|{_LABELS[name]} − theory|"
        )
        ref = se[-1] * np.sqrt(ns[-1] / ns)
        ax.loglog(
            ns, ref, "-", color=color, lw=1.2, alpha=0.8, label=f"SE ∝ 1/√n for {_LABELS[name]}"
        )
    finish_axes(
        ax,
        xlabel="samples n",
        ylabel="absolute error",
        title=f"Convergence at p = {pt.params['p']:g}: errors fall like 1/√n",
        which="both",
    )
    return fig


FIGURES = (
    FigureSpec(
        "dropout_moments",
        "Moments of h = relu(z) before and after inverted dropout: "
        "E[h] = μΦ(μ/s) + sφ(μ/s), E[h²] = (μ² + s²)Φ(μ/s) + μsφ(μ/s), E[h̃] = E[h], "
        "E[h̃²] = E[h²]/q, so Var(h̃) = 1/(2(1−p)) − 1/(2π) at μ = 0, s = 1",
        moments_figure,
        quantities=tuple(name for _, names in _PANELS for name in names),
    ),
    FigureSpec(
        "dropout_laws",
        "The law of one unit: a point mass P(h = 0) = Φ(−μ/s) plus a normal "
        "density for h > 0; after dropout P(h̃ = 0) = p + qΦ(−μ/s) and the kept part is "
        "stretched by 1/q",
        laws_figure,
    ),
    FigureSpec(
        "dropout_convergence",
        "Monte Carlo error against samples: |estimate − theory| "
        "falls like the standard error, ∝ 1/√n",
        convergence_figure,
    ),
)

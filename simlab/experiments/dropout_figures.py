"""The three figures of ``simlab dropout``: moments against the sweep, laws, convergence.

Error bars are +-2 standard errors everywhere (:data:`~simlab.plotting.ERRORBAR_SE`); the
convergence figure draws the band a running mean should stay in instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from simlab.figure_claims import draw_claims
from simlab.figure_layout import new_figure
from simlab.figure_legends import place_legend
from simlab.figures import FigureSpec
from simlab.plotting import (
    ERRORBAR_SE,
    THEORY_STYLE,
    finish_axes,
    se_bars,
    setting_label,
    simulated_points,
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
_MOMENTS = tuple(name for _, names in _PANELS for name in names)
_LABELS = {
    "mean_before": r"$E[h]$",
    "second_before": r"$E[h^2]$",
    "var_before": r"$Var(h)$",
    "mean_after": r"$E[\tilde h]$",
    "second_after": r"$E[\tilde h^2]$",
    "var_after": r"$Var(\tilde h)$",
    "cov_after": r"$Cov(\tilde h_i, \tilde h_{i+1})$",
}
#: one colour per kind of moment, the same before and after dropout (after: open markers)
_KIND_COLORS = {"mean": "C0", "second": "C1", "var": "C2", "cov": "C4"}
_BAR_NOTE = f"±{ERRORBAR_SE:g} SE"


def _color(name: str) -> str:
    return _KIND_COLORS[name.split("_")[0]]


def _axis_label(axis: str) -> str:
    return "drop probability p" if axis == "p" else axis


def _scalar(pt: PointResult, name: str) -> tuple[float, float, float]:
    """Estimate, standard error and prediction of a scalar quantity at one point."""
    est = pt.estimates[name]
    return float(est.value), float(est.se), float(pt.predictions[name].value)


def _setting(pt: PointResult) -> str:
    return setting_label(pt.params, ["p", "M", "N", "bias", "weights"])


# --------------------------------------------------------------------------------------------------
# moments
# --------------------------------------------------------------------------------------------------
def moments_figure(points: Sequence[PointResult]):
    if len(points) == 1:
        return _moments_at_one_setting(points[0])
    return _moments_against_sweep(points)


def _moments_at_one_setting(pt: PointResult):
    """One setting: the six moments side by side, each simulated ±2 SE beside its analytic value
    (a short black bar), and their relative deviations from theory on the same axis."""
    fig, axes = new_figure(ncols=2, width=5.4)
    # a gap between the moments before and after dropout
    xs = np.array([0.0, 1.0, 2.0, 3.5, 4.5, 5.5])
    ax, dev = axes[0, 0], axes[0, 1]
    for x, name in zip(xs, _MOMENTS, strict=True):
        est, se, pred = _scalar(pt, name)
        first = name == _MOMENTS[0]
        ax.plot([x - 0.32, x + 0.32], [pred, pred], color="k", lw=2.2, solid_capstyle="butt",
                label="analytic value" if first else None, gid="analytic")  # fmt: skip
        simulated_points(ax, x, est, se, color=_color(name),
                         label=f"simulated {_BAR_NOTE}" if first else None)  # fmt: skip
        simulated_points(dev, x, (est - pred) / abs(pred), se / abs(pred), color=_color(name))
        draw_claims(ax, [pt], name, [x])
    dev.axhline(0.0, color="k", lw=1.2, label="analytic (no deviation)")
    for panel in (ax, dev):
        panel.set_xticks(xs, [_LABELS[n] for n in _MOMENTS])
        panel.axvline(2.75, color="0.6", lw=0.8)  # before | after
        panel.set_xlim(-0.6, 6.1)
    ax.set_ylim(0.0, None)
    xlabel = "before dropout  |  after dropout"
    finish_axes(ax, xlabel=xlabel, ylabel="moment", title=f"moments of a unit ({_BAR_NOTE})",
                legend=False)  # fmt: skip
    place_legend(ax)
    finish_axes(dev, xlabel=xlabel, ylabel="(simulated − analytic) / analytic",
                title=f"relative deviation from theory ({_BAR_NOTE})", legend=False)  # fmt: skip
    place_legend(dev)
    fig.suptitle(
        f"ReLU moments before and after dropout at p = {pt.params['p']:g}\n"
        f"({setting_label(pt.params, ['M', 'N', 'bias', 'weights'])}; "
        f"{pt.n_samples:,} samples × {pt.params['M']} units)",
        fontsize=11,
    )
    return fig


def _smooth_theory(points: Sequence[PointResult], xs: np.ndarray, axis: str):
    """The analytic moments on a fine grid of p, when only p varies (else None: points only)."""
    base = points[0]
    if axis != "p":
        return None
    others = {k: v for k, v in base.params.items() if k != "p"}
    if any({k: v for k, v in pt.params.items() if k != "p"} != others for pt in points):
        return None
    grid = np.linspace(0.0, max(0.95, xs.max()), 200)
    s = base.figure.law_s
    return grid, [
        dropout_moments(base.params["bias"], s, 1.0 - p, base.params["rescale"]).as_dict()
        for p in grid
    ]


def _moments_against_sweep(points: Sequence[PointResult]):
    axis = sweep_axis(points, "p")
    xs = np.array([float(pt.params[axis]) for pt in points])
    order = np.argsort(xs, kind="stable")
    fig, axes = new_figure(ncols=3)
    smooth = _smooth_theory(points, xs, axis)
    for ax, (title, names) in zip(axes[0, :2], _PANELS, strict=True):
        handles, labels = [], []
        for name in names:
            values = np.array([_scalar(pt, name) for pt in points])[order]
            est, se, pred = values.T
            color = _color(name)
            if smooth is None:
                (line,) = ax.plot(xs[order], pred, color=color, **THEORY_STYLE)
            else:
                (line,) = ax.plot(smooth[0], [d[name] for d in smooth[1]], color=color,
                                  **THEORY_STYLE)  # fmt: skip
            bars = simulated_points(ax, xs[order], est, se, color=color)
            handles.append((line, bars))
            labels.append(_LABELS[name])
        for name in names:
            draw_claims(ax, points, name, xs)
        finish_axes(
            ax,
            xlabel=_axis_label(axis),
            ylabel="moment",
            title=f"{title}: lines analytic, points simulated {_BAR_NOTE}",
            legend=False,
        )
        place_legend(ax, handles, labels)
    ax = axes[0, 2]
    offsets = np.linspace(-0.035, 0.035, 6) * (np.ptp(xs) or 1.0)
    for i, name in enumerate(_MOMENTS):
        values = np.array([_scalar(pt, name) for pt in points])[order]
        est, se, pred = values.T
        after = name.endswith("_after")
        simulated_points(
            ax,
            xs[order] + offsets[i],
            (est - pred) / np.abs(pred),
            se / np.abs(pred),
            hollow=after,
            color=_color(name),
            fmt="s" if after else "o",
            label=_LABELS[name],
        )
    ax.axhline(0.0, color="k", lw=1)
    finish_axes(
        ax,
        xlabel=_axis_label(axis),
        ylabel="(simulated − analytic) / analytic",
        title=f"relative deviation from theory ({_BAR_NOTE})",
        legend=False,
    )
    place_legend(ax, ncols=2)
    n = points[0].n_samples
    fig.suptitle(
        f"ReLU moments before and after dropout ({n:,} samples × "
        f"{points[0].params['M']} units per point)"
    )
    return fig


# --------------------------------------------------------------------------------------------------
# the law of a unit
# --------------------------------------------------------------------------------------------------
def _pick_point(points: Sequence[PointResult]) -> PointResult:
    """The point whose p is closest to 0.5 (a typical setting) for single-point figures."""
    return min(points, key=lambda pt: abs(float(pt.params["p"]) - 0.5))


def _point_mass_inset(ax: Any, hist: Histogram, mass: float, symbol: str) -> None:
    """P(unit = 0) on a probability axis of its own (an inset): the simulated fraction of exact
    zeros with ±2 SE (binomial, over the unit values) and the analytic point mass."""
    total = hist.total
    frac = hist.below / total
    se = np.sqrt(frac * (1.0 - frac) / total)
    # low in the panel's right half, where the normal tail is already ~0; the legend goes above
    inset = ax.inset_axes([0.5, 0.2, 0.12, 0.5])
    inset.bar(0.0, frac, width=0.6, color="C0", alpha=0.35)
    se_bars(inset, 0.0, frac, se, color="C0", capsize=3, lw=1.2)
    inset.plot([-0.42, 0.42], [mass, mass], color="C3", lw=2.0, gid="analytic")
    inset.set_xlim(-0.6, 0.6)
    inset.set_ylim(0.0, 1.0)
    inset.set_xticks([])
    inset.set_yticks([0.0, 0.5, 1.0])
    inset.tick_params(labelsize=7)
    inset.set_ylabel("probability", fontsize=7, labelpad=1)
    inset.set_xlabel(f"{symbol} = 0", fontsize=8, labelpad=2)
    inset.set_title("point mass", fontsize=8, pad=3)
    inset.grid(alpha=0.3, axis="y")
    ax.text(
        0.65,
        0.45,
        f"P({symbol} = 0)\nsimulated {frac:.4f}\n  ± {ERRORBAR_SE * se:.4f} ({ERRORBAR_SE:g} SE)"
        f"\nanalytic {mass:.4f}",
        transform=ax.transAxes,
        fontsize=7.5,
        va="center",
    )


def laws_figure(points: Sequence[PointResult]):
    pt = _pick_point(points)
    data: DropoutFigureData = pt.figure
    s, q = data.law_s, data.q
    mu, rescale = pt.params["bias"], pt.params["rescale"]
    fig, axes = new_figure(ncols=2, width=5.6, height=4.0)
    after_symbol = r"$\tilde h$"
    panels = (
        (data.hist_before, relu_law(mu, s), "h = relu(z)", "h", "before dropout"),
        (
            data.hist_after,
            relu_law(mu, s, q, rescale),
            r"$\tilde h = m h / q$" if rescale else r"$\tilde h = m h$",
            after_symbol,
            f"after dropout (p = {pt.params['p']:g})",
        ),
    )
    for ax, (hist, (mass, density), xlabel, symbol, title) in zip(axes[0], panels, strict=True):
        total = hist.total
        widths = np.diff(hist.edges)
        dens = hist.counts / (total * widths)
        dens_se = np.sqrt(hist.counts) / (total * widths)
        centers = 0.5 * (hist.edges[:-1] + hist.edges[1:])
        ax.stairs(dens, hist.edges, color="C0", lw=1.2, label=f"simulated, {_BAR_NOTE}")
        se_bars(ax, centers, dens, dens_se, color="C0", alpha=0.6)
        grid = np.linspace(hist.edges[0], hist.edges[-1], 400)
        ax.plot(grid, density(grid), color="C3", **THEORY_STYLE, label="analytic")
        ax.set_xlim(hist.edges[0] - 0.02 * hist.edges[-1], hist.edges[-1])
        ax.set_ylim(0.0, 1.15 * max(float(np.max(density(grid))), float(dens.max())))
        _point_mass_inset(ax, hist, mass, symbol)
        finish_axes(ax, xlabel=xlabel, ylabel=f"density of {symbol} > 0 (mass 1 − P(0))",
                    title=title, legend=False)  # fmt: skip
        place_legend(ax, loc="upper right")
    fig.suptitle(
        f"Law of a unit: point mass at 0 (inset) plus a (scaled) normal density for positive "
        f"values ({data.hist_before.total:,} unit values)"
    )
    return fig


# --------------------------------------------------------------------------------------------------
# convergence
# --------------------------------------------------------------------------------------------------
_TRACED = ("mean_before", "var_before", "var_after")


def convergence_figure(points: Sequence[PointResult]):
    """The running estimate against the samples n, inside analytic ± 2 σ/√n: σ is the per-sample
    standard deviation (the final standard error times √n_final), so the band is where a
    cumulative mean of n samples should lie 95% of the time."""
    pt = _pick_point(points)
    trace = pt.figure.trace
    ns = np.array(trace.samples, dtype=float)
    fig, axes = new_figure(ncols=len(_TRACED), width=4.3)
    grid = np.geomspace(ns[0], ns[-1], 200)
    for ax, name in zip(axes[0], _TRACED, strict=True):
        pred = float(pt.predictions[name].value)
        est = np.array([e[name].value for e in trace.estimates])
        sigma = trace.estimates[-1][name].se * np.sqrt(ns[-1])  # per-sample standard deviation
        half = ERRORBAR_SE * sigma / np.sqrt(grid)
        color = _color(name)
        ax.fill_between(grid, pred - half, pred + half, color=color, alpha=0.18, lw=0,
                        label=f"analytic ± {ERRORBAR_SE:g} σ/√n")  # fmt: skip
        ax.axhline(pred, color="k", lw=1.2, label="analytic")
        ax.plot(ns, est, "o-", color=color, ms=3.5, lw=0.8, label="running estimate")
        ax.set_xscale("log")
        span = ERRORBAR_SE * sigma / np.sqrt(ns[0])
        top = max(span, float(np.max(np.abs(est - pred))))
        ax.set_ylim(pred - 1.25 * top, pred + 1.25 * top)
        finish_axes(ax, xlabel="samples n", ylabel="running estimate after n samples",
                    title=_LABELS[name], which="both", legend=False)  # fmt: skip
    place_legend(axes[0, 0])  # the same three entries on every panel: listed once
    fig.suptitle(
        f"Convergence at {_setting(pt)}: the running estimate stays within\n"
        f"analytic ± {ERRORBAR_SE:g} SE of a mean of n samples, SE = σ/√n "
        "(σ: the per-sample standard deviation)",
        fontsize=11,
    )
    return fig


_CONVENTION = f" Error bars: ±{ERRORBAR_SE:g} standard errors."

FIGURES = (
    FigureSpec(
        "dropout_moments",
        "Moments of h = relu(z) before and after inverted dropout: "
        "E[h] = μΦ(μ/s) + sφ(μ/s), E[h²] = (μ² + s²)Φ(μ/s) + μsφ(μ/s), E[h̃] = E[h], "
        "E[h̃²] = E[h²]/q, so Var(h̃) = 1/(2(1−p)) − 1/(2π) at μ = 0, s = 1. Against the drop "
        "probability when it is swept; side by side with their analytic values at one setting."
        + _CONVENTION,
        moments_figure,
        quantities=_MOMENTS,
    ),
    FigureSpec(
        "dropout_laws",
        "The law of one unit: a point mass P(h = 0) = Φ(−μ/s) (inset, on a probability axis) "
        "plus a normal density for h > 0; after dropout P(h̃ = 0) = p + qΦ(−μ/s) and the kept "
        "part is stretched by 1/q." + _CONVENTION,
        laws_figure,
    ),
    FigureSpec(
        "dropout_convergence",
        "Convergence: the running (cumulative) estimate after n samples against n, inside the "
        "band analytic ± 2σ/√n, where σ is the per-sample standard deviation: ±2 standard "
        "errors of a mean of n samples. Successive points share their samples, so an excursion "
        "persists over several n.",
        convergence_figure,
    ),
)

"""The figure of ``simlab propagation correlation``: the arc-cosine map, its iterates by layer and
their approach to 1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simlab.figure_claims import draw_claims
from simlab.figure_layout import new_figure, suptitle_within
from simlab.figure_legends import place_legend
from simlab.figures import FigureSpec
from simlab.plotting import (
    THEORY_STYLE,
    SeriesStyle,
    errorbar_handle,
    finish_axes,
    log_errorbars,
    series_styles,
    simulated_points,
)
from simlab.theory import meanfield as mf
from simlab.verdicts.estimates import VectorEstimate

if TYPE_CHECKING:
    from simlab.experiments.base import PointResult


@dataclass(frozen=True)
class CorrelationFigureData:
    """What one point of ``simlab propagation correlation`` contributes to its figure."""

    widths: tuple[int, ...]  # n_0..n_L
    prediction: np.ndarray  # rho_1..rho_L of the iterated map
    tolerance: np.ndarray  # the finite-width allowance per layer
    estimate: VectorEstimate  # the simulated cosine at every layer (exact ones included)


def _cobweb(ax, pt: PointResult, style: SeriesStyle) -> None:
    """The predicted iterates as a cobweb, and the simulated ones as (rho_{l-1}, rho_l) points."""
    data: CorrelationFigureData = pt.figure
    rho0 = float(pt.params["rho0"])
    xs, ys, prev = [rho0], [rho0], rho0
    for v in data.prediction:
        xs += [prev, v]
        ys += [v, v]
        prev = v
    ax.plot(xs, ys, color=style.color, lw=0.8, alpha=0.7)
    sim = np.asarray(data.estimate.values)
    before = np.concatenate([[rho0], sim[:-1]])
    simulated_points(
        ax,
        before,
        sim,
        data.estimate.se,
        fmt=style.marker,
        ms=3.5,
        capsize=2,
        color=style.color,
        lw=1.0,
        zorder=3,
    )


def _zoom_inset(ax, points: Sequence[PointResult], styles: Sequence[SeriesStyle]) -> None:
    """An inset of the map near its fixed point 1, where the iterates crowd."""
    lo = min(float(np.min(pt.figure.estimate.values)) for pt in points)
    lo = max(lo, 0.85) if lo < 0.999 else 0.99
    inset = ax.inset_axes([0.09, 0.5, 0.4, 0.42])
    grid = np.linspace(lo, 1.0, 200)
    inset.plot(grid, mf.arccos_map(grid), "k-", lw=1.2)
    inset.plot(grid, grid, color="gray", lw=0.8, ls=":")
    for pt, style in zip(points, styles, strict=True):
        est = pt.figure.estimate
        sim = np.asarray(est.values)
        before = np.concatenate([[float(pt.params["rho0"])], sim[:-1]])
        keep = before >= lo
        simulated_points(
            inset,
            before[keep],
            sim[keep],
            est.se[keep],
            fmt=style.marker,
            ms=2.5,
            capsize=1.5,
            lw=0.8,
            color=style.color,
        )
    inset.set_xlim(lo, 1.0)
    inset.set_ylim(lo, 1.0)
    inset.tick_params(labelsize=6)
    inset.set_title("near the fixed point", fontsize=7)
    inset.grid(alpha=0.3)


def _listed(values: Sequence) -> str:
    values = [str(v) for v in dict.fromkeys(values)]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _run_text(points: Sequence[PointResult]) -> str:
    """``kaiming, widths 32 and 128; 400 networks × 16 pairs per point``: what ran."""
    inits = _listed(pt.params["init"] for pt in points)
    if all(len(set(pt.figure.widths)) == 1 for pt in points):
        widths = sorted({pt.figure.widths[0] for pt in points})
        wtext = f"width{'s' if len(widths) > 1 else ''} {_listed(widths)}"
    else:
        wtext = "widths " + _listed(",".join(map(str, pt.figure.widths)) for pt in points)
    counts = _listed(f"{pt.n_samples:,} networks × {pt.params['inputs']} pairs" for pt in points)
    return f"{inits}, {wtext}; {counts} per point"


#: the large-depth tail is drawn visible from this power of L on (the upper half of a log axis)
_TAIL_FROM = 0.5


def _tail_limits(points: Sequence[PointResult]) -> tuple[float, float]:
    """y limits of the 1 - rho panel: the data, and the 9 pi^2/(2 l^2) reference from
    l = sqrt(L) on, within four decades."""
    lows = [float(np.min(1 - pt.figure.estimate.values)) for pt in points]
    highs = [float(np.max(1 - pt.figure.estimate.values)) for pt in points]
    L = max(len(pt.figure.prediction) for pt in points)
    low = max(min(lows), 1e-6) / 2
    reference = float(mf.arccos_tail(max(L**_TAIL_FROM, 1.0)))
    high = max(max(highs) * 3, reference * 1.2)
    return low, min(high, low * 1e4)


def _depth_and_tail(
    ax_depth, ax_tail, pt: PointResult, style: SeriesStyle, tail_low: float, drawn: set[tuple]
) -> None:
    """One point's rho_l (``ax_depth``) and 1 - rho_l (``ax_tail``, log-log): the band the
    check allows, the iterated map (once per colour, depth and rho0: ``drawn``) and the
    simulated values ±2 SE."""
    data: CorrelationFigureData = pt.figure
    color = style.color
    pred, est, tol = data.prediction, data.estimate, data.tolerance
    layers = np.arange(1, len(pred) + 1)
    ax_depth.fill_between(layers, pred - tol, pred + tol, color=color, alpha=0.12, lw=0)
    comp = mf.iterate_arccos(float(pt.params["rho0"]), len(pred), complement=True)[1:]
    # the band the check allows, |rho_l - f^l(rho0)| <= tolerance, as 1 - rho on a log axis
    ax_tail.fill_between(
        layers, np.maximum(comp - tol, tail_low / 10), comp + tol, color=color, alpha=0.12, lw=0
    )
    key = (color, len(pred), float(pt.params["rho0"]))
    if key not in drawn:  # points of one colour share the infinite-width prediction
        drawn.add(key)
        ax_depth.plot(layers, pred, color=color, zorder=2, **THEORY_STYLE)
        ax_tail.plot(layers, comp, "-", color=color, zorder=2, **THEORY_STYLE)
    options = dict(fmt=style.marker, ms=3.2, capsize=2, lw=1.0, color=color, zorder=3)
    simulated_points(ax_depth, layers, est.values, est.se, **options)
    tail = 1 - est.values
    simulated_points(ax_tail, layers, tail, bars=log_errorbars(tail, est.se), **options)


def correlation_figure(points: Sequence[PointResult]):
    """The arc-cosine map with its cobweb and the simulated iterates; rho_l and 1 - rho_l."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    styles, series = series_styles(points, prefer=("rho0",))
    fig, axes = new_figure(ncols=3, width=4.6, height=4.4)
    ax_map, ax_depth, ax_tail = axes[0]
    grid = np.linspace(-1, 1, 400)
    ax_map.plot(grid, mf.arccos_map(grid), "k-", lw=1.6, label=r"map $f(\rho)$")
    ax_map.plot(grid, grid, color="gray", lw=1.0, ls=":", label="identity")
    tail_low, tail_high = _tail_limits(points)
    drawn: set[tuple] = set()
    for pt, style in zip(points, styles, strict=True):
        _cobweb(ax_map, pt, style)
        _depth_and_tail(ax_depth, ax_tail, pt, style, tail_low, drawn)
    L = max(len(pt.figure.prediction) for pt in points)
    layers = np.arange(1, L + 1)
    ax_tail.plot(
        layers,
        mf.arccos_tail(layers),
        "k--",
        lw=1.2,
        label=r"tail $9\pi^2/(2l^2)$: slope −2" + "\n" + r"(overestimates by ~$3\ln l/l$)",
    )
    ax_tail.set_ylim(tail_low, tail_high)
    _zoom_inset(ax_map, points, styles)
    ax_map.set_xlim(-1.02, 1.02)
    ax_map.set_ylim(-0.05, 1.02)
    simulated = errorbar_handle(ax_map)
    handles, labels = ax_map.get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", lw=0.8), simulated]
    labels += ["cobweb: predicted", "simulated ±2 SE"]
    place_legend(ax_map, handles, labels, fontsize=6.5, loc="lower right")
    finish_axes(
        ax_map,
        xlabel=r"$\rho_{l-1}$",
        ylabel=r"$\rho_l$",
        title="the map and its iterates",
        which="both",
        legend=False,
    )
    draw_claims(ax_depth, points, "rho")
    finish_axes(
        ax_depth,
        xlabel="layer l",
        ylabel=r"$\rho_l$ = cosine of $h_l(x_a)$, $h_l(x_b)$",
        title="per layer",
        which="both",
        legend=False,
    )
    ax_tail.set_xscale("log")
    ax_tail.set_yscale("log")
    finish_axes(
        ax_tail,
        xlabel="layer l",
        ylabel=r"$1 - \rho_l$",
        title="approach to 1 (log-log)",
        which="both",
        legend=False,
    )
    entries = list(series)
    if entries:
        entries.append((Line2D([], [], ls="none"), "every panel:"))
    entries += [
        (Line2D([], [], color="0.3", **THEORY_STYLE), "iterated map f^l(rho0)"),
        (Patch(color="0.3", alpha=0.12), "± tolerance of the check\n(0.75 / width)"),
        (simulated, "simulated ±2 SE"),
    ]
    # the series legend where the cosines never go (rho_l >= 0 from layer 1 on, rising), and
    # the tail's own below its curves: neither hides the 9 pi^2/(2 l^2) reference
    place_legend(ax_depth, *zip(*entries, strict=True), loc="lower right")
    place_legend(ax_tail, fontsize=6.5, loc="lower left")
    suptitle_within(
        fig, f"Correlation of two inputs through the same ReLU network ({_run_text(points)})"
    )
    return fig


FIGURES = (
    FigureSpec(
        "propagation_correlation",
        "The arc-cosine map f(ρ) = (√(1−ρ²) + (π − arccos ρ) ρ)/π (Cho & Saul 2009) and its "
        "iterates ρ_l = f(ρ_{l−1}) against simulated cosines (error bars ±2 SE; bands: the "
        "check's tolerance 0.75/width, on ρ_l and on 1 − ρ_l); 1 − ρ_l approaches 9π²/(2l²) "
        "only slowly (slope −2)",
        correlation_figure,
        quantities=("rho",),
    ),
)

"""The figure of ``simlab propagation correlation``: the arc-cosine map, its iterates by layer and
their approach to 1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simlab.figures import FigureSpec
from simlab.plotting import (
    ERRORBAR_SE,
    THEORY_STYLE,
    draw_claims,
    finish_axes,
    log_errorbars,
    new_figure,
    setting_label,
    simulated_vs_theory,
    swept_parameters,
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


def _cobweb(ax, pt: PointResult, color: str, label: str) -> None:
    """The predicted iterates as a cobweb, and the simulated ones as (rho_{l-1}, rho_l) points."""
    data: CorrelationFigureData = pt.figure
    rho0 = float(pt.params["rho0"])
    xs, ys, prev = [rho0], [rho0], rho0
    for v in data.prediction:
        xs += [prev, v]
        ys += [v, v]
        prev = v
    ax.plot(xs, ys, color=color, lw=0.8, alpha=0.7)
    sim = np.asarray(data.estimate.values)
    before = np.concatenate([[rho0], sim[:-1]])
    ax.errorbar(
        before,
        sim,
        yerr=ERRORBAR_SE * data.estimate.se,
        fmt="o",
        ms=3.5,
        capsize=2,
        color=color,
        mfc="white",
        lw=1.0,
        label=f"simulated iterates, {label}",
    )


def _zoom_inset(ax, points: Sequence[PointResult]) -> None:
    """An inset of the map near its fixed point 1, where the iterates crowd."""
    lo = min(float(np.min(pt.figure.estimate.values)) for pt in points)
    lo = max(lo, 0.85) if lo < 0.999 else 0.99
    inset = ax.inset_axes([0.09, 0.5, 0.4, 0.42])
    grid = np.linspace(lo, 1.0, 200)
    inset.plot(grid, mf.arccos_map(grid), "k-", lw=1.2)
    inset.plot(grid, grid, color="gray", lw=0.8, ls=":")
    for j, pt in enumerate(points):
        est = pt.figure.estimate
        sim = np.asarray(est.values)
        before = np.concatenate([[float(pt.params["rho0"])], sim[:-1]])
        keep = before >= lo
        inset.errorbar(
            before[keep],
            sim[keep],
            yerr=ERRORBAR_SE * est.se[keep],
            fmt="o",
            ms=2.5,
            capsize=1.5,
            lw=0.8,
            color=f"C{j % 10}",
            mfc="white",
        )
    inset.set_xlim(lo, 1.0)
    inset.set_ylim(lo, 1.0)
    inset.tick_params(labelsize=6)
    inset.set_title("near the fixed point", fontsize=7)
    inset.grid(alpha=0.3)


def correlation_figure(points: Sequence[PointResult]):
    """The arc-cosine map with its cobweb and the simulated iterates; rho_l and 1 - rho_l."""
    keys = swept_parameters(points) or ["rho0"]
    fig, axes = new_figure(ncols=3, width=5.0, height=4.4)
    ax_map, ax_depth, ax_tail = axes[0]
    grid = np.linspace(-1, 1, 400)
    ax_map.plot(grid, mf.arccos_map(grid), "k-", lw=1.6, label=r"$f(\rho)$ (arc-cosine map)")
    ax_map.plot(grid, grid, color="gray", lw=1.0, ls=":", label="identity")
    for j, pt in enumerate(points):
        data: CorrelationFigureData = pt.figure
        color, label = f"C{j % 10}", setting_label(pt.params, keys)
        _cobweb(ax_map, pt, color, label)
        pred, est = data.prediction, data.estimate
        layers = np.arange(1, len(pred) + 1)
        ax_depth.fill_between(
            layers, pred - data.tolerance, pred + data.tolerance, color=color, alpha=0.12
        )
        simulated_vs_theory(ax_depth, layers, est.values, est.se, pred, color=color, label=label)
        comp = mf.iterate_arccos(float(pt.params["rho0"]), len(pred), complement=True)[1:]
        ax_tail.plot(layers, comp, "-", color=color, **THEORY_STYLE)
        ax_tail.errorbar(
            layers,
            1 - est.values,
            yerr=log_errorbars(1 - est.values, est.se),
            color=color,
            mfc="white",
            label=label,
            fmt="o",
            ms=3.2,
            capsize=2,
            lw=1.0,
        )
    L = max(len(pt.figure.prediction) for pt in points)
    layers = np.arange(1, L + 1)
    ax_tail.plot(
        layers,
        mf.arccos_tail(layers),
        "k--",
        lw=1.2,
        label=r"tail $9\pi^2/(2l^2)$: slope −2 (overestimates by ~$3\ln l/l$)",
    )
    lows = [float(np.min(1 - pt.figure.estimate.values)) for pt in points]
    highs = [float(np.max(1 - pt.figure.estimate.values)) for pt in points]
    ax_tail.set_ylim(max(min(lows), 1e-6) / 2, min(max(highs) * 3, 2.5))
    _zoom_inset(ax_map, points)
    ax_map.set_xlim(-1.02, 1.02)
    ax_map.set_ylim(-0.05, 1.02)
    finish_axes(
        ax_map,
        xlabel=r"$\rho_{l-1}$",
        ylabel=r"$\rho_l$",
        title="the map and its iterates (cobweb: theory)",
        which="both",
        legend_size=6.5,
        loc="lower right",
    )
    draw_claims(ax_depth, points, "rho")
    finish_axes(
        ax_depth,
        xlabel="layer l",
        ylabel=r"$\rho_l$ = cosine of $h_l(x_a)$, $h_l(x_b)$",
        title="per layer: iterated map (line, ±tolerance band)",
        which="both",
    )
    ax_tail.set_xscale("log")
    ax_tail.set_yscale("log")
    finish_axes(
        ax_tail,
        xlabel="layer l",
        ylabel=r"$1 - \rho_l$",
        title="approach to 1 (log-log)",
        which="both",
        legend_size=6.5,
        loc="lower left",
    )
    pt = points[0]
    widths = pt.figure.widths
    wtext = f"width {widths[1]}" if len(set(widths)) == 1 else f"widths {pt.params['widths']}"
    fig.suptitle(
        f"Correlation of two inputs through the same ReLU network ({pt.params['init']}, "
        f"{wtext}; {pt.n_samples:,} networks × {pt.params['inputs']} pairs per point)"
    )
    return fig


FIGURES = (
    FigureSpec(
        "propagation_correlation",
        "The arc-cosine map f(ρ) = (√(1−ρ²) + (π − arccos ρ) ρ)/π (Cho & Saul 2009) and its "
        "iterates ρ_l = f(ρ_{l−1}) against simulated cosines (band: the 0.75/width allowance); "
        "1 − ρ_l approaches 9π²/(2l²) only slowly (slope −2)",
        correlation_figure,
        quantities=("rho",),
    ),
)

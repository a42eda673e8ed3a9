"""The four figures of ``simlab propagation signal``: depth profiles, activation laws, the norm
ratio at finite width, and r against width."""

from __future__ import annotations

import math
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
    swept_parameters,
)
from simlab.stats import Histogram
from simlab.theory import meanfield as mf

if TYPE_CHECKING:
    from simlab.experiments.base import PointResult


@dataclass(frozen=True)
class SignalFigureData:
    """What one point of ``simlab propagation signal`` contributes to its figures."""

    widths: tuple[int, ...]  # n_0..n_L
    sigma_b: float
    q_pred: np.ndarray  # (L,) the recursion's q_l
    r_pred: np.ndarray  # (L + 1,) the recursion's r_l
    m1: float  # prod_l c_l / 2: E[A_L / A_0] with zero bias, the unit of the ratio histogram
    layers: tuple[int, ...]  # the depths of hist_z
    hist_z: tuple[Histogram, ...]  # log10 |z_l| / sqrt(q_l) at each shown layer
    hist_ratio: Histogram  # log10 (A_L/A_0) / m1 over every (network, input)

    @property
    def L(self) -> int:
        return len(self.widths) - 1


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def _legend(pt: PointResult, keys: list[str]) -> str:
    return setting_label(pt.params, keys) or str(pt.params.get("init", ""))


def _depth_panels(axes, pt: PointResult, j: int, n_points: int, label: str, shaded: bool) -> bool:
    """One point's q and r (top) and their relative deviations (bottom); True once shaded."""
    data: SignalFigureData = pt.figure
    color, marker = f"C{j % 10}", _MARKERS[j % len(_MARKERS)]
    spread = 0.3 if n_points > 1 else 0.0
    shift = spread * (j / max(n_points - 1, 1) - 0.5)  # inits sharing a line stay visible
    style = dict(color=color, mfc="white", fmt=marker, capsize=1.5, label=label)
    for col, (name, pred) in enumerate((("q", data.q_pred), ("r", data.r_pred))):
        est = pt.estimates[name]
        layers = np.asarray(est.index, dtype=float)
        top, bottom = axes[0, col], axes[1, col]
        top.plot(layers, pred, "-", color=color, **THEORY_STYLE)
        top.errorbar(
            layers + shift,
            est.values,
            yerr=log_errorbars(est.values, est.se),
            ms=3.2,
            lw=0.9,
            **style,
        )
        tol = np.broadcast_to(np.asarray(pt.predictions[name].tolerance, float), pred.shape)
        if np.any(tol / pred > 1e-3) and not shaded:
            bottom.fill_between(layers, -tol / pred, tol / pred, color="0.5", alpha=0.15)
            shaded = True
        bottom.errorbar(
            layers + shift,
            est.values / pred - 1.0,
            yerr=ERRORBAR_SE * est.se / pred,
            ms=3,
            lw=0.8,
            **style,
        )
    return shaded


def depth_figure(points: Sequence[PointResult]):
    """q_l and r_l on log axes (top) and their relative deviation from the recursion (bottom)."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    keys = swept_parameters(points) or ["init"]
    fig, axes = new_figure(ncols=2, nrows=2, width=6.6, height=3.9)
    shaded = False
    for j, pt in enumerate(points):
        shaded = _depth_panels(axes, pt, j, len(points), _legend(pt, keys), shaded)
    titles = (
        r"forward: $q_l = E[\mathrm{mean}_i\, z_l[i]^2]$",
        r"backward: $r_l = E[\mathrm{mean}_i\, (\partial \ell/\partial h_l[i])^2]$",
    )
    for col, title in enumerate(titles):
        top, bottom = axes[0, col], axes[1, col]
        top.set_yscale("log")
        draw_claims(top, points, ("q", "r")[col])
        finish_axes(top, title=title, legend=False)
        bottom.axhline(0.0, color="k", lw=1.0)
        finish_axes(bottom, xlabel="layer l", legend=False)
        for ax in (top, bottom):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_ylabel(r"second moment ($\sigma_x = $" + f"{points[0].params['sigma_x']:g})")
    axes[1, 0].set_ylabel("simulated / recursion − 1  (±2 SE)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="gray", **THEORY_STYLE))
    labels.append("mean-field recursion")
    axes[0, 0].legend(handles, labels, fontsize=7, loc="lower left", ncols=2)
    axes[1, 1].text(
        0.99,
        0.02,
        f"{points[0].n_samples:,} networks × {points[0].params.get('inputs')} inputs per point"
        + ("; shaded: dead-network tolerance of r" if shaded else ""),
        transform=axes[1, 1].transAxes,
        ha="right",
        va="bottom",
        fontsize=7,
    )
    fig.suptitle(
        "Signal propagation through a deep ReLU MLP: Kaiming keeps q flat, Xavier and LeCun halve "
        "it per layer at equal widths, fan_out keeps r flat"
    )
    return fig


def activations_figure(points: Sequence[PointResult]):
    shown = points[:6]
    keys = swept_parameters(shown) or ["init"]
    ncols = min(3, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=4.6, height=3.5)
    for ax in axes.ravel()[len(shown) :]:
        ax.set_visible(False)
    for ax, pt in zip(axes.ravel(), shown, strict=False):
        data: SignalFigureData = pt.figure
        for j, (layer, hist) in enumerate(zip(data.layers, data.hist_z, strict=True)):
            color = f"C{j}"
            shift = 0.5 * math.log10(data.q_pred[layer - 1])
            edges = hist.edges + shift
            total = max(hist.total, 1)
            dens = hist.counts / (total * np.diff(edges))
            ax.stairs(dens, edges, color=color, lw=1.3, label=f"l = {layer}")
            grid = np.linspace(edges[0], edges[-1], 300)
            s = 10.0**grid / math.sqrt(data.q_pred[layer - 1])
            gauss = 2 * np.exp(-0.5 * s * s) / math.sqrt(2 * math.pi) * s * math.log(10)
            ax.plot(grid, gauss, "--", color=color, lw=1.0, alpha=0.8)
        ax.set_title(_legend(pt, keys), fontsize=9)
        finish_axes(ax, xlabel=r"$\log_{10} |z_l|$", ylabel="density", legend=False)
        ax.legend(fontsize=7, title="layer (dashed: N(0, q_l))", title_fontsize=7)
    fig.suptitle(
        "Pre-activation magnitudes at a few depths (all units and inputs of one network per stack; "
        "dashed: N(0, predicted q_l))"
    )
    return fig


def _hr_points(points: Sequence[PointResult]) -> list[PointResult]:
    """Points where the Hanin-Rolnick moment is predicted, at up to two distinct widths."""
    eligible = [pt for pt in points if "norm_ratio_second" in pt.predictions] or list(points)
    by_width: dict[tuple, PointResult] = {}
    for pt in eligible:
        by_width.setdefault(pt.figure.widths, pt)
    chosen = list(by_width.values())
    if len(chosen) > 2:
        chosen = [chosen[0], chosen[-1]]
    return chosen


def _norm_ratio_text(pt: PointResult, hr: float, dead: float, low: float) -> str:
    data: SignalFigureData = pt.figure
    est2 = pt.estimates["norm_ratio_second"]
    m1, widths = data.m1, data.widths
    expo = math.exp(5 * sum(1.0 / n for n in widths[1:])) * m1 * m1
    m4 = mf.norm_ratio_moment(widths, 4) * m1**4
    text = (
        f"E[(A_L/A_0)^2]: {est2.value:.4g} ± {est2.se:.2g} (simulated)\n"
        f"prod(1+5/n_l) = {hr:.4g}"
        + ("" if "norm_ratio_second" in pt.predictions else " (n/a)")
        + f";  exp(5 sum 1/n_l) = {expo:.4g}\n"
        f"sd of (A_L/A_0)^2 per input: {math.sqrt(max(m4 - hr * hr, 0)):.3g} (theory)"
    )
    if dead:
        text += f"\nA_L/A_0 < {low:.2g} (or 0: dead) in {dead:.2%} (not shown)"
    return text


def _norm_ratio_panel(ax, pt: PointResult) -> None:
    data: SignalFigureData = pt.figure
    hist, m1, widths = data.hist_ratio, data.m1, data.widths
    x_edges = m1 * 10.0**hist.edges
    total = max(hist.total, 1)
    dens = hist.counts / (total * np.diff(hist.edges))
    ax.stairs(dens, x_edges, color="C0", lw=1.3, fill=True, alpha=0.25)
    ax.stairs(dens, x_edges, color="C0", lw=1.3, label="simulated (per network × input)")
    ax.set_xscale("log")
    est1 = pt.estimates["norm_ratio"]
    root2 = math.sqrt(max(pt.estimates["norm_ratio_second"].value, 0))
    ax.axvline(est1.value, color="C0", lw=1.4, label=f"simulated mean {est1.value:.3g}")
    ax.axvline(
        root2,
        color="C0",
        ls=":",
        lw=1.6,
        label=rf"simulated $\sqrt{{E[(A_L/A_0)^2]}}$ = {root2:.3g}",
    )
    if data.sigma_b == 0:
        ax.axvline(m1, color="C3", lw=1.4, ls="--", label=f"predicted mean {m1:.3g}")
    hr = mf.hanin_rolnick_second_moment(widths) * m1 * m1
    if "norm_ratio_second" in pt.predictions:
        ax.axvline(
            math.sqrt(hr),
            color="C3",
            ls="-.",
            lw=1.6,
            label=r"predicted $\sqrt{\prod(1+5/n_l)}$" + f" = {math.sqrt(hr):.3g}",
        )
    ax.text(
        0.02,
        0.97,
        _norm_ratio_text(pt, hr, hist.below / total, x_edges[0]),
        transform=ax.transAxes,
        fontsize=6.5,
        va="top",
        family="monospace",
        bbox=dict(facecolor="white", alpha=0.85, edgecolor="0.8"),
    )
    ax.set_ylim(0, dens.max() * 2.0 if dens.max() > 0 else 1)
    filled = np.flatnonzero(hist.counts)
    if filled.size:
        lo = x_edges[max(filled[0] - 2, 0)]
        hi = x_edges[min(filled[-1] + 3, len(x_edges) - 1)]
        ax.set_xlim(min(lo, 0.5 * m1), max(hi, 2 * math.sqrt(hr)))
    draw_claims(ax, [pt], "norm_ratio", vertical=True)
    draw_claims(ax, [pt], "norm_ratio_second", vertical=True, y=lambda _, v: math.sqrt(max(v, 0)))
    label = (
        f"width {widths[1]}" if len(set(widths)) == 1 else "widths " + ",".join(map(str, widths))
    )
    finish_axes(
        ax,
        xlabel=r"$A_L / A_0$  ($A_l = \|h_l\|^2 / n_l$, log axis)",
        ylabel="density per decade",
        title=f"{pt.params['init']}, {label}, L = {len(widths) - 1}",
        legend_size=6.5,
        loc="upper right",
    )


def norm_ratio_figure(points: Sequence[PointResult]):
    chosen = _hr_points(points)
    fig, axes = new_figure(ncols=len(chosen), width=6.6, height=4.6)
    for ax, pt in zip(axes[0], chosen, strict=True):
        _norm_ratio_panel(ax, pt)
    fig.suptitle("Finite width: A_L/A_0 is broad and skewed (Hanin & Rolnick 2018)")
    return fig


def dead_fraction(width: int, L: int) -> float:
    """P(h_{L-1} = 0) at equal widths, zero bias."""
    return 1.0 - (1.0 - 2.0 ** (-width)) ** max(L - 1, 0)


_WIDTH_SERIES = (  # quantity, layer index, marker, x shift, label
    ("r", -2, "o", 0.97, r"$r_{L-1}$"),
    ("r", 0, "s", 1.0, r"$r_0$"),
    ("q", -1, "^", 1.03, r"$q_L$ (exact)"),
)


def r_vs_width_figure(points: Sequence[PointResult]):
    """r's deviation from the recursion against width (only when the run has several widths)."""
    equal = [pt for pt in points if len(set(pt.figure.widths)) == 1 and pt.figure.sigma_b == 0]
    widths = sorted({pt.figure.widths[0] for pt in equal})
    if len(widths) < 2:
        return None
    fig, axes = new_figure(width=6.4, height=4.4)
    ax = axes[0, 0]
    inits = sorted({pt.params["init"] for pt in equal})
    for j, init in enumerate(inits):
        group = sorted(
            (pt for pt in equal if pt.params["init"] == init), key=lambda pt: pt.figure.widths[0]
        )
        xs = np.array([pt.figure.widths[0] for pt in group], dtype=float)
        offset = 1.0 + 0.025 * (j - (len(inits) - 1) / 2)
        for name, index, marker, shift, what in _WIDTH_SERIES:
            rel, err = [], []
            for pt in group:
                est = pt.estimates[name]
                pred = pt.figure.r_pred if name == "r" else pt.figure.q_pred
                rel.append(est.values[index] / pred[index] - 1.0)
                err.append(ERRORBAR_SE * est.se[index] / pred[index])
            ax.errorbar(
                xs * offset * shift,
                rel,
                yerr=err,
                fmt=marker,
                ms=4,
                capsize=2,
                lw=1.0,
                color=f"C{j}",
                mfc="white" if name == "q" else None,
                label=f"{what}, {init}",
            )
    L = equal[0].figure.L
    grid = np.arange(min(widths), max(widths) + 1)
    dead = np.array([dead_fraction(int(w), L) for w in grid])
    ax.plot(grid, -dead, "k-", lw=1.4, label=r"$-P(h_{L-1} = 0)$: dead network")
    ax.fill_between(grid, -dead, dead, color="k", alpha=0.08, label="tolerance of the r check")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(widths)
    ax.set_xticks([], minor=True)
    ax.set_xticklabels([str(w) for w in widths])
    finish_axes(
        ax,
        xlabel="width n (every layer)",
        ylabel="simulated / predicted − 1  (±2 SE)",
        which="both",
        legend_size=6.5,
        ncols=2,
    )
    ax.set_title(
        f"Backward recursion at small width (L = {L}, zero bias):\n"
        "r falls short only by the dead-network probability; q is exact",
        fontsize=9,
    )
    return fig


FIGURES = (
    FigureSpec(
        "propagation_signal_depth",
        "q_l and r_l against depth: q_1 = c_1 σ_x² + σ_b², q_l = (c_l/2) q_{l−1} + σ_b²; "
        "r_L = 1, r_{l−1} = (n_l Var W_l / 2) r_l (He et al. 2015), with c_l = n_{l−1} Var W_l "
        "and the relative deviation of every layer (±2 SE over networks)",
        depth_figure,
        quantities=("q", "r"),
    ),
    FigureSpec(
        "propagation_signal_activations",
        "Pre-activation magnitudes at a few depths against N(0, q_l), q_l from the recursion "
        "q_l = (c_l/2) q_{l−1} + σ_b²: the scale follows it, the shape broadens with depth at "
        "finite width",
        activations_figure,
    ),
    FigureSpec(
        "propagation_signal_norm_ratio",
        "The law of A_L/A_0 (A_l = ‖h_l‖²/n_l): mean ∏ c_l/2 (1 for Kaiming) and "
        "E[(A_L/A_0)²] = ∏(1 + 5/n_l) exactly for Gaussian Kaiming weights (Hanin & Rolnick "
        "2018), not the large-width exp(5 Σ 1/n_l)",
        norm_ratio_figure,
        quantities=("norm_ratio", "norm_ratio_second"),
    ),
    FigureSpec(
        "propagation_signal_r_vs_width",
        "The backward recursion at small width: r falls short only by the probability of a "
        "dead network, 1 − ∏_{k<L}(1 − 2^−n_k); q is exact at every width",
        r_vs_width_figure,
    ),
)

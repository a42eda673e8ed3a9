"""The four figures of ``simlab propagation signal``: depth profiles, activation laws, the norm
ratio at finite width, and r against width."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simlab.figure_claims import draw_claims
from simlab.figure_layout import new_figure, suptitle_within
from simlab.figure_legends import place_legend
from simlab.figures import FigureSpec
from simlab.plotting import (
    ERRORBAR_SE,
    THEORY_STYLE,
    errorbar_handle,
    finish_axes,
    log_errorbars,
    series_styles,
    setting_label,
    simulated_points,
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
    ratio_fourth: float  # E[(A_L / A_0)^4] / m1^4 (meanfield.norm_ratio_moment, order 4)
    layers: tuple[int, ...]  # the depths of hist_z
    hist_z: tuple[Histogram, ...]  # log10 |z_l| / sqrt(q_l) at each shown layer
    hist_ratio: Histogram  # log10 (A_L/A_0) / m1 over every (network, input)

    @property
    def L(self) -> int:
        return len(self.widths) - 1


def _legend(pt: PointResult, keys: list[str]) -> str:
    return setting_label(pt.params, keys) or str(pt.params.get("init", ""))


#: the initialisations as the text names them
INIT_NAMES = {
    "kaiming": "Kaiming",
    "kaiming_fan_out": "Kaiming fan_out",
    "xavier": "Xavier",
    "lecun": "LeCun",
    "torch_default": "torch_default",
    "orthogonal": "orthogonal",
    "gain": "gain",
}


def _per_layer_factor(values: np.ndarray) -> float | None:
    """The common ratio of consecutive values, None when they are not geometric."""
    values = np.asarray(values, dtype=float)
    if values.size < 2 or np.any(values <= 0):
        return None
    ratios = values[1:] / values[:-1]
    return float(ratios[0]) if np.allclose(ratios, ratios[0], rtol=1e-9, atol=0) else None


def _factor_words(factor: float, what: str, plural: bool) -> str:
    verb = {
        "keep": "keep" if plural else "keeps",
        "halve": "halve" if plural else "halves",
        "divide": "divide" if plural else "divides",
        "multiply": "multiply" if plural else "multiplies",
    }
    if math.isclose(factor, 1.0, rel_tol=1e-9):
        return f"{verb['keep']} {what} flat"
    if math.isclose(factor, 0.5, rel_tol=1e-9):
        return f"{verb['halve']} {what} per layer"
    if factor < 1:
        return f"{verb['divide']} {what} by {1 / factor:.3g} per layer"
    return f"{verb['multiply']} {what} by {factor:.3g} per layer"


def depth_statement(points: Sequence[PointResult]) -> str:
    """What the run's inits do to q and r, named only for the inits that ran: e.g. ``Kaiming
    keeps q and r flat, Xavier and LeCun halve q and r per layer``; empty when some profile is
    not geometric (unequal widths, a bias) or an init's points disagree."""
    factors: dict[str, tuple[float, float]] = {}
    for pt in points:
        data: SignalFigureData = pt.figure
        qf = _per_layer_factor(data.q_pred[1:]) if data.L > 1 else None
        rf = _per_layer_factor(data.r_pred[::-1])
        init = str(pt.params["init"])
        if init == "gain":
            init = f"gain {pt.params.get('gain'):g}"
        if qf is None or rf is None:
            return ""
        if init in factors and not np.allclose(factors[init], (qf, rf), rtol=1e-9):
            return ""
        factors.setdefault(init, (qf, rf))
    groups: dict[tuple[float, float], list[str]] = {}
    for init, pair in factors.items():
        key = next((k for k in groups if np.allclose(k, pair, rtol=1e-9)), pair)
        groups.setdefault(key, []).append(INIT_NAMES.get(init, init))
    parts = []
    for (qf, rf), names in groups.items():
        plural = len(names) > 1
        who = ", ".join(names[:-1]) + " and " + names[-1] if plural else names[0]
        if math.isclose(qf, rf, rel_tol=1e-9):
            parts.append(f"{who} {_factor_words(qf, 'q and r', plural)}")
        else:
            parts.append(
                f"{who} {_factor_words(qf, 'q', plural)} and {_factor_words(rf, 'r', plural)}"
            )
    return ", ".join(parts)


def network_text(points: Sequence[PointResult]) -> str:
    """``L = 12, widths 24 and 96``: the depths and widths that ran."""

    def listed(values: list) -> str:
        values = [str(v) for v in dict.fromkeys(values)]
        return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]

    depths = sorted({pt.figure.L for pt in points})
    text = f"L = {listed(depths)}"
    if all(len(set(pt.figure.widths)) == 1 for pt in points):
        widths = sorted({pt.figure.widths[0] for pt in points})
        return text + f", width{'s' if len(widths) > 1 else ''} {listed(widths)}"
    return text + ", widths " + listed([",".join(map(str, pt.figure.widths)) for pt in points])


#: the closest (in points) the depth figure draws the markers of two series at one layer; closer,
#: the series sharing a predicted line take turns by layer instead
MARKER_SEPARATION = 5.0
#: the width of a depth panel in points (about)
PANEL_POINTS = 320.0
#: dash and gap of coinciding prediction lines, in line widths: each colour shows in turn
_DASH = 3.0


def _prediction_lines(ax, curves: Sequence[tuple[np.ndarray, np.ndarray, str, str]]) -> list:
    """Draw each predicted curve ``(x, y, colour, name)`` once per colour; curves of different
    colours that coincide share the line in alternating dashes, so every colour stays visible.
    Returns the groups of names that share a line (two or more)."""
    unique: list[tuple[np.ndarray, np.ndarray, list[str], list[str]]] = []
    for x, y, colour, name in curves:
        for ux, uy, colours, names in unique:
            if ux.shape == x.shape and np.allclose(ux, x) and np.allclose(uy, y, rtol=1e-9):
                if colour not in colours:
                    colours.append(colour)
                    names.append(name)
                break
        else:
            unique.append((x, y, [colour], [name]))
    shared = []
    for x, y, colours, names in unique:
        n = len(colours)
        for k, colour in enumerate(colours):
            style = "-" if n == 1 else (k * _DASH, (_DASH, (n - 1) * _DASH))
            ax.plot(x, y, color=colour, ls=style, zorder=1.5, **THEORY_STYLE)
        if n > 1:
            shared.append(names)
    return shared


def _turns(points: Sequence[PointResult]) -> list[tuple[int, int]]:
    """For each point, ``(k, n)``: it is the k-th of n points whose predicted q and r coincide.
    All ``(0, 1)`` when the shifted markers are far enough apart to show every layer."""
    depth = max(pt.figure.L for pt in points) + 1
    separation = 0.3 * PANEL_POINTS / depth / max(len(points) - 1, 1)
    if separation >= MARKER_SEPARATION:
        return [(0, 1)] * len(points)
    groups: list[list[int]] = []
    for i, pt in enumerate(points):
        for group in groups:
            other = points[group[0]].figure
            if _same(other.q_pred, pt.figure.q_pred) and _same(other.r_pred, pt.figure.r_pred):
                group.append(i)
                break
        else:
            groups.append([i])
    turns = [(0, 1)] * len(points)
    for group in groups:
        for k, i in enumerate(group):
            turns[i] = (k, len(group))
    return turns


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-9, atol=0))


def _depth_panels(
    axes, pt: PointResult, j: int, n_points: int, style, shaded: bool, turn: tuple[int, int]
) -> tuple[bool, list]:
    """One point's simulated q and r (top) and their relative deviations (bottom); True once
    the tolerance is shaded, and the predicted curves to draw. ``turn = (k, n)``: on the top
    panels the point is the k-th of n series on one predicted line, and marks only every n-th
    layer from its k-th, so that each shows at layers of its own; the bottom panels show every
    layer."""
    data: SignalFigureData = pt.figure
    spread = 0.3 if n_points > 1 else 0.0
    shift = spread * (j / max(n_points - 1, 1) - 0.5)  # markers only: the lines stay put
    options = dict(color=style.color, fmt=style.marker, capsize=1.5, zorder=3)
    curves = []
    for col, (name, pred) in enumerate((("q", data.q_pred), ("r", data.r_pred))):
        est = pt.estimates[name]
        layers = np.asarray(est.index, dtype=float)
        top, bottom = axes[0, col], axes[1, col]
        curves.append((layers, pred, style.color, style.name))
        shown = (np.asarray(est.index) - turn[0]) % turn[1] == 0
        simulated_points(
            top,
            layers[shown] + shift,
            est.values[shown],
            bars=log_errorbars(est.values, est.se)[:, shown],
            ms=3.2,
            lw=0.9,
            **options,
        )
        tol = np.broadcast_to(np.asarray(pt.predictions[name].tolerance, float), pred.shape)
        if np.any(tol / pred > 1e-3) and not shaded:
            bottom.fill_between(layers, -tol / pred, tol / pred, color="0.5", alpha=0.15)
            shaded = True
        simulated_points(
            bottom, layers + shift, est.values / pred - 1.0, est.se / pred, ms=3, lw=0.8, **options
        )
    return shaded, curves


def _plain_log_ticks(ax) -> None:
    """On a log axis spanning less than two decades, label the ticks as plain numbers (``2.05``,
    ``0.3``, not ``2.05 × 10^0``, ``3 × 10^-1``); over more than one decade only the minor
    ticks at 2, 3 and 5 times a power of ten, so that the labels do not crowd."""
    from matplotlib.ticker import FuncFormatter

    low, high = sorted(ax.get_ylim())
    if not (low > 0 and high / low < 100):
        return
    wide = high / low > 10

    def minor(value: float, _) -> str:
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
        return "" if wide and round(mantissa) not in (2, 3, 5) else f"{value:.3g}"

    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def _shared_note(q_shared: list, r_shared: list) -> list[str]:
    """Legend lines naming the series whose predicted lines coincide."""

    def groups(shared: list) -> str:
        return "; ".join(" = ".join(names) for names in shared)

    if q_shared == r_shared:
        return [f"same prediction: {groups(q_shared)}"] if q_shared else []
    notes = []
    for what, shared in (("q", q_shared), ("r", r_shared)):
        if shared:
            notes.append(f"same {what} prediction: {groups(shared)}")
    return notes


def depth_figure(points: Sequence[PointResult]):
    """q_l and r_l on log axes (top) and their relative deviation from the recursion (bottom)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    styles, entries = series_styles(points, prefer=("init",))
    fig, axes = new_figure(ncols=2, nrows=2, width=6.0, height=3.9)
    shaded = False
    curves: list[list] = [[], []]
    turns = _turns(points)
    for j, (pt, style) in enumerate(zip(points, styles, strict=True)):
        shaded, (q_curve, r_curve) = _depth_panels(
            axes, pt, j, len(points), style, shaded, turns[j]
        )
        curves[0].append(q_curve)
        curves[1].append(r_curve)
    shared = [_prediction_lines(axes[0, col], curves[col]) for col in (0, 1)]
    titles = (
        r"forward: $q_l = E[\mathrm{mean}_i\, z_l[i]^2]$",
        r"backward: $r_l = E[\mathrm{mean}_i\, (\partial \ell/\partial h_l[i])^2]$",
    )
    for col, title in enumerate(titles):
        top, bottom = axes[0, col], axes[1, col]
        top.set_yscale("log")
        # a claim's markers at about a dozen layers: at every layer they would hide the points
        every = max(1, math.ceil((max(pt.figure.L for pt in points) + 1) / 12))
        draw_claims(top, points, ("q", "r")[col], markevery=every)
        finish_axes(top, xlabel="layer l", title=title, legend=False)
        _plain_log_ticks(top)
        bottom.axhline(0.0, color="k", lw=1.0)
        finish_axes(bottom, xlabel="layer l", legend=False)
        for ax in (top, bottom):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    moment = r"second moment ($\sigma_x = $" + f"{points[0].params['sigma_x']:g})"
    axes[0, 0].set_ylabel(moment)
    axes[0, 1].set_ylabel(r"second moment ($r_L = 1$)")
    for ax in axes[1]:
        ax.set_ylabel("simulated / recursion − 1  (±2 SE)")
    if not entries:
        marker = Line2D([], [], color="C0", marker="o", mfc="white", ls="none", ms=4)
        entries = [(marker, _legend(points[0], ["init"]))]
    entries = list(entries)
    thinned = "\n(above: series on one line\ntake turns by layer)" if max(turns)[1] > 1 else ""
    entries.append((errorbar_handle(axes[0, 1]), "simulated ±2 SE" + thinned))
    entries.append((Line2D([], [], color="0.3", **THEORY_STYLE), "mean-field recursion"))
    for note in _shared_note(*shared):
        dashed = Line2D([], [], color="0.3", ls=(0, (_DASH, _DASH)), **THEORY_STYLE)
        entries.append((dashed, "\n".join(textwrap.wrap(note + " (alternating dashes)", 26))))
    if shaded:
        entries.append((Patch(color="0.5", alpha=0.15), "dead-network\ntolerance of r"))
    # one legend for the four panels: where it covers no point, else beside them
    place_legend(axes[0, 1], *zip(*entries, strict=True))
    statement = depth_statement(points)
    suptitle_within(
        fig,
        f"Signal propagation through a deep ReLU MLP ({network_text(points)})"
        + (f": {statement}" if statement else "")
        + f"; {points[0].n_samples:,} networks × {points[0].params.get('inputs')} inputs per "
        "point",
    )
    return fig


#: at most this many points get a panel of activation histograms
ACTIVATION_PANELS = 6


def activations_figure(points: Sequence[PointResult]):
    """Histograms of log10 |z_l| at a few depths, one panel per point, against N(0, q_l)."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    shown = points[:ACTIVATION_PANELS]
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
        # ticks that do not depend on the panel's final size: the margins are measured once
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    dashed = (Line2D([], [], color="0.3", ls="--", lw=1.0), "N(0, predicted q_l)")
    same_layers = len({pt.figure.layers for pt in shown}) == 1
    # one legend for every panel when they show the same layers, beside the first row
    panels = [axes[0, ncols - 1]] if same_layers else list(axes.ravel()[: len(shown)])
    for ax in panels:
        handles, labels = ax.get_legend_handles_labels()
        entries = [*zip(handles, labels, strict=True), dashed]
        handles, labels = zip(*entries, strict=True)
        place_legend(
            ax,
            handles,
            labels,
            fontsize=6.5,
            title="layer (solid: simulated)",
            title_fontsize=6.5,
        )
    more = len(points) - len(shown)
    suptitle_within(
        fig,
        "Pre-activation magnitudes at a few depths against N(0, predicted q_l)"
        + f" ({network_text(shown)}; all units and inputs of one network per stack"
        + (f"; the first {len(shown)} of {len(points)} points)" if more else ")"),
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
    m4 = data.ratio_fourth * m1**4
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
    hr = mf.hanin_rolnick_second_moment(widths) * m1 * m1
    # predictions are vertical lines; the simulated values are points with their ±2 SE
    # intervals above the histogram, so neither hides the other where they agree
    if data.sigma_b == 0:
        ax.axvline(m1, color="C3", lw=1.3, ls="--", zorder=2, label=f"predicted mean {m1:.3g}")
    if "norm_ratio_second" in pt.predictions:
        ax.axvline(
            math.sqrt(hr),
            color="C3",
            ls="-.",
            lw=1.3,
            zorder=2,
            label=r"predicted $\sqrt{\prod(1+5/n_l)}$" + f" = {math.sqrt(hr):.3g}",
        )
    peak = dens.max() if dens.max() > 0 else 0.5
    est1, est2 = pt.estimates["norm_ratio"], pt.estimates["norm_ratio_second"]
    low1, high1 = est1.value - ERRORBAR_SE * est1.se, est1.value + ERRORBAR_SE * est1.se
    simulated_points(  # the values along x, above the histogram
        ax,
        [1.12 * peak],
        [est1.value],
        bars=[[est1.value - max(low1, 1e-300)], [high1 - est1.value]],
        horizontal=True,
        color="k",
        ms=5,
        zorder=4,
        label=f"simulated mean {est1.value:.3g} (±2 SE)",
    )
    root2 = math.sqrt(max(est2.value, 0))
    low2 = math.sqrt(max(est2.value - ERRORBAR_SE * est2.se, 0))
    high2 = math.sqrt(est2.value + ERRORBAR_SE * est2.se)
    simulated_points(
        ax,
        [1.3 * peak],
        [root2],
        bars=[[root2 - max(low2, 1e-300)], [high2 - root2]],
        horizontal=True,
        hollow=False,
        color="k",
        fmt="s",
        ms=5,
        zorder=4,
        label=rf"simulated $\sqrt{{E[(A_L/A_0)^2]}}$ = {root2:.3g} (±2 SE)",
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
    ax.set_ylim(0, 2.0 * peak)
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
        keep_clear=True,
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
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    equal = [pt for pt in points if len(set(pt.figure.widths)) == 1 and pt.figure.sigma_b == 0]
    widths = sorted({pt.figure.widths[0] for pt in equal})
    if len(widths) < 2:
        return None
    fig, axes = new_figure(width=7.4, height=4.4)
    ax = axes[0, 0]
    inits = list(dict.fromkeys(str(pt.params["init"]) for pt in equal))  # in run order
    for j, init in enumerate(inits):
        group = sorted(
            (pt for pt in equal if pt.params["init"] == init), key=lambda pt: pt.figure.widths[0]
        )
        xs = np.array([pt.figure.widths[0] for pt in group], dtype=float)
        offset = 1.0 + 0.025 * (j - (len(inits) - 1) / 2)
        for name, index, marker, shift, _ in _WIDTH_SERIES:
            rel, err = [], []
            for pt in group:
                est = pt.estimates[name]
                pred = pt.figure.r_pred if name == "r" else pt.figure.q_pred
                rel.append(est.values[index] / pred[index] - 1.0)
                err.append(est.se[index] / pred[index])
            simulated_points(
                ax,
                xs * offset * shift,
                rel,
                err,
                hollow=name == "q",
                fmt=marker,
                ms=4,
                capsize=2,
                lw=1.0,
                color=f"C{j % 10}",
                zorder=3,
            )
    L = equal[0].figure.L
    grid = np.arange(min(widths), max(widths) + 1)
    dead = np.array([dead_fraction(int(w), L) for w in grid])
    ax.plot(grid, -dead, "k-", lw=1.4)
    ax.fill_between(grid, -dead, dead, color="k", alpha=0.08)
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
        legend=False,
    )
    # init by colour, quantity by marker: len(inits) + 3 entries, not 3 per init
    entries: list[tuple] = [(Line2D([], [], ls="none"), "init (colour):")]
    for j, init in enumerate(inits):
        entries.append((Patch(color=f"C{j % 10}"), init))
    entries.append((Line2D([], [], ls="none"), "quantity (marker, ±2 SE):"))
    for name, _, marker, _, what in _WIDTH_SERIES:
        mfc = "white" if name == "q" else "0.3"
        entries.append((Line2D([], [], color="0.3", marker=marker, mfc=mfc, ls="none"), what))
    entries.append((Line2D([], [], color="k", lw=1.4), r"$-P(h_{L-1} = 0)$: dead network"))
    entries.append((Patch(color="k", alpha=0.08), "tolerance of the r check"))
    place_legend(ax, *zip(*entries, strict=True))
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
        "and the relative deviation of every layer. Error bars ±2 SE over networks; inits "
        "whose predictions coincide share one line in alternating dashes of their colours",
        depth_figure,
        quantities=("q", "r"),
    ),
    FigureSpec(
        "propagation_signal_activations",
        "Pre-activation magnitudes at a few depths against N(0, q_l), q_l from the recursion "
        "q_l = (c_l/2) q_{l−1} + σ_b²: the scale follows it, the shape broadens with depth at "
        "finite width (histograms over all units and inputs: no error bars)",
        activations_figure,
    ),
    FigureSpec(
        "propagation_signal_norm_ratio",
        "The law of A_L/A_0 (A_l = ‖h_l‖²/n_l): mean ∏ c_l/2 (1 for Kaiming) and "
        "E[(A_L/A_0)²] = ∏(1 + 5/n_l) exactly for Gaussian Kaiming weights (Hanin & Rolnick "
        "2018), not the large-width exp(5 Σ 1/n_l). Vertical lines: predictions; points above "
        "the histogram: the simulated mean and √E[(A_L/A_0)²] with ±2 SE intervals",
        norm_ratio_figure,
        quantities=("norm_ratio", "norm_ratio_second"),
    ),
    FigureSpec(
        "propagation_signal_r_vs_width",
        "The backward recursion at small width: r falls short only by the probability of a "
        "dead network, 1 − ∏_{k<L}(1 − 2^−n_k); q is exact at every width (error bars ±2 SE)",
        r_vs_width_figure,
    ),
)

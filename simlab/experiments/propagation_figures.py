"""Figures of ``simlab propagation``: depth profiles, activation laws, the norm ratio, r against
width, the correlation map, and back-propagation errors per layer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from simlab.experiments.base import PointResult
from simlab.plotting import SIM_STYLE, THEORY_STYLE, new_figure, save
from simlab.theory import meanfield as mf

_SHOWN = ("init", "width", "widths", "dist", "sigma_b", "sigma_x", "gain", "L", "rho0", "inputs")


def _varying(points: list[PointResult], keys=_SHOWN) -> list[str]:
    return [k for k in keys if len({str(pt.params.get(k)) for pt in points}) > 1]


def _label(pt: PointResult, keys: list[str]) -> str:
    parts = []
    for k in keys:
        v = pt.params.get(k)
        if k == "init":
            parts.append(str(v))
        elif isinstance(v, float):
            parts.append(f"{k}={v:g}")
        else:
            parts.append(f"{k}={v}")
    return ", ".join(parts) or str(pt.params.get("init", ""))


def _log_errorbars(values: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Asymmetric ±2 SE bars that stay positive on a log axis."""
    lower = np.minimum(2 * se, 0.95 * np.abs(values))
    return np.vstack([lower, 2 * se])


# --------------------------------------------------------------------------------------------
# signal
# --------------------------------------------------------------------------------------------


def render_signal(points: list[PointResult], folder: Path, formats: tuple[str, ...]) -> list[Path]:
    """Depth profiles, activation histograms, the norm ratio law, r against width."""
    paths = [*_depth_figure(points, folder, formats)]
    paths += _activation_figure(points, folder, formats)
    paths += _norm_ratio_figure(points, folder, formats)
    paths += _width_figure(points, folder, formats)
    return paths


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def _depth_figure(points, folder, formats):
    """q_l and r_l on log axes (top) and their relative deviation from the recursion (bottom)."""
    keys = _varying(points) or ["init"]
    fig, axes = new_figure(ncols=2, nrows=2, width=6.6, height=3.9)
    spread = 0.3 if len(points) > 1 else 0.0
    shaded = False
    for j, pt in enumerate(points):
        color = f"C{j % 10}"
        marker = _MARKERS[j % len(_MARKERS)]
        label = _label(pt, keys)
        shift = spread * (j / max(len(points) - 1, 1) - 0.5)  # inits sharing a line stay visible
        setup = pt.extras["setup"]
        for col, name in enumerate(("q", "r")):
            est = pt.estimates[name]
            pred = np.asarray(setup.q_pred if name == "q" else setup.r_pred)
            layers = np.asarray(est.index, dtype=float)
            top, bottom = axes[0, col], axes[1, col]
            top.plot(layers, pred, "-", color=color, **THEORY_STYLE)
            top.errorbar(
                layers + shift,
                est.values,
                yerr=_log_errorbars(est.values, est.se),
                color=color,
                mfc="white",
                fmt=marker,
                ms=3.2,
                capsize=1.5,
                lw=0.9,
                label=label,
            )
            tol = np.broadcast_to(np.asarray(pt.predictions[name].tolerance, float), pred.shape)
            if np.any(tol / pred > 1e-3) and not shaded:
                bottom.fill_between(layers, -tol / pred, tol / pred, color="0.5", alpha=0.15)
                shaded = True
            bottom.errorbar(
                layers + shift,
                est.values / pred - 1.0,
                yerr=2 * est.se / pred,
                color=color,
                mfc="white",
                fmt=marker,
                ms=3,
                capsize=1.5,
                lw=0.8,
                label=label,
            )
    n = points[0].n_samples
    B = points[0].params.get("inputs")
    titles = (
        r"forward: $q_l = E[\mathrm{mean}_i\, z_l[i]^2]$",
        r"backward: $r_l = E[\mathrm{mean}_i\, (\partial \ell/\partial h_l[i])^2]$",
    )
    for col, title in enumerate(titles):
        top, bottom = axes[0, col], axes[1, col]
        top.set_yscale("log")
        top.set_title(title)
        top.grid(alpha=0.3, which="major")
        bottom.axhline(0.0, color="k", lw=1.0)
        bottom.set_xlabel("layer l")
        for ax in (top, bottom):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        bottom.grid(alpha=0.3)
    axes[0, 0].set_ylabel(r"second moment ($\sigma_x = $" + f"{points[0].params['sigma_x']:g})")
    axes[1, 0].set_ylabel("simulated / recursion − 1  (±2 SE)")
    from matplotlib.lines import Line2D

    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="gray", **THEORY_STYLE))
    labels.append("mean-field recursion")
    axes[0, 0].legend(handles, labels, fontsize=7, loc="lower left", ncols=2)
    axes[1, 1].text(
        0.99,
        0.02,
        f"{n:,} networks × {B} inputs per point"
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
    return save(fig, folder, "propagation_signal_depth", formats)


def _activation_figure(points, folder, formats):
    shown = points[:6]
    keys = _varying(shown) or ["init"]
    ncols = min(3, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=4.6, height=3.5)
    for ax in axes.ravel()[len(shown) :]:
        ax.set_visible(False)
    for ax, pt in zip(axes.ravel(), shown, strict=False):
        setup = pt.extras["setup"]
        stats = pt.extras["stats"]
        for j, (layer, hist) in enumerate(zip(setup.layers, stats.hist_z, strict=True)):
            color = f"C{j}"
            shift = 0.5 * math.log10(setup.q_pred[layer - 1])
            edges = hist.edges + shift
            total = max(hist.total, 1)
            dens = hist.counts / (total * np.diff(edges))
            ax.stairs(dens, edges, color=color, lw=1.3, label=f"l = {layer}")
            grid = np.linspace(edges[0], edges[-1], 300)
            s = 10.0**grid / math.sqrt(setup.q_pred[layer - 1])
            gauss = 2 * np.exp(-0.5 * s * s) / math.sqrt(2 * math.pi) * s * math.log(10)
            ax.plot(grid, gauss, "--", color=color, lw=1.0, alpha=0.8)
        ax.set_title(_label(pt, keys), fontsize=9)
        ax.set_xlabel(r"$\log_{10} |z_l|$")
        ax.set_ylabel("density")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="layer (dashed: N(0, q_l))", title_fontsize=7)
    fig.suptitle(
        "Pre-activation magnitudes at a few depths (all units and inputs of one network per stack; "
        "dashed: N(0, predicted q_l))"
    )
    return save(fig, folder, "propagation_signal_activations", formats)


def _hr_points(points):
    """Points where the Hanin-Rolnick moment is predicted, at up to two distinct widths."""
    eligible = [pt for pt in points if "norm_ratio_second" in pt.predictions] or list(points)
    by_width: dict[tuple, PointResult] = {}
    for pt in eligible:
        by_width.setdefault(pt.extras["setup"].widths, pt)
    chosen = list(by_width.values())
    if len(chosen) > 2:
        chosen = [chosen[0], chosen[-1]]
    return chosen


def _norm_ratio_figure(points, folder, formats):
    chosen = _hr_points(points)
    fig, axes = new_figure(ncols=len(chosen), width=6.6, height=4.6)
    for ax, pt in zip(axes[0], chosen, strict=True):
        setup = pt.extras["setup"]
        hist = pt.extras["stats"].hist_ratio
        m1 = setup.m1
        x_edges = m1 * 10.0**hist.edges
        total = max(hist.total, 1)
        dens = hist.counts / (total * np.diff(hist.edges))
        ax.stairs(dens, x_edges, color="C0", lw=1.3, fill=True, alpha=0.25)
        ax.stairs(dens, x_edges, color="C0", lw=1.3, label="simulated (per network × input)")
        ax.set_xscale("log")
        est1 = pt.estimates["norm_ratio"]
        est2 = pt.estimates["norm_ratio_second"]
        ax.axvline(est1.value, color="C0", lw=1.4, label=f"simulated mean {est1.value:.3g}")
        ax.axvline(
            math.sqrt(max(est2.value, 0)),
            color="C0",
            ls=":",
            lw=1.6,
            label=rf"simulated $\sqrt{{E[(A_L/A_0)^2]}}$ = {math.sqrt(max(est2.value, 0)):.3g}",
        )
        if setup.sigma_b == 0:
            ax.axvline(m1, color="C3", lw=1.4, ls="--", label=f"predicted mean {m1:.3g}")
        widths = setup.widths
        hr = mf.hanin_rolnick_second_moment(widths) * m1 * m1
        if "norm_ratio_second" in pt.predictions:
            ax.axvline(
                math.sqrt(hr),
                color="C3",
                ls="-.",
                lw=1.6,
                label=r"predicted $\sqrt{\prod(1+5/n_l)}$" + f" = {math.sqrt(hr):.3g}",
            )
        expo = math.exp(5 * sum(1.0 / n for n in widths[1:])) * m1 * m1
        m4 = mf.norm_ratio_moment(widths, 4) * m1**4
        dead = hist.below / total
        text = (
            f"E[(A_L/A_0)^2]: {est2.value:.4g} ± {est2.se:.2g} (simulated)\n"
            f"prod(1+5/n_l) = {hr:.4g}"
            + ("" if "norm_ratio_second" in pt.predictions else " (n/a)")
            + f";  exp(5 sum 1/n_l) = {expo:.4g}\n"
            f"sd of (A_L/A_0)^2 per input: {math.sqrt(max(m4 - hr * hr, 0)):.3g} (theory)"
        )
        if dead:
            text += f"\nA_L/A_0 < {x_edges[0]:.2g} (or 0: dead) in {dead:.2%} (not shown)"
        ax.text(
            0.02,
            0.97,
            text,
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
        ax.set_xlabel(r"$A_L / A_0$  ($A_l = \|h_l\|^2 / n_l$, log axis)")
        ax.set_ylabel(r"density per decade")
        label = (
            f"width {widths[1]}"
            if len(set(widths)) == 1
            else "widths " + ",".join(map(str, widths))
        )
        ax.set_title(f"{pt.params['init']}, {label}, L = {len(widths) - 1}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="upper right")
    fig.suptitle("Finite width: A_L/A_0 is broad and skewed (Hanin & Rolnick 2018)")
    return save(fig, folder, "propagation_signal_norm_ratio", formats)


def _width_figure(points, folder, formats):
    """r's deviation from the recursion against width (only when the run has several widths)."""
    equal = [
        pt
        for pt in points
        if len(set(pt.extras["setup"].widths)) == 1 and pt.extras["setup"].sigma_b == 0
    ]
    widths = sorted({pt.extras["setup"].widths[0] for pt in equal})
    if len(widths) < 2:
        return []
    fig, axes = new_figure(width=6.4, height=4.4)
    ax = axes[0, 0]
    inits = sorted({pt.params["init"] for pt in equal})
    for j, init in enumerate(inits):
        group = sorted(
            (pt for pt in equal if pt.params["init"] == init),
            key=lambda pt: pt.extras["setup"].widths[0],
        )
        xs = np.array([pt.extras["setup"].widths[0] for pt in group], dtype=float)
        offset = 1.0 + 0.025 * (j - (len(inits) - 1) / 2)
        for name, index, marker, shift in (
            ("r", -2, "o", 0.97),
            ("r", 0, "s", 1.0),
            ("q", -1, "^", 1.03),
        ):
            rel, err = [], []
            for pt in group:
                est = pt.estimates[name]
                pred = pt.extras["setup"].r_pred if name == "r" else pt.extras["setup"].q_pred
                rel.append(est.values[index] / pred[index] - 1.0)
                err.append(2 * est.se[index] / pred[index])
            what = {
                ("r", -2): r"$r_{L-1}$",
                ("r", 0): r"$r_0$",
                ("q", -1): r"$q_L$ (exact)",
            }[(name, index)]
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
    L = equal[0].extras["setup"].L
    grid = np.arange(min(widths), max(widths) + 1)
    dead = np.array([mf_dead(int(w), L) for w in grid])
    ax.plot(grid, -dead, "k-", lw=1.4, label=r"$-P(h_{L-1} = 0)$: dead network")
    ax.fill_between(grid, -dead, dead, color="k", alpha=0.08, label="tolerance of the r check")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(widths)
    ax.set_xticks([], minor=True)
    ax.set_xticklabels([str(w) for w in widths])
    ax.set_xlabel("width n (every layer)")
    ax.set_ylabel("simulated / predicted − 1  (±2 SE)")
    ax.set_title(
        f"Backward recursion at small width (L = {L}, zero bias):\n"
        "r falls short only by the dead-network probability; q is exact",
        fontsize=9,
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6.5, ncols=2)
    return save(fig, folder, "propagation_signal_r_vs_width", formats)


def mf_dead(width: int, L: int) -> float:
    """P(h_{L-1} = 0) at equal widths, zero bias."""
    return 1.0 - (1.0 - 2.0 ** (-width)) ** max(L - 1, 0)


# --------------------------------------------------------------------------------------------
# correlation
# --------------------------------------------------------------------------------------------


def render_correlation(
    points: list[PointResult], folder: Path, formats: tuple[str, ...]
) -> list[Path]:
    """The arc-cosine map with its cobweb and the simulated iterates; rho_l and 1 - rho_l."""
    keys = _varying(points) or ["rho0"]
    fig, axes = new_figure(ncols=3, width=5.0, height=4.4)
    ax_map, ax_depth, ax_tail = axes[0]
    grid = np.linspace(-1, 1, 400)
    ax_map.plot(grid, mf.arccos_map(grid), "k-", lw=1.6, label=r"$f(\rho)$ (arc-cosine map)")
    ax_map.plot(grid, grid, color="gray", lw=1.0, ls=":", label="identity")
    for j, pt in enumerate(points):
        color = f"C{j % 10}"
        est = pt.extras["estimate"]
        pred = pt.extras["prediction"]
        rho0 = float(pt.params["rho0"])
        L = len(pred)
        # cobweb of the predicted iterates
        xs, ys = [rho0], [rho0]
        prev = rho0
        for v in pred:
            xs += [prev, v]
            ys += [v, v]
            prev = v
        ax_map.plot(xs, ys, color=color, lw=0.8, alpha=0.7)
        sim = np.asarray(est.values)
        se = est.se
        before = np.concatenate([[rho0], sim[:-1]])
        label = _label(pt, keys)
        ax_map.errorbar(
            before,
            sim,
            yerr=2 * se,
            fmt="o",
            ms=3.5,
            capsize=2,
            color=color,
            mfc="white",
            lw=1.0,
            label=f"simulated iterates, {label}",
        )
        layers = np.arange(1, L + 1)
        tol = pt.extras["tolerance"]
        ax_depth.plot(layers, pred, "-", color=color, **THEORY_STYLE)
        ax_depth.fill_between(layers, pred - tol, pred + tol, color=color, alpha=0.12)
        ax_depth.errorbar(
            layers, sim, yerr=2 * se, color=color, mfc="white", label=label, **SIM_STYLE
        )
        comp = mf.iterate_arccos(rho0, L, complement=True)[1:]
        ax_tail.plot(layers, comp, "-", color=color, **THEORY_STYLE)
        ax_tail.errorbar(
            layers,
            1 - sim,
            yerr=_log_errorbars(1 - sim, se),
            color=color,
            mfc="white",
            label=label,
            fmt="o",
            ms=3.2,
            capsize=2,
            lw=1.0,
        )
    L = max(len(pt.extras["prediction"]) for pt in points)
    layers = np.arange(1, L + 1)
    ax_tail.plot(
        layers,
        mf.arccos_tail(layers),
        "k--",
        lw=1.2,
        label=r"tail $9\pi^2/(2l^2)$: slope −2 (overestimates by ~$3\ln l/l$)",
    )
    lows = [float(np.min(1 - pt.extras["estimate"].values)) for pt in points]
    highs = [float(np.max(1 - pt.extras["estimate"].values)) for pt in points]
    ax_tail.set_ylim(max(min(lows), 1e-6) / 2, min(max(highs) * 3, 2.5))
    _zoom_inset(ax_map, points)
    ax_map.set_xlim(-1.02, 1.02)
    ax_map.set_ylim(-0.05, 1.02)
    ax_map.set_xlabel(r"$\rho_{l-1}$")
    ax_map.set_ylabel(r"$\rho_l$")
    ax_map.set_title("the map and its iterates (cobweb: theory)")
    ax_map.legend(fontsize=6.5, loc="lower right")
    ax_depth.set_xlabel("layer l")
    ax_depth.set_ylabel(r"$\rho_l$ = cosine of $h_l(x_a)$, $h_l(x_b)$")
    ax_depth.set_title("per layer: iterated map (line, ±tolerance band)")
    ax_depth.legend(fontsize=7, title="simulated ±2 SE", title_fontsize=7)
    ax_tail.set_xscale("log")
    ax_tail.set_yscale("log")
    ax_tail.set_xlabel("layer l")
    ax_tail.set_ylabel(r"$1 - \rho_l$")
    ax_tail.set_title("approach to 1 (log-log)")
    ax_tail.legend(fontsize=6.5, loc="lower left")
    for ax in axes[0]:
        ax.grid(alpha=0.3, which="both")
    pt = points[0]
    widths = pt.extras["widths"]
    wtext = f"width {widths[1]}" if len(set(widths)) == 1 else f"widths {pt.params['widths']}"
    fig.suptitle(
        f"Correlation of two inputs through the same ReLU network ({pt.params['init']}, "
        f"{wtext}; {pt.n_samples:,} networks × {pt.params['inputs']} pairs per point)"
    )
    return save(fig, folder, "propagation_correlation", formats)


def _zoom_inset(ax, points):
    """An inset of the map near its fixed point 1, where the iterates crowd."""
    lo = min(float(np.min(pt.extras["estimate"].values)) for pt in points)
    lo = max(lo, 0.85) if lo < 0.999 else 0.99
    inset = ax.inset_axes([0.09, 0.5, 0.4, 0.42])
    grid = np.linspace(lo, 1.0, 200)
    inset.plot(grid, mf.arccos_map(grid), "k-", lw=1.2)
    inset.plot(grid, grid, color="gray", lw=0.8, ls=":")
    for j, pt in enumerate(points):
        est = pt.extras["estimate"]
        sim = np.asarray(est.values)
        before = np.concatenate([[float(pt.params["rho0"])], sim[:-1]])
        keep = before >= lo
        inset.errorbar(
            before[keep],
            sim[keep],
            yerr=2 * est.se[keep],
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


# --------------------------------------------------------------------------------------------
# grads
# --------------------------------------------------------------------------------------------

_GRAD_LABELS = {
    "d_hL": r"$\partial\ell/\partial h_L$",
    "delta": r"$\delta_l$",
    "d_W": r"$\partial\ell/\partial W_l$",
    "d_b": r"$\partial\ell/\partial b_l$",
    "d_h": r"$\partial\ell/\partial h_{l-1}$ (at l-1)",
}


def render_grads(points: list[PointResult], folder: Path, formats: tuple[str, ...]) -> list[Path]:
    """Relative error of back-propagation against finite differences, per layer."""
    keys = _varying(points, ("activation", "widths", "width", "sigma_b", "init")) or ["activation"]
    ncols = min(len(points), 2 if len(points) == 4 else 3)
    nrows = math.ceil(len(points) / ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=5.2, height=3.6)
    for ax in axes.ravel()[len(points) :]:
        ax.set_visible(False)
    floor_plot = 1e-17
    for ax, pt in zip(axes.ravel(), points, strict=False):
        st = pt.extras["stats"]
        tol = float(pt.params["tolerance"])
        offsets = np.linspace(-0.24, 0.24, 5)
        for j, q in enumerate(("d_hL", "delta", "d_W", "d_b", "d_h")):
            mask = st.valid[q]
            a, f = st.analytic[q][mask], st.numeric[q][mask]
            floor = st.rounding[q][mask] / tol
            rel = np.abs(a - f) / np.maximum(np.maximum(np.abs(a), np.abs(f)), floor)
            layer = st.layer[q][mask]
            levels = np.unique(st.layer[q])
            worst, median = [], []
            for lv in levels:
                sel = rel[layer == lv]
                worst.append(sel.max() if sel.size else np.nan)
                median.append(np.median(sel) if sel.size else np.nan)
            x = levels + offsets[j]
            ax.plot(
                x,
                np.maximum(worst, floor_plot),
                "v",
                color=f"C{j}",
                ms=5,
                label=f"{_GRAD_LABELS[q]}",
            )
            ax.plot(x, np.maximum(median, floor_plot), "o", color=f"C{j}", ms=3, alpha=0.6)
        ax.axhline(tol, color="C3", ls="--", lw=1.2, label=f"tolerance {tol:g}")
        ax.axhline(floor_plot, color="0.6", lw=0.8)
        ax.set_xticks(np.arange(0, int(st.layer["d_hL"].max()) + 1))
        ax.set_yscale("log")
        ax.set_ylim(floor_plot / 2, max(1.0, tol * 10))
        ax.set_xlabel("layer")
        ax.set_ylabel("relative error vs finite differences")
        ax.set_title(_label(pt, keys), fontsize=9)
        ax.grid(alpha=0.3, which="major")
    axes.ravel()[0].legend(
        fontsize=6.5,
        title="▼ max  ● median (exact 0 drawn at 1e-17)",
        title_fontsize=6.5,
        loc="upper right",
        ncols=2,
    )
    pt = points[0]
    fig.suptitle(
        f"Back-propagation vs central differences (step {pt.params['eps']:g}, float64; "
        f"{pt.n_samples} random instances per panel; kinks skipped)"
    )
    return save(fig, folder, "propagation_grads_errors", formats)

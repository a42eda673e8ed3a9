"""The three figures of ``simlab dropout``: moments against the sweep, laws, convergence."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simlab.experiments.base import PointResult
from simlab.plotting import SIM_STYLE, THEORY_STYLE, new_figure, save
from simlab.theory.relu import dropout_moments, relu_law

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


def _swept(points: list[PointResult]) -> str:
    """The parameter the sweep varies (p when it varies)."""
    varying = [k for k in points[0].params if len({str(pt.params[k]) for pt in points}) > 1]
    if "p" in varying or not varying:
        return "p"
    return varying[0]


def render(points: list[PointResult], folder: Path, formats: tuple[str, ...]) -> list[Path]:
    """Write moments, laws and convergence figures; return the paths."""
    return [
        *_moments_figure(points, folder, formats),
        *_laws_figure(points, folder, formats),
        *_convergence_figure(points, folder, formats),
    ]


def _moments_figure(points, folder, formats):
    axis = _swept(points)
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
        s = base.extras["law_s"]
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
            if smooth is not None:
                ax.plot(
                    smooth[0],
                    [d[name] for d in smooth[1]],
                    color=color,
                    **THEORY_STYLE,
                    label=f"{_LABELS[name]} theory",
                )
            else:
                ax.plot(
                    xs[order], pred, color=color, **THEORY_STYLE, label=f"{_LABELS[name]} theory"
                )
            ax.errorbar(
                xs[order],
                est,
                yerr=2 * se,
                color=color,
                mfc="white",
                **SIM_STYLE,
                label=f"{_LABELS[name]} simulated ±2 SE",
            )
        ax.set_title(title)
        ax.set_xlabel(axis if axis != "p" else "drop probability p")
        ax.set_ylabel("moment")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
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
            yerr=2 * se / np.abs(pred),
            color=f"C{i}",
            **SIM_STYLE,
            label=_LABELS[name],
        )
    ax.axhline(0.0, color="k", lw=1)
    ax.set_title("relative deviation from theory (±2 SE)")
    ax.set_xlabel(axis if axis != "p" else "drop probability p")
    ax.set_ylabel("(simulated − predicted) / predicted")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=2)
    n = points[0].n_samples
    fig.suptitle(
        f"ReLU moments before and after dropout ({n:,} samples × "
        f"{points[0].params['M']} units per point)"
    )
    return save(fig, folder, "dropout_moments", formats)


def _pick_point(points: list[PointResult]) -> PointResult:
    """The point whose p is closest to 0.5 (a typical setting) for single-point figures."""
    return min(points, key=lambda pt: abs(float(pt.params["p"]) - 0.5))


def _laws_figure(points, folder, formats):
    pt = _pick_point(points)
    stats = pt.extras["stats"]
    s, q = pt.extras["law_s"], pt.extras["q"]
    mu, rescale = pt.params["bias"], pt.params["rescale"]
    fig, axes = new_figure(ncols=2)
    panels = (
        (stats.hist_before, relu_law(mu, s), "h = relu(z)", "before dropout"),
        (
            stats.hist_after,
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
        ax.errorbar(centers, dens, yerr=2 * dens_se, fmt="none", ecolor="C0", alpha=0.6)
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
        ax.set_xlabel(xlabel)
        ax.set_ylabel("density  (bar at 0: probability)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"Law of a unit: point mass at 0 plus a (scaled) normal tail "
        f"({stats.hist_before.total:,} unit values)"
    )
    return save(fig, folder, "dropout_laws", formats)


def _convergence_figure(points, folder, formats):
    from simlab.experiments.dropout import QUANTITIES

    pt = _pick_point(points)
    trace = pt.extras["trace"]
    ns = np.array([t[0] for t in trace], dtype=float)
    fig, axes = new_figure()
    ax = axes[0, 0]
    for i, name in enumerate(QUANTITIES):
        if name not in ("mean_before", "var_before", "var_after"):
            continue
        pred = float(pt.predictions[name].value)
        err = np.array([abs(t[1][i] - pred) for t in trace])
        se = np.array([t[2][i] for t in trace])
        color = f"C{i}"
        ax.loglog(
            ns, np.maximum(err, 1e-300), ".", color=color, ms=4, label=f"|{_LABELS[name]} − theory|"
        )
        ref = se[-1] * np.sqrt(ns[-1] / ns)
        ax.loglog(
            ns, ref, "-", color=color, lw=1.2, alpha=0.8, label=f"SE ∝ 1/√n for {_LABELS[name]}"
        )
    ax.set_xlabel("samples n")
    ax.set_ylabel("absolute error")
    ax.set_title(f"Convergence at p = {pt.params['p']:g}: errors fall like 1/√n")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return save(fig, folder, "dropout_convergence", formats)

"""The figure of ``simlab propagation grads``: back-propagation's error against finite
differences, per layer and quantity."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from simlab.figure_layout import new_figure
from simlab.figure_legends import place_legend
from simlab.figures import FigureSpec
from simlab.plotting import finish_axes, setting_label, swept_parameters

if TYPE_CHECKING:
    from simlab.experiments.base import PointResult

GRAD_QUANTITIES = ("d_hL", "delta", "d_W", "d_b", "d_h")


class QuantityErrors(NamedTuple):
    """One quantity's entries over every instance of a point (flat, in instance order)."""

    analytic: np.ndarray  # back-propagation
    numeric: np.ndarray  # finite differences (NaN where not computed)
    valid: np.ndarray  # checked: computed, no ReLU kink crossed
    layer: np.ndarray  # the layer each entry belongs to
    rounding: np.ndarray  # the finite differences' rounding bound


@dataclass(frozen=True)
class GradsFigureData:
    """What one point of ``simlab propagation grads`` contributes to its figure."""

    tolerance: float
    errors: Mapping[str, QuantityErrors]


_LABELS = {
    "d_hL": r"$\partial\ell/\partial h_L$",
    "delta": r"$\delta_l$",
    "d_W": r"$\partial\ell/\partial W_l$",
    "d_b": r"$\partial\ell/\partial b_l$",
    "d_h": r"$\partial\ell/\partial h_{l-1}$ (at l-1)",
}
_FLOOR = 1e-17  # exact zeros are drawn here


def _worst_and_median(e: QuantityErrors, tol: float) -> tuple[np.ndarray, list, list]:
    """Per layer, the largest and the median relative error of the checked entries."""
    mask = e.valid
    a, f = e.analytic[mask], e.numeric[mask]
    floor = e.rounding[mask] / tol
    rel = np.abs(a - f) / np.maximum(np.maximum(np.abs(a), np.abs(f)), floor)
    layer = e.layer[mask]
    levels = np.unique(e.layer)
    worst, median = [], []
    for lv in levels:
        sel = rel[layer == lv]
        worst.append(sel.max() if sel.size else np.nan)
        median.append(np.median(sel) if sel.size else np.nan)
    return levels, worst, median


def errors_figure(points: Sequence[PointResult]):
    """Relative error of back-propagation against finite differences, per layer."""
    keys = [
        k for k in swept_parameters(points) if k in ("activation", "widths", "width", "sigma_b")
    ] or ["activation"]
    ncols = min(len(points), 2 if len(points) == 4 else 3)
    nrows = math.ceil(len(points) / ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=5.2, height=3.6)
    for ax in axes.ravel()[len(points) :]:
        ax.set_visible(False)
    offsets = np.linspace(-0.24, 0.24, 5)
    for ax, pt in zip(axes.ravel(), points, strict=False):
        data: GradsFigureData = pt.figure
        tol = data.tolerance
        for j, q in enumerate(GRAD_QUANTITIES):
            levels, worst, median = _worst_and_median(data.errors[q], tol)
            x = levels + offsets[j]
            ax.plot(x, np.maximum(worst, _FLOOR), "v", color=f"C{j}", ms=5, label=_LABELS[q])
            ax.plot(x, np.maximum(median, _FLOOR), "o", color=f"C{j}", ms=3, alpha=0.6)
        ax.axhline(tol, color="C3", ls="--", lw=1.2, label=f"tolerance {tol:g}")
        ax.axhline(_FLOOR, color="0.6", lw=0.8)
        ax.set_xticks(np.arange(0, int(data.errors["d_hL"].layer.max()) + 1))
        ax.set_yscale("log")
        ax.set_ylim(_FLOOR / 2, max(1.0, tol * 10))
        finish_axes(
            ax,
            xlabel="layer",
            ylabel="relative error vs finite differences",
            legend=False,
        )
        ax.set_title(setting_label(pt.params, keys), fontsize=9)
    place_legend(
        axes.ravel()[0],
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
    return fig


FIGURES = (
    FigureSpec(
        "propagation_grads_errors",
        "Back-propagation (dl/dh_L = ybar − y, δ_l = σ'(z_l) dl/dh_l, dl/dW_l = δ_l h_{l−1}ᵀ, "
        "dl/db_l = δ_l, dl/dh_{l−1} = W_lᵀ δ_l) against central finite differences: the "
        "relative error of every entry, per layer, stays below the tolerance (the largest and "
        "the median over instances: exact comparisons, no error bars)",
        errors_figure,
    ),
)

"""The figure of ``simlab batchnorm grads``: relative errors of the backward against finite
differences, beside wrong formulas."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simlab.figure_layout import new_figure
from simlab.figures import FigureSpec
from simlab.plotting import finish_axes, sweep_summary, wrap_to_width
from simlab.theory.bn_grads import GRAD_QUANTITIES

if TYPE_CHECKING:
    from simlab.experiments.base import PointResult


@dataclass(frozen=True)
class GradsFigureData:
    """What one point of ``simlab batchnorm grads`` contributes to its figure."""

    rel_errors: Mapping[str, np.ndarray]  # analytic vs finite differences, entries not skipped
    skipped: Mapping[str, float]  # fraction of entries skipped (stencil across the ReLU kink)
    wrong: Mapping[str, tuple[str, np.ndarray]]  # wrong formula -> (quantity, relative errors)
    tol: float  # the finite differences' relative tolerance


def grad_errors_figure(points: Sequence[PointResult]):
    fig, axes = new_figure(ncols=3, nrows=2, width=4.4, height=3.3)
    tol = points[0].figure.tol
    lo = -17.0
    bins = np.linspace(lo - 0.5, 1.0, 75)
    for ax, q in zip(axes.ravel(), GRAD_QUANTITIES, strict=True):
        errors = np.concatenate([pt.figure.rel_errors[q] for pt in points])
        finite = errors[np.isfinite(errors)]
        logs = np.log10(np.maximum(finite, 10.0**lo))
        # one filled outline per histogram, not a rectangle per bin: it looks the same and
        # draws in a fraction of the time (75 bins x 6 panels)
        ax.stairs(
            np.histogram(logs, bins)[0],
            bins,
            fill=True,
            color="C0",
            alpha=0.75,
            label="analytic backward vs FD",
        )
        for label, (wq, _) in points[0].figure.wrong.items():
            if wq != q:
                continue
            allw = np.concatenate([pt.figure.wrong[label][1] for pt in points])
            allw = allw[np.isfinite(allw)]
            ax.stairs(
                np.histogram(np.log10(np.maximum(allw, 10.0**lo)), bins)[0],
                bins,
                color="C3",
                lw=1.5,
                label=f"wrong: {label}",
            )
        ax.axvline(math.log10(tol), color="k", ls="--", lw=1.2, label=f"tolerance {tol:.1e}")
        skipped = np.mean([pt.figure.skipped[q] for pt in points])
        worst = float(finite.max()) if finite.size else float("nan")
        ax.set_title(f"{q}: max {worst:.1e}, {skipped:.1%} skipped (kink)", fontsize=9)
        ax.set_yscale("log")
        ax.set_ylim(0.5, ax.get_ylim()[1] * 60)  # head room for the legend
        finish_axes(
            ax,
            xlabel="log10 relative error (left bar: exactly 0)",
            ylabel="entries",
            legend_size=6,
            loc="upper left",
            keep_clear=True,
        )
    # the sweep as each parameter's values, not every setting spelled out (which ran off the
    # canvas in the course run); wrapped to the figure's width all the same
    sweep = sweep_summary(points)
    over = f" over {sweep} ({len(points)} settings)" if sweep else ""
    title = (
        f"Backward pass against central finite differences (float64, step 1e-5){over}; "
        f"{sum(pt.n_samples for pt in points):,} instances"
    )
    fig.suptitle(wrap_to_width(title, fig.get_figwidth() - 0.5, 10), fontsize=10)
    return fig


FIGURES = (
    FigureSpec(
        "batchnorm_grad_errors",
        "The analytic backward of batch norm + ReLU against central finite differences "
        "(float64, step 1e-5): with D = G·1[Ŷ > 0], s = (v+ε)^(−1/2), "
        "dl/dY = (γs/B)(B·D − Σᵢ D − x̂ Σᵢ D x̂) and dŶᵢⱼ/dYᵢⱼ = γs(1 − 1/B − x̂²/B) "
        "agree to the finite-difference tolerance; wrong formulas err by O(1). No error bars: "
        "every entry's error is counted in the histograms",
        grad_errors_figure,
    ),
)

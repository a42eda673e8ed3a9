"""Shared figure habits: the Agg back end, one style, and the drawings every family repeats.

matplotlib is imported on first use, so importing a figures module (to read its captions) costs
nothing; only drawing pays for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SIM_STYLE = dict(fmt="o", ms=4, capsize=3, lw=1.2)  # simulated points with error bars
THEORY_STYLE = dict(lw=1.6, alpha=0.85)  # analytic curves
#: error bars are drawn at +-ERRORBAR_SE standard errors (about 95% for a normal estimate)
ERRORBAR_SE = 2.0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 5.2, height: float = 3.8):
    """A figure with ``nrows x ncols`` axes, sized per panel."""
    fig, axes = _pyplot().subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    return fig, axes


def save(fig: Any, folder: Path, stem: str, formats: tuple[str, ...]) -> list[Path]:
    """Save ``fig`` as ``folder/stem.<fmt>`` for each format and close it."""
    paths = []
    for fmt in formats:
        path = folder / f"{stem}.{fmt}"
        fig.savefig(path, dpi=130 if fmt == "png" else None)
        paths.append(path)
    _pyplot().close(fig)
    return paths


def simulated_vs_theory(
    ax: Any,
    x: np.ndarray,
    estimate: np.ndarray,
    se: np.ndarray,
    predicted: np.ndarray | None = None,
    *,
    color: str = "C0",
    label: str = "",
    theory_x: np.ndarray | None = None,
    offset: float = 0.0,
) -> None:
    """Simulated points with +-2 SE bars, and the analytic curve under them.

    ``predicted`` is drawn at ``theory_x`` (a smooth grid) when given, else at ``x``.
    """
    if predicted is not None:
        ax.plot(
            x if theory_x is None else theory_x,
            predicted,
            color=color,
            **THEORY_STYLE,
            label=f"{label} theory".strip(),
        )
    ax.errorbar(
        np.asarray(x) + offset,
        estimate,
        yerr=ERRORBAR_SE * np.asarray(se),
        color=color,
        mfc="white",
        **SIM_STYLE,
        label=f"{label} simulated ±2 SE".strip(),
    )


def finish_axes(
    ax: Any,
    *,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    legend: bool = True,
    legend_size: int = 7,
    which: str = "major",
    **legend_options: Any,
) -> None:
    """Labels, a light grid and a legend: the styling every panel shares."""
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which=which)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=legend_size, **legend_options)


def swept_parameters(points: Sequence[Any]) -> list[str]:
    """The parameters whose value differs between the points, in declaration order."""
    if not points:
        return []
    return [k for k in points[0].params if len({str(pt.params[k]) for pt in points}) > 1]


def sweep_axis(points: Sequence[Any], prefer: str) -> str:
    """The parameter to put on the x axis: ``prefer`` when it varies (or nothing does)."""
    varying = swept_parameters(points)
    if prefer in varying or not varying:
        return prefer
    return varying[0]


def setting_label(params: Mapping[str, Any], names: Sequence[str]) -> str:
    """``"M = 50, p = 0.3"``: the named parameters of a point, for a legend or a title."""
    parts = []
    for name in names:
        value = params[name]
        parts.append(f"{name} = {value:g}" if isinstance(value, float) else f"{name} = {value}")
    return ", ".join(parts)

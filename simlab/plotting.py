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


def new_figure(
    ncols: int = 1,
    nrows: int = 1,
    width: float = 5.2,
    height: float = 3.8,
    *,
    layout: str | None = None,
):
    """A figure with ``nrows x ncols`` axes, sized per panel.

    Its margins are fitted to what the panels hold when it is saved (:func:`fit_margins`): one
    measurement of each panel instead of constrained layout's passes, which cost more than
    drawing the figure. ``layout="constrained"`` keeps matplotlib's engine, for a figure whose
    colorbars steal room from several panels.
    """
    fig, axes = _pyplot().subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout=layout
    )
    if layout is None:
        _guess_margins(fig, nrows, ncols)
    return fig, axes


#: padding around each panel and at the figure's edge, in inches (constrained layout's default)
PAD = 3 / 72
#: room between panels as a fraction of the figure (constrained layout's wspace and hspace)
SPACE = 0.02
#: the margins most panels need (inches): ticks and a label left and below, a title above
_GUESS = dict(left=0.75, right=0.2, bottom=0.6, top=0.4, wgap=0.9, hgap=0.95)


def _guess_margins(fig: Any, nrows: int, ncols: int) -> None:
    """Start near the fitted margins, so that the tick locators see about the final panel size."""
    width, height = fig.get_size_inches()
    g = _GUESS
    panel_w = (width - g["left"] - g["right"] - (ncols - 1) * g["wgap"]) / ncols
    panel_h = (height - g["bottom"] - g["top"] - (nrows - 1) * g["hgap"]) / nrows
    fig.subplots_adjust(
        left=g["left"] / width,
        right=1 - g["right"] / width,
        bottom=g["bottom"] / height,
        top=1 - g["top"] / height,
        wspace=g["wgap"] / max(panel_w, 0.5),
        hspace=g["hgap"] / max(panel_h, 0.5),
    )


def fit_margins(fig: Any, dpi: float) -> None:
    """Set the subplot margins to what the panels' labels, titles and legends need.

    Each panel's tight box (tick labels, axis labels, title, legend, insets) is measured once
    at the saving ``dpi``; the outer margins take the largest overhang of the panels on that
    edge, each gap between columns (rows) the largest overhang either side of it, plus
    constrained layout's padding; a suptitle gets its height above the top row. The tick
    locators see the final panel size from the start (:func:`_guess_margins`), so the one
    measurement holds.
    """
    panels = [ax for ax in fig.axes if ax.get_subplotspec() is not None and ax.get_visible()]
    if not panels:
        return
    fig.set_dpi(dpi)
    renderer = fig.canvas.get_renderer()
    grid = panels[0].get_subplotspec().get_gridspec()
    nrows, ncols = grid.get_geometry()
    # overhang of each panel's content beyond its axes box, in inches: (left, right, bottom, top)
    left, right = [0.0] * ncols, [0.0] * ncols
    bottom, top = [0.0] * nrows, [0.0] * nrows
    for ax in panels:
        box = ax.get_tightbbox(renderer, for_layout_only=True)
        if box is None:
            continue
        frame = ax.get_window_extent(renderer)
        spec = ax.get_subplotspec()
        cols, rows = spec.colspan, spec.rowspan
        left[cols.start] = max(left[cols.start], (frame.x0 - box.x0) / dpi)
        right[cols.stop - 1] = max(right[cols.stop - 1], (box.x1 - frame.x1) / dpi)
        top[rows.start] = max(top[rows.start], (box.y1 - frame.y1) / dpi)
        bottom[rows.stop - 1] = max(bottom[rows.stop - 1], (frame.y0 - box.y0) / dpi)
    width, height = fig.get_size_inches()
    title_room = 0.0
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_in_layout():
        if getattr(suptitle, "_autopos", False):
            suptitle.set_y(1 - PAD / height)
        title_room = suptitle.get_window_extent(renderer).height / dpi + 2 * PAD
    wgaps = [right[i] + left[i + 1] + 2 * PAD + SPACE * width for i in range(ncols - 1)]
    hgaps = [bottom[j] + top[j + 1] + 2 * PAD + SPACE * height for j in range(nrows - 1)]
    wgap, hgap = max(wgaps, default=0.0), max(hgaps, default=0.0)
    x0, x1 = left[0] + PAD, width - right[-1] - PAD
    y0, y1 = bottom[-1] + PAD, height - top[0] - PAD - title_room
    panel_w = (x1 - x0 - (ncols - 1) * wgap) / ncols
    panel_h = (y1 - y0 - (nrows - 1) * hgap) / nrows
    fig.subplots_adjust(
        left=x0 / width,
        right=x1 / width,
        bottom=y0 / height,
        top=y1 / height,
        wspace=wgap / panel_w,
        hspace=hgap / panel_h,
    )


def save(fig: Any, folder: Path, stem: str, formats: tuple[str, ...]) -> list[Path]:
    """Save ``fig`` as ``folder/stem.<fmt>`` for each format and close it.

    The layout is done once, before the first format, and then frozen.
    """
    png_dpi = 130
    engine = fig.get_layout_engine()
    if engine is None:
        fit_margins(fig, png_dpi)
    else:  # run the engine once here rather than in a separate layout draw per format
        fig.set_dpi(png_dpi)
        engine.execute(fig)
        fig.set_layout_engine("none")
    paths = []
    for fmt in formats:
        path = folder / f"{stem}.{fmt}"
        fig.savefig(path, dpi=png_dpi if fmt == "png" else None)
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

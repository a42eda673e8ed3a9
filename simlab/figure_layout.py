"""How a figure is laid out and saved: panels of the size the figure asked for, margins fitted
to what their labels, titles and legends need, the legends of :mod:`simlab.figure_legends` put
where they cover no data, then one file per format (PNG at :data:`PNG_DPI`, by
:mod:`simlab.png`).

matplotlib is imported on first use, so importing a figures module (to read its captions) costs
nothing; only drawing pays for it.
"""

from __future__ import annotations

import io
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simlab.figure_legends import place_pending_legends
from simlab.figure_style import (
    FIXED_TITLES,
    lift_titles_over_offset_texts,
    plain_log_labels,
    render_style,
    ticks_computed_once,
    ticks_in_view_only,
)
from simlab.png import encode_png


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
    drawing the figure (a colorbar goes beside its panel: :func:`~simlab.plotting.side_colorbar`).
    ``layout="constrained"`` keeps matplotlib's engine.
    """
    import matplotlib

    with matplotlib.rc_context(FIXED_TITLES):  # see simlab.figure_style
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


def fit_margins(fig: Any, dpi: float, *, regrow: bool = False) -> None:
    """Set the subplot margins to what the panels' labels, titles and legends need.

    Each panel's tight box (tick labels, axis labels, title, legend, insets) is measured once
    at the saving ``dpi``; the outer margins take the largest overhang of the panels on that
    edge, each gap between columns (rows) the largest overhang either side of it, plus
    constrained layout's padding; a suptitle gets its height above the top row. The tick
    locators see the final panel size from the start (:func:`_guess_margins`), so the one
    measurement holds.

    ``regrow``: after legends moved outside their panels (:func:`layout_figure`), fit again
    from the last measures (widened by those legends) so that the panels keep the size they
    had, the figure growing instead, and each gap between columns (rows) only as wide as its
    own neighbours need: a legend right of the first column widens that gap, not every gap.
    """
    panels = [ax for ax in fig.axes if ax.get_subplotspec() is not None and ax.get_visible()]
    if not panels:
        return
    fig.set_dpi(dpi)
    renderer = fig.canvas.get_renderer()
    grid = panels[0].get_subplotspec().get_gridspec()
    nrows, ncols = grid.get_geometry()
    left, right, bottom, top = _edge_overhangs(fig, panels, renderer, dpi, regrow)
    below_room = _legend_below_room(fig, renderer, dpi)
    granted = fig.__dict__.get(_BELOW_ATTR, 0.0)  # a second fit does not grow it again
    if below_room > granted:  # the figure grows by the legend's height: the panels keep theirs
        width, height = fig.get_size_inches()
        fig.set_size_inches(width, height + below_room - granted, forward=False)
        fig.__dict__[_BELOW_ATTR] = below_room
    suptitle = getattr(fig, "_suptitle", None)
    has_title = suptitle is not None and suptitle.get_in_layout()
    title_height = suptitle.get_window_extent(renderer).height / dpi if has_title else 0.0
    title_room = title_height + 2 * PAD if has_title else 0.0
    width, height = fig.get_size_inches()
    # each gap: the overhangs either side, padding, and constrained layout's share of the figure
    wfixed = [right[i] + left[i + 1] + 2 * PAD for i in range(ncols - 1)]
    hfixed = [bottom[j] + top[j + 1] + 2 * PAD for j in range(nrows - 1)]
    apart = regrow and all(ax.get_subplotspec().get_gridspec() is grid for ax in panels)
    if not apart:  # one wspace and hspace for the whole grid: the widest gap everywhere
        wfixed = [max(wfixed, default=0.0)] * (ncols - 1)
        hfixed = [max(hfixed, default=0.0)] * (nrows - 1)
    if regrow:
        # the panels keep their total size: the figure grows (never shrinks) around them
        panels_w, panels_h = fig.__dict__["_simlab_panel_room"]
        need_w = left[0] + right[-1] + 2 * PAD + panels_w + sum(wfixed)
        need_w /= 1 - (ncols - 1) * SPACE
        need_h = bottom[-1] + top[0] + 2 * PAD + title_room + below_room + panels_h + sum(hfixed)
        need_h /= 1 - (nrows - 1) * SPACE
        # grow only by more than rounding (a thousandth of an inch is below a pixel)
        width = need_w if need_w > width + 1e-3 else width
        height = need_h if need_h > height + 1e-3 else height
        fig.set_size_inches(width, height)
    if has_title and getattr(suptitle, "_autopos", False):
        suptitle.set_y(1 - PAD / height)
    for legend in fig.legends:  # figure_legend_below's, at the bottom of the final height
        if getattr(legend, _BELOW_ATTR, False):
            legend.set_bbox_to_anchor((0.5, PAD / height), transform=fig.transFigure)
    wgaps = [g + SPACE * width for g in wfixed]
    hgaps = [g + SPACE * height for g in hfixed]
    x0, x1 = left[0] + PAD, width - right[-1] - PAD
    y0, y1 = bottom[-1] + PAD + below_room, height - top[0] - PAD - title_room
    panels_w, panels_h = x1 - x0 - sum(wgaps), y1 - y0 - sum(hgaps)
    fig.__dict__["_simlab_panel_room"] = (panels_w, panels_h)
    if apart:
        _position_panels(fig, grid, panels, (x0, y0, x1, y1), wgaps, hgaps)
        return
    wgap, hgap = max(wgaps, default=0.0), max(hgaps, default=0.0)
    fig.subplots_adjust(
        left=x0 / width,
        right=x1 / width,
        bottom=y0 / height,
        top=y1 / height,
        wspace=wgap / (panels_w / ncols),
        hspace=hgap / (panels_h / nrows),
    )


def _edge_overhangs(
    fig: Any, panels: Sequence[Any], renderer: Any, dpi: float, regrow: bool
) -> tuple[list[float], list[float], list[float], list[float]]:
    """How far the panels' content reaches beyond their axes boxes, in inches: the largest
    overhang on the left of each column, its right, the bottom of each row and its top.

    Each panel is measured once (its tight box, at ``dpi``) and the measure kept on the figure;
    with ``regrow`` the kept measures (widened by legends moved outside) are used again."""
    nrows, ncols = panels[0].get_subplotspec().get_gridspec().get_geometry()
    left, right = [0.0] * ncols, [0.0] * ncols
    bottom, top = [0.0] * nrows, [0.0] * nrows
    measured: dict[int, tuple[float, float, float, float] | None] = fig.__dict__.setdefault(
        "_simlab_overhangs", {}
    )
    for ax in panels:
        if not regrow or id(ax) not in measured:
            box = ax.get_tightbbox(renderer, for_layout_only=True)
            frame = ax.get_window_extent(renderer)
            measured[id(ax)] = (
                None
                if box is None
                else (
                    (frame.x0 - box.x0) / dpi,
                    (box.x1 - frame.x1) / dpi,
                    (frame.y0 - box.y0) / dpi,
                    (box.y1 - frame.y1) / dpi,
                )
            )
        overhang = measured[id(ax)]
        if overhang is None:
            continue
        spec = ax.get_subplotspec()
        cols, rows = spec.colspan, spec.rowspan
        left[cols.start] = max(left[cols.start], overhang[0])
        right[cols.stop - 1] = max(right[cols.stop - 1], overhang[1])
        bottom[rows.stop - 1] = max(bottom[rows.stop - 1], overhang[2])
        top[rows.start] = max(top[rows.start], overhang[3])
    return left, right, bottom, top


def _position_panels(
    fig: Any,
    grid: Any,
    panels: Sequence[Any],
    frame: tuple[float, float, float, float],
    wgaps: Sequence[float],
    hgaps: Sequence[float],
) -> None:
    """Place each panel of ``grid`` in ``frame`` (inches: x0, y0, x1, y1) with a gap of its own
    between each pair of columns (rows), the panels sized by the grid's ratios."""
    width, height = fig.get_size_inches()
    x0, y0, x1, y1 = frame
    nrows, ncols = grid.get_geometry()
    wr = np.asarray(grid.get_width_ratios() or [1.0] * ncols, dtype=float)
    hr = np.asarray(grid.get_height_ratios() or [1.0] * nrows, dtype=float)
    col_w = (x1 - x0 - sum(wgaps)) * wr / wr.sum()
    row_h = (y1 - y0 - sum(hgaps)) * hr / hr.sum()
    col_left = x0 + np.concatenate([[0.0], np.cumsum(col_w[:-1] + np.asarray(wgaps))])
    row_top = y1 - np.concatenate([[0.0], np.cumsum(row_h[:-1] + np.asarray(hgaps))])
    for ax in panels:
        spec = ax.get_subplotspec()
        cols, rows = spec.colspan, spec.rowspan
        left = col_left[cols.start]
        right = col_left[cols.stop - 1] + col_w[cols.stop - 1]
        top = row_top[rows.start]
        bottom = row_top[rows.stop - 1] - row_h[rows.stop - 1]
        ax.set_position(
            [left / width, bottom / height, (right - left) / width, (top - bottom) / height]
        )


#: the resolution of the PNG files (and of every layout measurement: text sizes in pixels)
PNG_DPI = 130


def layout_figure(fig: Any, dpi: float = PNG_DPI) -> None:
    """Lay ``fig`` out as :func:`save` writes it: margins fitted once at ``dpi``, then each
    legend of :func:`~simlab.figure_legends.place_legend` put where it covers no data point
    (moved outside its panel when no place inside is clear, the figure growing so that the
    panels keep their size).

    The layout is then frozen: a figure laid out twice does not move.
    """
    with render_style():
        _layout_figure(fig, dpi)


def _layout_figure(fig: Any, dpi: float) -> None:
    fig.set_dpi(dpi)
    plain_log_labels(fig)
    ticks_in_view_only(fig)
    with ticks_computed_once(fig):
        _measure_and_place(fig, dpi)


def _measure_and_place(fig: Any, dpi: float) -> None:
    lift_titles_over_offset_texts(fig)  # before the margins are fitted around the titles
    engine = fig.get_layout_engine()
    if engine is None:
        fit_margins(fig, dpi)
    else:  # run the engine here rather than in a separate layout draw per format; twice,
        # as a figure drawn on screen would: the first pass sees tick labels not yet placed
        # (panels of fixed aspect then left an x label past the canvas's bottom)
        engine.execute(fig)
        engine.execute(fig)
    moved = place_pending_legends(fig)
    if moved:
        if engine is None:
            # a panel's new overhang is its legend's box: no need to measure the panel again
            overhangs = fig.__dict__.get("_simlab_overhangs", {})
            for ax, box in moved:
                _widen_overhang(overhangs, ax, box, dpi)
            fit_margins(fig, dpi, regrow=True)
        else:
            engine.execute(fig)
    if engine is not None:
        fig.set_layout_engine("none")
    lift_titles_over_offset_texts(fig)  # again, at the final panel sizes


def _widen_overhang(
    overhangs: dict[int, tuple[float, float, float, float] | None], ax: Any, box: Any, dpi: float
) -> None:
    """Widen ``ax``'s measured overhang (inches: left, right, bottom, top) to cover ``box``."""
    if id(ax) not in overhangs:
        return  # not a grid panel: fit_margins does not place it
    frame = ax.bbox
    old = overhangs[id(ax)] or (0.0, 0.0, 0.0, 0.0)
    overhangs[id(ax)] = (
        max(old[0], (frame.x0 - box.x0) / dpi),
        max(old[1], (box.x1 - frame.x1) / dpi),
        max(old[2], (frame.y0 - box.y0) / dpi),
        max(old[3], (box.y1 - frame.y1) / dpi),
    )


#: marks a figure legend drawn below every panel (:func:`figure_legend_below`)
_BELOW_ATTR = "_simlab_below"


def figure_legend_below(
    fig: Any, handles: Sequence[Any], labels: Sequence[str], *, ncols: int, fontsize: float = 8
) -> Any:
    """One legend for what every panel shares (colours, marker meanings), centred below all
    of them, where it covers no panel's data, its entries in rows of ``ncols`` (matplotlib
    fills columns). :func:`fit_margins` makes room for it under the bottom row and grows the
    figure by its height, so the panels keep theirs."""
    # matplotlib's columns: the first n % ncols hold one entry more than the others
    ncols = max(1, min(ncols, len(handles)))
    rows, long_columns = divmod(len(handles), ncols)
    order = [
        r * ncols + c for c in range(ncols) for r in range(rows + (1 if c < long_columns else 0))
    ]
    legend = fig.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="lower center",
        bbox_to_anchor=(0.5, 0.0),
        bbox_transform=fig.transFigure,
        ncols=ncols,
        fontsize=fontsize,
    )
    setattr(legend, _BELOW_ATTR, True)
    return legend


def _legend_below_room(fig: Any, renderer: Any, dpi: float) -> float:
    """Inches that the figure legends below the panels need (their height and a padding)."""
    heights = [
        legend.get_window_extent(renderer).height / dpi
        for legend in fig.legends
        if getattr(legend, _BELOW_ATTR, False)
    ]
    return max(heights) + 2 * PAD if heights else 0.0


def save(fig: Any, folder: Path, stem: str, formats: tuple[str, ...]) -> list[Path]:
    """Save ``fig`` as ``folder/stem.<fmt>`` for each format and close it.

    The layout is done once, before the first format (:func:`layout_figure`), and then frozen.
    """
    with render_style():
        return _save(fig, folder, stem, formats)


def _save(fig: Any, folder: Path, stem: str, formats: tuple[str, ...]) -> list[Path]:
    layout_figure(fig, PNG_DPI)
    paths = []
    for fmt in formats:
        path = folder / f"{stem}.{fmt}"
        # under a hidden temporary name, then renamed: a worker killed while it writes (the run
        # was interrupted) never leaves a truncated figure under the figure's name
        temporary = folder / f".{stem}.{os.getpid()}.tmp.{fmt}"
        try:
            with ticks_computed_once(fig):
                if fmt == "png":
                    temporary.write_bytes(figure_png(fig, PNG_DPI))
                else:
                    fig.savefig(temporary, format=fmt)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        paths.append(path)
    _pyplot().close(fig)
    return paths


def figure_png(fig: Any, dpi: float) -> bytes:
    """``fig`` as a PNG file at ``dpi``: drawn by savefig (its raw RGBA canvas, so exactly the
    pixels of matplotlib's PNG) and encoded by :func:`simlab.png.encode_png` (a third of
    Pillow's time: the encoding was a tenth of the check's drawing), with the metadata
    matplotlib writes."""
    import matplotlib

    fig.set_dpi(dpi)  # (the layout did): the canvas' size in pixels is then the image's
    raw = io.BytesIO()
    # the whole canvas, whatever a matplotlibrc says (savefig.bbox: tight would crop the raw
    # buffer to a size the canvas does not know): the layout has fitted the margins
    with matplotlib.rc_context({"savefig.bbox": "standard"}):
        fig.savefig(raw, format="rgba", dpi=dpi)
    width, height = fig.canvas.get_width_height(physical=True)
    if raw.tell() != width * height * 4:
        raise RuntimeError(f"savefig drew {raw.tell()} bytes, not a {width} x {height} RGBA image")
    pixels = np.frombuffer(raw.getbuffer(), dtype=np.uint8).reshape(height, width, 4)
    software = f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"
    return encode_png(pixels, dpi, {"Software": software})


def suptitle_within(fig: Any, text: str, **options: Any) -> Any:
    """``fig.suptitle(text)``, wrapped onto as many lines as keep it inside the figure's width
    (a one-panel figure is narrower than a long title)."""
    title = fig.suptitle(text, **options)
    renderer = fig.canvas.get_renderer()
    room = 0.96 * fig.get_window_extent(renderer).width
    chars = len(text)
    while title.get_window_extent(renderer).width > room and chars > 16:
        chars = int(chars * 0.9)
        title.set_text("\n".join(textwrap.wrap(text, chars, break_on_hyphens=False)))
    return title

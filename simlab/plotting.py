"""Shared figure habits: the Agg back end, one style, and the drawings every family repeats.

matplotlib is imported on first use, so importing a figures module (to read its captions) costs
nothing; only drawing pays for it.
"""

from __future__ import annotations

import io
import math
import os
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from simlab.figure_style import (
    FIXED_TITLES,
    lift_titles_over_offset_texts,
    plain_log_labels,
    render_style,
    ticks_computed_once,
    ticks_in_view_only,
)
from simlab.png import encode_png

if TYPE_CHECKING:
    from simlab.figures import ClaimMark

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
    drawing the figure (a colorbar goes beside its panel: :func:`side_colorbar`).
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
    # overhang of each panel's content beyond its axes box, in inches: (left, right, bottom, top)
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
    legend of :func:`place_legend` put where it covers no data point (moved outside its panel
    when no place inside is clear, the figure growing so that the panels keep their size).

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
    moved = _place_pending_legends(fig)
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


_OFF_SCALE_ATTR = "_simlab_off_scale"  # on the marks of mark_off_scale


def side_colorbar(
    fig: Any, mappable: Any, ax: Any, *, label: str, shrink: float = 0.85, **options: Any
) -> Any:
    """A colorbar right of ``ax``, as an inset of it: :func:`fit_margins` measures it with its
    panel (as it does a legend outside), so the margins and gaps make room for it without
    constrained layout's passes. ``shrink``: its height as a fraction of the panel's."""
    bottom = (1.0 - shrink) / 2
    cax = ax.inset_axes([1.04, bottom, 0.045, shrink])
    return fig.colorbar(mappable, cax=cax, label=label, **options)


def mark_off_scale(
    ax: Any, positions: Sequence[float] | np.ndarray, *, edge: str = "top", **style: Any
) -> Any:
    """Mark values that have no place on the value scale (an infinite value, an undefined NaN,
    a claim far off the axis) on an ``edge`` of ``ax`` instead of at a made-up place: markers
    on the spine ("top"/"bottom": at data x ``positions``; "left"/"right": at data y
    ``positions``), drawn over it (not clipped); the limits are left to the data. ``style``
    is passed to ``plot`` (marker, colour, label...); return the line, for a legend."""
    from matplotlib.transforms import blended_transform_factory

    along = np.atleast_1d(np.asarray(positions, dtype=float))
    at = np.full(along.shape, {"top": 1.0, "bottom": 0.0, "left": 0.0, "right": 1.0}[edge])
    if edge in ("top", "bottom"):
        xy, transform = (along, at), blended_transform_factory(ax.transData, ax.transAxes)
    else:
        xy, transform = (at, along), blended_transform_factory(ax.transAxes, ax.transData)
    (line,) = ax.plot(
        *xy, linestyle="none", transform=transform, clip_on=False, **{"zorder": 5, **style}
    )
    setattr(line, _OFF_SCALE_ATTR, True)  # a data point all the same: no legend may cover it
    return line


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
    fig.savefig(raw, format="rgba", dpi=dpi)
    width, height = fig.canvas.get_width_height(physical=True)
    if raw.tell() != width * height * 4:
        raise RuntimeError(f"savefig drew {raw.tell()} bytes, not a {width} x {height} RGBA image")
    pixels = np.frombuffer(raw.getbuffer(), dtype=np.uint8).reshape(height, width, 4)
    software = f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"
    return encode_png(pixels, dpi, {"Software": software})


def log_errorbars(values: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Asymmetric +-2 SE bars that stay positive on a log axis (the lower bar is cut at 95%)."""
    lower = np.minimum(ERRORBAR_SE * se, 0.95 * np.abs(values))
    return np.vstack([lower, ERRORBAR_SE * se])


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
    keep_clear: bool = False,
    **legend_options: Any,
) -> None:
    """Labels, a light grid and a legend: the styling every panel shares.

    ``keep_clear``: the legend goes where it covers no data point (:func:`place_legend`),
    rather than at matplotlib's "best" place, which may cover some.
    """
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which=which)
    if legend and ax.get_legend_handles_labels()[0]:
        if "bbox_to_anchor" in legend_options and getattr(ax, _CLAIMS_ATTR, None):
            # the panel's legend is already outside it, where a claims legend would go: the
            # claims join it, in one column (a formula is too long to share a row)
            handles, labels = ax.get_legend_handles_labels()
            extra_handles, extra_labels = claim_entries(ax)
            options = {**legend_options, "ncols": 1}
            ax.legend(
                handles + extra_handles, labels + extra_labels, fontsize=legend_size, **options
            )
        elif keep_clear:
            place_legend(ax, fontsize=legend_size, **legend_options)
        else:
            ax.legend(fontsize=legend_size, **legend_options)
    claims_legend(ax, legend_size)


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


#: how a parameter is written in a figure's text, when not by its name (legends write λ too)
PARAM_SYMBOLS = {"lam": "λ"}


def sweep_summary(points: Sequence[Any]) -> str:
    """``B = 2, 3, 32; eps = 0, 1e-05, 0.1``: each swept parameter with its values, in the
    order the run met them (a title that stays short however many settings a sweep has)."""
    parts = []
    for name in swept_parameters(points):
        values = list(dict.fromkeys(pt.params[name] for pt in points))
        shown = [f"{v:g}" if isinstance(v, float) else str(v) for v in values]
        parts.append(f"{PARAM_SYMBOLS.get(name, name)} = {', '.join(shown)}")
    return "; ".join(parts)


def wrap_to_width(text: str, width_inches: float, fontsize: float) -> str:
    """``text`` wrapped into lines that fit ``width_inches`` at ``fontsize`` (a title that
    would otherwise run off the canvas); an average glyph is taken as 0.55 em wide."""
    chars = max(20, int(width_inches * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars, break_on_hyphens=False))


def setting_label(params: Mapping[str, Any], names: Sequence[str]) -> str:
    """``"M = 50, p = 0.3"``: the named parameters of a point, for a legend or a title."""
    parts = []
    for name in names:
        value = params[name]
        symbol = PARAM_SYMBOLS.get(name, name)
        parts.append(f"{symbol} = {value:g}" if isinstance(value, float) else f"{symbol} = {value}")
    return ", ".join(parts)


# -- user claims on the figures ------------------------------------------------------------------
#: one colour and marker per claim, in claim order, apart from the C0-C5 of the built-in curves
CLAIM_COLORS = ("C6", "k", "C8", "C9", "C7", "C4")
CLAIM_MARKERS = ("D", "s", "^", "v", "P", "X")
#: claims that would stretch the y axis more than this many times the data's span are left
#: partly off it (the data stay readable; the legend says so)
CLAIM_SPAN_LIMIT = 4.0
#: a legend line longer than this is wrapped (a long formula stays whole, over several lines)
CLAIM_LABEL_WIDTH = 64
_CLAIMS_ATTR = "_simlab_claims"  # the claim handles and labels waiting for claims_legend


def verdict_summary(verdicts: Sequence[str | None]) -> str:
    """``fail``, or ``fail at 2, pass at 3 of 5 points`` when the points disagree."""
    known = [v for v in verdicts if v is not None]
    if not known:
        return "not decided"
    counts = Counter(known)
    if len(counts) == 1:
        return known[0]
    order = ("fail", "undecided", "pass", "undefined")
    parts = [f"{v} at {counts[v]}" for v in sorted(counts, key=lambda v: (order + (v,)).index(v))]
    return f"{', '.join(parts)} of {len(verdicts)} points"


def claim_label(marks: Sequence[ClaimMark], off_axis: bool = False) -> str:
    """The legend entry of one claim over the points it is drawn at: its number, formula and
    verdict, e.g. ``claim 1: var_after = 1/(2*(1-p)) — fail`` (wrapped when long)."""
    first = marks[0]
    head = f"claim {first.number}" + (", expected to fail" if first.expect == "fail" else "")
    text = f"{head}: {first.quantity} = {first.expression} — "
    text += verdict_summary([m.verdict for m in marks])
    if off_axis:
        text += " (partly off the axis)"
    return "\n".join(
        textwrap.wrap(text, CLAIM_LABEL_WIDTH, subsequent_indent="    ", break_on_hyphens=False)
    )


def claims_of(points: Sequence[Any], quantity: str) -> dict[int, list[tuple[Any, ClaimMark]]]:
    """The claims on ``quantity`` carried by ``points``, by claim number: (point, mark) pairs."""
    out: dict[int, list[tuple[Any, ClaimMark]]] = {}
    for pt in points:
        for mark in getattr(pt, "claims", ()):
            if mark.quantity == quantity:
                out.setdefault(mark.number, []).append((pt, mark))
    return out


def _span(lo: float, hi: float, log: bool) -> float:
    if log:
        lo, hi = max(lo, 1e-300), max(hi, 1e-300)
        return abs(math.log10(hi) - math.log10(lo))
    return abs(hi - lo)


def draw_claims(
    ax: Any,
    points: Sequence[Any],
    quantity: str,
    x: Sequence[float] | None = None,
    *,
    y: Any = None,
    vertical: bool = False,
    horizontal: bool = False,
    markevery: int | None = None,
) -> int:
    """Draw every user claim on ``quantity`` that ``points`` carry, one dashed curve with
    markers per claim; return how many were drawn. Call it before :func:`finish_axes`, which
    lists them in a legend of their own below the panel.

    A scalar quantity is drawn against ``x`` (the points' sweep values, in the order of
    ``points``); a profile against its index (``l``) and a pmf against its support ``k``, one
    curve per point (``x`` overrides the estimate's own axis). ``y(point, values)`` maps the
    claim's values to what the panel plots (a ratio to theory, say). The x range stays that of
    the data; a claim that would stretch the y range more than :data:`CLAIM_SPAN_LIMIT` times
    is left partly off the axis. ``vertical``: a scalar claim at one point is a vertical line
    at its (mapped) value, on a panel whose x axis is the quantity (a histogram of it).
    ``horizontal``: the panel's axes are swapped (a scalar quantity's points at heights ``x``,
    their values along the x axis: a forest plot); the limits above swap with them.
    ``markevery``: a marker on every n-th value only (a long profile, whose simulated points
    the claim's markers would otherwise cover).
    """
    claims = claims_of(points, quantity)
    if not claims:
        return 0
    if horizontal and vertical:
        raise ValueError("draw_claims: horizontal and vertical exclude each other")
    # the position axis (the points' x) and the value axis (the claim's y), swapped if horizontal
    get_pos, set_pos = (ax.get_ylim, ax.set_ylim) if horizontal else (ax.get_xlim, ax.set_xlim)
    get_val, set_val = (ax.get_xlim, ax.set_xlim) if horizontal else (ax.get_ylim, ax.set_ylim)
    xlim, ylim = get_pos(), get_val()
    log_y = (ax.get_xscale() if horizontal else ax.get_yscale()) == "log"
    drawn: list[tuple[Any, list, np.ndarray]] = []
    for number, pairs in sorted(claims.items()):
        slot = number - 1  # by claim number: a claim looks the same on every panel
        style = dict(
            color=CLAIM_COLORS[slot % len(CLAIM_COLORS)],
            marker=CLAIM_MARKERS[slot % len(CLAIM_MARKERS)],
            ms=5,
            mfc="none",
            lw=1.3,
            ls="--",
            zorder=4,
            markevery=markevery,
        )
        handle = None
        shown: list[np.ndarray] = []
        if vertical:
            for pt, mark in pairs:
                at = float(_mapped(y, pt, mark.value))
                line = ax.axvline(at, **{**style, "marker": None, "lw": 1.6})
                handle = handle or line
                inside = min(xlim) <= at <= max(xlim)
                shown.append(np.array([0.5 * sum(ylim) if inside else np.inf]))
        elif x is not None and all(np.ndim(m.value) == 0 for _, m in pairs):
            where = {id(pt): i for i, pt in enumerate(points)}
            xs = np.array([float(x[where[id(pt)]]) for pt, _ in pairs])
            ys = np.array([_mapped(y, pt, m.value) for pt, m in pairs], dtype=float)
            order = np.argsort(xs)
            curve = (xs[order], np.ravel(ys)[order])
            (handle,) = ax.plot(*(curve[::-1] if horizontal else curve), **style)
            shown.append(ys)
        else:
            for pt, mark in pairs:
                est = pt.estimates.get(quantity)
                axis = x
                if axis is None:
                    axis = getattr(est, "index", None)
                    if axis is None:
                        axis = getattr(est, "support", None)
                if axis is None:
                    continue
                axis = np.asarray(axis, dtype=float)
                ys = np.broadcast_to(np.asarray(_mapped(y, pt, mark.value), float), axis.shape)
                pmf = getattr(est, "support", None) is not None and x is None
                (line,) = ax.plot(axis, ys, **({**style, "ls": ":"} if pmf else style))
                handle = handle or line
                inside = (axis >= min(xlim)) & (axis <= max(xlim))
                shown.append(ys[inside])
        if handle is not None:
            drawn.append(
                (handle, [m for _, m in pairs], np.concatenate([np.ravel(v) for v in shown]))
            )
    set_pos(xlim)
    # keep the data readable: a wild claim does not squash it against one edge
    values = np.concatenate([v for _, _, v in drawn]) if drawn else np.array([])
    values = values[np.isfinite(values)]
    if log_y:
        values = values[values > 0]
    if values.size:
        lo, hi = min(ylim[0], values.min()), max(ylim[1], values.max())
        if _span(lo, hi, log_y) > CLAIM_SPAN_LIMIT * _span(*ylim, log_y):
            set_val(ylim)
    bottom, top = sorted(get_val())
    # one legend entry per claim, however many groups of points it was drawn for on this panel
    entries: dict[int, tuple[Any, list, bool]] = getattr(ax, _CLAIMS_ATTR, {})
    for handle, marks, vals in drawn:
        vals = vals[np.isfinite(vals)]
        off = bool(vals.size) and bool(np.any((vals < bottom) | (vals > top)))
        number = marks[0].number
        if number in entries:
            first, before, was_off = entries[number]
            entries[number] = (first, before + marks, was_off or off)
        else:
            entries[number] = (handle, marks, off)
    setattr(ax, _CLAIMS_ATTR, entries)
    return len(drawn)


def claim_entries(ax: Any) -> tuple[list[Any], list[str]]:
    """The handles and labels of the claims drawn on ``ax`` not yet in a legend, in claim
    order; they are taken (a panel lists its claims once)."""
    entries = getattr(ax, _CLAIMS_ATTR, {})
    setattr(ax, _CLAIMS_ATTR, {})
    ordered = [entries[n] for n in sorted(entries)]
    return [h for h, _, _ in ordered], [claim_label(marks, off) for _, marks, off in ordered]


def _mapped(y: Any, point: Any, value: Any) -> Any:
    return value if y is None else y(point, value)


def claims_legend(ax: Any, fontsize: float = 7) -> Any:
    """The legend of the claims drawn on ``ax`` (:func:`draw_claims`): inside the panel where
    it covers no data point, else below the panel's x label (:func:`place_legend`); None when
    there are none. The panel's own legend is left where it is, and the claims' avoid it."""
    handles, labels = claim_entries(ax)
    if not handles:
        return None
    return place_legend(
        ax, handles, labels, fontsize=fontsize, outside="below", extra=True, handlelength=3
    )


# -- what a legend must not cover, and legends placed clear of it --------------------------------
#: a mark that reaches into a legend's box by at most this many pixels is not covered (a marker
#: touching the frame is still readable)
COVER_TOLERANCE_PX = 1.0
#: where :func:`place_legend` tries a legend inside its panel, in order
LEGEND_LOCS = (
    "upper right",
    "upper left",
    "lower left",
    "lower right",
    "center right",
    "center left",
    "upper center",
    "lower center",
    "center",
)
_LOC_NAMES = LEGEND_LOCS  # all nine places a legend can take inside its anchor box
#: room between a panel's outer labels and a legend moved outside it, in points
OUTSIDE_PAD = 4.0
_PLACE_ATTR = "_simlab_place"  # on a figure: the legends of place_legend still to be placed


@dataclass(frozen=True)
class DataMark:
    """The data points of one artist, in display pixels, as a legend must leave them visible.

    ``points`` are marker centres with their ``radii``; ``segments`` are error bars and the
    value edges of bars and histogram steps. ``frame`` is the axes box that clips them.
    """

    name: str
    axes: Any
    frame: tuple[float, float, float, float]
    points: np.ndarray  # (N, 2)
    radii: np.ndarray  # (N,)
    segments: np.ndarray  # (M, 2, 2)


def data_marks(ax: Any) -> list[DataMark]:
    """The data points of ``ax`` that a legend must not cover, in display coordinates.

    Data points are what a reader reads values off: markers (simulated points, claims, their
    error bar caps), error bars, scatter points, the value edge of each bar and the top of each
    histogram step. Lines without markers are curves (theory, trends): a legend may hide a
    stretch of one, the rest of the curve still shows its course. Reference lines spanning the
    axes (``axhline``/``axvline``, not in data coordinates), shaded bands (``fill_between``,
    ``axhspan``), images and colour meshes are context, not points: a legend over them hides
    nothing one reads a value from. Empty bins (at the baseline) are not points either.
    """
    from matplotlib.collections import LineCollection, PathCollection
    from matplotlib.container import BarContainer, ErrorbarContainer
    from matplotlib.patches import StepPatch

    if not ax.get_visible():
        return []
    ax.get_xlim(), ax.get_ylim()  # autoscale now: the data transform uses the final limits
    frame = tuple(ax.bbox.extents)
    px = ax.figure.dpi / 72.0
    owner: dict[int, str] = {}  # an error bar's or bar's pieces are named by their container
    error_bars: list[Any] = []
    bar_sides: dict[int, str] = {}
    for container in ax.containers:
        label = container.get_label() or ""
        children = [a for a in _flatten(container) if a is not None]
        for artist in children:
            owner[id(artist)] = label
        if isinstance(container, ErrorbarContainer):
            error_bars.extend(c for c in children if isinstance(c, LineCollection))
        elif isinstance(container, BarContainer):
            side = getattr(container, "orientation", None) or "vertical"
            bar_sides.update({id(patch): side for patch in container.patches})
    empty2 = np.empty((0, 2))
    empty_segments = np.empty((0, 2, 2))
    marks = []

    def add(artist: Any, points: Any = empty2, radii: Any = 0.0, segments: Any = empty_segments):
        label = owner.get(id(artist)) or artist.get_label() or ""
        if label.startswith("_"):
            label = f"{type(artist).__name__} without a label"
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        segments = np.asarray(segments, dtype=float).reshape(-1, 2, 2)
        keep = np.isfinite(points).all(axis=1)
        radii = np.broadcast_to(np.asarray(radii, dtype=float), (len(points),))[keep]
        segments = segments[np.isfinite(segments).all(axis=(1, 2))]
        if keep.any() or len(segments):
            marks.append(DataMark(label, ax, frame, points[keep], radii, segments))

    for line in ax.get_lines():
        # marks on an axis edge (mark_off_scale: an infinite or undefined value) are points too
        on_edge = getattr(line, _OFF_SCALE_ATTR, False)
        if not line.get_visible() or not (on_edge or _in_data_coordinates(line, ax)):
            continue
        if line.get_marker() in (None, "None", "none", "", " ") or line.get_markersize() <= 0:
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        add(line, xy, 0.5 * line.get_markersize() * px)
    for collection in ax.collections:
        if not collection.get_visible():
            continue
        if isinstance(collection, PathCollection) and len(collection.get_offsets()):
            offsets = collection.get_offset_transform().transform(collection.get_offsets())
            sizes = np.asarray(collection.get_sizes(), dtype=float)
            radii = 0.5 * np.sqrt(sizes if sizes.size else np.array([36.0])) * px
            add(collection, offsets, np.resize(radii, len(offsets)))
        elif any(collection is bars for bars in error_bars):
            transform = collection.get_transform()
            segments = [
                transform.transform(np.asarray(s, dtype=float))
                for s in collection.get_segments()
                if len(s) == 2
            ]
            add(collection, segments=np.array(segments).reshape(-1, 2, 2))
    for patch in ax.patches:
        if not patch.get_visible():
            continue
        if id(patch) in bar_sides:
            # the bar's value end: its top (its right end for a horizontal bar), in the
            # rectangle's own unit coordinates
            vertical = bar_sides[id(patch)] == "vertical"
            if (patch.get_height() if vertical else patch.get_width()) == 0:
                continue
            corners = [(0, 1), (1, 1)] if vertical else [(1, 0), (1, 1)]
            add(patch, segments=patch.get_transform().transform(np.array(corners, float)))
        elif isinstance(patch, StepPatch):
            values, edges, baseline = patch.get_data()
            values = np.asarray(values, dtype=float)
            edges = np.asarray(edges, dtype=float)
            base = np.broadcast_to(
                np.asarray(0.0 if baseline is None else baseline, float), values.shape
            )
            full = values != base
            x0, x1, v = edges[:-1][full], edges[1:][full], values[full]
            if patch.orientation == "vertical":
                segments = np.stack([np.column_stack([x0, v]), np.column_stack([x1, v])], 1)
            else:
                segments = np.stack([np.column_stack([v, x0]), np.column_stack([v, x1])], 1)
            flat = patch.get_transform().transform(segments.reshape(-1, 2))
            add(patch, segments=flat.reshape(-1, 2, 2))
    return marks


def figure_data_marks(fig: Any) -> list[DataMark]:
    """:func:`data_marks` of every axes of ``fig``."""
    return [mark for ax in fig.axes for mark in data_marks(ax)]


def covered_marks(box: Any, marks: Sequence[DataMark]) -> list[tuple[DataMark, int, int]]:
    """The marks that the display box ``box`` (a legend's) covers: (mark, points, segments
    covered). A point is covered when its marker reaches more than :data:`COVER_TOLERANCE_PX`
    into the box; a segment when it crosses the box shrunk by that tolerance. Only what is
    visible counts: points and segments are clipped to their axes."""
    tol = COVER_TOLERANCE_PX
    bx0, by0, bx1, by1 = box.x0 + tol, box.y0 + tol, box.x1 - tol, box.y1 - tol
    if bx1 <= bx0 or by1 <= by0:
        return []
    out = []
    for mark in marks:
        fx0, fy0, fx1, fy1 = mark.frame
        n_points = n_segments = 0
        if len(mark.points):
            x, y = mark.points[:, 0], mark.points[:, 1]
            shown = (x >= fx0 - tol) & (x <= fx1 + tol) & (y >= fy0 - tol) & (y <= fy1 + tol)
            dx = np.maximum(np.maximum(bx0 - x, x - bx1), 0.0)
            dy = np.maximum(np.maximum(by0 - y, y - by1), 0.0)
            distance = np.hypot(dx, dy)
            n_points = int(np.sum(shown & ((distance < mark.radii) | (distance == 0))))
        if len(mark.segments):
            # the part of the legend box over the axes: segments are clipped to the axes
            clip = (max(bx0, fx0), max(by0, fy0), min(bx1, fx1), min(by1, fy1))
            if clip[2] > clip[0] and clip[3] > clip[1]:
                n_segments = int(np.sum(_segments_cross(mark.segments, clip)))
        if n_points or n_segments:
            out.append((mark, n_points, n_segments))
    return out


def _segments_cross(segments: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Which segments (M, 2, 2) cross the box (x0, y0, x1, y1): Liang-Barsky clipping."""
    start, delta = segments[:, 0, :], segments[:, 1, :] - segments[:, 0, :]
    t0, t1 = np.zeros(len(segments)), np.ones(len(segments))
    ok = np.ones(len(segments), dtype=bool)
    for axis, low, high in ((0, box[0], box[2]), (1, box[1], box[3])):
        d, s = delta[:, axis], start[:, axis]
        flat = d == 0
        ok &= ~flat | ((s >= low) & (s <= high))
        with np.errstate(divide="ignore", invalid="ignore"):
            ta, tb = (low - s) / d, (high - s) / d
        lo, hi = (
            np.where(flat, -np.inf, np.minimum(ta, tb)),
            np.where(flat, np.inf, np.maximum(ta, tb)),
        )
        t0, t1 = np.maximum(t0, lo), np.minimum(t1, hi)
    return ok & (t0 <= t1)


def _in_data_coordinates(artist: Any, ax: Any) -> bool:
    """True when both of the artist's coordinates are data (not an axhline's axes fraction)."""
    x_data, y_data = artist.get_transform().contains_branch_seperately(ax.transData)
    return bool(x_data and y_data)


def _flatten(container: Any) -> list[Any]:
    out: list[Any] = []
    for item in container:
        if isinstance(item, list | tuple):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


def place_legend(
    ax: Any,
    handles: Sequence[Any] | None = None,
    labels: Sequence[str] | None = None,
    *,
    fontsize: float = 7,
    locs: Sequence[str] = LEGEND_LOCS,
    outside: str = "right",
    panels: Sequence[Any] = (),
    extra: bool = False,
    **options: Any,
) -> Any:
    """A legend on ``ax`` that covers no data point (:func:`data_marks`) and no other legend.

    It goes at the first of ``locs`` inside ``ax`` (``options["loc"]`` first, when given) whose
    box covers nothing, else at the first clear place inside one of ``panels`` (a legend shared
    by several panels), else outside ``ax``: on its ``"right"`` or ``"below"`` its x label,
    the figure growing so that the panels keep their size. The place is chosen when the
    figure is laid out (:func:`layout_figure`, which :func:`save` runs), once the panels have
    their final size; until then the legend sits at the first candidate. A second legend on
    the same axes is added beside the first, never replacing it; so is an ``extra`` one (the
    claims'), which a later ``ax.legend()`` leaves in place. ``options`` go to
    :class:`matplotlib.legend.Legend` (``ncols``, ``title``, ...).
    """
    from matplotlib.legend import Legend

    if outside not in ("right", "below"):
        raise ValueError(f"outside={outside!r}; expected 'right' or 'below'")
    if handles is None or labels is None:
        handles, labels = ax.get_legend_handles_labels()
    first = options.pop("loc", None)
    first = {"right": "center right", "best": None}.get(first, first)  # "right": the same place
    order = tuple(dict.fromkeys(([first] if first else []) + list(locs)))
    unknown = [loc for loc in order if loc not in _LOC_NAMES]
    if unknown:
        raise ValueError(f"loc={unknown[0]!r}; expected one of {', '.join(_LOC_NAMES)}")
    if ax.get_legend() is None and not extra:
        legend = ax.legend(handles, labels, loc=order[0], fontsize=fontsize, **options)
    else:
        legend = Legend(ax, handles, labels, loc=order[0], fontsize=fontsize, **options)
        ax.add_artist(legend)
    if "bbox_to_anchor" in options:  # placed by the caller: drawn where it was asked to be
        return legend
    pending = ax.figure.__dict__.setdefault(_PLACE_ATTR, [])
    pending.append((legend, order, outside, tuple(panels)))
    return legend


def _place_pending_legends(fig: Any) -> list[tuple[Any, Any]]:
    """Place the legends of :func:`place_legend` at the figure's current layout; return the
    (axes, legend box) of those that went outside their axes (the margins must then grow)."""
    from matplotlib.legend import Legend

    pending = fig.__dict__.pop(_PLACE_ATTR, [])
    if not pending:
        return []
    renderer = fig.canvas.get_renderer()
    marks = figure_data_marks(fig)
    curves = [curve for axes in fig.axes for curve in curve_marks(axes)]
    waiting = {id(legend) for legend, *_ in pending}
    # the legends placed by hand are obstacles from the start; the others once placed
    placed = [
        leg.get_window_extent(renderer)
        for leg in fig.findobj(Legend)
        if id(leg) not in waiting and leg.get_visible()
    ]
    texts = [
        t.get_window_extent(renderer)
        for ax in fig.axes
        for t in ax.texts
        if t.get_visible() and t.get_text().strip()
    ]
    moved: list[tuple[Any, Any]] = []
    outside_edge: dict[tuple[int, str], float] = {}
    for legend, order, outside, panels in pending:
        ax = legend.axes
        if legend not in ax.get_children():  # replaced by a later ax.legend()
            continue
        box = _first_clear_spot(
            legend, ax, renderer, order, (ax, *panels), marks, placed + texts, curves
        )
        if box is None:
            box = _put_outside(legend, ax, renderer, outside, outside_edge)
            moved.append((ax, box))
        placed.append(box)
    return moved


def _first_clear_spot(
    legend: Any,
    ax: Any,
    renderer: Any,
    order: Sequence[str],
    panels: Sequence[Any],
    marks: Sequence[DataMark],
    obstacles: Sequence[Any],
    curves: Sequence[DataMark] = (),
) -> Any:
    """Move ``legend`` to the first candidate that covers no data mark and no obstacle, and
    return its box (None when there is none). A candidate that also leaves every curve
    visible is preferred: a legend may cover a stretch of a curve, but need not."""
    size = legend.get_window_extent(renderer)  # measured once: the candidates only move it
    pad = legend.borderaxespad * renderer.points_to_pixels(legend._fontsize)
    chosen = None
    for panel in dict.fromkeys(panels):
        for loc in order:
            box = _anchored(loc, size.width, size.height, panel.bbox, pad)
            if covered_marks(box, marks):
                continue
            if any(_overlap_area(box, other) > 1.0 for other in obstacles):
                continue
            if chosen is None:
                chosen = (panel, loc, box)
            if not covered_marks(box, curves):
                chosen = (panel, loc, box)
                break
        else:
            continue
        break
    if chosen is None:
        return None
    panel, loc, box = chosen
    if panel is ax:
        legend.set_bbox_to_anchor(None)
    else:  # the other panel's box, in its own axes fractions
        legend.set_bbox_to_anchor((0.0, 0.0, 1.0, 1.0), panel.transAxes)
        legend.set_clip_on(False)  # a legend added to ax is clipped to ax
    legend.set_loc(loc)
    # inside a panel it needs no margin; counted in its own axes' layout box while in another
    # panel, it would widen the gap to that panel, which carries it further off (the figure
    # grew without bound)
    legend.set_in_layout(panel is ax)
    return box


def curve_marks(ax: Any) -> list[DataMark]:
    """The curves of ``ax`` (lines without markers, in data coordinates) and its reference
    lines that the legend names (an ``axhline`` labelled "population cond(C)") as segments:
    what a legend may cover a stretch of, though better not (:func:`place_legend` prefers not
    to). An unnamed reference line (a separator, a zero line) is context."""
    if not ax.get_visible():
        return []
    ax.get_xlim(), ax.get_ylim()  # autoscale now: the data transform uses the final limits
    marks = []
    for line in ax.get_lines():
        named = not (line.get_label() or "_").startswith("_")
        if not line.get_visible() or not (named or _in_data_coordinates(line, ax)):
            continue
        if line.get_marker() not in (None, "None", "none", "", " "):
            continue  # a line with markers is data (data_marks)
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        if len(xy) < 2:
            continue
        segments = np.stack([xy[:-1], xy[1:]], axis=1)
        segments = segments[np.isfinite(segments).all(axis=(1, 2))]
        if len(segments):
            empty = np.empty((0, 2))
            marks.append(
                DataMark(line.get_label(), ax, tuple(ax.bbox.extents), empty, empty[:, 0], segments)
            )
    return marks


def _anchored(loc: str, width: float, height: float, parent: Any, pad: float) -> Any:
    """The box of a legend of that size at ``loc`` inside ``parent`` less ``pad`` (how
    matplotlib anchors a legend: the corner, edge centre or centre of the padded box)."""
    from matplotlib.transforms import Bbox

    x0, y0, x1, y1 = parent.x0 + pad, parent.y0 + pad, parent.x1 - pad, parent.y1 - pad
    vertical, _, horizontal = loc.partition(" ") if " " in loc else (loc, "", loc)
    x = {"left": x0, "right": x1 - width, "center": 0.5 * (x0 + x1 - width)}[horizontal]
    y = {"lower": y0, "upper": y1 - height, "center": 0.5 * (y0 + y1 - height)}[vertical]
    return Bbox.from_bounds(x, y, width, height)


def _overlap_area(a: Any, b: Any) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(width, 0.0) * max(height, 0.0)


def _put_outside(
    legend: Any, ax: Any, renderer: Any, side: str, edges: dict[tuple[int, str], float]
) -> Any:
    """Put ``legend`` right of ``ax``'s right-hand labels or below its x label (below an
    earlier legend put there); return its box."""
    pad = OUTSIDE_PAD * ax.figure.dpi / 72.0
    frame = ax.bbox
    # the labels around the panel: its own axes and any twin sharing its box
    twins = [a for a in ax.figure.axes if a.get_visible() and a.bbox.bounds == frame.bounds]
    key = (id(ax), side)
    if side == "right":
        right = frame.x1
        for twin in twins:
            box = twin.yaxis.get_tightbbox(renderer) if twin.yaxis.get_visible() else None
            if box is not None:
                right = max(right, box.x1)
        x, y = right + pad, edges.get(key, frame.y1)
        loc = "upper left"
    else:
        bottom = frame.y0
        for twin in twins:
            box = twin.xaxis.get_tightbbox(renderer) if twin.xaxis.get_visible() else None
            if box is not None:
                bottom = min(bottom, box.y0)
        x, y = 0.5 * (frame.x0 + frame.x1), edges.get(key, bottom - pad)
        loc = "upper center"
    anchor = ax.transAxes.inverted().transform((x, y))
    legend.set_bbox_to_anchor(tuple(anchor), ax.transAxes)
    legend.set_loc(loc)
    legend.borderaxespad = 0.0
    legend.set_in_layout(True)
    legend.set_clip_on(False)  # an added legend is clipped to the axes, and this one is out
    box = legend.get_window_extent(renderer)
    edges[key] = box.y0 - pad
    return box


# -- several swept parameters at once: colour for one, marker for the rest ------------------------
#: markers of the series drawn in one colour (a second swept parameter)
SERIES_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class SeriesStyle(NamedTuple):
    """How one point's series is drawn: its colour, its marker and the value its colour means."""

    color: str
    marker: str
    name: str


def series_styles(
    points: Sequence[Any], prefer: Sequence[str] = ()
) -> tuple[list[SeriesStyle], list[tuple[Any, str]]]:
    """A colour and a marker for each point, and the legend entries that decode them.

    The first swept parameter named in ``prefer`` (else the first swept one) takes the colour;
    the others together take the marker, so a sweep of 5 inits by 2 widths needs 5 + 2 legend
    entries instead of 10 (or 15 when each point draws three series). The entries are
    ``(handle, label)`` pairs: a header (no handle drawn) naming each parameter, then one
    entry per value; empty when nothing is swept.
    """
    from matplotlib.lines import Line2D

    keys = swept_parameters(points)
    colour_key = next((k for k in prefer if k in keys), keys[0] if keys else None)
    marker_keys = [k for k in keys if k != colour_key]
    colours: dict[str, str] = {}
    markers: dict[str, str] = {}
    styles = []
    for pt in points:
        c = _value_text(pt.params[colour_key]) if colour_key else ""
        m = ", ".join(_value_text(pt.params[k]) for k in marker_keys)
        colours.setdefault(c, f"C{len(colours) % 10}")
        markers.setdefault(m, SERIES_MARKERS[len(markers) % len(SERIES_MARKERS)])
        styles.append(SeriesStyle(colours[c], markers[m], c))
    entries: list[tuple[Any, str]] = []

    def header(text: str) -> None:
        entries.append((Line2D([], [], ls="none"), text))

    if colour_key:
        header(f"{colour_key} (colour):")
        for value, colour in colours.items():
            handle = Line2D([], [], color=colour, marker="o", mfc="white", ms=4, lw=1.4)
            entries.append((handle, value))
    if marker_keys:
        header(f"{', '.join(marker_keys)} (marker):")
        for value, marker in markers.items():
            handle = Line2D([], [], color="0.3", marker=marker, mfc="white", ms=4.5, ls="none")
            entries.append((handle, value))
    return styles, entries


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


def errorbar_handle(ax: Any, marker: str = "o", color: str = "0.3") -> Any:
    """A legend handle that looks like the simulated points: a marker with its error bar (an
    empty errorbar on ``ax``: nothing is drawn)."""
    return ax.errorbar([], [], yerr=[], fmt=marker, color=color, mfc="white", ms=4, capsize=2)

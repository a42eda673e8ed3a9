"""Shared figure habits: the Agg back end, one style, and the drawings every family repeats.

matplotlib is imported on first use, so importing a figures module (to read its captions) costs
nothing; only drawing pays for it.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

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
        # under a hidden temporary name, then renamed: a worker killed while it writes (the run
        # was interrupted) never leaves a truncated figure under the figure's name
        temporary = folder / f".{stem}.{os.getpid()}.tmp.{fmt}"
        try:
            fig.savefig(temporary, format=fmt, dpi=png_dpi if fmt == "png" else None)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        paths.append(path)
    _pyplot().close(fig)
    return paths


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
        if "bbox_to_anchor" in legend_options and getattr(ax, _CLAIMS_ATTR, None):
            # the panel's legend is already outside it, where a claims legend would go: the
            # claims join it, in one column (a formula is too long to share a row)
            handles, labels = ax.get_legend_handles_labels()
            extra_handles, extra_labels = claim_entries(ax)
            options = {**legend_options, "ncols": 1}
            ax.legend(
                handles + extra_handles, labels + extra_labels, fontsize=legend_size, **options
            )
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


def setting_label(params: Mapping[str, Any], names: Sequence[str]) -> str:
    """``"M = 50, p = 0.3"``: the named parameters of a point, for a legend or a title."""
    parts = []
    for name in names:
        value = params[name]
        parts.append(f"{name} = {value:g}" if isinstance(value, float) else f"{name} = {value}")
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
    """
    claims = claims_of(points, quantity)
    if not claims:
        return 0
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    log_y = ax.get_yscale() == "log"
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
            (handle,) = ax.plot(xs[order], np.ravel(ys)[order], **style)
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
    ax.set_xlim(xlim)
    # keep the data readable: a wild claim does not squash it against one edge
    values = np.concatenate([v for _, _, v in drawn]) if drawn else np.array([])
    values = values[np.isfinite(values)]
    if log_y:
        values = values[values > 0]
    if values.size:
        lo, hi = min(ylim[0], values.min()), max(ylim[1], values.max())
        if _span(lo, hi, log_y) > CLAIM_SPAN_LIMIT * _span(*ylim, log_y):
            ax.set_ylim(ylim)
    bottom, top = sorted(ax.get_ylim())
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
    """The legend of the claims drawn on ``ax`` (:func:`draw_claims`), below the panel's x axis
    label, so it never covers the data however many claims there are; None when there are
    none. The panel's own legend is left where it is."""
    handles, labels = claim_entries(ax)
    if not handles:
        return None
    from matplotlib import rcParams
    from matplotlib.legend import Legend

    # room for the ticks, their labels (taller on a log axis) and the x label, in points
    below = rcParams["xtick.major.size"] + rcParams["xtick.major.pad"] + _points("xtick.labelsize")
    if ax.get_xscale() == "log":
        below += 3
    if ax.get_xlabel():
        below += rcParams["axes.labelpad"] + _points("axes.labelsize") * (
            1 + ax.get_xlabel().count("\n")
        )
    legend = Legend(
        ax,
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        bbox_transform=ax.transAxes,
        borderaxespad=(below + 4) / fontsize,
        fontsize=fontsize,
        handlelength=3,
    )
    ax.add_artist(legend)
    legend.set_clip_on(False)  # add_artist clips to the axes, and the legend is below them
    lines = sum(1 + t.count("\n") for t in labels)
    spacing = rcParams["legend.labelspacing"] + 1
    height = below + 4 + fontsize * (lines * spacing + 2 * rcParams["legend.borderpad"]) + 4
    _make_room(ax, height / 72)
    return legend


def _make_room(ax: Any, inches: float) -> None:
    """Grow the figure so that the panels keep their height with ``inches`` below a row's axes
    (a claims legend): each row grows by what its tallest legend needs beyond the usual
    margin."""
    fig = ax.figure
    spec = ax.get_subplotspec()
    if spec is None:
        return
    rooms = fig.__dict__.setdefault("_simlab_claim_room", {})
    row = spec.rowspan.stop - 1
    extra = max(inches - _GUESS["bottom"], 0.0)
    grow = extra - rooms.get(row, 0.0)
    if grow <= 0:
        return
    rooms[row] = extra
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, height + grow)


def _points(key: str) -> float:
    """A font size rcParam in points (``"medium"`` and the like resolved)."""
    from matplotlib.font_manager import FontProperties

    return float(FontProperties(size=_rc(key)).get_size_in_points())


def _rc(key: str) -> Any:
    from matplotlib import rcParams

    return rcParams[key]

"""Legends that cover no data point: what a reader reads values off a panel (markers, error
bars, bar tops, histogram steps; :func:`data_marks`), whether a legend's box covers any of it
(:func:`covered_marks`), and :func:`place_legend`, which puts a legend at the first place inside
its panel (or a neighbour) that is clear, else beside the panel. The places are chosen when the
figure is laid out (:func:`simlab.figure_layout.layout_figure` calls
:func:`place_pending_legends`), once the panels have their final size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: set on the marks of :func:`simlab.plotting.mark_off_scale` (a value off the axis, drawn on
#: its edge): data points all the same, which no legend may cover
OFF_SCALE_MARK = "_simlab_off_scale"


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
        on_edge = getattr(line, OFF_SCALE_MARK, False)
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
            add(patch, segments=_step_tops(patch))
    return marks


def _step_tops(patch: Any) -> np.ndarray:
    """The top of each non-empty bin of a histogram's step outline (its value end, across the
    bin), as display-coordinate segments (n, 2, 2); an empty bin, at the baseline, is none."""
    values, edges, baseline = patch.get_data()
    values = np.asarray(values, dtype=float)
    edges = np.asarray(edges, dtype=float)
    base = np.broadcast_to(np.asarray(0.0 if baseline is None else baseline, float), values.shape)
    full = values != base
    x0, x1, v = edges[:-1][full], edges[1:][full], values[full]
    if patch.orientation == "vertical":
        segments = np.stack([np.column_stack([x0, v]), np.column_stack([x1, v])], 1)
    else:
        segments = np.stack([np.column_stack([v, x0]), np.column_stack([v, x1])], 1)
    return patch.get_transform().transform(segments.reshape(-1, 2)).reshape(-1, 2, 2)


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
    figure is laid out (:func:`~simlab.figure_layout.layout_figure`, which
    :func:`~simlab.figure_layout.save` runs), once the panels have their final size; until
    then the legend sits at the first candidate. A second legend on
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


def place_pending_legends(fig: Any) -> list[tuple[Any, Any]]:
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
    lines that have a legend label (an ``axhline`` labelled "population cond(C)") as segments:
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

"""A figure lint: the defects a reader notices at a glance, found on the laid-out figure.

:func:`lint_figure` draws a figure (without rasterising it) at the resolution of the PNG files
and lists, in words naming the panel and the artist:

- text past the canvas: any title, suptitle, axis or tick label, legend entry, annotation or
  text whose box leaves the figure (it would be cut off in the file);
- unreadable tick labels: two drawn tick labels of one axis that overlap, or tick labels
  rotated off the horizontal (turned text is read with a tilted head; thin the ticks instead);
- a legend over data: any legend box covering a data point, by the rule legends are placed
  with (:func:`simlab.figure_legends.data_marks`,
  :func:`simlab.figure_legends.covered_marks`): markers, error bars, scatter points, bar tops
  and histogram steps are data; curves without markers, reference lines, bands and images are
  not;
- a missing axis label: every drawn axis that shows tick labels (numbers a reader must put a
  unit or a meaning to) has a label, or the figure a shared ``supxlabel``/``supylabel``; a
  colorbar's long axis included; an axis without tick labels needs none;
- a setting that was not run: a title, suptitle or text naming one of ``not_run`` (see
  :func:`not_run_settings`, which lists an experiment's parameter choices a run left out).

It cannot judge meaning (a wrong formula, a misleading scale): open the figures as well.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from simlab.figure_layout import PNG_DPI
from simlab.figure_legends import covered_marks, figure_data_marks
from simlab.figure_style import render_style

#: a text box may leave the canvas by this many pixels (antialiasing) before it is cut
CANVAS_TOLERANCE_PX = 1.0
#: two tick labels overlap when they share more than this many pixels in each direction
TICK_OVERLAP_PX = 1.0


def lint_figure(fig: Any, *, not_run: Collection[str] = (), dpi: float = PNG_DPI) -> list[str]:
    """The problems of ``fig`` as laid out (call :func:`simlab.figure_layout.layout_figure` first,
    as :func:`simlab.figure_layout.save` does), one human-readable line each; [] when clean.
    Text is measured in the style the figure is saved in (:func:`render_style`)."""
    with render_style():
        fig.set_dpi(dpi)
        fig.draw_without_rendering()  # positions every text as drawing would, without pixels
        renderer = fig.canvas.get_renderer()
        problems: list[str] = []
        problems += _texts_past_canvas(fig, renderer)
        problems += _tick_label_problems(fig, renderer)
        problems += _legends_over_data(fig, renderer)
        problems += _missing_axis_labels(fig, renderer)
        problems += _unrun_settings(fig, not_run)
        return problems


def not_run_settings(
    experiment: Any, points: Sequence[Any], names: Collection[str] | None = None
) -> list[str]:
    """The choices of ``experiment``'s choice parameters (``names``: only these) that none of
    ``points`` took, each as the names a figure may call it by: the value itself and, for a
    compound value, its trailing parts (``kaiming_fan_out`` also as ``fan_out``). A choice
    spelled like one of the experiment's parameters (the init ``gain`` beside the parameter
    ``gain``) is left out: in a title it names the parameter as often as the choice."""
    parameter_names = {param.name for param in experiment.params}
    out: list[str] = []
    for param in experiment.params:
        if param.kind != "choice" or (names is not None and param.name not in names):
            continue
        taken = {str(_params_of(pt)[param.name]) for pt in points}
        for choice in param.choices:
            if choice in taken or choice in parameter_names:
                continue
            parts = re.split(r"[_\- ]+", choice)
            out.append(choice)
            out.extend("_".join(parts[i:]) for i in range(1, len(parts) - 1))
    return list(dict.fromkeys(out))


def _params_of(point: Any) -> Mapping[str, Any]:
    return point if isinstance(point, Mapping) else point.params


# -- where a problem is ----------------------------------------------------------------------------
def _where(fig: Any, ax: Any) -> str:
    """A panel as a reader finds it: by its title, else its place among the figure's axes."""
    if ax is None:
        return "figure"
    if getattr(ax, "_colorbar", None) is not None:
        label = ax._colorbar.ax.get_ylabel() or ax._colorbar.ax.get_xlabel()
        return f"colorbar {label!r}" if label else "colorbar"
    title = " ".join(t.get_text() for t in (ax._left_title, ax.title, ax._right_title))
    title = " ".join(title.split())
    if title:
        return f"panel {_short(title, 50)!r}"
    return f"panel {fig.axes.index(ax) + 1} of {len(fig.axes)} (untitled)"


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- which texts are drawn -------------------------------------------------------------------------
def _drawn_texts(fig: Any, renderer: Any) -> Iterator[tuple[Any, Any]]:
    """Every text artist the figure draws, with its axes (None for the figure's own): hidden
    artists and their children, empty texts, tick labels of ticks outside the view and
    annotations of points outside theirs are left out."""
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.text import Annotation, Text

    def walk(artist: Any, ax: Any) -> Iterator[tuple[Any, Any]]:
        if not artist.get_visible():
            return
        if isinstance(artist, Text):
            if artist.get_text().strip() and _annotation_drawn(artist, renderer, Annotation):
                yield artist, ax
            return
        if isinstance(artist, Axis):
            for text in (artist.label, artist.offsetText):
                yield from walk(text, ax)
            for label in _drawn_tick_labels(artist):
                yield label, ax
            return
        owner = artist if isinstance(artist, Axes) else ax
        for child in artist.get_children():
            yield from walk(child, owner)

    yield from walk(fig, None)


def _annotation_drawn(text: Any, renderer: Any, annotation_type: type) -> bool:
    if not isinstance(text, annotation_type):
        return True
    try:
        return bool(text._check_xy(renderer))  # an annotation of a point out of view is not drawn
    except Exception:  # a private method of matplotlib: when it moves, lint the text anyway
        return True


def _drawn_tick_labels(axis: Any) -> list[Any]:
    """The tick labels ``axis`` draws (label1 and label2 of the ticks in view), in order."""
    try:
        ticks = axis._update_ticks()  # the ticks in view, as drawing selects them
    except Exception:  # a private method of matplotlib: fall back on every tick
        ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    return [
        label
        for tick in ticks
        if tick.get_visible()
        for label in (tick.label1, tick.label2)
        if label.get_visible() and label.get_text().strip()
    ]


def _lint_axes(fig: Any) -> list[Any]:
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison]


def _axes_axes(ax: Any) -> list[tuple[str, Any]]:
    """The named axes of a panel: x and y, and z on a 3-D panel."""
    return [(name, axis) for name, axis in ax._axis_map.items() if axis.get_visible()]


# -- the checks ------------------------------------------------------------------------------------
def _texts_past_canvas(fig: Any, renderer: Any) -> list[str]:
    canvas = fig.bbox
    tol = CANVAS_TOLERANCE_PX
    problems = []
    for text, ax in _drawn_texts(fig, renderer):
        box = text.get_window_extent(renderer)
        edges = []
        if box.x0 < canvas.x0 - tol:
            edges.append(f"left by {canvas.x0 - box.x0:.0f} px")
        if box.x1 > canvas.x1 + tol:
            edges.append(f"right by {box.x1 - canvas.x1:.0f} px")
        if box.y0 < canvas.y0 - tol:
            edges.append(f"bottom by {canvas.y0 - box.y0:.0f} px")
        if box.y1 > canvas.y1 + tol:
            edges.append(f"top by {box.y1 - canvas.y1:.0f} px")
        if edges:
            problems.append(
                f"{_where(fig, ax)}: text {_short(text.get_text())!r} is cut off: past the "
                f"{', '.join(edges)} edge of the canvas"
            )
    return problems


def _tick_label_problems(fig: Any, renderer: Any) -> list[str]:
    problems = []
    for ax in _lint_axes(fig):
        for name, axis in _axes_axes(ax):
            labels = _drawn_tick_labels(axis)
            turned = sorted({round(t.get_rotation()) % 360 for t in labels} - {0})
            if turned:
                problems.append(
                    f"{_where(fig, ax)}: {name} tick labels are rotated "
                    f"({', '.join(f'{r}°' for r in turned)}): hard to read"
                )
            boxes = [(t, t.get_window_extent(renderer)) for t in labels]
            for i, (first, a) in enumerate(boxes):
                clash = next(
                    (
                        second
                        for second, b in boxes[i + 1 :]
                        if min(a.x1, b.x1) - max(a.x0, b.x0) > TICK_OVERLAP_PX
                        and min(a.y1, b.y1) - max(a.y0, b.y0) > TICK_OVERLAP_PX
                    ),
                    None,
                )
                if clash is not None:
                    problems.append(
                        f"{_where(fig, ax)}: {name} tick labels overlap "
                        f"({first.get_text()!r} and {clash.get_text()!r})"
                    )
                    break
    return problems


def _legends_over_data(fig: Any, renderer: Any) -> list[str]:
    from matplotlib.axes import Axes
    from matplotlib.legend import Legend

    marks = figure_data_marks(fig)
    problems = []
    legends = [leg for leg, _ in _visible_artists(fig, Legend)]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        owner = legend.parent if isinstance(legend.parent, Axes) else None
        # an error bar's marker, caps and bar are separate artists of one series: count together
        counts: dict[tuple[int, str], list[Any]] = {}
        for mark, points, segments in covered_marks(box, marks):
            entry = counts.setdefault((id(mark.axes), mark.name), [mark.axes, 0, 0])
            entry[1] += points
            entry[2] += segments
        for (_, name), (axes, points, segments) in counts.items():
            what = []
            if points:
                what.append(f"{points} marker{'s' * (points > 1)}")
            if segments:
                what.append(
                    f"{segments} error bar{'s' * (segments > 1)} or bar top{'s' * (segments > 1)}"
                )
            elsewhere = "" if axes is owner else f" in {_where(fig, axes)}"
            problems.append(
                f"{_where(fig, owner)}: legend covers {' and '.join(what)} of "
                f"{_short(name, 40)!r}{elsewhere}"
            )
    return problems


def _visible_artists(fig: Any, kind: type) -> list[tuple[Any, Any]]:
    """The visible artists of ``kind`` whose ancestors are visible too, with their axes."""
    from matplotlib.axes import Axes

    found: list[tuple[Any, Any]] = []

    def walk(artist: Any, ax: Any) -> None:
        if not artist.get_visible():
            return
        if isinstance(artist, kind):
            found.append((artist, ax))
            return
        owner = artist if isinstance(artist, Axes) else ax
        for child in artist.get_children():
            walk(child, owner)

    walk(fig, None)
    return found


def _missing_axis_labels(fig: Any, renderer: Any) -> list[str]:
    shared = {
        "x": bool(getattr(fig, "_supxlabel", None) and fig._supxlabel.get_text().strip()),
        "y": bool(getattr(fig, "_supylabel", None) and fig._supylabel.get_text().strip()),
    }
    problems = []
    panels = _lint_axes(fig)
    for ax in panels:
        for name, axis in _axes_axes(ax):
            if axis.label.get_text().strip() or shared.get(name, False):
                continue
            labels = _drawn_tick_labels(axis)
            if not labels or _names_itself(labels):
                continue
            if _labelled_alongside(ax, name, panels):
                continue
            problems.append(f"{_where(fig, ax)}: the {name} axis has tick labels but no label")
    return problems


def _names_itself(labels: Sequence[Any]) -> bool:
    """Tick labels in words (``input = gaussian``: a word of two letters or more outside
    math text) say what they are; numbers (``0.5``, ``1e-05``, ``$10^{3}$``) do not."""
    words = [re.sub(r"\$[^$]*\$", "", t.get_text()) for t in labels]
    return any(re.search(r"[^\W\d_]{2,}", w) for w in words)


def _labelled_alongside(ax: Any, name: str, panels: Sequence[Any]) -> bool:
    """The axis is labelled once for its grid column (x) or row (y), on a panel showing the
    same scale: shared with it, or with the same limits (one label per column or row)."""
    spec = ax.get_subplotspec()
    if spec is None or name not in ("x", "y"):
        return False
    span = spec.colspan if name == "x" else spec.rowspan
    limits = ax.get_xlim() if name == "x" else ax.get_ylim()
    shared = ax.get_shared_x_axes() if name == "x" else ax.get_shared_y_axes()
    for other in panels:
        other_spec = other.get_subplotspec()
        if other is ax or other_spec is None:
            continue
        if (other_spec.colspan if name == "x" else other_spec.rowspan) != span:
            continue
        label = (other.xaxis if name == "x" else other.yaxis).label.get_text().strip()
        same = (other.get_xlim() if name == "x" else other.get_ylim()) == limits
        if label and (same or shared.joined(ax, other)):
            return True
    return False


def _unrun_settings(fig: Any, not_run: Collection[str]) -> list[str]:
    """Titles, the suptitle and free texts naming a setting of ``not_run``."""
    if not not_run:
        return []
    patterns = {name: _name_pattern(name) for name in not_run}
    suptitle = getattr(fig, "_suptitle", None)
    texts: list[tuple[str, Any, Any]] = [("the suptitle", suptitle, None)] if suptitle else []
    texts += [("a text", t, None) for t in fig.texts if t is not suptitle]
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [("the title", t, ax) for t in (ax.title, ax._left_title, ax._right_title)]
        texts += [("a text", t, ax) for t in ax.texts]
    problems = []
    for kind, text, ax in texts:
        content = text.get_text()
        if not text.get_visible() or not content.strip():
            continue
        named = [name for name, pattern in patterns.items() if pattern.search(content)]
        if named:
            where = "figure" if ax is None else _where(fig, ax)
            problems.append(
                f"{where}: {kind} names {', '.join(map(repr, named))}, which this run did not "
                f"simulate: {_short(content, 80)!r}"
            )
    return problems


def _name_pattern(name: str) -> re.Pattern[str]:
    """``name`` as a whole word, any case, its parts joined by ``_``, ``-`` or a space
    (``fan_out`` matches "fan-out", not the end of "kaiming_fan_out")."""
    parts = [re.escape(p) for p in re.split(r"[_\- ]+", name) if p]
    return re.compile(r"(?<![\w-])" + r"[_\- ]".join(parts) + r"(?![\w-])", re.IGNORECASE)

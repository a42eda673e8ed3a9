"""How simlab's figures are typeset: settings and small rewrites that keep a figure's look while
sparing matplotlib its most expensive searches (text is most of a figure's drawing cost).

- :data:`RENDER_STYLE`: unhinted glyphs while a figure is laid out, saved or linted;
- :data:`FIXED_TITLES`: titles at the top of their panel, not searched for a place at every
  measure and draw; :func:`lift_titles_over_offset_texts` moves the one that would cover its y
  axis' offset text;
- :func:`plain_log_labels`: log-axis labels as plain text (``10⁻³``), not mathtext to parse;
- :func:`ticks_in_view_only`: no minor tick objects made outside the view on log axes, where
  they are never drawn;
- :func:`ticks_computed_once`: within one layout measure or one draw, each axis places its ticks
  and measures their labels once, not the four to six times matplotlib asks.

Measured on the 22 figures of ``simlab check``, drawn in one process: mathtext parsing of the
log labels was a sixth of the drawing, the title search a tenth, hinting 8%; a quarter of the
minor tick objects of log axes lay outside the view; placing ticks and measuring their labels
again for the same axis a tenth.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

#: matplotlib settings while a figure is laid out, saved or linted (the same for all three, so
#: that text is measured as it is drawn): unhinted glyphs look the same at 130 dpi and draw
#: the text, which is most of a figure's cost, in about 8% less time
RENDER_STYLE = {"text.hinting": "no_hinting"}


def render_style() -> Any:
    """A context with :data:`RENDER_STYLE` in force."""
    import matplotlib

    return matplotlib.rc_context(RENDER_STYLE)


#: rcParams in force while a figure's axes are created (:func:`simlab.figure_layout.new_figure`):
#: matplotlib's automatic title position looks, at each layout measure and draw, for anything
#: that could collide with a title (top ticks, the y axis' offset text); simlab's figures have
#: no top ticks, and :func:`lift_titles_over_offset_texts` handles an offset text
FIXED_TITLES = {"axes.titley": 1.0}


def lift_titles_over_offset_texts(fig: Any) -> None:
    """Lift each fixed-position title (:data:`FIXED_TITLES`) that would cover its y axis'
    offset text (the "1e-5" above the axis) just above it, as matplotlib's automatic title
    position does (no figure of `simlab check` has one; a user's sweep may)."""
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        offset = ax.yaxis.offsetText
        if not (ax.get_title() and offset.get_visible() and offset.get_text()):
            continue
        ax.yaxis.get_tightbbox(renderer)  # places the offset text
        top = offset.get_window_extent(renderer)
        title = ax.title.get_window_extent(renderer)
        if title.overlaps(top):  # the title's foot is then below the offset text's top
            x, y = ax.title.get_position()
            lift = (top.y1 - title.y0) / max(ax.bbox.height, 1.0)
            ax.title.set_position((x, y + lift))


@functools.cache
def _plain_log_formatter() -> type:
    from matplotlib.ticker import LogFormatterSciNotation

    class PlainLogFormatter(LogFormatterSciNotation):
        """matplotlib's log-axis labels as plain text (:func:`plain_power_label`)."""

        def __call__(self, x: float, pos: int | None = None) -> str:
            return plain_power_label(super().__call__(x, pos))

    return PlainLogFormatter


#: superscript digits, for the decades of a log axis as plain text
_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def decade_label(exponent: int) -> str:
    """``10`` to the power ``exponent`` as plain text: ``decade_label(-11)`` -> ``10⁻¹¹``, as
    :func:`plain_power_label` writes a log axis's decades."""
    return "10" + str(int(exponent)).translate(_SUPERSCRIPTS)


def plain_power_label(label: str) -> str:
    """A log axis's tick label as plain text, its look kept: ``$\\mathdefault{10^{-3}}$`` ->
    ``10⁻³``, ``$\\mathdefault{3\\times10^{-1}}$`` -> ``3×10⁻¹``; anything else unchanged."""
    if not (label.startswith("$\\mathdefault{") and label.endswith("}$")):
        return label
    inner = label[len("$\\mathdefault{") : -2].replace("\\times", "×")
    base, caret, power = inner.partition("^{")
    if caret:
        if not power.endswith("}") or not power[:-1].lstrip("-").isdigit():
            return label
        inner = base + power[:-1].translate(_SUPERSCRIPTS)
    if "\\" in inner or "{" in inner or "}" in inner:
        return label
    return inner.replace("-", "\u2212")


def plain_log_labels(fig: Any) -> None:
    """Give every log and symlog axis of ``fig`` plain-text labels (:func:`plain_power_label`)
    in place of matplotlib's mathtext ones: parsing each "10^k" as mathtext cost a sixth of the
    drawing. Only the default formatter is replaced, its settings kept."""
    from matplotlib.ticker import LogFormatterSciNotation

    PlainLogFormatter = _plain_log_formatter()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for get, set_ in (
                (axis.get_major_formatter, axis.set_major_formatter),
                (axis.get_minor_formatter, axis.set_minor_formatter),
            ):
                old = get()
                if type(old) is LogFormatterSciNotation:
                    new = PlainLogFormatter()
                    new.__dict__.update(old.__dict__)  # base, minor thresholds, linthresh
                    set_(new)


#: how far outside the view, as a share of its (scale-transformed) width, a tick is still kept
#: by :func:`ticks_in_view_only`: wider than matplotlib's own 1e-10, so that every tick it draws
#: is kept (one it then leaves out costs only its object)
_IN_VIEW_SLACK = 1e-6


@functools.cache
def _in_view_locator() -> type:
    from matplotlib.ticker import Locator

    class InViewLocator(Locator):
        """A locator's ticks, less those outside the axis' view (matplotlib would make a tick
        object for each, with its lines and labels, only to leave it undrawn)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def set_axis(self, axis: Any) -> None:
            super().set_axis(axis)
            self.inner.set_axis(axis)

        def __call__(self) -> Any:
            locs = np.asarray(self.inner(), dtype=float)
            if locs.size == 0 or self.axis is None:
                return locs
            try:
                transform = self.axis.get_transform()
                lo, hi = sorted(transform.transform(np.asarray(self.axis.get_view_interval())))
                at = transform.transform(locs)
            except Exception:  # a scale it cannot place: keep every tick, as matplotlib does
                return locs
            slack = (hi - lo) * _IN_VIEW_SLACK
            with np.errstate(invalid="ignore"):
                return locs[(at >= lo - slack) & (at <= hi + slack)]

        def tick_values(self, vmin: float, vmax: float) -> Any:
            return self.inner.tick_values(vmin, vmax)

        def nonsingular(self, v0: float, v1: float) -> Any:
            return self.inner.nonsingular(v0, v1)

        def view_limits(self, vmin: float, vmax: float) -> Any:
            return self.inner.view_limits(vmin, vmax)

        def set_params(self, **kwargs: Any) -> None:
            self.inner.set_params(**kwargs)

    return InViewLocator


def ticks_in_view_only(fig: Any) -> None:
    """Have the log-like minor ticks of every axis of ``fig`` made only where they are drawn.

    matplotlib makes a tick object (three lines, two labels, their properties copied from the
    first tick) for every location its locator returns, then draws those in the view: a log
    axis' minor locator returns a decade or so beyond each end, most of the ticks made outside
    the view. Only minor locators whose labels do not depend on the list of locations are
    wrapped (log and null formatters: a fixed formatter labels by position, a scalar one takes
    its precision from every location), and the major ticks are left whole (a major tick just
    outside the view still hides a minor tick under it). The figure drawn is the same (tested
    pixel for pixel); each locator keeps its settings (``set_params`` reaches it), and the axis
    whether it is a default one (a later change of scale replaces it as before).
    """
    from matplotlib.ticker import LogFormatter, NullFormatter

    InViewLocator = _in_view_locator()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            ticker = axis.minor
            if isinstance(ticker.locator, InViewLocator):  # a shared axis, or laid out before
                continue
            if not isinstance(ticker.formatter, LogFormatter | NullFormatter):
                continue
            default = axis.isDefault_minloc
            axis.set_minor_locator(InViewLocator(ticker.locator))
            axis.isDefault_minloc = default


def _axes_of(fig: Any) -> list[Any]:
    """Every axes of ``fig``, with the insets (child axes) of each."""
    found, todo = [], list(fig.axes)
    while todo:
        ax = todo.pop()
        found.append(ax)
        todo.extend(getattr(ax, "child_axes", ()))
    return found


#: the matplotlib methods :func:`ticks_computed_once` memoizes, each asked several times per pass
_TICK_METHODS = ("_update_ticks", "_get_ticklabel_bboxes")


def _memoize_ticks(axis: Any) -> None:
    """Give ``axis`` instance-level wrappers of :data:`_TICK_METHODS` that compute once per state.

    The state is what the tick locations and label boxes follow that a layout changes between
    two calls: the view interval, the panel's box on the canvas, the dpi, and which locators and
    formatters are in place (so a change of scale, of limits or of ticks is seen). Not in it:
    the tick parameters (``tick_params``: label size, visibility) and a locator's settings
    changed in place (``set_params``): those must not change inside the context, and simlab
    sets them before a figure is laid out. Within one measure or one draw nothing changes, so
    each axis computes once."""
    update_ticks, label_boxes = axis._update_ticks, axis._get_ticklabel_bboxes
    memo: dict[str, tuple[Any, Any]] = {}

    def state() -> tuple:
        return (
            tuple(axis.get_view_interval()),
            axis.axes.bbox.bounds,
            axis.axes.figure.dpi,
            # the objects, not their id(): held by the key, a replaced locator stays alive, so a
            # new one can never take its address and pass for it
            axis.major.locator,
            axis.minor.locator,
            axis.major.formatter,
            axis.minor.formatter,
        )

    def memoized_update_ticks() -> Any:
        key = state()
        if "ticks" not in memo or memo["ticks"][0] != key:
            memo["ticks"] = (key, update_ticks())
        return memo["ticks"][1]

    def memoized_label_boxes(ticks: Any, renderer: Any) -> Any:
        key = (state(), tuple(ticks), id(renderer))  # ticks compare as themselves
        if "boxes" not in memo or memo["boxes"][0] != key:
            memo["boxes"] = (key, label_boxes(ticks, renderer))
        first, second = memo["boxes"][1]
        return list(first), list(second)  # callers may extend what they get

    axis._update_ticks = memoized_update_ticks
    axis._get_ticklabel_bboxes = memoized_label_boxes


@contextlib.contextmanager
def ticks_computed_once(fig: Any) -> Iterator[None]:
    """Within the context (one layout measure, or one draw), each axis of ``fig`` places its
    ticks and measures their labels once per state (:func:`_memoize_ticks`).

    matplotlib asks an axis for its ticks (locator, formatter, each tick moved and relabelled)
    and their labels' boxes again and again: in a measure, for the axis' own box, for its label
    next to its siblings', and for each of its two spines; in a draw, for the ticks and again
    for the label. Each answer is the same while nothing changes. The figure drawn is the same,
    pixel for pixel (tested); on leaving, the axes have matplotlib's own methods again. Where a
    matplotlib release has no such method, the axis is left as it is."""
    wrapped = []
    for ax in _axes_of(fig):
        for axis in (ax.xaxis, ax.yaxis):
            if any(name in vars(axis) for name in _TICK_METHODS):  # an outer context's
                continue
            if not all(callable(getattr(type(axis), name, None)) for name in _TICK_METHODS):
                continue
            _memoize_ticks(axis)
            wrapped.append(axis)
    try:
        yield
    finally:
        for axis in wrapped:
            for name in _TICK_METHODS:
                vars(axis).pop(name, None)

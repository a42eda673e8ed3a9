"""How simlab's figures are typeset: settings and small rewrites that keep a figure's look while
sparing matplotlib its most expensive searches (text is most of a figure's drawing cost).

- :data:`RENDER_STYLE`: unhinted glyphs while a figure is laid out, saved or linted;
- :data:`FIXED_TITLES`: titles at the top of their panel, not searched for a place at every
  measure and draw; :func:`lift_titles_over_offset_texts` moves the one that would cover its y
  axis' offset text;
- :func:`plain_log_labels`: log-axis labels as plain text (``10⁻³``), not mathtext to parse.

Measured on the 22 figures of ``simlab check``, drawn in one process: mathtext parsing of the
log labels was a sixth of the drawing, the title search a tenth, hinting 8%.
"""

from __future__ import annotations

import functools
from typing import Any

#: matplotlib settings while a figure is laid out, saved or linted (the same for all three, so
#: that text is measured as it is drawn): unhinted glyphs look the same at 130 dpi and draw
#: the text, which is most of a figure's cost, in about 8% less time
RENDER_STYLE = {"text.hinting": "no_hinting"}


def render_style() -> Any:
    """A context with :data:`RENDER_STYLE` in force."""
    import matplotlib

    return matplotlib.rc_context(RENDER_STYLE)


#: rcParams in force while a figure's axes are created (:func:`simlab.plotting.new_figure`):
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

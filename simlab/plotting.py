"""Shared figure habits: one style and the drawings every family repeats (simulated points
with their error bars against the theory, a panel's labels, grid and legend, what a sweep
varies, a series' colour and marker, a value off the axis drawn on its edge).

Beside it: :mod:`simlab.figure_layout` (a new figure, its layout, saving it),
:mod:`simlab.figure_legends` (legends placed clear of the data), :mod:`simlab.figure_claims`
(a user's claims drawn on the figures) and :mod:`simlab.figure_style` (typesetting).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from simlab.figure_claims import claim_entries, claims_legend, has_claims
from simlab.figure_legends import OFF_SCALE_MARK, place_legend

SIM_STYLE = dict(fmt="o", ms=4, capsize=3, lw=1.2)  # simulated points with error bars
THEORY_STYLE = dict(lw=1.6, alpha=0.85)  # analytic curves
#: error bars are drawn at +-ERRORBAR_SE standard errors (about 95% for a normal estimate)
ERRORBAR_SE = 2.0


def side_colorbar(
    fig: Any, mappable: Any, ax: Any, *, label: str, shrink: float = 0.85, **options: Any
) -> Any:
    """A colorbar right of ``ax``, as an inset of it: :func:`~simlab.figure_layout.fit_margins`
    measures it with its panel (as it does a legend outside), so the margins and gaps make
    room for it without constrained layout's passes. ``shrink``: its height as a fraction of
    the panel's."""
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
    setattr(line, OFF_SCALE_MARK, True)  # a data point all the same: no legend may cover it
    return line


def log_errorbars(values: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Asymmetric +-2 SE bars that stay positive on a log axis (the lower bar is cut at 95%)."""
    lower = np.minimum(ERRORBAR_SE * se, 0.95 * np.abs(values))
    return np.vstack([lower, ERRORBAR_SE * se])


def simulated_points(
    ax: Any,
    x: Any,
    value: Any,
    se: Any = None,
    *,
    bars: Any = None,
    horizontal: bool = False,
    hollow: bool = True,
    **style: Any,
) -> Any:
    """Simulated estimates as points with their error bars: +-:data:`ERRORBAR_SE` standard
    errors from ``se``, or the ``bars`` given (asymmetric ones: :func:`log_errorbars` on a log
    axis, an interval). :data:`SIM_STYLE`, markers hollow unless ``hollow=False``; ``style``
    overrides (``fmt``, ``ms``, ``color``, ``label``, ...). ``horizontal``: the values along x,
    at the positions ``x`` along y. Returns matplotlib's errorbar container."""
    if bars is None:
        bars = ERRORBAR_SE * np.asarray(se)
    options = {**SIM_STYLE, **({"mfc": "white"} if hollow else {}), **style}
    if horizontal:
        return ax.errorbar(value, x, xerr=bars, **options)
    return ax.errorbar(x, value, yerr=bars, **options)


def se_bars(ax: Any, x: Any, value: Any, se: Any, *, color: str = "C0", **style: Any) -> Any:
    """+-:data:`ERRORBAR_SE` standard-error bars alone, no marker: on a histogram's bins or a
    pmf's bars, whose own shape shows the value. ``style`` goes to matplotlib's errorbar
    (``alpha``, ``capsize``, ``lw``)."""
    return ax.errorbar(
        x, value, yerr=ERRORBAR_SE * np.asarray(se), fmt="none", ecolor=color, **style
    )


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
    simulated_points(
        ax,
        np.asarray(x) + offset,
        estimate,
        se,
        color=color,
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

    ``keep_clear``: the legend goes where it covers no data point
    (:func:`~simlab.figure_legends.place_legend`), rather than at matplotlib's "best" place,
    which may cover some.
    """
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which=which)
    if legend and ax.get_legend_handles_labels()[0]:
        if "bbox_to_anchor" in legend_options and has_claims(ax):
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


def errorbar_handle(ax: Any, marker: str = "o", color: str = "0.3") -> Any:
    """A legend handle that looks like the simulated points: a marker with its error bar (an
    empty errorbar on ``ax``: nothing is drawn)."""
    return ax.errorbar([], [], yerr=[], fmt=marker, color=color, mfc="white", ms=4, capsize=2)

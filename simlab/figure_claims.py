"""A user's claims drawn on the figures of the quantity they claim: one colour and marker per
claim (apart from the built-in curves' C0-C5), the claimed value at each point, its verdict in a
legend of the claims' own, and a note when a claim lies too far off the data's scale to show.
"""

from __future__ import annotations

import math
import textwrap
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from simlab.figure_legends import place_legend

if TYPE_CHECKING:
    from simlab.figures import ClaimMark

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
    markers per claim; return how many were drawn. Call it before
    :func:`~simlab.plotting.finish_axes`, which lists them in a legend of their own below the
    panel.

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
        style = _claim_style(number, markevery)
        if vertical:
            handle, shown = _claim_lines(ax, pairs, y, style, xlim, ylim)
        elif x is not None and all(np.ndim(m.value) == 0 for _, m in pairs):
            handle, shown = _claim_curve(ax, points, pairs, x, y, style, horizontal)
        else:
            handle, shown = _claim_profiles(ax, pairs, quantity, x, y, style, xlim)
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
    _record_entries(ax, drawn, *sorted(get_val()))
    return len(drawn)


def _claim_style(number: int, markevery: int | None) -> dict[str, Any]:
    """Claim ``number``'s look, the same on every panel: its colour and marker, dashed."""
    slot = number - 1
    return dict(
        color=CLAIM_COLORS[slot % len(CLAIM_COLORS)],
        marker=CLAIM_MARKERS[slot % len(CLAIM_MARKERS)],
        ms=5,
        mfc="none",
        lw=1.3,
        ls="--",
        zorder=4,
        markevery=markevery,
    )


def _claim_lines(
    ax: Any, pairs: list, y: Any, style: dict[str, Any], xlim: Any, ylim: Any
) -> tuple[Any, list[np.ndarray]]:
    """A scalar claim as a vertical line at its value, one per point; the first line and the
    values shown (mid-panel height, or inf for a line off the x range)."""
    handle, shown = None, []
    for pt, mark in pairs:
        at = float(_mapped(y, pt, mark.value))
        line = ax.axvline(at, **{**style, "marker": None, "lw": 1.6})
        handle = handle or line
        inside = min(xlim) <= at <= max(xlim)
        shown.append(np.array([0.5 * sum(ylim) if inside else np.inf]))
    return handle, shown


def _claim_curve(
    ax: Any, points: Sequence[Any], pairs: list, x: Any, y: Any, style: dict[str, Any], swap: bool
) -> tuple[Any, list[np.ndarray]]:
    """A scalar claim as one curve through its values at the points' ``x`` (``swap``: the
    positions along y, a forest plot); the curve and its values."""
    where = {id(pt): i for i, pt in enumerate(points)}
    xs = np.array([float(x[where[id(pt)]]) for pt, _ in pairs])
    ys = np.array([_mapped(y, pt, m.value) for pt, m in pairs], dtype=float)
    order = np.argsort(xs)
    curve = (xs[order], np.ravel(ys)[order])
    (handle,) = ax.plot(*(curve[::-1] if swap else curve), **style)
    return handle, [ys]


def _claim_profiles(
    ax: Any, pairs: list, quantity: str, x: Any, y: Any, style: dict[str, Any], xlim: Any
) -> tuple[Any, list[np.ndarray]]:
    """A profile claim against the estimate's index (a pmf's against its support, dotted), one
    curve per point; the first curve and the values inside the x range."""
    handle, shown = None, []
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
    return handle, shown


def _record_entries(ax: Any, drawn: list, bottom: float, top: float) -> None:
    """One legend entry per claim on ``ax``, however many groups of points it was drawn for,
    marked off-axis when a value lies outside [bottom, top]."""
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


def has_claims(ax: Any) -> bool:
    """Whether ``ax`` has claims drawn (:func:`draw_claims`) that no legend lists yet."""
    return bool(getattr(ax, _CLAIMS_ATTR, None))


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
    it covers no data point, else below the panel's x label
    (:func:`~simlab.figure_legends.place_legend`); None when there are none. The panel's own
    legend is left where it is, and the claims' avoid it."""
    handles, labels = claim_entries(ax)
    if not handles:
        return None
    return place_legend(
        ax, handles, labels, fontsize=fontsize, outside="below", extra=True, handlelength=3
    )

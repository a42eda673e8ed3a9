"""Legends clear of the data: what counts as a data point, legends placed clear of them, and
margins fitted around legends moved outside their panels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.legend import Legend

from simlab.figure_layout import layout_figure, new_figure
from simlab.figure_legends import (
    LEGEND_LOCS,
    _segments_cross,
    covered_marks,
    data_marks,
    figure_data_marks,
    place_legend,
)
from simlab.plotting import finish_axes


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _legend_problems(fig) -> list:
    """Every (legend, covered mark) pair of the laid-out figure."""
    renderer = fig.canvas.get_renderer()
    marks = figure_data_marks(fig)
    return [
        (legend, mark.name)
        for legend in fig.findobj(Legend)
        for mark, _, _ in covered_marks(legend.get_window_extent(renderer), marks)
    ]


def _names(ax) -> set[str]:
    return {mark.name for mark in data_marks(ax)}


def test_markers_error_bars_bars_and_steps_are_data_but_curves_lines_and_bands_are_not():
    fig, axes = new_figure()
    ax = axes[0, 0]
    x = np.arange(5.0)
    ax.plot(x, x**2, label="theory")  # a curve
    ax.plot(x, x, "o", label="points")
    ax.errorbar(x, x + 1, yerr=0.5, fmt="s", label="simulated")
    ax.bar(x, x + 2, label="bars")
    ax.stairs([1.0, 0.0, 2.0], [0.0, 1.0, 2.0, 3.0], label="histogram")
    ax.scatter(x, -x, label="scatter")
    ax.axhline(1.0, label="reference")
    ax.fill_between(x, x - 1, x + 1, label="band")
    assert _names(ax) == {"points", "simulated", "bars", "histogram", "scatter"}
    by_name: dict[str, list] = {}
    for mark in data_marks(ax):
        by_name.setdefault(mark.name, []).append(mark)
    # the error bars are 5 segments, the bars 5 tops, the histogram's empty bin is left out
    assert sum(len(m.segments) for m in by_name["simulated"]) == 5
    assert sum(len(m.segments) for m in by_name["bars"]) == 5
    assert sum(len(m.segments) for m in by_name["histogram"]) == 2
    assert sum(len(m.points) for m in by_name["points"]) == 5


def test_segments_crossing_a_box():
    box = (0.0, 0.0, 1.0, 1.0)
    segments = np.array(
        [
            [[-1.0, 0.5], [2.0, 0.5]],  # through
            [[0.5, -1.0], [0.5, -0.1]],  # below, vertical
            [[0.2, 0.2], [0.3, 0.3]],  # inside
            [[-1.0, 2.0], [2.0, -1.0]],  # diagonal through the corner region
            [[1.5, -1.0], [3.0, 0.5]],  # diagonal beside it
        ]
    )
    assert _segments_cross(segments, box).tolist() == [True, False, True, True, False]


def test_a_marker_touching_the_legend_frame_is_not_covered_one_inside_is():
    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.plot([0.0, 1.0], [0.0, 1.0], "o", ms=6, label="points")
    ax.set_xlim(-1, 2)
    ax.set_ylim(-1, 2)
    layout_figure(fig)
    (mark,) = data_marks(ax)
    x, y = mark.points[1]
    radius = mark.radii[1]
    from matplotlib.transforms import Bbox

    beside = Bbox.from_extents(x + radius, y - 20, x + 60, y + 20)  # touches the marker's edge
    over = Bbox.from_extents(x + radius - 3, y - 20, x + 60, y + 20)
    assert covered_marks(beside, [mark]) == []
    assert [(m.name, n) for m, n, _ in covered_marks(over, [mark])] == [("points", 1)]


def _corners(ax, n: int = 8) -> None:
    """Simulated points in every corner and along every edge: no candidate place is free
    except between them."""
    t = np.linspace(0.0, 1.0, n)
    edge = np.concatenate([t, np.ones(n), t[::-1], np.zeros(n)])
    other = np.concatenate([np.zeros(n), t, np.ones(n), t[::-1]])
    ax.errorbar(edge, other, yerr=0.02, fmt="o", label="edges, simulated ±2 SE")
    ax.plot(t, t, label="theory")


@pytest.mark.parametrize("layout", ["corners", "filled", "all but center"])
def test_place_legend_never_covers_data(layout):
    fig, axes = new_figure(ncols=2)
    rng = np.random.default_rng(5)
    for ax in axes[0]:
        if layout == "corners":
            _corners(ax)
        elif layout == "filled":
            ax.plot(rng.random(400), rng.random(400), "o", ms=3, label="everywhere")
        else:
            xy = rng.random((600, 2))
            xy = xy[np.hypot(*(xy - 0.5).T) > 0.25]
            ax.plot(*xy.T, "o", ms=3, label="a ring")
        finish_axes(ax, xlabel="x", ylabel="y", keep_clear=True)
    layout_figure(fig)
    fig.draw_without_rendering()
    assert _legend_problems(fig) == []


def test_a_legend_that_fits_nowhere_goes_right_and_the_panels_keep_their_size():
    fig, axes = new_figure(ncols=2)
    rng = np.random.default_rng(1)
    for ax in axes[0]:
        ax.plot(rng.random(500), rng.random(500), "o", ms=4, label="everywhere")
        finish_axes(ax, xlabel="x", ylabel="y", keep_clear=True)
    reference, ref_axes = new_figure(ncols=2)
    for ax in ref_axes[0]:
        ax.plot([0, 1], [0, 1], "o")
        finish_axes(ax, xlabel="x", ylabel="y", legend=False)
    layout_figure(fig)
    layout_figure(reference)
    width, height = fig.get_size_inches()
    assert width > reference.get_size_inches()[0]  # grown for the legends
    assert height == reference.get_size_inches()[1]
    panel = axes[0, 0].get_position().width * width
    ref_panel = ref_axes[0, 0].get_position().width * reference.get_size_inches()[0]
    assert panel == pytest.approx(ref_panel, rel=0.02)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    for ax in axes[0]:
        box = ax.get_legend().get_window_extent(renderer)
        assert box.x0 >= ax.bbox.x1  # right of its own panel
        assert box.x1 <= fig.bbox.x1  # inside the canvas
    left_box = axes[0, 0].get_legend().get_window_extent(renderer)
    assert left_box.x1 < axes[0, 1].get_tightbbox(renderer).x0  # clear of the next panel
    assert _legend_problems(fig) == []


def test_below_puts_the_legend_under_the_x_label():
    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.plot(np.random.default_rng(2).random((300, 2)), "o", label="everywhere")
    ax.set_xlabel("x label")
    place_legend(ax, outside="below")
    layout_figure(fig)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    box = ax.get_legend().get_window_extent(renderer)
    assert box.y1 <= ax.xaxis.label.get_window_extent(renderer).y0
    assert box.y0 >= 0


def test_the_claims_legend_avoids_the_panel_legend_and_the_data():
    from simlab.figure_claims import draw_claims
    from simlab.figures import ClaimMark

    class Point:
        def __init__(self, p: float):
            self.params = {"p": p}
            self.claims = (ClaimMark(1, "m", "2*p", 2 * p, "pass"),)

    points = [Point(p) for p in (0.1, 0.5, 0.9)]
    fig, axes = new_figure()
    ax = axes[0, 0]
    xs = np.array([0.1, 0.5, 0.9])
    ax.errorbar(xs, 2 * xs, yerr=0.05, fmt="o", label="simulated")
    draw_claims(ax, points, "m", xs)
    finish_axes(ax, xlabel="p", ylabel="m", keep_clear=True)
    layout_figure(fig)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    legends = fig.findobj(Legend)
    assert len(legends) == 2
    first, second = (leg.get_window_extent(renderer) for leg in legends)
    assert first.intersection(first, second) is None or (
        min(first.x1, second.x1) <= max(first.x0, second.x0)
        or min(first.y1, second.y1) <= max(first.y0, second.y0)
    )
    assert _legend_problems(fig) == []


def test_a_given_loc_is_tried_first_and_layout_twice_changes_nothing():
    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.plot([0.0, 1.0], [0.0, 1.0], "o", label="two points")
    legend = place_legend(ax, loc="upper left")
    assert LEGEND_LOCS[0] != "upper left"
    layout_figure(fig)
    assert legend._loc == 2  # matplotlib's code of "upper left": free, so kept
    before = np.r_[fig.get_size_inches(), ax.get_position().bounds]
    layout_figure(fig)
    # unmoved: equal up to rounding (a billionth of the figure is far below a pixel)
    np.testing.assert_allclose(
        np.r_[fig.get_size_inches(), ax.get_position().bounds], before, atol=1e-9
    )


def test_place_legend_refuses_an_unknown_side():
    fig, axes = new_figure()
    axes[0, 0].plot([0, 1], label="a")
    with pytest.raises(ValueError, match="outside='left'"):
        place_legend(axes[0, 0], outside="left")


@pytest.mark.parametrize("loc", LEGEND_LOCS)
def test_the_candidate_boxes_are_where_matplotlib_puts_the_legend(loc):
    from simlab.figure_legends import _anchored

    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.plot([0, 1], [0, 1], label="a line")
    legend = ax.legend(loc=loc, fontsize=7)
    layout_figure(fig)
    renderer = fig.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    pad = legend.borderaxespad * renderer.points_to_pixels(legend._fontsize)
    predicted = _anchored(loc, box.width, box.height, ax.bbox, pad)
    assert predicted.bounds == pytest.approx(box.bounds, abs=1e-6)


def test_a_legend_placed_by_the_caller_stays_and_unknown_places_are_refused():
    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.plot(np.random.default_rng(0).random((200, 2)), "o", label="everywhere")
    legend = place_legend(ax, loc="upper left", bbox_to_anchor=(0.0, 1.0))
    layout_figure(fig)
    assert legend._loc == 2 and tuple(fig.get_size_inches()) == (5.2, 3.8)
    with pytest.raises(ValueError, match="loc='top'"):
        place_legend(ax, loc="top")


def test_a_legend_outside_the_first_column_widens_only_its_own_gap():
    def figure(outside: bool):
        fig, axes = new_figure(ncols=3)
        rng = np.random.default_rng(3)
        for ax in axes[0]:
            ax.plot(rng.random(50), rng.random(50), "o", ms=3)
            finish_axes(ax, xlabel="x", ylabel="y", legend=False)
        if outside:
            axes[0, 0].lines[0].set_label("points everywhere")
            axes[0, 0].plot(rng.random(500), rng.random(500), "o", ms=3)
            place_legend(axes[0, 0])
        layout_figure(fig)
        return fig, axes

    fig, axes = figure(True)
    ref, ref_axes = figure(False)
    size, ref_size = fig.get_size_inches(), ref.get_size_inches()

    def gaps(fig, axes, width):
        boxes = [ax.get_position() for ax in axes[0]]
        return [(b.x0 - a.x1) * width for a, b in zip(boxes, boxes[1:], strict=False)]

    (first, second), (ref_first, ref_second) = (
        gaps(fig, axes, size[0]),
        gaps(ref, ref_axes, ref_size[0]),
    )
    assert first > ref_first + 0.5  # room for the legend, in inches
    assert second < ref_second + 0.1  # its own need (plus a share of the growth), no legend
    widths = [ax.get_position().width * size[0] for ax in axes[0]]
    ref_widths = [ax.get_position().width * ref_size[0] for ax in ref_axes[0]]
    assert widths == pytest.approx(ref_widths, rel=0.01)
    fig.draw_without_rendering()
    assert _legend_problems(fig) == []


def test_a_place_that_leaves_the_curves_whole_is_preferred():
    fig, axes = new_figure()
    ax = axes[0, 0]
    x = np.linspace(0.0, 1.0, 100)
    ax.plot(x, 1 - x, label="theory falling through the upper left and lower right")
    ax.plot([0.5], [0.5], "o", label="one point")
    legend = place_legend(ax)
    layout_figure(fig)
    # the first candidate ("upper right") is clear of the point and of the curve; move the
    # curve through it and the legend goes to the next place the curve leaves free
    assert legend._loc == 1
    fig2, axes2 = new_figure()
    ax2 = axes2[0, 0]
    ax2.plot(x, x, label="theory rising through the lower left and upper right")
    ax2.plot([0.5], [0.5], "o", label="one point")
    legend2 = place_legend(ax2)
    layout_figure(fig2)
    assert legend2._loc == 2  # "upper left": clear of both


@pytest.mark.parametrize("named", [True, False])
def test_a_reference_line_the_legend_names_is_left_whole_an_unnamed_one_is_context(named):
    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.plot([0.5], [0.5], "o", label="one point")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    # a horizontal reference line through the top of the panel: every upper place covers it
    ax.axhline(0.9, ls="--", label="population value" if named else "_separator")
    legend = place_legend(ax)
    layout_figure(fig)
    # named: the first place that leaves it whole ("lower left"); unnamed: the first place
    assert legend._loc == (3 if named else 1)


def test_a_legend_shared_by_panels_sits_in_a_clear_one_and_the_figure_keeps_its_size():
    # the first panel is full of points, the second has room: the row's legend goes there, and
    # is no margin of the first panel's (it once widened the gap, which moved it further: the
    # figure grew to thousands of inches)
    fig, axes = new_figure(ncols=2)
    rng = np.random.default_rng(3)
    axes[0, 0].plot(rng.random(500), rng.random(500), "o", ms=4, label="everywhere")
    axes[0, 1].plot([0.0, 0.1], [0.0, 0.1], "o", ms=4)
    for ax in axes[0]:
        finish_axes(ax, xlabel="x", ylabel="y", legend=False)
    place_legend(axes[0, 0], panels=list(axes[0]), outside="below")
    size = tuple(fig.get_size_inches())
    layout_figure(fig)
    assert tuple(fig.get_size_inches()) == pytest.approx(size)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    box = axes[0, 0].get_legend().get_window_extent(renderer)
    right = axes[0, 1].bbox
    assert right.x0 <= box.x0 and box.x1 <= right.x1 and right.y0 <= box.y0 <= box.y1 <= right.y1
    assert _legend_problems(fig) == []

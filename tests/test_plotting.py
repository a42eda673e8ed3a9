"""The drawings every family shares: simulated points with their +-2 SE bars, bars alone."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from simlab.plotting import ERRORBAR_SE, SIM_STYLE, se_bars, simulated_points


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def _bar_ends(container) -> np.ndarray:
    """(n, 2, 2) ends of the error bars of an errorbar container, in data coordinates."""
    (bars,) = container.lines[2]
    return np.asarray(bars.get_segments())


def test_simulated_points_have_two_se_bars_and_hollow_markers(ax):
    x, value, se = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.7, 0.2]), np.array([0.1, 0.02, 0.3])
    container = simulated_points(ax, x, value, se, color="C2", label="simulated")
    ends = _bar_ends(container)
    np.testing.assert_array_equal(ends[:, :, 0], np.column_stack([x, x]))  # vertical bars
    np.testing.assert_allclose(ends[:, 1, 1] - ends[:, 0, 1], 2 * ERRORBAR_SE * se)
    line = container.lines[0]
    assert line.get_markerfacecolor() == "white" and line.get_marker() == SIM_STYLE["fmt"]
    assert line.get_markersize() == SIM_STYLE["ms"] and container.get_label() == "simulated"
    filled = simulated_points(ax, x, value, se, hollow=False, color="C2")
    assert filled.lines[0].get_markerfacecolor() != "white"


def test_simulated_points_take_given_bars_and_lie_along_x_when_horizontal(ax):
    value, at = np.array([4.0, 8.0]), np.array([0.0, 1.0])
    bars = np.array([[1.0, 2.0], [0.5, 3.0]])  # below, above: an interval, not +-2 SE
    container = simulated_points(ax, at, value, bars=bars, horizontal=True, fmt="s")
    ends = _bar_ends(container)
    np.testing.assert_array_equal(ends[:, :, 1], np.column_stack([at, at]))  # horizontal bars
    np.testing.assert_allclose(ends[:, 0, 0], value - bars[0])
    np.testing.assert_allclose(ends[:, 1, 0], value + bars[1])
    assert container.lines[0].get_marker() == "s"


def test_se_bars_draw_bars_without_markers(ax):
    container = se_bars(ax, [1, 2], [0.3, 0.4], [0.05, 0.1], color="C0", alpha=0.5)
    assert container.lines[0] is None  # no data line: the bars alone
    ends = _bar_ends(container)
    np.testing.assert_allclose(
        ends[:, 1, 1] - ends[:, 0, 1], 2 * ERRORBAR_SE * np.array([0.05, 0.1])
    )

"""What the dropout figures draw (issue 14): a single setting on a categorical axis, the point
mass on a probability axis of its own, the convergence band of a running mean."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

import simlab
from simlab.experiments.dropout_figures import convergence_figure, laws_figure, moments_figure


@pytest.fixture(scope="module")
def one_point():
    (run,) = simlab.run("dropout", M=32, N=64, samples=6000, seed=3, chunk_size=1000).runs
    return list(run.points)


@pytest.fixture(scope="module")
def sweep():
    result = simlab.run("dropout", p=[0.2, 0.7], M=16, N=32, samples=3000, seed=3)
    (run,) = result.runs
    return list(run.points)


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def test_one_setting_puts_the_moments_side_by_side_with_their_analytic_values(one_point):
    fig = moments_figure(one_point)
    values, deviations = fig.axes[:2]
    # a categorical axis: the six moments, not a drop-probability axis with one value on it
    ticks = [t.get_text() for t in values.get_xticklabels()]
    assert ticks == [r"$E[h]$", r"$E[h^2]$", r"$Var(h)$"] + [
        r"$E[\tilde h]$",
        r"$E[\tilde h^2]$",
        r"$Var(\tilde h)$",
    ]
    assert "drop probability" not in values.get_xlabel()
    # each analytic value is a short bar at the prediction, under the simulated point
    pt = one_point[0]
    bars = [line for line in values.get_lines() if line.get_gid() == "analytic"]
    six = ("mean_before", "second_before", "var_before", "mean_after", "second_after", "var_after")
    predicted = [float(pt.predictions[name].value) for name in six]
    assert [line.get_ydata()[0] for line in bars] == pytest.approx(predicted)
    assert deviations.get_ylabel() == "(simulated − analytic) / analytic"
    plt.close(fig)


def test_a_sweep_keeps_the_drop_probability_axis(sweep):
    fig = moments_figure(sweep)
    assert fig.axes[0].get_xlabel() == "drop probability p"
    plt.close(fig)


def test_the_point_mass_is_drawn_on_a_probability_axis_at_its_value(one_point):
    fig = laws_figure(one_point)
    pt = one_point[0]
    for panel, mass in zip(fig.axes[:2], (0.5, 0.5 + 0.5 * 0.5), strict=True):
        (inset,) = panel.child_axes
        assert inset.get_ylim() == (0.0, 1.0)
        (analytic,) = [line for line in inset.get_lines() if line.get_gid() == "analytic"]
        assert analytic.get_ydata() == pytest.approx([mass, mass])  # bias 0: Phi(0) = 1/2
        # no marker left at a clipped height on the density axis
        assert all(ln.get_marker() in ("None", None, "") for ln in panel.get_lines())
    assert pt.params["p"] == 0.5
    plt.close(fig)


def test_the_convergence_band_is_two_standard_errors_of_a_running_mean(one_point):
    fig = convergence_figure(one_point)
    pt = one_point[0]
    trace = pt.figure.trace
    n_last = trace.samples[-1]
    for ax, name in zip(fig.axes, ("mean_before", "var_before", "var_after"), strict=True):
        (band,) = ax.collections
        path = band.get_paths()[0].vertices
        at_last = path[np.isclose(path[:, 0], n_last)][:, 1]
        predicted = float(pt.predictions[name].value)
        half = 2.0 * trace.estimates[-1][name].se  # sigma / sqrt(n) at the last n is its SE
        assert at_last.min() == pytest.approx(predicted - half)
        assert at_last.max() == pytest.approx(predicted + half)
        # the band narrows like 1/sqrt(n): at the first n it is sqrt(n_last / n_first) wider
        at_first = path[np.isclose(path[:, 0], trace.samples[0])][:, 1]
        ratio = np.ptp(at_first) / np.ptp(at_last)
        assert ratio == pytest.approx(np.sqrt(n_last / trace.samples[0]))
    assert not any("∝" in t for t in _texts(fig))
    plt.close(fig)

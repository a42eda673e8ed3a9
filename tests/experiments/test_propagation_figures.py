"""The propagation figures say only what ran, keep every series visible and keep their legends
off the data (issue 14)."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection

import simlab
from simlab.experiments import propagation_correlation_figures as corr_figures
from simlab.experiments import propagation_signal_figures as signal_figures
from simlab.experiments.propagation_correlation import PropagationCorrelation
from simlab.experiments.propagation_signal import PropagationSignal
from simlab.figure_layout import layout_figure
from simlab.figure_lint import lint_figure, not_run_settings
from simlab.plotting import series_styles
from simlab.simulate import points_with_claims
from simlab.theory import meanfield as mf

SIGNAL, CORRELATION = PropagationSignal(), PropagationCorrelation()


def _predicted_point(init: str, widths: tuple[int, ...]) -> SimpleNamespace:
    """A stand-in point carrying only the predictions the text is written from."""
    data = signal_figures.SignalFigureData(
        widths=widths,
        sigma_b=0.0,
        q_pred=mf.forward_q(widths, init),
        r_pred=mf.backward_r(widths, init),
        m1=1.0,
        ratio_fourth=mf.norm_ratio_moment(widths, 4),
        layers=(),
        hist_z=(),
        hist_ratio=None,
    )
    return SimpleNamespace(params={"init": init, "width": widths[0]}, figure=data)


def _points(result) -> list:
    (run,) = result.runs
    return points_with_claims(run)


@pytest.fixture(scope="module")
def signal_sweep() -> list:
    """Three inits by two widths: kaiming and kaiming_fan_out predict the same lines."""
    result = simlab.run(
        "propagation signal",
        L=4,
        width=[8, 16],
        init=["kaiming", "kaiming_fan_out", "xavier"],
        inputs=4,
        samples=64,
        seed=1,
    )
    return _points(result)


@pytest.fixture(scope="module")
def signal_single() -> list:
    return _points(simlab.run("propagation signal", L=4, width=16, inputs=4, samples=64, seed=2))


def _laid_out(fig):
    layout_figure(fig)  # what saving does before writing
    return fig.canvas.get_renderer()


def test_the_depth_text_names_only_the_inits_that_ran():
    widths = (16,) * 6
    only_kaiming = signal_figures.depth_statement([_predicted_point("kaiming", widths)])
    assert only_kaiming == "Kaiming keeps q and r flat"
    three = [_predicted_point(i, widths) for i in ("xavier", "lecun", "torch_default")]
    assert signal_figures.depth_statement(three) == (
        "Xavier and LeCun halve q and r per layer, torch_default divides q and r by 6 per layer"
    )
    # at unequal widths Xavier no longer halves q: no statement rather than a wrong one
    uneven = _predicted_point("xavier", (8, 16, 8, 16, 8))
    assert signal_figures.depth_statement([uneven]) == ""


def test_the_depth_suptitle_of_a_kaiming_run_names_no_other_init(signal_single):
    fig = signal_figures.depth_figure(signal_single)
    title = fig._suptitle.get_text()
    plt.close(fig)
    assert "Kaiming keeps q and r flat" in title
    for absent in ("Xavier", "LeCun", "fan_out", "torch"):
        assert absent not in title


def test_coinciding_predictions_share_a_line_in_alternating_dashes():
    fig, ax = plt.subplots()
    layers = np.arange(1.0, 6.0)
    curves = [
        (layers, _predicted_point(init, (16,) * 6).figure.q_pred, f"C{j}", init)
        for j, init in enumerate(("kaiming", "xavier", "kaiming_fan_out"))
    ]
    shared = signal_figures._prediction_lines(ax, curves)
    assert shared == [["kaiming", "kaiming_fan_out"]]
    styles = {line.get_color(): line for line in ax.get_lines()}
    assert set(styles) == {"C0", "C1", "C2"}  # every init keeps its own line
    assert styles["C1"].get_linestyle() == "-"
    kaiming, fan_out = styles["C0"], styles["C2"]
    assert kaiming.get_linestyle() == fan_out.get_linestyle() == "--"
    # the same dashes, shifted by one dash: each colour fills the other's gaps
    assert kaiming._unscaled_dash_pattern[1] == fan_out._unscaled_dash_pattern[1]
    assert kaiming._unscaled_dash_pattern[0] != fan_out._unscaled_dash_pattern[0]
    plt.close(fig)


def test_colour_and_marker_encode_two_swept_parameters(signal_sweep):
    styles, entries = series_styles(signal_sweep, prefer=("init",))
    assert len({s.color for s in styles}) == 3 and len({s.marker for s in styles}) == 2
    # two headers, three inits, two widths: not one entry per point
    assert [label for _, label in entries] == [
        "init (colour):",
        "kaiming",
        "kaiming_fan_out",
        "xavier",
        "width (marker):",
        "8",
        "16",
    ]


@pytest.mark.parametrize(
    "draw",
    [
        signal_figures.depth_figure,
        signal_figures.activations_figure,
        signal_figures.norm_ratio_figure,
        signal_figures.r_vs_width_figure,
    ],
    ids=lambda f: f.__name__,
)
@pytest.mark.parametrize("run", ["signal_single", "signal_sweep"])
def test_signal_figures_pass_the_lint(request, run, draw):
    points = request.getfixturevalue(run)
    fig = draw(points)
    if fig is None:  # r against width needs two widths
        assert run == "signal_single"
        return
    layout_figure(fig)
    assert lint_figure(fig, not_run=not_run_settings(SIGNAL, points)) == []
    plt.close(fig)


def test_the_series_legend_of_a_sweep_sits_beside_the_panels(signal_sweep):
    fig = signal_figures.depth_figure(signal_sweep)
    layout_figure(fig)
    renderer = fig.canvas.get_renderer()
    legend = fig.axes[1].get_legend()
    box = legend.get_window_extent(renderer)
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes[:4])
    plt.close(fig)


def test_the_depth_legend_says_which_predictions_coincide(signal_sweep):
    fig = signal_figures.depth_figure(signal_sweep)
    labels = [t.get_text().replace("\n", " ") for t in fig.axes[1].get_legend().get_texts()]
    plt.close(fig)
    assert any("kaiming = kaiming_fan_out" in label for label in labels)
    assert not any("xavier =" in label or "= xavier" in label for label in labels)


def test_a_single_init_activation_title_stays_inside_the_figure(signal_single):
    fig = signal_figures.activations_figure(signal_single)
    renderer = _laid_out(fig)
    box = fig._suptitle.get_window_extent(renderer)
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1
    plt.close(fig)


def test_simulated_norm_ratio_values_are_drawn_above_the_predicted_lines(signal_single):
    fig = signal_figures.norm_ratio_figure(signal_single)
    ax = fig.axes[0]
    (pt,) = signal_single
    predicted = [line for line in ax.get_lines() if line.get_color() == "C3"]
    simulated = [c for c in ax.containers if "simulated" in str(c.get_label())]
    assert len(predicted) == 2 and len(simulated) == 2
    mean_marker = simulated[0].lines[0]
    assert mean_marker.get_xdata()[0] == pytest.approx(pt.estimates["norm_ratio"].value)
    assert mean_marker.get_zorder() > max(line.get_zorder() for line in predicted)
    plt.close(fig)


def test_the_approach_to_one_shows_the_checks_band_and_the_tail_reference():
    points = _points(
        simlab.run(
            "propagation correlation", L=10, width=16, rho0=[0.0, 0.9], inputs=4, samples=32, seed=3
        )
    )
    fig = corr_figures.correlation_figure(points)
    tail = fig.axes[2]
    bands = [c for c in tail.collections if isinstance(c, PolyCollection)]
    assert len(bands) == len(points)
    # the band is the check's tolerance around 1 - rho_l: at the last layer of rho0 = 0
    data = points[0].figure
    top = bands[0].get_paths()[0].vertices[:, 1].max()
    assert top == pytest.approx(1 - data.prediction[0] + data.tolerance[0])
    # the 9 pi^2 / (2 l^2) reference is on the axis from l = sqrt(L) on
    assert tail.get_ylim()[1] >= mf.arccos_tail(np.sqrt(10))
    layout_figure(fig)
    assert lint_figure(fig, not_run=not_run_settings(CORRELATION, points)) == []
    plt.close(fig)

"""The batch-norm figures say what the data are: undefined and infinite values are marked on
an axis edge (never drawn at a made-up height), the checks panel's setting labels are
horizontal and apart, titles fit the canvas, and the timing study states a fitted slope with
its standard error, measured over repeated rounds."""

from __future__ import annotations

import math
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.transforms import IdentityTransform

import simlab
from simlab.experiments.batchnorm_grads_figures import grad_errors_figure
from simlab.experiments.batchnorm_stats import eps_study
from simlab.experiments.batchnorm_stats_figures import eps_figure, stats_figure
from simlab.experiments.batchnorm_whiten import fit_slopes, rank_study, theil_sen, wall_times
from simlab.experiments.batchnorm_whiten_figures import WhitenFigureData, rank_figure, time_figure
from simlab.figure_layout import layout_figure
from simlab.figure_legends import place_legend
from simlab.figure_lint import lint_figure
from simlab.plotting import mark_off_scale
from simlab.theory import bn_stats, whitening


def _data_points(ax) -> list[np.ndarray]:
    """(x, y) of every marker line drawn in data coordinates."""
    out = []
    for line in ax.get_lines():
        if line.get_transform() != ax.transData or line.get_marker() in ("None", "", None):
            continue
        out.append(np.asarray(line.get_xydata(), dtype=float))
    return out


def _edge_marks(ax) -> np.ndarray:
    """(x, y in axes fraction) of the marks drawn on an axis edge (data x, axes y)."""
    rows = []
    for line in ax.get_lines():
        if line.get_transform() == ax.transData or line.get_marker() in ("None", "", None):
            continue
        rows.extend(np.asarray(line.get_xydata(), dtype=float))
    return np.array(rows).reshape(-1, 2)


def _inside_canvas(fig, artist) -> bool:
    renderer = fig.canvas.get_renderer()
    box = artist.get_window_extent(renderer)
    canvas = fig.bbox
    return (
        box.x0 >= canvas.x0 - 1
        and box.x1 <= canvas.x1 + 1
        and box.y0 >= canvas.y0 - 1
        and box.y1 <= canvas.y1 + 1
    )


# -- why eps exists ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study():
    return eps_study(8, 1.5, 1e-5, np.random.default_rng(4))


def test_a_constant_feature_at_eps_0_is_marked_undefined_on_the_top_edge(study):
    assert not np.isfinite(study.ratio[study.eps.index(0.0), -1])  # 0/0: the case to draw
    point = SimpleNamespace(params={"sigma": 1.0}, figure=SimpleNamespace(eps_study=study))
    fig = eps_figure([point])
    x0 = study.variances[study.variances > 0].min() / 100.0  # where the exact 0 is drawn
    caps = {
        bn_stats.jacobian_norm_prediction(study.B, 0.0, study.gamma, eps)
        for eps in study.eps
        if eps > 0
    }
    for k, ax in enumerate(fig.axes[:3]):
        marks = _edge_marks(ax)
        assert len(marks) == 1, k  # the one undefined value, eps = 0 at variance 0
        np.testing.assert_allclose(marks[0], [x0, 1.0])
        # what is drawn at variance 0 in data coordinates is a defined value: 0 for the
        # forward panels (v = 0 with eps > 0), the cap |gamma|/sqrt(eps) for the backward one
        at_zero = np.concatenate(
            [xy[np.isclose(xy[:, 0], x0, rtol=1e-9, atol=0.0), 1] for xy in _data_points(ax)]
        )
        assert at_zero.size >= len(study.eps) - 1, k  # (error bar caps repeat a point)
        expected = [0.0] if k < 2 else sorted(caps)
        near = np.isclose(at_zero[:, None], np.array(expected)[None, :], rtol=1e-9, atol=0.0)
        assert near.any(axis=1).all() and near.any(axis=0).all(), (k, at_zero)
    layout_figure(fig, 100)
    assert lint_figure(fig, dpi=100) == []
    (legend,) = fig.legends  # one legend for the panels' shared colours, below them
    assert any("undefined" in t.get_text() and "0/0" in t.get_text() for t in legend.texts)
    plt.close(fig)


def test_the_shared_legend_sits_below_every_panel_inside_the_canvas(study):
    point = SimpleNamespace(params={"sigma": 1.0}, figure=SimpleNamespace(eps_study=study))
    fig = eps_figure([point])
    height = fig.get_figheight()
    layout_figure(fig, 100)
    assert fig.get_figheight() > height  # the figure grew by the legend's height
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    top = legend.get_window_extent(renderer).y1
    for ax in fig.axes:
        assert ax.get_tightbbox(renderer).y0 >= top  # below the x labels, over no panel
    assert _inside_canvas(fig, legend)
    plt.close(fig)


# -- statistics over batches: the checks panel ----------------------------------------------
@pytest.fixture(scope="module")
def stats_points():
    result = simlab.run(
        "batchnorm stats",
        samples=400,
        seed=2,
        B=8,
        input=["gaussian", "exponential", "student_t"],
        sigma=[1.0, 0.003],
    )
    (run,) = result.runs
    return run.points


def test_the_checks_panel_lists_settings_horizontally_without_overlap(stats_points):
    fig = stats_figure(stats_points)
    layout_figure(fig, 100)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[1]
    labels = [t for t in ax.get_yticklabels() if t.get_text()]
    assert len(labels) == len(stats_points) == 6
    assert all(t.get_rotation() == 0 for t in labels)
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.y0)
    assert all(lower.y1 <= upper.y0 for lower, upper in zip(boxes, boxes[1:], strict=False))
    for text in [*labels, *(a.title for a in fig.axes), fig._suptitle]:
        assert _inside_canvas(fig, text), text.get_text()
    # the panel's legend sits in the band above the first setting's row, over no point
    legend_box = ax.get_legend().get_window_extent(renderer)
    first_row = ax.transData.transform([[0.0, -0.5]])[0, 1]  # top edge of the first row
    assert legend_box.y0 >= first_row - 1
    assert lint_figure(fig, dpi=100) == []
    plt.close(fig)


def test_a_claim_on_the_checks_panel_is_drawn_across_its_rows(stats_points):
    from simlab.figures import ClaimMark

    points = [
        SimpleNamespace(
            **{k: getattr(pt, k) for k in ("params", "estimates", "predictions", "figure")},
            n_samples=pt.n_samples,
            claims=(ClaimMark(1, "mean_v", "sigma**2", float(pt.params["sigma"]) ** 2, "fail"),),
        )
        for pt in stats_points
    ]
    fig = stats_figure(points)
    ax = fig.axes[1]
    (claim,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    x, y = claim.get_data()
    # horizontal: the rows on the y axis (the mean_v offset), the deviations along x
    np.testing.assert_allclose(sorted(y), np.arange(len(points)) - 0.22)
    B = points[0].params["B"]
    np.testing.assert_allclose(x, 1.0 / (B - 1))  # sigma^2 vs (B-1)/B sigma^2: +1/(B-1)
    plt.close(fig)


# -- backward: the suptitle of a long sweep ----------------------------------------------------
def test_the_grads_suptitle_of_a_long_sweep_fits_the_canvas():
    result = simlab.run(
        "batchnorm grads", samples=8, seed=1, B=[2, 3, 32], eps=[0.0, 1e-5, 0.1], M=4
    )
    (run,) = result.runs
    fig = grad_errors_figure(run.points)
    layout_figure(fig, 100)
    fig.canvas.draw()
    title = fig._suptitle
    assert "B = 2, 3, 32; eps = 0, 1e-05, 0.1 (9 settings)" in title.get_text().replace("\n", " ")
    assert _inside_canvas(fig, title)
    plt.close(fig)


# -- whitening: the rank study ------------------------------------------------------------------
def test_an_infinite_condition_number_is_marked_on_the_top_edge():
    M = 6
    L = np.linalg.cholesky(whitening.correlation_matrix(0.5, M))
    ranks = rank_study(L, 1e-5, np.random.default_rng(8))
    singular = np.median(ranks.cond, axis=1) == np.inf
    assert np.array_equal(ranks.B[singular], ranks.B[ranks.B <= M])  # B <= M: singular
    data = SimpleNamespace(rank_study=ranks)
    point = SimpleNamespace(params={"B": 48, "M": M, "eps": 1e-5}, figure=data)
    fig = rank_figure([point])
    cond_panel = fig.axes[1]
    marks = _edge_marks(cond_panel)
    np.testing.assert_array_equal(np.sort(marks[:, 0]), ranks.B[ranks.B <= M])
    assert np.all(marks[:, 1] == 1.0)
    # in data coordinates only finite conditions: nothing above the largest finite batch's
    largest = ranks.cond[np.isfinite(ranks.cond)].max()
    for xy in _data_points(cond_panel):
        assert np.all(xy[:, 1] <= largest * (1 + 1e-12))
    texts = [t.get_text() for t in cond_panel.get_legend().texts]
    assert any("∞" in t and "singular" in t for t in texts)
    layout_figure(fig, 100)
    assert lint_figure(fig, dpi=100) == []
    plt.close(fig)


def test_a_legend_keeps_clear_of_the_marks_on_an_axis_edge():
    """An infinite value marked on the top edge is a data point: no legend goes over it."""
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0.6, 0.7], [0.0, 0.1], "o", label="finite")
    mark_off_scale(ax, [1.9], marker="^", ms=16, label="infinite, on the top edge")
    ax.set_xlim(0.5, 2.1)
    ax.set_ylim(-0.1, 1.0)  # the finite points low left: only the edge mark is at the right
    ax.set_xlabel("B")
    ax.set_ylabel("cond")
    legend = place_legend(ax, loc="upper right", locs=("upper right", "lower right"))
    layout_figure(fig, 100)
    assert legend._loc == 4  # "lower right" (code 4): "upper right" has the top-edge mark
    assert lint_figure(fig, dpi=100) == []
    plt.close(fig)


def test_mark_off_scale_leaves_the_y_limits_to_the_data():
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [10.0, 20.0, 30.0], "o")
    before = ax.get_ylim()
    line = mark_off_scale(ax, [2.5], marker="^")
    assert ax.get_ylim() == before
    assert not line.get_clip_on()
    # drawn at the top spine whatever the limits
    ax.set_ylim(0, 1000)
    fig.canvas.draw()
    y = line.get_transform().transform([[2.5, 1.0]])[0, 1]
    assert y == pytest.approx(ax.transAxes.transform([[0, 1.0]])[0, 1])
    assert not isinstance(line.get_transform(), IdentityTransform)
    plt.close(fig)


# -- whitening: the timing study ----------------------------------------------------------------
def test_theil_sen_recovers_a_power_law_and_shrugs_off_one_disturbed_size():
    x = np.log(np.array([32, 45, 64, 91, 128, 181, 256], dtype=float))
    y = 2.0 * x - 9.0
    slope, intercept = theil_sen(x, y)
    assert slope == pytest.approx(2.0) and intercept == pytest.approx(-9.0)
    disturbed = y.copy()
    disturbed[2] += math.log(5.0)  # one size timed during a burst of load: 5x slower
    assert theil_sen(x, disturbed)[0] == pytest.approx(2.0)
    assert abs(np.polyfit(x, disturbed, 1)[0] - 2.0) > 0.05  # least squares is moved
    stack = np.stack([y, 3.0 * x])  # a stack of fits at once
    np.testing.assert_allclose(theil_sen(x, stack)[0], [2.0, 3.0])


def test_fitted_slopes_come_with_a_bootstrap_se_over_rounds():
    rng = np.random.default_rng(12)
    Ms = np.array([4, 8, 16, 32, 45, 64, 91, 128, 181, 256])
    rounds = 8
    # a power law with lognormal timing noise, a slope of 2 above M = 32 and overheads below
    law = 1e-7 * Ms**2.0 + 1e-4 * (Ms < 32)
    seconds = {"zca": law * np.exp(rng.normal(0.0, 0.1, (rounds, len(Ms))))}
    slopes, intercepts, ses = fit_slopes(Ms, seconds, 32, np.random.default_rng(3))
    assert 0.0 < ses["zca"] < 0.2
    assert abs(slopes["zca"] - 2.0) < 4 * ses["zca"]
    # a whole round spoilt by load (3x slower everywhere) leaves the fastest times alone
    spoilt = {"zca": np.vstack([seconds["zca"], 3.0 * seconds["zca"][0]])}
    again, _, _ = fit_slopes(Ms, spoilt, 32, np.random.default_rng(3))
    assert again["zca"] == pytest.approx(slopes["zca"])
    # the SE is the spread of the slope over resampled rounds: a single round has none
    one_round = {"zca": seconds["zca"][:1]}
    assert fit_slopes(Ms, one_round, 32, np.random.default_rng(3))[2]["zca"] < 1e-12


def test_the_timing_study_keeps_every_round_and_the_figure_states_slope_and_se():
    times = wall_times(1e-3, np.random.default_rng(5), B=32, Ms=(4, 8, 16, 32), rounds=(3, 4))
    assert 3 <= times.rounds <= 4
    for name in ("bn", "zca", "pca", "cholesky"):
        assert times.seconds[name].shape == (times.rounds, 4)
        assert np.all(times.seconds[name] > 0)
        np.testing.assert_array_equal(times.fastest(name), times.seconds[name].min(axis=0))
        assert np.isfinite(times.slope[name]) and times.slope_se[name] >= 0
    assert times.fit_from == 4  # too few sizes above 32: every size is fitted
    data = WhitenFigureData(None, None, None, {}, None, None, times)
    fig = time_figure([SimpleNamespace(params={"B": 64, "M": 8}, figure=data)])
    (ax,) = fig.axes
    texts = [t.get_text() for t in ax.get_legend().texts]
    zca = f"ZCA: slope {times.slope['zca']:.2f} ± {2 * times.slope_se['zca']:.2f}"
    assert zca in texts
    title = ax.get_title()
    assert "O(" not in title and "±2 SE" in title and f"{times.rounds} interleaved rounds" in title
    plt.close(fig)

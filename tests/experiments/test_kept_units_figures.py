"""What the kept-units figures draw (issue 14): the negative control, labelled residual axes,
±2 SE bars on the TV, a colorbar per joint panel, a layout that fits one drop probability, and
λ written as the legends write it."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

import simlab
from simlab.experiments.kept_units_figures import (
    binomial_moments_figure,
    binomial_pmf_figure,
    limit_pmf_figure,
    poisson_limit_tv_figure,
    thinning_joint_figure,
    thinning_pmf_figure,
)
from simlab.theory.counts import binomial_pmf


def _points(name: str, **params):
    (run,) = simlab.run(name, seed=3, **params).runs
    return list(run.points)


@pytest.fixture(scope="module")
def binomial():
    return _points("kept-units binomial", M=30, p=0.3, samples=4000)


@pytest.fixture(scope="module")
def limit():
    return _points("kept-units poisson-limit", M=[10, 1000], samples=4000)


@pytest.fixture(scope="module")
def thinning():
    return _points("kept-units thinning", samples=4000)


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def test_the_binomial_pmf_draws_its_negative_control(binomial):
    fig = binomial_pmf_figure(binomial)
    pmf_panel = fig.axes[0]
    (control,) = [ln for ln in pmf_panel.get_lines() if ln.get_marker() == "s"]
    k = control.get_xdata()
    assert control.get_ydata() == pytest.approx(binomial_pmf(k, 30, 0.3))  # p and q swapped
    labels = pmf_panel.get_legend().get_texts()
    assert any("negative control" in t.get_text() for t in labels)
    # and its residuals, far outside the ±2 band
    residuals = fig.axes[1]
    (vs_control,) = [ln for ln in residuals.get_lines() if ln.get_label().startswith("vs swapped")]
    assert np.abs(vs_control.get_ydata()).max() > 10
    plt.close(fig)


@pytest.mark.parametrize("draw", [limit_pmf_figure, thinning_pmf_figure, binomial_pmf_figure])
def test_a_symlog_residual_axis_says_its_unit_and_scale(draw, binomial, limit, thinning):
    points = {limit_pmf_figure: limit, thinning_pmf_figure: thinning}.get(draw, binomial)
    fig = draw(points)
    for ax in fig.axes:
        if ax.get_yscale() == "symlog":
            assert ax.get_ylabel().startswith("residual / SE")
            # the logarithmic part is named where it shows (a negative control's residuals)
            assert ("log beyond" in ax.get_ylabel()) == (ax.get_ylim()[1] > 4)
    assert any("log beyond" in ax.get_ylabel() for ax in fig.axes)  # a control's misfit shows
    plt.close(fig)


def test_binomial_moments_at_one_p_use_two_panels_and_a_sweep_four(binomial):
    fig = binomial_moments_figure(binomial)
    assert len(fig.axes) == 2
    assert "drop probability" not in fig.axes[0].get_xlabel()
    plt.close(fig)
    fig = binomial_moments_figure(_points("kept-units binomial", M=10, p=[0.2, 0.6], samples=500))
    assert len(fig.axes) == 4
    plt.close(fig)


def test_tv_error_bars_are_two_standard_errors_of_the_estimate(limit):
    fig = poisson_limit_tv_figure(limit)
    (ax,) = fig.axes
    segments = [seg for c in ax.containers for seg in c.lines[2][0].get_segments()]
    tops = sorted(seg[:, 1].max() for seg in segments)
    expected = sorted(pt.estimates["tv"].value + 2 * pt.estimates["tv"].se for pt in limit)
    assert tops == pytest.approx(expected)
    assert not any("RMS" in t for t in _texts(fig))
    plt.close(fig)


def test_each_joint_table_panel_has_its_own_colorbar(thinning):
    fig = thinning_joint_figure(thinning)
    images = [ax for ax in fig.axes if ax.images]
    colorbars = [ax.images[0].colorbar for ax in images]
    assert len(images) == 3 and None not in colorbars
    assert len({id(bar.ax) for bar in colorbars}) == 3  # one each, not one shared
    labels = [bar.ax.get_ylabel() for bar in colorbars]
    assert labels.count("probability") == 2
    plt.close(fig)


def test_lambda_is_written_as_a_symbol_in_every_title_label_and_legend(limit, thinning):
    for fig in (
        poisson_limit_tv_figure(limit),
        limit_pmf_figure(limit),
        thinning_pmf_figure(thinning),
        thinning_joint_figure(thinning),
    ):
        texts = _texts(fig)
        assert not [t for t in texts if re.search(r"\blam\b", t)]
        assert any("λ" in t for t in texts)
        plt.close(fig)

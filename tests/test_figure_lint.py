"""The figure lint: each defect it looks for is found on a figure broken on purpose, and a clean
figure passes."""

from __future__ import annotations

import functools
import os
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from simlab.course import budget_raw
from simlab.experiments import REGISTRY
from simlab.figure_layout import layout_figure, new_figure
from simlab.figure_lint import lint_figure, not_run_settings
from simlab.plotting import finish_axes, simulated_vs_theory
from simlab.runspec import build_spec
from simlab.simulate import decide_runs, points_with_claims, simulate


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _clean_figure(ncols: int = 1):
    """Simulated points over a theory curve, labelled, titled, with a clear legend."""
    fig, axes = new_figure(ncols=ncols)
    x = np.linspace(0.1, 0.9, 5)
    for ax in axes[0]:
        simulated_vs_theory(ax, x, x**2, np.full(5, 0.01), x**2, label="m")
        finish_axes(ax, xlabel="drop probability p", ylabel="moment", title="a panel")
    fig.suptitle("A figure that fits")
    return fig, axes


def _lint(fig, **options) -> list[str]:
    layout_figure(fig)
    return lint_figure(fig, **options)


def test_a_clean_figure_has_no_problem():
    fig, _ = _clean_figure(ncols=2)
    assert _lint(fig) == []


def test_a_legend_over_a_marker_is_found():
    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.errorbar([0.0, 1.0], [0.0, 1.0], yerr=0.1, fmt="o", label="simulated ±2 SE")
    ax.plot([0.0, 1.0], [0.0, 1.0], label="theory")
    finish_axes(ax, xlabel="x", ylabel="y", title="covered", loc="upper right")
    problems = _lint(fig)
    assert len(problems) == 1, problems
    assert problems[0].startswith("panel 'covered': legend covers 1 marker and 1 error bar")
    assert "'simulated ±2 SE'" in problems[0]


def test_a_legend_over_a_curve_only_is_accepted():
    fig, axes = new_figure()
    ax = axes[0, 0]
    x = np.linspace(0, 1, 50)
    ax.plot(x, np.ones_like(x), label="theory: a flat curve through the legend")
    ax.plot(x, x, label="another curve")
    finish_axes(ax, xlabel="x", ylabel="y", loc="center")
    assert _lint(fig) == []


def test_text_past_the_canvas_edge_is_found():
    fig, _ = _clean_figure()
    fig.text(0.98, 0.5, "a note that runs off the right edge")
    (problem,) = _lint(fig)
    assert "'a note that runs off the right edge' is cut off: past the right by" in problem


def test_a_missing_y_label_is_found():
    fig, axes = _clean_figure()
    axes[0, 0].set_ylabel("")
    assert _lint(fig) == ["panel 'a panel': the y axis has tick labels but no label"]


def test_an_axis_labelled_once_per_column_on_the_same_scale_needs_no_second_label():
    fig, axes = new_figure(nrows=2)
    for ax in axes[:, 0]:
        ax.plot([0, 1], [0, 1], "o")
        ax.set_ylabel("y")
    axes[1, 0].set_xlabel("x, shared by the column")
    assert _lint(fig) == []
    axes[0, 0].set_xlim(0, 2)  # another scale: it needs its own label
    assert _lint(fig) == ["panel 1 of 2 (untitled): the x axis has tick labels but no label"]


def test_words_as_tick_labels_need_no_axis_label():
    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.plot([0, 1, 2], [1.0, 2.0, 3.0], "o")
    ax.set_xticks([0, 1, 2], ["input = gaussian", "input = uniform", "input = t"])
    ax.set_ylabel("value")
    assert _lint(fig) == []


def test_overlapping_tick_labels_are_found():
    fig, axes = _clean_figure()
    ax = axes[0, 0]
    ticks = np.linspace(0.1, 0.9, 30)
    ax.set_xticks(ticks, [f"{t:.4f}" for t in ticks])
    problems = _lint(fig)
    assert len(problems) == 1, problems
    assert "x tick labels overlap ('0.1000' and '0.1276')" in problems[0]


def test_rotated_tick_labels_are_found():
    fig, axes = _clean_figure()
    axes[0, 0].tick_params(axis="x", labelrotation=90)
    assert _lint(fig) == ["panel 'a panel': x tick labels are rotated (90°): hard to read"]


def test_a_title_naming_a_setting_not_run_is_found():
    fig, axes = _clean_figure()
    axes[0, 0].set_title("Kaiming: q flat, LeCun: halved, fan-out: r flat")
    problems = _lint(fig, not_run=["lecun", "kaiming_fan_out", "fan_out", "orthogonal"])
    assert problems == [
        "panel 'Kaiming: q flat, LeCun: halved, fan-out: r flat': the title names "
        "'lecun', 'fan_out', which this run did not simulate: "
        "'Kaiming: q flat, LeCun: halved, fan-out: r flat'"
    ]
    # the run's own settings are fine, and a setting is matched as a whole word only
    fig2, axes2 = _clean_figure()
    axes2[0, 0].set_title("kaiming_fan_out and xavierish")
    assert _lint(fig2, not_run=["kaiming", "xavier", "fan_out"]) == []


def test_the_settings_not_run_come_from_the_parameter_choices():
    signal = REGISTRY["propagation signal"]
    points = [{"init": "kaiming", "dist": "normal"}, {"init": "xavier", "dist": "normal"}]
    missing = not_run_settings(signal, points)
    assert "lecun" in missing and "kaiming_fan_out" in missing and "fan_out" in missing
    assert "uniform" in missing  # the dist parameter's other choice
    assert "kaiming" not in missing and "xavier" not in missing and "normal" not in missing
    assert "default" not in missing  # "torch_default" keeps its distinctive two parts
    assert "gain" not in missing  # an init named like the parameter gain: ambiguous in a title
    assert not_run_settings(signal, points, names=["dist"]) == ["uniform"]


# -- every figure the course draws -----------------------------------------------------------------
# The lint over every figure of ``simlab check --budget quick`` and of each experiment's default
# run, drawn in this process from a run with fewer samples (a figure's layout follows the
# parameters and the sweep, not the sample count).
#
# KNOWN_DEFECTS protocol: a figure that fails the lint today is listed here, by stem (both
# runs) or by "quick/stem" / "default/stem" (one run), with a substring of each problem it
# has. Its test is a strict xfail: it must fail with those problems and no other (a new kind
# of problem fails the test outright), and once the figure is fixed its test passes, which a
# strict xfail reports as a failure: whoever fixes a figure deletes its entries here.
KNOWN_DEFECTS: dict[str, tuple[str, ...]] = {}

#: the runs whose figures are linted: the quick budget's parameters, and each default
#: (SIMLAB_LINT_RUNS=quick,default,standard adds the course's standard budget, whose figures
#: have more points: run it by hand, ``pytest tests/test_figure_lint.py -k standard``)
RUNS = tuple(os.environ.get("SIMLAB_LINT_RUNS", "quick,default").split(","))
#: samples per point (at most the run's own): enough for every figure to have its parts (a
#: convergence trace of several chunks, histograms with their tails), few enough to be quick;
#: the networks of the propagation family cost the most per sample
FEW_SAMPLES = 2000
FEWER_SAMPLES = {"propagation signal": 48, "propagation correlation": 32, "propagation grads": 6}
LINT_SEED = 11


@functools.cache
def _linted(run: str, name: str) -> dict[str, list[str] | None]:
    """The lint's problems of each figure of one run (None: these points cannot show it)."""
    experiment = REGISTRY[name]
    raw = {} if run == "default" else budget_raw(experiment, run)
    full = int(raw.get("samples", experiment.default_samples))
    samples = min(full, FEWER_SAMPLES.get(name, FEW_SAMPLES))
    # as many chunks as the full run: a convergence trace spans the same decades of samples
    chunk = int(raw.get("chunk_size", experiment.default_chunk_size))
    raw.update(samples=samples, chunk_size=max(chunk * samples // full, 1))
    raw.update(seed=LINT_SEED, workers=1)
    # a budget's built-in claims are drawn on its figures, as simlab check draws them
    claims = list(experiment.budgets.get(run, {}).get("claims", []))
    spec = build_spec(experiment, raw, claims, lambda key: f"{run}: {name}.{key}")
    simulated = simulate(spec)
    decide_runs([simulated], spec.alpha)
    points = points_with_claims(simulated)
    not_run = not_run_settings(experiment, points)
    out: dict[str, list[str] | None] = {}
    for figure in experiment.figures:
        fig = figure.render(points)
        if fig is None:
            out[figure.stem] = None
            continue
        layout_figure(fig)
        out[figure.stem] = lint_figure(fig, not_run=not_run)
        plt.close(fig)
    return out


class KnownDefects(AssertionError):
    """A listed figure failed the lint with exactly the problems listed for it."""


def _cases() -> list[Any]:
    cases = []
    for run in RUNS:
        for name, experiment in REGISTRY.items():
            for figure in experiment.figures:
                known = KNOWN_DEFECTS.get(f"{run}/{figure.stem}") or KNOWN_DEFECTS.get(
                    figure.stem, ()
                )
                marks = (
                    [pytest.mark.xfail(strict=True, raises=KnownDefects, reason="; ".join(known))]
                    if known
                    else []
                )
                cases.append(
                    pytest.param(
                        run, name, figure.stem, known, marks=marks, id=f"{run}/{figure.stem}"
                    )
                )
    return cases


@pytest.mark.parametrize(("run", "name", "stem", "known"), _cases())
def test_every_figure_of_the_course_passes_the_lint(run, name, stem, known):
    problems = _linted(run, name)[stem]
    if problems is None:
        pytest.skip(f"the {run} run of {name} draws no {stem}")
    if known:
        unlisted = [p for p in problems if not any(k in p for k in known)]
        assert not unlisted, f"{stem} has problems not in KNOWN_DEFECTS: {unlisted}"
        if problems:
            raise KnownDefects("\n".join(problems))
    assert problems == [], "\n".join(problems)

"""Every figure of dropout and kept-units passes the figure lint (issue 14): at the quick
budget's parameters, at the defaults, and with one, two and five user claims drawn. Few
samples: the lint judges layout, not numbers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

import simlab
from simlab.course import budget_raw
from simlab.experiments import REGISTRY
from simlab.figure_layout import layout_figure
from simlab.figure_lint import lint_figure, not_run_settings
from simlab.simulate import points_with_claims

FAMILY = ("dropout", "kept-units binomial", "kept-units poisson-limit", "kept-units thinning")
SAMPLES = 3000
DROPOUT_CLAIMS = [
    "var_after=1/(2*(1-p)) - 1/(2*pi)",
    "var_after=(1/2 - 1/(2*pi))/(1-p)",
    "var_after=1/(2*(1-p))",
    "second_after=0.5/(1-p)",
    "mean_after=1/sqrt(2*pi)",
]


def _lint_run(name: str, params: dict, claims=()) -> dict[str, list[str]]:
    (run,) = simlab.run(name, samples=SAMPLES, seed=11, workers=1, claims=claims, **params).runs
    points = points_with_claims(run)
    not_run = not_run_settings(run.spec.experiment, points)
    problems = {}
    for spec in run.spec.experiment.figures:
        fig = spec.render(points)
        if fig is None:
            continue
        layout_figure(fig)
        problems[spec.stem] = lint_figure(fig, not_run=not_run)
        plt.close(fig)
    return problems


def _quick(name: str) -> tuple[dict, list[str]]:
    raw = budget_raw(REGISTRY[name], "quick")
    claims = list(raw.pop("claims", []))
    params = {k: v for k, v in raw.items() if k in {p.name for p in REGISTRY[name].params}}
    return params, claims


@pytest.mark.parametrize("name", FAMILY)
@pytest.mark.parametrize("run", ["quick", "default"])
def test_every_figure_passes_the_lint(name, run):
    params, claims = _quick(name) if run == "quick" else ({}, [])
    if name == "kept-units poisson-limit" and run == "default":
        params = {"M": [10, 1000, 100_000]}  # the default sweep's ends, fewer points
    problems = _lint_run(name, params, claims)
    assert problems and all(p == [] for p in problems.values()), problems


@pytest.mark.parametrize("n_claims", [1, 2, 5])
@pytest.mark.parametrize("p", [0.5, [0.1, 0.5, 0.9]])
def test_dropout_figures_with_claims_pass_the_lint(n_claims, p):
    problems = _lint_run("dropout", {"p": p, "M": 32, "N": 64}, DROPOUT_CLAIMS[:n_claims])
    assert all(found == [] for found in problems.values()), problems

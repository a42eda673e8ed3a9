"""User claims on the figures: each is drawn on the panel of its quantity, its legend entry
carrying its formula and its verdict; a claim no figure shows is said to be not drawn."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.legend import Legend

import simlab
from simlab.execute import undrawn_claims
from simlab.figure_claims import claim_label, verdict_summary
from simlab.figure_layout import layout_figure
from simlab.figure_legends import covered_marks, figure_data_marks
from simlab.figures import ClaimMark
from simlab.simulate import points_with_claims


def _legend_texts(fig) -> list[str]:
    """Every legend entry of the figure (the panels' own legends and the claims' legends)."""
    return [t.get_text() for leg in fig.findobj(Legend) for t in leg.get_texts()]


def _figure(result, stem: str):
    """The figure ``stem`` of a one-experiment result, drawn as the run folder draws it."""
    (run,) = result.runs
    (spec,) = [f for f in run.spec.experiment.figures if f.stem == stem]
    return spec.render(points_with_claims(run))


# one small run per family: (experiment, parameters, samples, claim, figure that shows it)
CASES = [
    ("dropout", dict(p=[0.2, 0.6], M=32), 4096, "var_after=1/(2*(1-p))", "dropout_moments"),
    (
        "kept-units binomial",
        dict(M=20, p=[0.2, 0.6]),
        4000,
        "mean=M*(1-p)",
        "kept_units_binomial_moments",
    ),  # noqa: E501
    (
        "kept-units binomial",
        dict(M=20),
        4000,
        "pmf=comb(M,k)*(1-p)**k*p**(M-k)",
        "kept_units_binomial_pmf",
    ),  # noqa: E501
    (
        "kept-units poisson-limit",
        dict(M=[10, 100]),
        4000,
        "tv=lam**2/M",
        "kept_units_poisson_limit_tv",
    ),  # noqa: E501
    ("batchnorm stats", dict(B=[4, 8]), 2000, "mean_v=(B-1)/B*sigma**2", "batchnorm_stats"),
    ("propagation signal", dict(L=4, width=16), 64, "q=sigma_x**2", "propagation_signal_depth"),
    (
        "propagation signal",
        dict(L=4, width=16),
        64,
        "norm_ratio=1",
        "propagation_signal_norm_ratio",
    ),  # noqa: E501
    ("propagation correlation", dict(L=4, width=16), 32, "rho=rho0", "propagation_correlation"),
]


@pytest.mark.parametrize(("name", "params", "samples", "claim", "stem"), CASES)
def test_a_claim_is_drawn_with_its_formula_and_verdict(name, params, samples, claim, stem):
    result = simlab.run(name, samples=samples, seed=3, claims=[claim], **params)
    quantity, expression = claim.split("=", 1)
    verdicts = [c.verdict for c in result.checks if c.source == "user"]
    fig = _figure(result, stem)
    entries = [t for t in _legend_texts(fig) if t.startswith("claim 1:")]
    plt.close(fig)
    assert len(entries) == 1, _legend_texts(fig)
    text = entries[0].replace("\n    ", " ")
    assert f"{quantity} = {expression}" in text
    assert text.endswith(verdict_summary(verdicts)), (text, verdicts)
    assert undrawn_claims(result.specs) == []


def test_five_claims_render_each_once_in_claim_order():
    claims = [
        "var_after=1/(2*(1-p)) - 1/(2*pi)",
        "var_after=(1/2 - 1/(2*pi))/(1-p)",
        "var_after=1/(2*(1-p))",
        "var_after=0.5/(1-p)-0.16",
        "mean_after=1/sqrt(2*pi)",
    ]
    result = simlab.run("dropout", p=[0.1, 0.5, 0.9], M=32, samples=4096, seed=3, claims=claims)
    fig = _figure(result, "dropout_moments")
    texts = [t for t in _legend_texts(fig) if t.startswith("claim ")]
    assert [t.split(":")[0] for t in texts] == [f"claim {n}" for n in range(1, 6)]
    # laid out as saved: the legend of five claims covers no data point, and where it went
    # outside its panel the figure grew to keep its panels' size beside or under it
    width, height = fig.get_size_inches()
    layout_figure(fig)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    claims = [
        leg for leg in fig.findobj(Legend) if leg.get_texts()[0].get_text().startswith("claim")
    ]
    assert claims
    for legend in claims:
        box = legend.get_window_extent(renderer)
        assert covered_marks(box, figure_data_marks(fig)) == []
        frame = legend.axes.get_window_extent(renderer)
        outside = box.x1 > frame.x1 + 1 or box.y0 < frame.y0 - 1
        if outside:
            grown = fig.get_size_inches()
            assert grown[0] > width or grown[1] > height
    plt.close(fig)


def test_the_verdict_drawn_is_the_checks_at_each_point():
    result = simlab.run(
        "dropout", p=[0.2, 0.6], M=32, samples=4096, seed=3, claims=["var_after=1/(2*(1-p))"]
    )
    (run,) = result.runs
    marks = [m for pt in points_with_claims(run) for m in pt.claims]
    checks = [c for c in run.checks if c.source == "user"]
    assert [m.verdict for m in marks] == [c.verdict for c in checks]
    assert [m.value for m in marks] == pytest.approx([c.predicted for c in checks])


def test_a_claim_no_figure_shows_is_reported_not_drawn():
    result = simlab.run("dropout", M=32, samples=4096, seed=3, claims=["cov_after=0"])
    (line,) = undrawn_claims(result.specs)
    assert "cov_after is not drawn" in line
    fig = _figure(result, "dropout_moments")
    assert not [t for t in _legend_texts(fig) if t.startswith("claim ")]
    plt.close(fig)


def test_the_legend_words():
    mark = ClaimMark(2, "var", "M*p", 1.0, "fail", expect="fail")
    assert claim_label([mark]) == "claim 2, expected to fail: var = M*p — fail"
    assert verdict_summary(["pass", "fail", "pass"]) == "fail at 1, pass at 2 of 3 points"
    assert verdict_summary([None]) == "not decided"
    long = claim_label([ClaimMark(1, "q", "+".join(["sigma_x**2"] * 12), 1.0, "pass")])
    assert all(len(line) <= 64 for line in long.split("\n")) and long.endswith("pass")

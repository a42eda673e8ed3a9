"""Claims between measured quantities: the SE of ``Q - f(others)`` from the joint covariance.

Fixed seeds; every tolerance comes from a standard error (or, for the brute-force SD over seeds,
from the number of seeds).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simlab.api import experiment_spec
from simlab.errors import SimlabInputError
from simlab.simulate import checks_for, decide_runs, simulate
from simlab.verdicts.claims import parse_claim
from simlab.verdicts.estimates import JointEstimate, ScalarEstimate
from simlab.verdicts.relations import relation_check

# small networks: per-sample averages over 32 units keep every run well under a second
SMALL = {"N": 64, "M": 32, "workers": 1}


def _run(experiment: str, claims: list[str], claims_false: tuple[str, ...] = (), **values):
    spec = experiment_spec(experiment, values, claims, claims_false)
    run = simulate(spec)
    decide_runs([run], spec.alpha)
    return run, [c for c in run.checks if c.source == "user"]


def test_a_relation_that_holds_exactly_passes():
    # E[h~^2] = E[h^2]/(1-p) for inverted dropout, whatever the law of h: exact in expectation
    run, (check,) = _run(
        "dropout", ["second_after=second_before/(1-p)"], p=0.5, samples=200_000, seed=5, **SMALL
    )
    assert check.verdict == "pass", check
    assert abs(check.z) < 4.0
    est = run.points[0].estimates
    assert check.estimate == est["second_after"].value  # the record shows Q's own estimate
    assert check.predicted == pytest.approx(est["second_before"].value / 0.5, rel=1e-12)
    assert "joint" in check.note and "delta method" in check.holds


def test_a_relation_off_by_one_percent_fails_where_the_se_resolves_it():
    run, (right, wrong) = _run(
        "dropout",
        ["second_after=second_before/q"],  # q = 1 - p is a claim name wherever p is
        ("second_after=1.01*second_before/(1-p)",),
        p=0.5,
        samples=200_000,
        seed=6,
        **SMALL,
    )
    # the premise: 1% of the prediction is many joint SEs at this sample size
    assert 0.01 * wrong.predicted / 1.01 > 8.0 * wrong.se
    assert right.verdict == "pass"
    assert wrong.verdict == "fail" and wrong.as_expected


def test_correlated_sides_shrink_the_se_and_it_matches_the_sd_over_seeds():
    """At p = 0.1, mean_after and mean_before share 90% of every sample's units: their
    difference varies far less than either. The check's SE must be the SD of
    ``Q_hat - f(others_hat)`` over independent runs, not sqrt(se_a^2 + se_b^2)."""
    claims = [
        "mean_after=mean_before",
        # nonlinear in two named quantities (exact in expectation: E[h~^2] = E[h^2]/q)
        "var_after=(var_before + mean_before**2)/(1-p) - mean_before**2",
    ]
    seeds = 400
    diffs = np.empty((seeds, 2))
    ses = np.empty((seeds, 2))
    independent = np.empty(seeds)
    for seed in range(seeds):
        spec = experiment_spec(
            "dropout", {"p": 0.1, "N": 32, "M": 16, "samples": 2000, "seed": seed, "workers": 1},
            claims,
        )  # fmt: skip
        run = simulate(spec)
        users = [c for c in run.checks if c.source == "user"]
        diffs[seed] = [c.estimate - c.predicted for c in users]
        ses[seed] = [c.se for c in users]
        est = run.points[0].estimates
        independent[seed] = math.hypot(est["mean_after"].se, est["mean_before"].se)
    joint_se = np.sqrt(np.mean(ses**2, axis=0))
    # the sides are strongly correlated: the joint SE is a fraction of the independent one
    assert joint_se[0] / np.sqrt(np.mean(independent**2)) < 0.5
    # the SD over seeds estimates the true SE with relative SE ~ 1/sqrt(2 (seeds - 1)) (3.5%);
    # allow 4 of those (the SE estimates' own spread is far smaller, averaged over 400 runs)
    tolerance = 4.0 / math.sqrt(2.0 * (seeds - 1))
    sd = diffs.std(axis=0, ddof=1)
    for k in range(2):
        assert abs(sd[k] / joint_se[k] - 1.0) < tolerance, (claims[k], sd[k], joint_se[k])
        # and the relations hold: the mean difference is 0 within its SE over seeds
        assert abs(diffs[:, k].mean()) < 4.0 * sd[k] / math.sqrt(seeds)
    # the independent SE is far outside that tolerance: the test would catch it
    assert np.sqrt(np.mean(independent**2)) / sd[0] > 1.0 + 4 * tolerance


@pytest.mark.parametrize(
    "experiment,values,claims",
    [
        # Cov(mean, s^2) = mu3 / n > 0 for Poisson counts: the sides are positively correlated
        ("kept-units thinning", {"lam": 7.0, "p": 0.3}, ["var=mean", "cov_kept_dropped=0*mean"]),
        ("kept-units binomial", {"M": 50, "p": 0.3}, ["var=mean*p"]),
    ],
)
def test_kept_units_relation_se_matches_the_sd_over_seeds(experiment, values, claims):
    seeds = 300
    diffs, ses = np.empty((seeds, len(claims))), np.empty((seeds, len(claims)))
    for seed in range(seeds):
        spec = experiment_spec(
            experiment, {**values, "samples": 2000, "seed": seed, "workers": 1}, claims
        )
        users = [c for c in simulate(spec).checks if c.source == "user"]
        diffs[seed] = [c.estimate - c.predicted for c in users]
        ses[seed] = [c.se for c in users]
    tolerance = 4.0 / math.sqrt(2.0 * (seeds - 1))  # 4 relative SEs of an SD over 300 seeds
    ratio = diffs.std(axis=0, ddof=1) / np.sqrt(np.mean(ses**2, axis=0))
    assert np.all(np.abs(ratio - 1.0) < tolerance), ratio


def test_relation_se_is_the_delta_method_over_the_joint_covariance():
    """A synthetic joint estimate with a known covariance: ``a = b**2`` at b = 2 has gradient
    (1, -4), so se^2 = C_aa - 8 C_ab + 16 C_bb (the independent answer drops -8 C_ab)."""
    cov = np.array([[4e-4, 9e-5], [9e-5, 2.5e-5]])
    joint = JointEstimate(("a", "b"), np.array([4.01, 2.0]), cov, 1000)
    claim = parse_claim("a=b**2", quantities=["a", "b"], names=[], measured=["a", "b"])
    assert claim.measured == {"b"}
    check = relation_check(
        experiment="x",
        params={},
        claim=claim,
        values={"a": 4.01, "b": 2.0},
        joint=joint,
        estimate=ScalarEstimate(4.01, 0.02, 1000),
        id_suffix="#1",
    )
    expected = math.sqrt(4e-4 - 8 * 9e-5 + 16 * 2.5e-5)
    assert check.se == pytest.approx(expected, rel=1e-6)
    assert check.predicted == pytest.approx(4.0)
    assert check.z == pytest.approx(0.01 / expected, rel=1e-6)


def test_thinning_var_equals_mean_passes_and_a_wrong_relation_fails():
    _, (right, wrong) = _run(
        "kept-units thinning",
        ["var=mean"],  # K ~ Poisson(lam q): variance = mean
        ("var=mean*p",),  # the binomial variance with M fixed: forgets that M varies
        lam=7.0,
        p=0.3,
        samples=200_000,
        seed=3,
        workers=1,
    )
    assert right.verdict == "pass", right
    assert wrong.verdict == "fail"


def test_binomial_and_batchnorm_relations():
    _, (binomial,) = _run(
        "kept-units binomial", ["var=mean*p"], M=50, p=0.3, samples=200_000, seed=4, workers=1
    )
    assert binomial.verdict == "pass", binomial
    # var_out = gamma^2 E[v/(v+eps)] ~ gamma^2 E[v]/(E[v]+eps) where eps << v
    _, (bn,) = _run(
        "batchnorm stats",
        ["var_out=gamma**2*mean_v/(mean_v+eps)"],
        gamma=1.5,
        samples=4000,
        seed=4,
        workers=1,
    )
    assert bn.verdict == "pass", bn


@pytest.mark.parametrize(
    "experiment,claim,message",
    [
        ("propagation signal", "q=r", "supported by: dropout"),
        ("kept-units poisson-limit", "tv=0*pmf", "kept-units poisson-limit does not estimate"),
        ("dropout", "mean_after=mean_after", "cannot name its own quantity"),
        ("kept-units thinning", "var=pmf", "may name only mean, var, cov_kept_dropped"),
        ("kept-units thinning", "pmf=mean+0*k", "may be named only in a claim on one of"),
    ],
)
def test_a_relation_that_cannot_be_tested_is_refused_before_any_work(experiment, claim, message):
    with pytest.raises(SimlabInputError, match=message):
        experiment_spec(experiment, {"samples": 100}, [claim])


def test_batchnorm_constant_features_refuse_a_relation():
    with pytest.raises(SimlabInputError, match="not estimated at .*sigma=0"):
        experiment_spec("batchnorm stats", {"sigma": [1.0, 0.0]}, ["var_out=mean_v"])


def test_an_unsupported_experiment_refuses_a_relation_with_exit_2(simlab, tmp_path):
    result = simlab("propagation", "signal", "--claim", "q=0*r+1", "--samples", "100")
    assert result.exit_code == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("simlab: error: --claim 'q=0*r+1': 'r' is a measured quantity")
    assert "kept-units thinning" in line and "batchnorm stats" in line
    assert not (tmp_path / "outputs").exists()


def test_relation_checks_leave_built_in_checks_alone():
    """Adding a relation claim changes no built-in check (the joint covariance is computed
    beside the estimates, from statistics of its own)."""
    values = {"lam": 7.0, "p": 0.3, "samples": 100_000, "seed": 8, "workers": 1}
    plain = simulate(experiment_spec("kept-units thinning", values))
    spec = experiment_spec("kept-units thinning", values, ["cov_kept_dropped=0*mean*var"])
    with_claim = checks_for(spec, simulate(spec).points)
    assert [c for c in with_claim if c.source == "builtin"] == plain.checks

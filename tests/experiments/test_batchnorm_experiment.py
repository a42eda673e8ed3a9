"""The three batch-norm experiments against theory: exact identities, backward vs finite
differences, whitening identities, statistical checks, and claims over arrays and matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simlab.errors import SimlabInputError
from simlab.experiments.base import PointContext
from simlab.experiments.batchnorm_grads import BatchnormGrads, GradStats
from simlab.experiments.batchnorm_stats import BatchnormStats, draw_input, probe_batch
from simlab.experiments.batchnorm_whiten import (
    BatchnormWhiten,
    claim_inv,
    claim_sqrtm,
    expected_sample_correlation,
)
from simlab.simulate import checks_for, decide_runs
from simlab.verdicts.checks import decide, make_check
from simlab.verdicts.claims import ClaimError, parse_claim
from simlab.verdicts.estimates import Prediction

STATS = dict(B=32, N=8, M=16, gamma=1.5, beta=-0.5, eps=1e-5, input="gaussian", sigma=1.0)
GRADS = dict(B=16, M=4, gamma=1.0, beta=0.3, eps=1e-5, sigma=1.0)
WHITEN = dict(B=64, M=8, rho=0.5, corr="equi", eps=1e-5)


def _ctx(samples, seed=7, chunk=256, workers=1):
    return PointContext(
        entropy=seed, point_index=0, samples=samples, chunk_size=chunk, workers=workers
    )


def _decided(exp, result):
    """Built-in checks of one point, decided."""
    checks = [
        make_check(
            experiment=exp.name,
            quantity=q,
            params={},
            estimate=result.estimates[q],
            prediction=p,
            source="builtin",
            expression="",
        )
        for q, p in result.predictions.items()
    ]
    return {c.quantity: c for c in decide(checks, 0.001)}


def _claim(exp, result, text):
    """Check one user claim against one point (as the runner does)."""
    claim = parse_claim(
        text,
        quantities=[q.name for q in exp.quantities],
        names=[p.name for p in exp.params] + list(exp.claim_names),
        functions=dict(exp.claim_functions),
    )
    value = claim.evaluate(exp.claim_values(result, claim.quantity))
    check = make_check(
        experiment=exp.name,
        quantity=claim.quantity,
        params={},
        estimate=result.estimates[claim.quantity],
        prediction=Prediction(value, "as claimed"),
        source="user",
        expression=claim.expression,
    )
    return decide([check], 0.001)[0]


@pytest.fixture(scope="module")
def stats_point():
    return BatchnormStats().run_point(STATS, _ctx(3000))


@pytest.fixture(scope="module")
def grads_point():
    return BatchnormGrads().run_point(GRADS, _ctx(60, chunk=20))


@pytest.fixture(scope="module")
def whiten_point():
    return BatchnormWhiten().run_point(WHITEN, _ctx(600, chunk=100))


# --------------------------------------------------------------------------------------------------
# stats
# --------------------------------------------------------------------------------------------------


def test_input_laws_are_standardised():
    rng = np.random.default_rng(0)
    for law in ("gaussian", "uniform", "exponential", "student_t"):
        x = draw_input(rng, law, (400_000,))
        assert abs(x.mean()) < 0.01 and abs(x.var() - 1) < 0.03, law


def test_every_stats_identity_and_statistic_passes(stats_point):
    checks = _decided(BatchnormStats(), stats_point)
    assert set(checks) == {
        "batch_mean",
        "batch_var",
        "max_abs_xhat",
        "jac_norm",
        "mean_v",
        "mean_out",
        "var_out",
    }
    for q, c in checks.items():
        assert c.verdict == "pass", (q, c.estimate, c.note)
        if c.kind == "exact":
            assert c.estimate < 1e-13  # float64 rounding, far inside IDENTITY_TOL


@pytest.mark.parametrize(
    "overrides",
    [
        {"eps": 0.0},
        {"B": 2, "sigma": 0.003},
        {"B": 3, "input": "exponential", "N": 1, "eps": 0.0},
        {"input": "student_t", "sigma": 1e-4, "eps": 1e-2},
        {"input": "uniform", "gamma": -2.0, "beta": 4.0},
    ],
)
def test_identities_hold_and_statistics_agree_within_five_se(overrides):
    point = {**STATS, **overrides}
    result = BatchnormStats().run_point(point, _ctx(2000, seed=3))
    for q, c in _decided(BatchnormStats(), result).items():
        if c.kind == "exact":
            assert c.verdict == "pass", (q, c.estimate)
        else:
            assert abs(c.estimate - c.predicted) < 5 * c.se, (q, c.estimate, c.predicted, c.se)
    # var_out has a built-in only where E[v/(v+eps)] is known: Gaussian input, or eps = 0
    known = point["input"] == "gaussian" or point["eps"] == 0
    assert ("var_out" in result.predictions) == known


def test_var_out_uses_the_quadrature_where_eps_matters():
    point = {**STATS, "sigma": 0.003, "N": 16}  # sigma^2 ~ eps: E[v/(v+eps)] ~ 0.46
    result = BatchnormStats().run_point(point, _ctx(3000))
    pred = float(result.predictions["var_out"].value)
    assert 0.3 < pred / point["gamma"] ** 2 < 0.6
    est = result.estimates["var_out"]
    assert abs(est.value - pred) < 5 * est.se
    assert abs(est.value - point["gamma"] ** 2) > 20 * est.se  # gamma^2 alone is far off


def test_stats_claims_over_per_feature_arrays(stats_point):
    exp = BatchnormStats()
    assert _claim(exp, stats_point, "batch_var=gamma**2*v/(v+eps)").verdict == "pass"
    assert _claim(exp, stats_point, "batch_mean=beta").verdict == "pass"
    # eps matters at ~1e-5 relative: far above the identity tolerance
    wrong = _claim(exp, stats_point, "batch_var=gamma**2")
    assert wrong.verdict == "fail" and wrong.estimate > 1e-6
    assert _claim(exp, stats_point, "jac_norm=abs(gamma)*s").verdict == "pass"
    assert _claim(exp, stats_point, "max_abs_xhat=sqrt(B-1)").verdict == "fail"  # a bound only
    assert _claim(exp, stats_point, "mean_v=sigma**2").verdict == "fail"  # biased variance
    assert _claim(exp, stats_point, "mean_v=(B-1)/B*sigma**2").verdict == "pass"


def test_the_probe_batch_attains_samuelsons_bound():
    from simlab.theory import batchnorm as bn

    Y = probe_batch(8, 5, np.arange(5.0), 1.0)
    fwd = bn.bn_forward(Y, 1.0, 0.0, 0.0)
    np.testing.assert_allclose(np.abs(fwd.xhat).max(axis=-2), math.sqrt(7), rtol=1e-12)
    np.testing.assert_allclose(fwd.v[0, 0], np.logspace(0, -12, 5), rtol=1e-9)


def test_constant_features_at_eps_zero_are_nan_not_a_crash_and_poison_nothing_else():
    point = {**STATS, "sigma": 0.0, "eps": 0.0}
    result = BatchnormStats().run_point(point, _ctx(300))
    checks = _decided(BatchnormStats(), result)
    assert checks["mean_v"].verdict == "pass"  # v = 0 exactly: not a NaN
    assert checks["mean_v"].expected == "pass"
    for q in ("batch_mean", "batch_var", "max_abs_xhat", "jac_norm", "mean_out", "var_out"):
        c = checks[q]
        assert c.verdict == "undefined" and "NaN" in c.note, (q, c.note)
        assert c.expected == "either" and c.as_expected  # 0/0 is the answer, not a failure
        assert "NaN is the answer" in c.holds
    # with eps > 0 the same constant features are perfectly fine
    fine = BatchnormStats().run_point({**point, "eps": 1e-5}, _ctx(300))
    assert all(c.verdict == "pass" for c in _decided(BatchnormStats(), fine).values())


def test_stats_standard_errors_come_from_independent_batches():
    # features of a batch are strongly correlated when N << M: per-batch aggregates keep z ~ N(0,1)
    z = []
    for seed in range(16):
        r = BatchnormStats().run_point({**STATS, "N": 2, "M": 32}, _ctx(400, seed=seed))
        for q in ("mean_v", "mean_out", "var_out"):
            est = r.estimates[q]
            z.append((est.value - float(r.predictions[q].value)) / est.se)
    assert 0.7 < np.std(z) < 1.35, np.std(z)


# --------------------------------------------------------------------------------------------------
# grads
# --------------------------------------------------------------------------------------------------


def test_backward_matches_finite_differences_through_the_experiment(grads_point):
    checks = _decided(BatchnormGrads(), grads_point)
    assert set(checks) == {"d_gamma", "d_beta", "d_v", "d_m", "d_Y", "jac_diag"}
    for q, c in checks.items():
        assert c.verdict == "pass" and c.estimate < c.tolerance, (q, c.estimate)
        assert 1e-9 < c.tolerance < 1e-7


@pytest.mark.parametrize("B, eps", [(2, 0.0), (3, 0.1), (64, 0.0)])
def test_backward_at_edge_sizes(B, eps):
    result = BatchnormGrads().run_point({**GRADS, "B": B, "eps": eps}, _ctx(20, chunk=10))
    assert all(c.verdict == "pass" for c in _decided(BatchnormGrads(), result).values())


def test_gradient_claims_are_array_expressions(grads_point):
    exp = BatchnormGrads()
    wrong = _claim(exp, grads_point, "jac_diag=s - (Y-m)**2*s**3/B")
    assert wrong.verdict == "fail" and wrong.estimate > 0.5  # its error is of order 1
    right = _claim(exp, grads_point, "jac_diag=gamma*s*(1 - 1/B - xhat**2/B)")
    assert right.verdict == "pass"
    for text in (
        "d_gamma=sum(D*xhat)",
        "d_beta=sum(D)",
        "d_v=-gamma/2*(v+eps)**(-3/2)*sum(D*(Y-m))",
        "d_m=-gamma*s*sum(D)",
        "d_Y=gamma*s/B*(B*D - sum(D) - xhat*sum(D*xhat))",
        "d_m=-gamma*s*sum(D)*sum(1)/B",  # sum of a number is B times it
        "d_beta=sum(D) + 0*sum(s)",
    ):
        assert _claim(exp, grads_point, text).verdict == "pass", text
    # a forgotten sum varies along the batch: compared entry by entry, never a crash
    assert _claim(exp, grads_point, "d_gamma=D*xhat").verdict == "fail"
    assert _claim(exp, grads_point, "d_Y=gamma*s*D").verdict == "fail"  # diagonal only


def test_the_figure_data_separates_right_from_wrong(grads_point):
    tol = grads_point.figure.tol
    for q, errors in grads_point.figure.rel_errors.items():
        assert np.all(errors[np.isfinite(errors)] <= tol), q
    for _label, (_q, errors) in grads_point.figure.wrong.items():
        assert np.nanmax(errors) > 0.1


# --------------------------------------------------------------------------------------------------
# whiten
# --------------------------------------------------------------------------------------------------


def test_whitening_identities_and_bn_correlation(whiten_point):
    checks = _decided(BatchnormWhiten(), whiten_point)
    assert set(checks) == {"white_cov", "cross_cov", "rank", "bn_corr"}
    for q, c in checks.items():
        assert c.verdict == "pass", (q, c.estimate, c.tolerance, c.note)
    # the tolerance is the eps effect (eps / (lambda_min + eps)), not a loose constant
    assert checks["white_cov"].tolerance < 1e-3
    assert checks["cross_cov"].tolerance < 1e-3


def test_bn_corr_z_has_sd_one_at_a_small_batch():
    """At B = 8 (the quick budget's small batch) the z of bn_corr over 60 seeds of 400 batches has
    mean 0 and sd 1, within 3.3 of their standard errors (1/sqrt(60), 1/sqrt(120)).

    A batch is the independent sample: its 120 pair correlations share the batch's means and
    variances, so an SE over pairs (or over Fisher z's of pairs) would be far too narrow, and the
    sample correlation's bias at B = 8 (E[r] = 0.4725 for rho = 0.5, 3.6 SEs here) is in the
    Olkin-Pratt prediction. The eps tolerance (3e-5, 0.004 SE) is negligible: it is calibrated.
    (The sd of 1.18 once seen over seeds 301-340 is seed 302's z = 4.39, a 1-in-10^5 draw:
    over 10,000 seeds the sd was 0.995 and the tails at 1.96, 2.58 and 3.29 those of N(0, 1).)
    """
    from simlab.engine.seeding import setup_rng
    from simlab.experiments.base import Simulated

    exp = BatchnormWhiten()
    point = {**WHITEN, "B": 8, "M": 16}
    setup = exp.setup(point, setup_rng(1, 0))
    sampler = exp.sampler(point, setup)
    z = []
    for seed in range(60):
        stats = sampler(np.random.default_rng(seed), 400)
        estimates = stats.estimates()
        sim = Simulated(point, setup, stats, estimates, 400, 0.001)
        check = make_check(
            experiment=exp.name,
            quantity="bn_corr",
            params=point,
            estimate=estimates["bn_corr"],
            prediction=exp.predict(sim)["bn_corr"],
            source="builtin",
            expression="",
        )
        z.append(check.z)
    assert check.calibrated and 0 < check.tolerance < 0.02 * check.se
    z = np.array(z)
    assert abs(z.mean()) < 3.3 / math.sqrt(60), z.mean()
    assert abs(z.std(ddof=1) - 1.0) < 3.3 / math.sqrt(120), z.std(ddof=1)


def test_matrix_claims(whiten_point):
    exp = BatchnormWhiten()
    assert _claim(exp, whiten_point, "cross_cov=I").verdict == "fail"
    assert _claim(exp, whiten_point, "cross_cov=sqrtm(Sigma)").verdict == "pass"
    assert _claim(exp, whiten_point, "white_cov=I").verdict == "pass"
    assert _claim(exp, whiten_point, "cross_cov=inv(sqrtm(Sigma)) @ Sigma").verdict == "pass"
    assert _claim(exp, whiten_point, "white_cov=Sigma").verdict == "fail"
    assert _claim(exp, whiten_point, "rank=M").verdict == "pass"
    assert _claim(exp, whiten_point, "rank=B-1").verdict == "fail"


def test_small_batches_no_white_cov_identity_and_nan_at_eps_zero():
    exp = BatchnormWhiten()
    result = exp.run_point({**WHITEN, "B": 6, "eps": 1e-5}, _ctx(60, chunk=30))
    checks = _decided(exp, result)
    assert checks["rank"].verdict == "pass" and checks["cross_cov"].verdict == "pass"
    # Sigma is singular: the identity fails by 1, kept as a negative control
    white = checks["white_cov"]
    assert white.expected == "fail" and white.verdict == "fail" and white.as_expected
    assert white.estimate > 0.5
    assert _claim(exp, result, "white_cov=I").verdict == "fail"  # by 1, not by rounding
    nan = exp.run_point({**WHITEN, "B": 6, "eps": 0.0}, _ctx(60, chunk=30))
    assert "white_cov" not in nan.predictions  # nothing to whiten with: no negative control
    c = _decided(exp, nan)["cross_cov"]
    assert c.verdict == "undefined" and c.as_expected and "NaN" in c.note
    # every batch, not only those whose null eigenvalue rounded to <= 0 on this BLAS
    assert np.all(np.isnan(nan.estimates["white_cov"].reference))
    assert np.all(np.isnan(nan.estimates["cross_cov"].reference))
    assert math.isinf(nan.estimates["cond"].value)


def test_random_correlation_matrix_and_validation():
    exp = BatchnormWhiten()
    result = exp.run_point({**WHITEN, "corr": "random"}, _ctx(300, chunk=100))
    assert all(c.verdict == "pass" for c in _decided(exp, result).values())
    C = result.figure.C
    np.testing.assert_allclose(np.diag(C), 1.0)
    with pytest.raises(SimlabInputError, match="rho"):
        exp.validate({**WHITEN, "M": 8, "rho": -0.2}, lambda k: f"--{k}")
    exp.validate({**WHITEN, "M": 8, "rho": -0.1}, lambda k: f"--{k}")  # -1/7 < -0.1


def test_expected_sample_correlation():
    assert expected_sample_correlation(0.0, 10) == 0.0
    np.testing.assert_allclose(expected_sample_correlation(0.5, 2), 2 / np.pi * np.arcsin(0.5))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200_000, 6, 2)) @ np.linalg.cholesky([[1, 0.7], [0.7, 1]]).T
    xc = x - x.mean(axis=1, keepdims=True)
    r = (xc[..., 0] * xc[..., 1]).sum(1) / np.sqrt((xc**2).sum(1).prod(-1))
    assert abs(r.mean() - expected_sample_correlation(0.7, 6)) < 4 * r.std() / np.sqrt(len(r))


def test_matrix_functions_accept_numbers_stacks_and_singular_input():
    assert claim_sqrtm(np.float64(4.0)) == 2.0
    assert claim_inv(np.float64(4.0)) == 0.25
    S = np.array([[[4.0, 0.0], [0.0, 9.0]], [[2.0, 1.0], [1.0, 2.0]]])
    root = claim_sqrtm(S)
    np.testing.assert_allclose(root @ root, S, rtol=1e-12)
    np.testing.assert_allclose(claim_inv(S) @ S, np.broadcast_to(np.eye(2), S.shape), atol=1e-12)
    assert np.all(np.isnan(claim_inv(np.zeros((2, 2)))))
    # numerically singular whatever the sign of the rounding-level singular direction: NaN, not
    # an inverse of size 1e18 that another BLAS would return as inf or with the other sign
    for tiny in (1e-18, -1e-18, 0.0):
        assert np.all(np.isnan(claim_inv(np.diag([1.0, tiny]))))
    np.testing.assert_allclose(claim_inv(np.diag([1.0, 1e-12])), np.diag([1.0, 1e12]))
    claim = parse_claim(
        "cross_cov=sqrtm(-Sigma)",
        quantities=["cross_cov"],
        names=["Sigma"],
        functions={"sqrtm": claim_sqrtm},
    )
    with pytest.raises(ClaimError, match="complex"):
        claim.evaluate({"Sigma": np.eye(2)})


def test_runner_builds_and_decides_user_claims_for_all_three():
    from simlab.runspec import build_spec
    from simlab.simulate import ExperimentRun

    specs = [
        build_spec(
            BatchnormGrads(),
            {**GRADS, "samples": 10, "seed": 1},
            ["jac_diag=gamma*s*(1 - 1/B - xhat**2/B)"],
            lambda k: k,
        ),
        build_spec(
            BatchnormWhiten(),
            {**WHITEN, "samples": 50, "seed": 1},
            ["cross_cov=sqrtm(Sigma)"],
            lambda k: k,
        ),
    ]
    runs = []
    for spec in specs:
        points = [spec.experiment.run_point(p, _ctx(spec.samples, seed=1)) for p in spec.points()]
        runs.append(ExperimentRun(spec, points, checks_for(spec, points), 0.0))
    decide_runs(runs, 0.001)
    for run in runs:
        assert all(c.verdict == "pass" for c in run.checks), [c.id for c in run.checks]


def test_grad_stats_merge_like_concatenation_in_chunk_order():
    parts = [{"a": np.arange(3) + 10 * i, "b": np.ones((3, 2)) * i} for i in range(4)]
    merged = GradStats(parts[0], 1e-5)
    for part in parts[1:]:
        merged = merged.merge(GradStats(part, 1e-5))
    assert merged.eps == 1e-5
    assert np.array_equal(merged.arrays["a"], np.concatenate([p["a"] for p in parts]))
    assert np.array_equal(merged.arrays["b"], np.concatenate([p["b"] for p in parts]))
    assert merged.arrays["a"] is merged.arrays["a"]  # joined once, then kept

"""Verdict machinery: z-checks, exact checks, Holm-Bonferroni, resolution."""

import math

import numpy as np
import pytest
from scipy import stats

from simlab.verdicts.checks import chi_square_effect_resolution, decide, holm_thresholds, make_check
from simlab.verdicts.estimates import CountsEstimate, ExactEstimate, Prediction, ScalarEstimate


def _check(value, se, predicted, tolerance=0.0, n=10_000):
    return make_check(
        experiment="e",
        quantity="q",
        params={"p": 0.5},
        estimate=ScalarEstimate(value, se, n),
        prediction=Prediction(predicted, tolerance=tolerance),
        source="builtin",
        expression="",
    )


def test_z_and_p_value():
    c = _check(1.02, 0.01, 1.0)
    assert c.z == pytest.approx(2.0)
    assert c.p_value == pytest.approx(2 * stats.norm.sf(2.0))


def test_limit_tolerance_only_tests_the_excess():
    assert _check(1.02, 0.01, 1.0, tolerance=0.03).z == 0.0
    assert _check(1.05, 0.01, 1.0, tolerance=0.03).z == pytest.approx(2.0)


def test_a_tolerance_makes_a_check_conservative_so_calibration_leaves_it_out():
    # inside the tolerance p = 1: such p-values are not uniform under a true claim
    assert _check(1.02, 0.01, 1.0, tolerance=0.03).p_value == 1.0
    assert not _check(1.02, 0.01, 1.0, tolerance=0.03).calibrated
    assert _check(1.02, 0.01, 1.0).calibrated


def test_a_tolerance_negligible_against_the_se_keeps_the_check_calibrated():
    """An eps effect of 3e-5 beside an SE of 8e-3 (bn_corr at B = 8) moves z by 0.004: the
    p-value stays uniform, so calibration keeps the check; at 0.27 SE (r at width 10) it does
    not. A vector check needs every entry's tolerance to be negligible against its own SE."""
    from simlab.verdicts.checks import NEGLIGIBLE_TOLERANCE, tolerance_negligible
    from simlab.verdicts.estimates import VectorEstimate

    assert _check(0.478, 0.0076, 0.4725, tolerance=3.2e-5).calibrated
    assert not _check(1.01, 0.0072, 1.0, tolerance=0.00195).calibrated
    edge = NEGLIGIBLE_TOLERANCE * 0.01
    assert _check(1.0, 0.01, 1.0, tolerance=edge).calibrated
    assert not _check(1.0, 0.01, 1.0, tolerance=1.01 * edge).calibrated
    vector = VectorEstimate(np.ones(3), np.diag([1e-4, 1e-6, 1e-4]), 100, np.arange(3))
    tol = np.array([1e-5, 1e-5, 0.0])  # 0.001 SE on the first entry, 0.01 SE on the second
    assert tolerance_negligible(tol, vector.se)
    assert not tolerance_negligible(tol * 10, vector.se)  # 0.1 SE on the second entry
    vector_check = make_check(
        experiment="e",
        quantity="r",
        params={},
        estimate=vector,
        prediction=Prediction(np.ones(3), tolerance=tol * 10),
        source="builtin",
        expression="",
    )
    assert not vector_check.calibrated
    assert not tolerance_negligible(1e-9, None)  # no SE to compare with: the tolerance decides


def test_holm_matches_the_textbook_step_down():
    p = [0.01, 0.04, 0.03, 0.005]
    thresholds, rejected = holm_thresholds(p, 0.05)
    # sorted: 0.005 <= .05/4, 0.01 <= .05/3, 0.03 > .05/2 -> stop
    assert rejected == [True, False, False, True]
    assert thresholds == [0.05 / 3, 0.05 / 1, 0.05 / 2, 0.05 / 4]


def test_decide_fails_a_wrong_prediction_and_passes_a_right_one():
    checks = decide([_check(1.0, 0.001, 1.0005), _check(1.0, 0.001, 1.01)], alpha=0.001)
    assert [c.verdict for c in checks] == ["pass", "fail"]


def test_resolution_is_the_90_percent_power_deviation():
    (c,) = decide([_check(2.0, 0.01, 2.0)], alpha=0.001)
    z = stats.norm.isf(0.001 / 2) + stats.norm.isf(0.1)
    assert c.resolution == pytest.approx(z * 0.01 / 2.0)
    # at that deviation the two-sided test rejects with probability 0.9 (check by its definition)
    shift = c.resolution * 2.0 / 0.01
    power = stats.norm.sf(stats.norm.isf(0.0005) - shift) + stats.norm.cdf(
        -stats.norm.isf(0.0005) - shift
    )
    assert power == pytest.approx(0.9, abs=1e-6)


def test_noisy_check_is_undecided_with_the_samples_that_would_decide_it():
    # was: a "too noisy to decide" note on a check that still read "pass"
    (c,) = decide([_check(1.0, 1.0, 1.0, n=100)], alpha=0.001, target=0.25)
    assert c.verdict == "undecided" and c.target == 0.25 and c.as_expected
    assert "undecided: resolution 457%" in c.note and "would decide it" in c.note
    # at the samples it names, the same check (SE shrinking like 1/sqrt(n)) resolves the target
    se = 1.0 * math.sqrt(100 / c.samples_needed)
    (d,) = decide([_check(1.0, se, 1.0, n=round(c.samples_needed))], alpha=0.001, target=0.25)
    assert d.resolution == pytest.approx(0.25, rel=1e-9) and d.verdict == "pass"


def test_a_rejection_is_a_failure_whatever_the_resolution():
    # resolution 4.6 (far coarser than the target), but z = 10: undecided must not hide it
    (c,) = decide([_check(11.0, 1.0, 1.0, n=100)], alpha=0.001, target=0.25)
    assert c.verdict == "fail" and c.samples_needed is None


def test_a_negative_control_the_sample_cannot_resolve_is_undecided_not_pass():
    from dataclasses import replace

    control = replace(_check(1.1, 1.0, 1.0, n=100), expected="fail")
    (c,) = decide([control], alpha=0.001)
    assert c.verdict == "undecided" and c.as_expected  # neither pass nor a contradiction
    resolved = replace(_check(1.0, 0.001, 1.0), expected="fail")
    (d,) = decide([resolved], alpha=0.001)
    assert d.verdict == "pass" and not d.as_expected  # resolved and not rejected: unexpected


def test_a_tolerance_coarser_than_the_target_cannot_be_decided_by_more_samples():
    (c,) = decide([_check(1.0, 0.01, 1.0, tolerance=0.3)], alpha=0.001, target=0.25)
    assert c.verdict == "undecided" and c.samples_needed is None
    assert "no sample count decides it" in c.note


def test_a_zero_prediction_has_an_absolute_resolution_and_no_target():
    (c,) = decide([_check(0.0, 1.0, 0.0, n=100)], alpha=0.001, target=0.25)
    assert c.resolution_kind == "absolute" and c.target is None and c.verdict == "pass"


def test_a_distribution_check_is_undecided_when_its_effect_size_is_coarse():
    from simlab.verdicts.checks import POWER

    probs = np.array([0.25, 0.5, 0.25])
    small = CountsEstimate(support=np.arange(3), counts=np.array([6, 10, 4]), overflow=0)
    (c,) = decide(
        [make_check(experiment="e", quantity="pmf", params={}, estimate=small,
                    prediction=Prediction(probs), source="builtin", expression="")],
        alpha=0.001,
    )  # fmt: skip
    assert c.verdict == "undecided" and c.resolution > 0.25
    # w scales like 1/sqrt(n) exactly: at the samples named, w is the target
    w = chi_square_effect_resolution(int(c.dof), round(c.samples_needed), 0.001, POWER)
    assert w == pytest.approx(0.25, rel=1e-3)


def test_nan_estimate_is_undefined_not_a_crash():
    (c,) = decide([_check(float("nan"), 0.1, 1.0)], alpha=0.001)
    assert c.verdict == "undefined" and "not a finite number" in c.note


def test_exact_check_uses_relative_error_and_tolerance():
    ref = np.array([1.0, 2.0, -3.0])
    good = make_check(
        experiment="e",
        quantity="g",
        params={},
        source="user",
        expression="",
        estimate=ExactEstimate(ref, tolerance=1e-6),
        prediction=Prediction(ref * (1 + 1e-8)),
    )
    bad = make_check(
        experiment="e",
        quantity="g",
        params={},
        source="user",
        expression="",
        estimate=ExactEstimate(ref, tolerance=1e-6),
        prediction=Prediction(ref * (1 + 1e-3)),
    )
    good, bad = decide([good, bad], alpha=0.001)
    assert good.verdict == "pass" and bad.verdict == "fail"
    assert bad.estimate == pytest.approx(1e-3 / (1 + 1e-3))


def test_gof_check_passes_the_true_law_and_fails_a_wrong_one():
    rng = np.random.default_rng(0)
    draws = rng.poisson(3.0, size=20_000)  # test data for the verdict code, not a simulation
    support = np.arange(25)
    counts = np.bincount(draws, minlength=25)[:25]
    right = stats.poisson.pmf(support, 3.0)
    wrong = stats.poisson.pmf(support, 3.1)
    checks = [
        make_check(
            experiment="e",
            quantity="pmf",
            params={},
            source="user",
            expression="",
            estimate=CountsEstimate(support, counts),
            prediction=Prediction(pmf),
        )
        for pmf in (right, wrong)
    ]
    right_c, wrong_c = decide(checks, alpha=0.001)
    assert right_c.verdict == "pass" and wrong_c.verdict == "fail"
    assert right_c.resolution == pytest.approx(
        chi_square_effect_resolution(int(right_c.dof), 20_000, 0.001 / 2)
    )


def test_effect_resolution_has_the_stated_power():
    w = chi_square_effect_resolution(5, 1000, 0.001)
    crit = stats.chi2.isf(0.001, 5)
    assert stats.ncx2.sf(crit, 5, 1000 * w * w) == pytest.approx(0.9, abs=1e-6)
    assert math.isclose(chi_square_effect_resolution(5, 4000, 0.001), w / 2, rel_tol=1e-6)


def _vector(values, cov, predicted, n=10_000, tolerance=0.0):
    from simlab.verdicts.estimates import VectorEstimate

    est = VectorEstimate(np.asarray(values, float), np.asarray(cov, float), n, np.arange(1, 4))
    return make_check(
        experiment="e",
        quantity="q",
        params={},
        source="builtin",
        expression="",
        estimate=est,
        prediction=Prediction(predicted, tolerance=tolerance),
    )


def test_vector_check_uses_the_joint_covariance():
    # Two strongly correlated entries that both sit +1.5 SE high are jointly unremarkable when
    # positively correlated, but a +1.5 / -1.5 split is far off the correlated direction.
    cov = 1e-4 * np.array([[1.0, 0.95, 0.0], [0.95, 1.0, 0.0], [0.0, 0.0, 1.0]])
    same = _vector([1.015, 1.015, 1.0], cov, 1.0)
    split = _vector([1.015, 0.985, 1.0], cov, 1.0)
    assert same.dof == 3 and split.p_value < 1e-6 < same.p_value
    assert split.statistic == pytest.approx(
        np.array([0.015, -0.015, 0]) @ np.linalg.solve(cov, [0.015, -0.015, 0])
    )


def test_vector_check_records_the_worst_entry_and_honours_tolerances():
    cov = 1e-4 * np.eye(3)
    c = _vector([1.0, 1.05, 1.0], cov, 1.0)
    assert c.estimate == pytest.approx(1.05) and "l = 2" in c.note
    assert _vector([1.0, 1.05, 1.0], cov, 1.0, tolerance=0.06).p_value == pytest.approx(1.0)


def test_a_negative_control_that_fails_is_as_expected():
    wrong = make_check(
        experiment="e",
        quantity="q",
        params={},
        source="builtin",
        expression="",
        estimate=ScalarEstimate(1.0, 0.001, 1000),
        prediction=Prediction(1.1, expect="fail"),
    )
    (c,) = decide([wrong], alpha=0.001)
    assert c.verdict == "fail" and c.as_expected


def test_exact_claim_of_the_wrong_shape_is_undefined_not_a_crash():
    c = make_check(
        experiment="e",
        quantity="g",
        params={},
        source="user",
        expression="",
        estimate=ExactEstimate(np.ones((3, 4)), tolerance=1e-6),
        prediction=Prediction(np.ones(5)),
    )
    (c,) = decide([c], alpha=0.001)
    assert c.verdict == "undefined" and "does not match" in c.note

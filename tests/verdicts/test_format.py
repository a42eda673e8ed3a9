"""One formatter: the console table, the report and checks.csv say the same words."""

from simlab.verdicts import format as fmt


def _check(**over):
    base = dict(
        id="e/q[p=0.3]/builtin", experiment="e", quantity="q", params={"p": 0.3}, kind="exact",
        source="builtin", expression="", estimate=2.5e-9, se=None, predicted=None, z=None,
        p_value=None, statistic=None, dof=None, tolerance=1e-6, resolution=None,
        resolution_kind=None, verdict="pass", expected="pass",
    )  # fmt: skip
    base.update(over)
    return base


def test_an_exact_check_reads_as_its_largest_error_against_its_tolerance():
    row = fmt.row(_check())
    assert row["measured"] == "max rel. error 2.5e-09"
    assert row["predicted"] == "≤ 1e-06"
    assert row["resolution"] == "tol 1e-06"
    assert row["setting"] == "p=0.3"


def test_a_statistical_check_shows_estimate_se_z_and_relative_resolution():
    row = fmt.row(
        _check(
            kind="statistical",
            estimate=0.5551,
            se=9e-5,
            predicted=0.55513,
            z=-0.67,
            p_value=0.5,
            resolution=0.0009,
            resolution_kind="relative",
        )  # fmt: skip
    )
    assert row["measured"] == "0.5551 ± 9e-05"
    assert row["statistic"] == "z = -0.67"
    assert row["resolution"] == "0.09%"


def test_a_negative_control_says_what_was_expected():
    assert fmt.verdict(_check(verdict="fail", expected="fail")) == "fail (expected)"
    assert fmt.verdict(_check(verdict="pass", expected="fail")) == "pass (expected fail)"


def test_a_user_claim_shows_its_formula():
    assert fmt.claim(_check(source="user", expression="2*p")) == "q = 2*p"
    assert fmt.claim(_check(expression="2*p")) == "q"


def test_a_profile_check_shows_t2_with_its_dof_and_the_worst_layer():
    # was "z = +1.00" beside a p-value from a T² that was never shown, and no layer
    row = fmt.row(
        _check(kind="statistical", estimate=2.029, se=0.01, predicted=1024.0, z=1.0,
               p_value=0.78, statistic=2.22, dof=3.0, index_name="l", index=10.0,
               resolution=0.01, resolution_kind="relative")
    )  # fmt: skip
    assert row["statistic"] == "T² = 2.22 (3 dof); z = +1.00 at l = 10"
    assert row["measured"] == "2.029 ± 0.01 at l = 10"


def test_a_tolerance_check_shows_its_deviation_as_a_fraction_of_the_tolerance():
    # was "z = +0.00, p = 1" even at 99% of the tolerance
    inside = _check(kind="statistical", estimate=1.0099, se=0.001, predicted=1.0, z=0.0,
                    p_value=1.0, tolerance=0.01, tolerance_used=0.99)  # fmt: skip
    assert fmt.statistic(inside) == "|dev| = 99% of tol"
    beyond = dict(inside, z=3.0, tolerance_used=4.0)
    assert fmt.statistic(beyond) == "|dev| = 4× tol; z beyond tol = +3.00"
    profile = dict(inside, statistic=0.0, dof=10.0, index_name="l", index=1.0, tolerance_used=0.38)
    assert fmt.statistic(profile) == "T² = 0 (10 dof); |dev| = 38% of tol"


def test_an_undecided_check_says_how_many_more_samples_would_decide_it():
    c = _check(kind="statistical", estimate=1e-3, se=1e-3, predicted=7.5e-6, z=0.7,
               p_value=0.46, resolution=1163.9, resolution_kind="relative", verdict="undecided",
               target=0.25, n=500_000, samples_needed=500_000 * 2.2e7)  # fmt: skip
    assert fmt.verdict(c) == "undecided (needs 2e+07× the samples)"
    assert fmt.resolution(c) == "116390.00% > 25%"
    assert fmt.verdict(dict(c, expected="fail")).endswith(", expected fail")


def test_the_summary_counts_undecided_and_negative_controls():
    checks = [
        _check(verdict="pass"),
        _check(verdict="fail", expected="fail"),
        _check(verdict="undecided"),
        _check(verdict="pass", expected="fail"),
    ]
    counts = fmt.counts(checks)
    assert counts["undecided"] == 1 and counts["controls"] == 2 and counts["unexpected"] == 1
    assert fmt.summary(counts) == (
        "2 passed, 1 failed, 1 undecided (2 negative controls; 1 not as expected)"
    )

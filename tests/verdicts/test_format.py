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

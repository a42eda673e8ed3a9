"""The terminal table renders every kind of check, including text rich would read as markup."""

from rich.console import Console

from simlab.console import checks_table, summary_counts
from simlab.verdicts.checks import decide, make_check
from simlab.verdicts.estimates import Prediction, ScalarEstimate


def _check(predicted, expect="pass", quantity="q", experiment="e"):
    return make_check(
        experiment=experiment,
        quantity=quantity,
        params={"x": "[a]"},
        estimate=ScalarEstimate(1.0, 0.001, 100),
        prediction=Prediction(predicted, expect=expect),
        source="builtin",
        expression="",
    )


def test_table_renders_controls_and_bracketed_text():
    checks = decide([_check(1.0), _check(2.0, expect="fail", quantity="dY[:, j]")], 0.001)
    console = Console(record=True, width=200)
    console.print(checks_table(checks))
    text = console.export_text()
    assert "fail (expected)" in text and "dY[:, j]" in text and "x=[a]" in text
    assert summary_counts(checks)["unexpected"] == 0


def test_summary_counts_controls_and_unexpected_verdicts():
    from simlab.console import summary_line

    checks = decide([_check(1.0), _check(2.0, expect="fail"), _check(2.0)], 0.001)
    line = summary_line(checks, 0.001, 1.0)
    assert (
        "1 passed, 2 failed" in line and "1 not as expected" in line
    )  # was "1 verdicts not as expected"
    assert line.startswith("[bold red]")


def test_a_course_table_groups_checks_under_their_experiment():
    checks = decide([_check(1.0, experiment="dropout"), _check(1.0, experiment="bn [x]")], 0.001)
    console = Console(record=True, width=200)
    console.print(checks_table(checks))
    lines = console.export_text().splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith("│ dropout") or "bn [x]" in line]
    assert len(rows) == 2  # one heading row per topic, bracketed names printed as they are
    single = Console(record=True, width=200)
    single.print(checks_table(checks[:1]))
    assert "│ dropout" not in single.export_text()  # one experiment: no heading row

"""The terminal table renders every kind of check, including text rich would read as markup."""

import re
from pathlib import Path

from rich.console import Console

from simlab.console import checks_table, summary_counts
from simlab.verdicts import format as fmt
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


# -- the table at 80 columns and narrower: numbers never cut -----------------------------------

_TOKEN = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|[A-Za-z_]\w*")


def _table_columns(text: str) -> dict[str, list[str]]:
    """The printed table's columns: each column's cell lines, top to bottom (header first)."""
    rows = []
    for line in text.replace("┃", "│").splitlines():
        if "│" in line:  # a framed table (wide terminals) has a rule at each edge too
            framed = line.startswith("│")
            line = line.rstrip()
            rows.append((line[1:-1] if framed else line).split("│"))
    header = [cell.strip() for cell in rows[0]]
    return {name: [row[i].strip() for row in rows[1:]] for i, name in enumerate(header)}


def _experiment(check) -> str:
    return check["experiment"] if isinstance(check, dict) else check.experiment


def _expected_tokens(checks, column: str, shown: set[str]) -> list[str]:
    """The words and numbers of one column, in order, as fmt.row writes them."""
    tokens = []
    topic = None
    several = len({_experiment(c) for c in checks}) > 1
    for check in checks:
        if column == "claim" and several and _experiment(check) != topic:
            tokens += _TOKEN.findall(_experiment(check))  # a course run's topic heading
        topic = _experiment(check)
        text = fmt.row(check)
        cell = text[column]
        if column == "claim" and "setting" not in shown and text["setting"] != "—":
            cell += " " + text["setting"]  # the setting printed under the claim
        tokens += _TOKEN.findall(cell.replace("max rel. error", "max err"))
    return tokens


def _assert_nothing_cut(printed: str, checks, width: int) -> set[str]:
    """No line wider than ``width``; every number and word of every printed column whole (a
    number cut over two lines reads as two tokens); returns the columns shown."""
    lines = printed.splitlines()
    assert max(len(line) for line in lines) <= width
    columns = _table_columns(printed)
    names = {_HEADERS.get(name, name) for name in columns}
    assert {"claim", "measured", "p-value", "verdict"} <= names, names
    for name, cells in columns.items():
        column = _HEADERS.get(name, name)
        found = _TOKEN.findall(" ".join(cells))
        assert found == _expected_tokens(checks, column, names), column
    return names


_HEADERS = {"p": "p-value", "resol.": "resolution", "src": "source", "stat.": "statistic"}


def test_the_80_column_table_of_a_real_check_never_cuts_a_number(quick_check):
    doc, stderr = quick_check
    # the command's own output, in a log 80 columns wide ($COLUMNS)
    table = stderr[: stderr.index("passed,")]
    shown = _assert_nothing_cut(table, doc["checks"], 80)
    assert "setting" not in shown and "statistic" not in shown  # the documented order
    for width in (100, 80, 72, 60):
        console = Console(record=True, width=width)
        console.print(checks_table(doc["checks"], "simlab check --budget quick"))
        _assert_nothing_cut(console.export_text(), doc["checks"], width)


def test_long_user_claims_wrap_after_operators_never_inside_a_number():
    import simlab

    res = simlab.run(
        "dropout",
        p=[0.1, 0.55531234],
        samples=2000,
        N=16,
        M=8,
        seed=1,
        claims=[
            "var_after=1/(2*(1-p)) - 1/(2*pi) + 0*0.55531234*exp(-123456.789*p**2)",
            "var_after=1/(2*(1-p))-1/(2*pi)+0.000001234567*sqrt(p)*(1-p)*maximum(p,0.25)",
            "second_after=second_before/(1-p)",
        ],
        claims_false=["var_after=(1/2 - 1/(2*pi))/(1-p)"],
    )
    for width in (200, 120, 80, 60):
        console = Console(record=True, width=width)
        console.print(checks_table(res.checks, "simlab dropout"))
        _assert_nothing_cut(console.export_text(), res.checks, width)


def test_columns_go_in_the_documented_order_as_the_terminal_narrows():
    from simlab.console import NARROWING, ChecksTable

    checks = decide([_check(1.0), _check(2.0, expect="fail", quantity="a_long_quantity")], 0.001)
    table = ChecksTable(checks)
    seen = []
    for width in range(240, 30, -2):
        step, columns, _ = table.columns(width)
        seen.append((step, tuple(columns)))
    steps = [s for s, _ in seen]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == len(NARROWING)
    dropped = []
    for (_, before), (_, after) in zip(seen, seen[1:], strict=False):
        dropped += [c for c in before if c not in after]
    assert dropped == ["setting", "source", "statistic", "resolution", "predicted"]
    # the README states the same order
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    where = [readme.index(f"the {name} column goes") for name in NARROWING[2:]]
    assert where == sorted(where)

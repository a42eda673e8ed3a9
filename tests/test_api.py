"""simlab from Python: simlab.run returns a result; the CLI builds the same specifications."""

import json

import pytest

import simlab as sl  # `simlab` is the CLI fixture here
from simlab.api import experiment_spec

SMALL = dict(samples=2e4, N=32, M=16, seed=3)
RIGHT = "var_after=1/(2*(1-p)) - 1/(2*pi)"
WRONG = "var_after=(1/2 - 1/(2*pi))/(1-p)"  # forgets the mean term


@pytest.fixture(scope="module")
def result():
    return sl.run("dropout", p=[0.1, 0.5], claims=[RIGHT], claims_false=[WRONG], **SMALL)


def test_a_run_returns_records_counts_and_a_verdict_per_check(result):
    assert result.counts["checks"] == 2 * 7 + 2 * 2
    assert result.counts["controls"] == 2 and result.counts["fail"] == 2
    assert result.counts["unexpected"] == 0 and result.ok
    users = [r for r in result.records if r["source"] == "user"]
    assert [(r["expected"], r["verdict"]) for r in users] == [
        ("pass", "pass"),
        ("fail", "fail"),
    ] * 2
    # the words of the table travel with each record
    assert users[1]["text"]["verdict"] == "fail (expected)"
    assert "2 negative controls" in repr(result)


def test_the_html_repr_is_the_table(result):
    page = result._repr_html_()
    assert page.count("<tr>") == 1 + len(result.checks)
    assert "fail (expected)" in page and "<th>resolution</th>" in page


def test_figures_are_matplotlib_figures_by_stem(result):
    import matplotlib.pyplot as plt

    figures = result.figures()
    assert set(figures) == {"dropout_moments", "dropout_laws", "dropout_convergence"}
    for figure in figures.values():
        assert hasattr(figure, "savefig")
        plt.close(figure)


def test_save_writes_the_run_folder_the_cli_writes(result, simlab, tmp_path):
    saved = result.save(tmp_path / "api", plots=False)
    cli = simlab(
        "dropout",
        "--p",
        "0.1,0.5",
        "--samples",
        "2e4",
        "--N",
        "32",
        "--M",
        "16",
        "--seed",
        "3",
        "--claim",
        RIGHT,
        "--claim-false",
        WRONG,
        "--quiet",
        "--no-plots",
        "--out",
        "cli",
    )
    assert cli.exit_code == 0, cli.stderr
    ours = json.loads((saved / "results.json").read_text())
    theirs = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert ours["checks"] == theirs["checks"]  # same numbers, same verdicts, same words
    assert ours["status"] == "complete" and ours["command"][0] == "simlab.run"
    assert (saved / "checks.csv").read_text() == (tmp_path / "cli" / "checks.csv").read_text()
    assert (saved / "config.yaml").read_text() == (tmp_path / "cli" / "config.yaml").read_text()
    # and the saved config replays to the same checks
    replay = simlab("run", str(saved / "config.yaml"), "--quiet", "--no-plots", "--out", "re")
    assert replay.exit_code == 0, replay.stderr
    again = json.loads((tmp_path / "re" / "results.json").read_text())
    assert again["checks"] == ours["checks"]


def test_the_cli_and_the_api_build_the_same_spec():
    spec = experiment_spec("dropout", {"p": "0.1,0.5", "samples": "2e4", "seed": "3"}, [RIGHT])
    same = experiment_spec("dropout", {"p": [0.1, 0.5], "samples": 2e4, "seed": 3}, [RIGHT])
    assert spec.as_config() == same.as_config()


@pytest.mark.parametrize(
    ("kwargs", "cli_args"),
    [
        (dict(p="1.5"), ("--p", "1.5")),
        (dict(claims=["var_after=x"]), ("--claim", "var_after=x")),
        (dict(claims_false=["nope=1"]), ("--claim-false", "nope=1")),
        (dict(resolution="0"), ("--resolution", "0")),
    ],
)
def test_bad_input_raises_the_cli_error_and_message(simlab, kwargs, cli_args):
    from simlab.errors import SimlabInputError

    assert sl.SimlabInputError is SimlabInputError
    with pytest.raises(SimlabInputError) as info:
        sl.run("dropout", **kwargs)
    result = simlab("dropout", *cli_args)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"simlab: error: {info.value}"


def test_a_single_string_of_claims_is_refused():
    with pytest.raises(sl.SimlabInputError, match="not one string"):
        sl.run("dropout", claims=RIGHT)

"""The command line through CliRunner: runs, claims, outputs, determinism and bad input."""

import json

import pytest

SMALL = ("--samples", "2e4", "--N", "64", "--M", "32", "--seed", "5", "--quiet")


def test_dropout_run_writes_the_whole_run_folder(simlab, tmp_path):
    result = simlab("dropout", "--p", "0.1,0.5", *SMALL, "--out", "run")
    assert result.exit_code == 0, result.stderr
    run = tmp_path / "run"
    names = {p.name for p in run.iterdir()}
    assert {
        "config.yaml",
        "results.json",
        "checks.csv",
        "dropout_moments.png",
        "dropout_laws.png",
        "dropout_convergence.png",
    } <= names
    doc = json.loads((run / "results.json").read_text())
    assert doc["status"] == "complete" and doc["schema_version"] == 1
    assert doc["seed"] == 5 and doc["samples"] == 40_000
    for key in ("versions", "wall_time", "samples_per_second", "checks"):
        assert key in doc
    assert len(doc["checks"]) == 14 and all(c["verdict"] == "pass" for c in doc["checks"])
    fields = {
        "id",
        "quantity",
        "params",
        "kind",
        "source",
        "expression",
        "estimate",
        "se",
        "predicted",
        "z",
        "p_value",
        "statistic",
        "dof",
        "threshold",
        "resolution",
        "verdict",
    }
    assert fields <= set(doc["checks"][0])
    assert (run / "checks.csv").read_text().count("\n") == 15


def test_default_folder_is_outputs_experiment_timestamp(simlab, tmp_path):
    assert simlab("dropout", *SMALL, "--no-plots").exit_code == 0
    (folder,) = (tmp_path / "outputs" / "dropout").iterdir()
    assert folder.name[:4].isdigit() and "_" in folder.name
    assert not list(folder.glob("*.png"))


def test_a_wrong_claim_is_rejected_and_the_right_one_passes(simlab):
    doc = simlab.json(
        "dropout",
        "--p",
        "0.3,0.6",
        *SMALL,
        "--claim",
        "var_after=(1/2 - 1/(2*pi))/(1-p)",
        "--claim",
        "var_after=1/(2*(1-p)) - 1/(2*pi)",
        "--no-plots",
    )
    user = [c for c in doc["checks"] if c["source"] == "user"]
    wrong = [c for c in user if c["expression"].startswith("(1/2")]
    right = [c for c in user if c["expression"].startswith("1/(2*")]
    assert [c["verdict"] for c in wrong] == ["fail", "fail"]
    assert [c["verdict"] for c in right] == ["pass", "pass"]
    for c in user:
        assert c["z"] is not None and c["p_value"] is not None and c["resolution"] > 0


def test_exit_status_is_1_when_a_check_fails(simlab):
    result = simlab("dropout", *SMALL, "--no-plots", "--claim", "mean_before=0.5")
    assert result.exit_code == 1
    assert "1 failed" in result.stderr


def test_workers_1_and_2_give_identical_checks(simlab, tmp_path):
    one = simlab.json("dropout", *SMALL, "--workers", "1", "--out", "a", "--no-plots")
    two = simlab.json("dropout", *SMALL, "--workers", "2", "--out", "b", "--no-plots")
    assert json.dumps(one["checks"]) == json.dumps(two["checks"])


def test_target_se_stops_early_and_says_how_many_samples(simlab):
    doc = simlab.json(
        "dropout",
        "--samples",
        "1e6",
        "--N",
        "64",
        "--M",
        "32",
        "--seed",
        "1",
        "--quiet",
        "--target-se",
        "0.002",
        "--no-plots",
        "--chunk-size",
        "1000",
    )
    done = doc["experiments"][0]["samples_done"]
    assert done < 1_000_000
    assert all(c["se"] <= 0.002 for c in doc["checks"])


def test_json_goes_to_stdout_and_humans_to_stderr(simlab):
    result = simlab("dropout", "--samples", "5000", "--N", "16", "--M", "8", "--json", "--no-plots")
    json.loads(result.stdout)
    assert "passed" in result.stderr


def test_list_shows_experiments_parameters_and_quantities(simlab):
    out = simlab("list").stdout
    for word in ("dropout", "sigma_x", "orthonormal", "var_after", "cov_after"):
        assert word in out


BAD = [
    (["--p", "1.0"], "--p: '1.0' is not allowed; expected a number in [0, 1)"),
    (["--p", "-0.1"], "--p"),
    (["--p", "abc"], "--p: 'abc'"),
    (["--M", "600"], "--M: 600 is not allowed with orthonormal weights"),
    (["--N", "0"], "--N: '0' is not allowed"),
    (["--samples", "-5"], "--samples"),
    (["--samples", "1.5"], "--samples"),
    (["--weights", "sparse"], "one of orthonormal, gaussian"),
    (["--format", "gif"], "--format"),
    (["--claim", "nope=1"], "unknown quantity 'nope'"),
    (["--claim", "var_after=__import__('os')"], "__import__"),
    (["--claim", "var_after=(1).__class__"], "attribute access"),
    (["--claim", "var_after=x + 1"], "unknown name 'x'"),
    (["--claim", "var_after=weights + 1"], "unknown name 'weights'"),  # a choice: no value
    (["--claim", "var_after=1/(2*"], "not a valid expression"),
    (["--alpha", "2"], "--alpha"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(simlab, tmp_path, args, message):
    result = simlab("dropout", "--samples", "1000", *args)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simlab: error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_out_must_be_new_or_empty(simlab, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    result = simlab("dropout", *SMALL, "--out", "taken")
    assert result.exit_code == 2 and "--out" in result.stderr


def test_debug_shows_the_traceback(simlab):
    with pytest.raises(Exception, match="--p"):
        simlab("--debug", "dropout", "--p", "7")


def test_check_runs_every_builtin_claim_at_the_quick_budget(quick_check):
    from simlab.experiments import REGISTRY

    doc, _ = quick_check  # simlab check --budget quick --seed 3 --no-plots (exit status 0)
    unexpected = [
        c["id"]
        for c in doc["checks"]
        if c["expected"] != "either" and c["verdict"] not in (c["expected"], "undecided")
    ]
    assert unexpected == [], unexpected
    # only the Poisson limit's TV below its noise floor is undecided at the quick budget
    undecided = {c["id"].split("[")[0] for c in doc["checks"] if c["verdict"] == "undecided"}
    assert undecided <= {"kept-units poisson-limit/tv"}
    assert {c["experiment"] for c in doc["checks"]} == set(REGISTRY)


def test_check_without_seed_draws_one_root_seed_for_every_experiment(simlab, monkeypatch):
    from simlab.errors import SimlabInputError

    seen = []

    def record(budget, seed, workers, **options):
        seen.append(seed)
        raise SimlabInputError("stop here")  # the seed is all this test needs

    monkeypatch.setattr("simlab.cli.budget_specs", record)
    assert simlab("check").exit_code == 2
    assert len(seen) == 1 and isinstance(seen[0], int) and seen[0] > 2**64


@pytest.mark.parametrize(
    "args, message",
    [
        (("check", "--budget", "bogus"), "Invalid value for '--budget'"),
        (("calibrate", "--only", "bogus"), "Invalid value for '--only'"),
        (("dropout", "--nope", "1"), "No such option '--nope'"),
    ],
)
def test_click_checked_options_also_fail_in_one_line(simlab, args, message):
    result = simlab(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simlab: error: ") and message in lines[0]


# -- user text is never read as markup nor echoed raw; click's errors in one line -------------


def test_an_out_path_with_markup_brackets_is_printed_as_given(simlab, tmp_path):
    result = simlab("dropout", *SMALL, "--no-plots", "--out", "a[/]b")
    assert result.exit_code == 0, result.stderr
    assert "run folder: a[/]b" in result.stderr
    assert (tmp_path / "a[" / "]b" / "results.json").exists()


def test_escape_sequences_in_user_text_are_not_echoed_raw(simlab, tmp_path):
    result = simlab("dropout", *SMALL, "--no-plots", "--out", "red\x1b[31mrun\nx")
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stderr and "run folder: red\\x1b[31mrun\\nx" in result.stderr
    bad = simlab("dropout", *SMALL, "--no-plots", "--out", "y" * 250 + "\x1b]0;owned\x07")
    assert bad.exit_code == 2 and "\x1b" not in bad.stderr and "\x07" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (("--bogus", "dropout"), "No such option '--bogus'"),
        (("kept-units",), "kept-units: missing command; one of binomial, poisson-limit, thinning"),
        (("batchnorm",), "batchnorm: missing command; one of grads, stats, whiten"),
        ((), "missing command; one of batchnorm, calibrate, check"),
        (("kept-units", "nope"), "No such command 'nope'"),
    ],
)
def test_clicks_own_errors_are_one_line_exit_2(simlab, args, message):
    result = simlab(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simlab: error: "), result.stderr
    assert message in lines[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (("dropout", "--p", "0.1", "--p", "0.2"), "--p: given 2 times; give it once"),
        (("dropout", "--seed", "1", "--seed", "2"), "--seed: given 2 times"),
        (("dropout", "--rescale", "--no-rescale"), "--rescale: given 2 times"),
        (("kept-units", "binomial", "--M", "3", "--M", "4"), "--M: given 2 times"),
        (("run", "--seed", "1", "--seed", "2", "x.yaml"), "--seed: given 2 times"),
        (("check", "--budget", "quick", "--budget", "standard"), "--budget: given 2 times"),
    ],
)
def test_a_repeated_option_is_an_error_not_last_wins(simlab, tmp_path, args, message):
    result = simlab(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simlab: error: ") and message in lines[0]
    assert not (tmp_path / "outputs").exists()


def test_claims_may_repeat(simlab):
    doc = simlab.json(
        "dropout", *SMALL, "--no-plots", "--claim", "mean_before=0.39894", "--claim", "var_after=1"
    )
    assert sum(c["source"] == "user" for c in doc["checks"]) == 2

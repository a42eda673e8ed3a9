"""``simlab batchnorm stats | grads | whiten`` through the command line: runs, figures, claims,
the YAML file, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "batchnorm.yaml"
QUIET = ("--seed", "5", "--quiet")


def test_stats_end_to_end_with_figures(simlab, tmp_path):
    result = simlab(
        "batchnorm", "stats", "--samples", "2000", "--sigma", "1,0.003", *QUIET, "--out", "run"
    )
    assert result.exit_code == 0, result.stderr
    run = tmp_path / "run"
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "results.json", "checks.csv"} <= names
    assert {"batchnorm_stats.png", "batchnorm_eps.png"} <= names
    doc = json.loads((run / "results.json").read_text())
    assert doc["status"] == "complete"
    checks = doc["checks"]
    assert len(checks) == 14 and all(c["verdict"] == "pass" for c in checks)
    kinds = {c["quantity"]: c["kind"] for c in checks}
    assert kinds["batch_var"] == "exact" and kinds["var_out"] == "statistical"


def test_stats_eps_zero_constant_feature_reports_nan_and_exits_0(simlab):
    doc = simlab.json(
        "batchnorm", "stats", "--sigma", "0", "--eps", "0", "--samples", "200", *QUIET, "--no-plots"
    )
    verdicts = {c["quantity"]: c["verdict"] for c in doc["checks"]}
    assert verdicts["mean_v"] == "pass" and verdicts["batch_var"] == "undefined"
    assert all(c["expected"] == "either" for c in doc["checks"] if c["quantity"] != "mean_v")
    assert doc["summary"]["unexpected"] == 0


def test_grads_claims_decided_with_the_size_of_the_error(simlab):
    result = simlab(
        "batchnorm",
        "grads",
        "--samples",
        "40",
        *QUIET,
        "--no-plots",
        "--json",
        "--claim",
        "jac_diag=s - (Y-m)**2*s**3/B",
        "--claim",
        "jac_diag=gamma*s*(1 - 1/B - xhat**2/B)",
    )
    assert result.exit_code == 1  # the wrong claim fails
    doc = json.loads(result.stdout)
    builtin = [c for c in doc["checks"] if c["source"] == "builtin"]
    assert len(builtin) == 6 and all(c["verdict"] == "pass" for c in builtin)
    wrong, right = (c for c in doc["checks"] if c["source"] == "user")
    assert wrong["verdict"] == "fail" and wrong["estimate"] > 0.5  # max relative error
    assert right["verdict"] == "pass" and right["estimate"] < right["tolerance"]


def test_grads_figure(simlab, tmp_path):
    result = simlab("batchnorm", "grads", "--samples", "20", *QUIET, "--out", "g")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "g" / "batchnorm_grad_errors.png").stat().st_size > 10_000


def test_whiten_matrix_claims(simlab):
    doc = simlab.json(
        "batchnorm",
        "whiten",
        "--samples",
        "200",
        "--B",
        "8,64",
        *QUIET,
        "--no-plots",
        "--claim",
        "cross_cov=I",
        "--claim",
        "cross_cov=sqrtm(Sigma)",
    )
    builtin = [c for c in doc["checks"] if c["source"] == "builtin"]
    assert all(c["verdict"] == c["expected"] for c in builtin)
    # B = 8 = M: Sigma is singular, white_cov = I is a negative control that must fail
    (control,) = [c for c in builtin if c["expected"] == "fail"]
    assert control["quantity"] == "white_cov" and control["params"]["B"] == 8
    user = [c for c in doc["checks"] if c["source"] == "user"]
    assert [c["verdict"] for c in user if c["expression"] == "I"] == ["fail", "fail"]
    assert [c["verdict"] for c in user if c["expression"] == "sqrtm(Sigma)"] == ["pass", "pass"]


def test_the_yaml_file_runs_all_three(simlab):
    result = simlab(
        "run",
        str(CONFIG),
        "stats.samples=500",
        "stats.input=gaussian",
        "grads.samples=10",
        "whiten.samples=60",
        "--no-plots",
        "--quiet",
        "--json",
    )
    # the file's wrong claims are declared expect: fail, so it exits 0 (it exited 1 on purpose)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["summary"]["fail"] > 0 and doc["summary"]["unexpected"] == 0
    builtin = [c for c in doc["checks"] if c["source"] == "builtin"]
    assert all(c["verdict"] in (c["expected"], "undecided") for c in builtin)
    user = [c for c in doc["checks"] if c["source"] == "user"]
    assert all(c["verdict"] == c["expected"] for c in user if c["verdict"] == "fail")
    failing = {(c["quantity"], c["expression"]) for c in user if c["verdict"] == "fail"}
    assert failing == {
        ("mean_v", "sigma**2"),
        ("jac_diag", "s - (Y-m)**2*s**3/B"),
        ("cross_cov", "I"),
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (("stats", "--B", "1"), "--B"),
        (("grads", "--B", "1"), "--B"),
        (("stats", "--eps", "-1e-5"), "--eps"),
        (("whiten", "--eps", "-1"), "--eps"),
        (("stats", "--N", "0"), "--N"),
        (("stats", "--M", "-3"), "--M"),
        (("whiten", "--M", "1"), "--M"),
        (("grads", "--sigma", "0"), "--sigma"),
        (("whiten", "--rho", "1"), "--rho"),
        (("whiten", "--rho", "-1.5"), "--rho"),
        (("whiten", "--M", "16", "--rho", "-0.2"), "positive-definite"),
        (("stats", "--input", "cauchy"), "--input"),
        (("whiten", "--claim", "cross_cov=sqrtm(Sigma"), "not a valid expression"),
        (("whiten", "--claim", "cross_cov=sqrtm(Sigma, I)"), "sqrtm() takes"),
        (("whiten", "--claim", "cross_cov=Sigma.T"), "attribute"),
        (("whiten", "--claim", "covariance=I"), "unknown quantity"),
        (("grads", "--claim", "jac_diag=gamma*s*Z"), "unknown name 'Z'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(simlab, tmp_path, args, message):
    result = simlab("batchnorm", *args, "--samples", "10", "--quiet")
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simlab: error: "), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "outputs").exists()


def test_grads_refuses_more_instances_than_its_memory_budget(simlab, tmp_path):
    # grads keeps every instance for claims: memory grows with --samples, so it is capped
    result = simlab("batchnorm", "grads", "--samples", "1e6", "--B", "32", "--M", "8")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith("simlab: error: --samples: 1000000 is not allowed here; at most ")
    assert "every instance is kept" in line and not (tmp_path / "outputs").exists()

"""``simlab kept-units ...`` through CliRunner: runs, claims, verdicts, configs and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simlab.experiments import REGISTRY

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "kept-units.yaml"
QUICK = ("--seed", "5", "--quiet")


def _by_id(doc):
    return {c["id"]: c for c in doc["checks"]}


def _unexpected(doc):
    # an undecided check contradicts no expectation (simlab.verdicts.format.as_expected)
    return [
        (c["id"], c["verdict"], c["expected"])
        for c in doc["checks"]
        if not (c["expected"] == "either" or c["verdict"] in (c["expected"], "undecided"))
    ]


def test_binomial_run_writes_the_run_folder_and_every_check_is_as_expected(simlab, tmp_path):
    result = simlab("kept-units", "binomial", "--samples", "1e5", *QUICK, "--out", "run")
    assert result.exit_code == 0, result.stderr
    run = tmp_path / "run"
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "results.json", "checks.csv"} <= names
    assert {"kept_units_binomial_pmf.png", "kept_units_binomial_moments.png"} <= names
    doc = json.loads((run / "results.json").read_text())
    assert doc["status"] == "complete" and doc["samples"] == 100_000
    assert not _unexpected(doc)
    quantities = sorted(c["quantity"] for c in doc["checks"])
    assert quantities == ["mean", "pmf", "pmf", "var"]
    pmf = [c for c in doc["checks"] if c["quantity"] == "pmf"]
    assert {c["expected"] for c in pmf} == {"pass", "fail"}
    for c in pmf:
        assert c["kind"] == "distribution" and c["dof"] >= 1 and c["statistic"] is not None
        assert c["p_value"] is not None and c["estimate"] is not None  # the TV distance


def test_binomial_pmf_claims_right_passes_and_swapped_is_rejected(simlab):
    right = "pmf=comb(M,k)*(1-p)**k*p**(M-k)"
    swapped = "pmf=comb(M,k)*p**k*(1-p)**(M-k)"
    result = simlab(
        "kept-units", "binomial", "--p", "0.3,0.8", "--samples", "5e4", *QUICK,
        "--no-plots", "--json", "--claim", right, "--claim", swapped,
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr  # the wrong claim fails the run
    doc = json.loads(result.stdout)
    user = [c for c in doc["checks"] if c["source"] == "user"]
    verdicts = {(c["expression"], c["params"]["p"]): c["verdict"] for c in user}
    for p in (0.3, 0.8):
        assert verdicts[(right.partition("=")[2], p)] == "pass"
        assert verdicts[(swapped.partition("=")[2], p)] == "fail"
    assert all(c["dof"] and c["p_value"] is not None for c in user)


def test_thinning_claims_poisson_lam_q_passes_poisson_lam_is_rejected(simlab, tmp_path):
    right = "pmf=exp(-lam*(1-p))*(lam*(1-p))**k/factorial(k)"
    wrong = "pmf=exp(-lam)*lam**k/factorial(k)"
    result = simlab(
        "kept-units", "thinning", "--samples", "1e5", *QUICK, "--out", "run",
        "--json", "--claim", right, "--claim", wrong,
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    user = {c["expression"]: c["verdict"] for c in doc["checks"] if c["source"] == "user"}
    assert user == {right.partition("=")[2]: "pass", wrong.partition("=")[2]: "fail"}
    builtin = [c for c in doc["checks"] if c["source"] == "builtin"]
    assert {c["quantity"] for c in builtin} == {"mean", "var", "pmf", "cov_kept_dropped"}
    assert all(c["verdict"] == c["expected"] for c in builtin)
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"kept_units_thinning_pmf.png", "kept_units_thinning_joint.png"} <= names


def test_poisson_limit_fails_at_small_M_passes_at_large_M_and_says_why(simlab, tmp_path):
    result = simlab(
        "kept-units", "poisson-limit", "--M", "10,1e5", "--samples", "3e5", "--seed", "2",
        "--out", "run", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr  # the expected failure is not a failure of the run
    doc = json.loads(result.stdout)
    assert not _unexpected(doc)
    poisson = {c["params"]["M"]: c for c in doc["checks"] if c["expression"].startswith("Poisson")}
    binomial = [c for c in doc["checks"] if c["expression"].startswith("Binomial")]
    assert [c["verdict"] for c in binomial] == ["pass", "pass"]
    assert poisson[10]["verdict"] == "fail" and poisson[10]["expected"] == "fail"
    assert "not yet Poisson" in poisson[10]["note"]
    assert poisson[100_000]["verdict"] == "pass" and poisson[100_000]["expected"] == "pass"
    assert "below what" in poisson[100_000]["note"]
    assert "fail (expected)" in result.stderr
    tv = {c["params"]["M"]: c for c in doc["checks"] if c["quantity"] == "tv"}
    assert tv[10]["verdict"] == "pass" and tv[10]["resolution"] < 0.2
    # was "pass" with a "too noisy to decide" note
    assert tv[100_000]["verdict"] == "undecided" and "undecided: resolution" in tv[100_000]["note"]
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"kept_units_poisson_limit_tv.png", "kept_units_poisson_limit_pmf.png"} <= names


def test_workers_1_and_2_give_identical_checks(simlab):
    args = ("kept-units", "thinning", "--samples", "6e4", "--chunk-size", "5000", *QUICK)
    one = simlab.json(*args, "--workers", "1", "--out", "a", "--no-plots")
    two = simlab.json(*args, "--workers", "2", "--out", "b", "--no-plots")
    assert json.dumps(one["checks"]) == json.dumps(two["checks"])


@pytest.mark.parametrize(
    "args,target",
    [
        # tv is statistical: --target-se stops poisson-limit too (it used to be ignored)
        (("poisson-limit", "--M", "10"), 0.004),
        (("binomial", "--M", "20"), 0.01),
        (("thinning",), 0.01),
    ],
)
def test_target_se_stops_at_a_chunk_boundary_whatever_the_workers(simlab, args, target):
    common = ("kept-units", *args, "--samples", "1e6", "--chunk-size", "5000", "--seed", "4",
              "--quiet", "--no-plots", "--target-se", str(target))  # fmt: skip
    one = simlab.json(*common, "--workers", "1", "--out", "a")
    two = simlab.json(*common, "--workers", "2", "--out", "b")
    assert json.dumps(one["checks"]) == json.dumps(two["checks"])
    done = one["experiments"][0]["samples_done"]
    assert 10_000 <= done < 1_000_000 and done % 5000 == 0, done
    statistical = [c for c in one["checks"] if c["se"] is not None]
    assert statistical and all(c["se"] <= target for c in statistical)
    assert {c["n"] for c in one["checks"] if c.get("n")} <= {done}


def test_the_config_file_runs_all_three_with_overrides(simlab):
    doc = simlab.json(
        "run", str(CONFIG), "samples=3e4", "poisson-limit.M=[10,100000]", "binomial.p=0.3",
        "--seed", "9", "--quiet", "--no-plots",
    )  # fmt: skip
    experiments = {c["experiment"] for c in doc["checks"]}
    assert experiments == {n for n in REGISTRY if n.startswith("kept-units")}
    assert not _unexpected({"checks": [c for c in doc["checks"] if c["source"] == "builtin"]})
    user = {(c["experiment"], c["expression"], str(c["params"])): c["verdict"]
            for c in doc["checks"] if c["source"] == "user"}  # fmt: skip
    binomial = {e: v for (x, e, _), v in user.items() if x.endswith("binomial")}
    assert binomial["comb(M,k)*(1-p)**k*p**(M-k)"] == "pass"
    assert binomial["comb(M,k)*p**k*(1-p)**(M-k)"] == "fail"
    thinning = {e: v for (x, e, _), v in user.items() if x.endswith("thinning")}
    assert thinning["exp(-lam*(1-p))*(lam*(1-p))**k/factorial(k)"] == "pass"
    assert thinning["exp(-lam)*lam**k/factorial(k)"] == "fail"


def test_quick_budgets_every_check_is_as_expected():
    # No wall-clock limit here: it depends on the machine and its load, not on the code being
    # right (a run reports its own wall_time in results.json).
    from simlab.runspec import build_spec
    from simlab.simulate import decide_runs, simulate

    runs = []
    for name in ("kept-units binomial", "kept-units poisson-limit", "kept-units thinning"):
        exp = REGISTRY[name]
        raw = dict(exp.budgets["quick"])
        claims = raw.pop("claims", [])
        spec = build_spec(exp, {**raw, "seed": 123}, claims, lambda k: k)
        runs.append(simulate(spec))
    decide_runs(runs, 1e-3)
    checks = [c for run in runs for c in run.checks]
    assert checks and all(c.as_expected for c in checks), [
        (c.id, c.verdict, c.expected) for c in checks if not c.as_expected
    ]
    assert any(c.expected == "fail" for c in checks)  # the negative controls are in the budget


def test_list_shows_the_kept_units_experiments(simlab):
    out = simlab("list").stdout
    for word in ("kept-units binomial", "poisson-limit", "thinning", "cov_kept_dropped", "lam"):
        assert word in out


BAD = [
    (("binomial", "--p", "1"), "--p: '1' is not allowed; expected a number in [0, 1)"),
    (("binomial", "--p", "-0.2"), "--p"),
    (("binomial", "--M", "0"), "--M: '0' is not allowed"),
    (("binomial", "--M", "2.5"), "--M: '2.5' is not allowed; expected an integer"),
    (("binomial", "--M", "5e6"), "--M: 5000000 is not allowed"),
    (("thinning", "--lam", "0"), "--lam: '0' is not allowed"),
    (("thinning", "--lam", "-3"), "--lam"),
    (("thinning", "--p", "1.5"), "--p"),
    (("poisson-limit", "--M", "2"), "--M: 2 is not allowed with lam = 3"),
    (("poisson-limit", "--lam", "20", "--M", "10,100"), "must be at least lam"),
    (("poisson-limit", "--M", "10,30.5"), "--M: '30.5' is not allowed"),
    (("poisson-limit", "--lam", "0"), "--lam"),
    (("binomial", "--claim", "pmf=binomial(M,k)"), "'binomial' is not an allowed function"),
    (("thinning", "--claim", "pmf=exp(-lam)*lam**n"), "unknown name 'n'"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(simlab, tmp_path, args, message):
    result = simlab("kept-units", *args, "--samples", "1000")
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simlab: error: "), result.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()

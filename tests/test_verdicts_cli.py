"""Three verdicts on the command line: undecided, --strict, --claim-false, expect: fail, words."""

import csv
import json

from simlab.verdicts import format as fmt

LIMIT = ("kept-units", "poisson-limit", "--lam", "3", "--seed", "2", "--quiet", "--no-plots")


def _by_id(doc):
    return {c["id"]: c for c in doc["checks"]}


def test_an_unresolvable_tv_is_undecided_not_pass_and_says_what_would_decide(simlab):
    doc = simlab.json(*LIMIT, "--M", "10,100000", "--samples", "1e5")
    tv = {c["params"]["M"]: c for c in doc["checks"] if c["quantity"] == "tv"}
    assert tv[10]["verdict"] == "pass"
    big = tv[100000]
    assert big["verdict"] == "undecided" and big["resolution"] > big["target"] == 0.25
    assert big["samples_needed"] > 1e5 * (big["resolution"] / 0.25) ** 2 * 0.99
    assert "undecided (needs" in big["text"]["verdict"]
    assert doc["summary"]["undecided"] >= 1 and doc["summary"]["unexpected"] == 0


def test_undecided_exits_0_unless_strict(simlab):
    args = (*LIMIT, "--M", "100000", "--samples", "1e5")
    assert simlab(*args).exit_code == 0
    strict = simlab(*args, "--strict")
    assert strict.exit_code == 1 and "undecided" in strict.stderr


def test_a_looser_target_turns_undecided_into_pass(simlab):
    doc = simlab.json(*LIMIT, "--M", "100", "--samples", "1e5", "--resolution", "1e9")
    assert {c["verdict"] for c in doc["checks"] if c["quantity"] == "tv"} == {"pass"}


def test_the_31_percent_wrong_finite_width_formula_does_not_pass(simlab):
    # the example: exp(5 L / width) is 31% above prod(1 + 5/n) at L = 10, width = 20
    doc = simlab.json(
        "propagation",
        "signal",
        "--init",
        "kaiming",
        "--L",
        "10",
        "--width",
        "20",
        "--seed",
        "1",
        "--claim",
        "norm_ratio_second=exp(5*L/width)",
        "--quiet",
        "--no-plots",
    )
    (user,) = [c for c in doc["checks"] if c["source"] == "user"]
    assert user["verdict"] in ("undecided", "fail")


def test_claim_false_is_a_negative_control(simlab):
    small = ("dropout", "--samples", "2e4", "--N", "32", "--M", "16", "--seed", "4", "--quiet")
    wrong = "var_after=(1/2 - 1/(2*pi))/(1-p)"
    result = simlab(*small, "--no-plots", "--claim-false", wrong)
    assert result.exit_code == 0 and "1 negative control" in result.stderr
    # a claim expected to fail that passes is not as expected: exit 1
    right = "var_after=1/(2*(1-p)) - 1/(2*pi)"
    result = simlab(*small, "--no-plots", "--claim-false", right)
    assert result.exit_code == 1 and "1 not as expected" in result.stderr
    doc = simlab.json(*small, "--no-plots", "--claim-false", right)
    (user,) = [c for c in doc["checks"] if c["source"] == "user"]
    assert user["text"]["verdict"] == "pass (expected fail)"


def test_a_bad_claim_false_names_its_option(simlab):
    result = simlab("dropout", "--claim-false", "var_after=x")
    assert result.exit_code == 2
    assert result.stderr.startswith("simlab: error: --claim-false 'var_after=x': unknown name")


def test_yaml_expect_fail_replays_and_checks_csv_carries_the_words(simlab, tmp_path):
    (tmp_path / "c.yaml").write_text(
        "experiment: dropout\nsamples: 2e4\nN: 32\nM: 16\nseed: 4\n"
        "claims:\n  var_after:\n    - 1/(2*(1-p)) - 1/(2*pi)\n"
        "    - {expr: (1/2 - 1/(2*pi))/(1-p), expect: fail}\n"
    )
    result = simlab("run", "c.yaml", "--quiet", "--no-plots", "--out", "a")
    assert result.exit_code == 0, result.stderr
    doc = json.loads((tmp_path / "a" / "results.json").read_text())
    users = [c for c in doc["checks"] if c["source"] == "user"]
    assert [(c["expected"], c["verdict"]) for c in users] == [("pass", "pass"), ("fail", "fail")]
    with open(tmp_path / "a" / "checks.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row, check in zip(rows, doc["checks"], strict=True):
        assert row["expected"] == check["expected"]
        assert row["text_verdict"] == check["text"]["verdict"] == fmt.verdict(check)
        assert row["text_statistic"] == fmt.statistic(check)
    # config.yaml keeps the expectation, so a replay is the same run
    again = simlab("run", str(tmp_path / "a" / "config.yaml"), "--quiet", "--no-plots")
    assert again.exit_code == 0 and "1 negative control" in again.stderr


def test_yaml_expect_must_be_pass_or_fail(simlab, tmp_path):
    (tmp_path / "c.yaml").write_text(
        "experiment: dropout\nclaims:\n  var_after: {expr: '1', expect: maybe}\n"
    )
    result = simlab("run", "c.yaml")
    assert result.exit_code == 2
    assert "c.yaml: claims: 'var_after': expect 'maybe' is not allowed; allowed: pass, fail" in (
        result.stderr
    )
    (tmp_path / "d.yaml").write_text("experiment: dropout\nclaims:\n  var_after: {exp: '1'}\n")
    result = simlab("run", "d.yaml")
    assert result.exit_code == 2 and "unknown key 'exp'" in result.stderr

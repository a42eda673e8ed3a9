"""YAML runs: files, sweeps, overrides, replay, and every way a file can be wrong."""

import json
from pathlib import Path

import pytest

CONFIG = """\
experiment: dropout
p: [0.2, 0.6]
N: 32
M: 16
samples: 8000
seed: 99
claims:
  var_after: 1/(2*(1-p)) - 1/(2*pi)
"""


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG)
    return path


def _checks(folder: Path) -> list:
    return json.loads((folder / "results.json").read_text())["checks"]


def test_yaml_sweep_and_claims_run(simlab, config, tmp_path):
    result = simlab("run", str(config), "--out", "r", "--quiet", "--no-plots")
    assert result.exit_code == 0, result.stderr
    checks = _checks(tmp_path / "r")
    assert {c["params"]["p"] for c in checks} == {0.2, 0.6}
    assert sum(c["source"] == "user" for c in checks) == 2


def test_overrides_change_values_make_sweeps_and_add_claims(simlab, config, tmp_path):
    result = simlab(
        "run",
        str(config),
        "p=0.1,0.3,0.5",
        "samples=4e3",
        "claims.mean_before=1/sqrt(2*pi)",
        "--out",
        "r",
        "--quiet",
        "--no-plots",
    )
    assert result.exit_code == 0, result.stderr
    checks = _checks(tmp_path / "r")
    assert {c["params"]["p"] for c in checks} == {0.1, 0.3, 0.5}
    assert {c["quantity"] for c in checks if c["source"] == "user"} == {"mean_before", "var_after"}
    assert all(c["n"] == 4000 for c in checks)


def test_the_saved_config_replays_to_identical_checks(simlab, config, tmp_path):
    assert simlab("run", str(config), "--out", "a", "--quiet", "--no-plots").exit_code == 0
    replay = tmp_path / "a" / "config.yaml"
    assert (
        simlab(
            "run", str(replay), "--out", "b", "--quiet", "--no-plots", "--workers", "2"
        ).exit_code
        == 0
    )
    assert _checks(tmp_path / "a") == _checks(tmp_path / "b")


def test_a_file_of_several_experiments_with_named_overrides(simlab, tmp_path):
    path = tmp_path / "multi.yaml"
    path.write_text(
        "samples: 4000\nseed: 1\nexperiments:\n"
        "  - {experiment: dropout, name: narrow, N: 16, M: 8}\n"
        "  - {experiment: dropout, name: wide, N: 64, M: 32}\n"
    )
    result = simlab("run", str(path), "wide.p=0.2", "--out", "r", "--quiet", "--no-plots")
    assert result.exit_code == 0, result.stderr
    ps = {(c["id"].split("[")[0], c["params"].get("p")) for c in _checks(tmp_path / "r")}
    assert ps == {
        ("dropout/mean_before", None),
        ("dropout/second_before", None),
        ("dropout/var_before", None),
        ("dropout/mean_after", None),
        ("dropout/second_after", None),
        ("dropout/var_after", None),
        ("dropout/cov_after", None),
    }
    assert (tmp_path / "r" / "config.yaml").read_text().count("experiment: dropout") == 2


BAD_FILES = [
    ("experiment: dropout\np: [0.1\n", "malformed YAML at line"),
    ("- just a list\n", "expected a mapping"),
    ("experiment: dropout\nbogus: 1\n", "bogus: unknown key; allowed:"),
    ("experiment: dropout\np: 1.5\n", "p: 1.5 is not allowed"),
    ("experiment: dropout\nN: ten\n", "N: 'ten' is not allowed"),
    ("experiment: nope\n", "unknown experiment 'nope'"),
    ("p: 0.5\n", "experiment: missing"),
    ("experiment: dropout\nclaims:\n  var_after: __import__('os')\n", "__import__"),
    ("experiment: dropout\nclaims: [1, 2]\n", "claims: expected a mapping"),
]


@pytest.mark.parametrize("text,message", BAD_FILES)
def test_bad_files_name_the_file_and_key(simlab, tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = simlab("run", str(path))
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and str(path) in line and message in line, line
    assert not (tmp_path / "outputs").exists()


def test_bad_override_and_missing_file(simlab, config, tmp_path):
    result = simlab("run", str(config), "p")
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.stderr
    result = simlab("run", str(config), "nope=3")
    assert result.exit_code == 2 and "nope: unknown key" in result.stderr
    result = simlab("run", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2 and "cannot read the file" in result.stderr


def test_shipped_config_is_valid(simlab):
    root = Path(__file__).resolve().parents[1]
    result = simlab(
        "run",
        str(root / "configs" / "dropout.yaml"),
        "samples=4000",
        "N=32",
        "M=16",
        "--quiet",
        "--no-plots",
        "--json",
    )
    assert result.exit_code == 1  # it ships one wrong claim on purpose
    failed = [c for c in json.loads(result.stdout)["checks"] if c["verdict"] != "pass"]
    assert {c["expression"] for c in failed} == {"(1/2 - 1/(2*pi))/(1-p)"}
    assert len(failed) == 4

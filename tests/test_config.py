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
    # it ships one wrong claim on purpose, declared expect: fail, so it exits 0 (it exited 1)
    assert result.exit_code == 0
    failed = [c for c in json.loads(result.stdout)["checks"] if c["verdict"] == "fail"]
    assert {c["expression"] for c in failed} == {"(1/2 - 1/(2*pi))/(1-p)"}
    assert len(failed) == 4 and all(c["expected"] == "fail" for c in failed)


def _bomb(levels: int = 9) -> str:
    """A "billion laughs" document: 9**levels strings from a few hundred bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines)


HOSTILE_FILES = [
    # (file bytes, what the one-line message must say)
    ((f"experiment: dropout\n{_bomb()}\np: *a9\n").encode(), "expands to more than 100,000"),
    (b"experiment: dropout\np: &a [1, *a]\n", "recursive alias"),
    ("experiment: dropout\np: 0.3\n".encode("utf-16"), "UTF-16"),
    ("experiment: dropout\np: 0.3\n".encode("utf-16-le"), "UTF-16"),
    (bytes(range(256)), "binary file"),
    ("experiment: dropout\n# café\n".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
    (b"", "the file is empty"),
    (b"experiments: []\n", "experiments: the list is empty"),
    (b"experiment: dropout\np: 0.1\nN: 3\np: 0.2\n", "duplicate key 'p' at line 4"),
    (b"experiments:\n  - {experiment: dropout, N: 3, N: 4}\n", "duplicate key 'N'"),
    (b"experiment: dropout\np: null\n", "p: null (an empty value) is not allowed"),
    (b"experiment: dropout\nsamples:\n", "samples: null (an empty value) is not allowed"),
    (b"experiment: dropout\np: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    (b"experiment: dropout\nN: " + b"1" * 5000 + b"\n", "malformed YAML"),
    (b"experiment: dropout\np: 2024-13-45\n", "malformed YAML"),
    (b"experiment: dropout\np: \x1b[31m\n", "a character YAML does not allow (U+001B)"),
    (b"experiment: dropout\n'[bold red]x[/]': 1\n", "[bold red]x[/]: unknown key"),
    (b'experiment: dropout\n"\\e[31mred": 1\n', "\\x1b[31mred: unknown key"),
    (b"experiment: [1, 2]\n", "unknown experiment [1, 2]"),
    (b"experiment: dropout\n1: 2\n", "1: unknown key"),
    (b"experiment: dropout\np: !!python/object/apply:os.system ['echo hi']\n", "malformed"),
    (b"experiment: dropout\nN: '" + b"9" * 3000 + b".5'\n", "N: '99999999999999"),
    (b"experiment: dropout\n" + b"#" * (1 << 20) + b"\n", "larger than 1 MiB"),
]


@pytest.mark.parametrize("data,message", HOSTILE_FILES)
def test_hostile_files_are_one_short_line(simlab, tmp_path, data, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(data)
    result = simlab("run", str(path))
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and str(path) in line and message in line, line
    assert len(line) < 600, line  # a value is never echoed whole
    assert not (tmp_path / "outputs").exists()


def test_an_endless_file_is_refused_without_reading_it_all(simlab):
    result = simlab("run", "/dev/zero")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "simlab: error: /dev/zero: the file is larger than 1 MiB; a run file is a few lines of YAML"
    )


def test_long_values_are_cut_in_messages(simlab, tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text("experiment: dropout\np: '" + "x" * 100_000 + "'\n")
    result = simlab("run", str(path))
    assert result.exit_code == 2
    assert "p: 'xxxxxxxx" in result.stderr and "..." in result.stderr
    assert len(result.stderr) < 400
    result = simlab("run", str(path), "N=" + "y" * 50_000)
    assert result.exit_code == 2 and len(result.stderr) < 400


def test_aliases_within_bounds_and_merge_keys_still_work(simlab, tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text(
        "seed: 3\nsamples: 2000\nsmall: &small {N: 8, M: 4}\nexperiments:\n"
        "  - {<<: *small, experiment: dropout, name: a, p: 0.2}\n"
        "  - {<<: *small, experiment: dropout, name: b, p: 0.4}\n"
    )
    result = simlab("run", str(path), "--out", "r", "--quiet", "--no-plots")
    # 'small' is not a key of dropout: merge keys work, and the holder is refused by name
    assert result.exit_code == 2 and "shared.yaml: a.small: unknown key" in result.stderr
    path.write_text(
        "seed: 3\nsamples: 2000\nexperiments:\n"
        "  - &one {experiment: dropout, name: a, N: 8, M: 4, p: &ps [0.2, 0.4]}\n"
        "  - {<<: *one, name: b, p: *ps, N: 16}\n"
    )
    result = simlab("run", str(path), "--out", "r", "--quiet", "--no-plots")
    assert result.exit_code == 0, result.stderr
    assert {c["params"]["p"] for c in _checks(tmp_path / "r")} == {0.2, 0.4}


def test_an_override_given_twice_is_an_error(simlab, config):
    result = simlab("run", str(config), "p=0.1", "p=0.2")
    assert result.exit_code == 2
    assert "override p: given twice" in result.stderr


def test_a_null_is_allowed_where_the_default_is_unset(simlab, config, tmp_path):
    path = tmp_path / "seedless.yaml"
    path.write_text(CONFIG.replace("seed: 99", "seed: null"))
    result = simlab("run", str(path), "--out", "r", "--quiet", "--no-plots")
    assert result.exit_code == 0, result.stderr
    seed = json.loads((tmp_path / "r" / "results.json").read_text())["seed"]
    assert isinstance(seed, int) and seed > 2**64


def test_an_error_in_a_file_of_several_experiments_names_the_experiment(simlab, tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(
        "seed: 3\nsamples: 2000\nexperiments:\n"
        "  - {experiment: dropout, N: 8, M: 4}\n"
        "  - {experiment: kept-units binomial, name: counts, M: 20}\n"
    )
    result = simlab("run", str(path), "counts.p=1.5", "--quiet", "--no-plots")
    assert result.exit_code == 2
    assert "two.yaml: counts.p: 1.5 is not allowed" in result.stderr, result.stderr
    assert "experiments[" not in result.stderr
    result = simlab("run", str(path), "dropout.p=-1", "--quiet", "--no-plots")
    assert "two.yaml: dropout.p:" in result.stderr
    # two entries of one name: which one, by its place
    path.write_text(
        "seed: 3\nsamples: 2000\nexperiments:\n"
        "  - {experiment: dropout, N: 8, M: 4}\n"
        "  - {experiment: dropout, N: 8, M: 40}\n"
    )
    result = simlab("run", str(path), "--quiet", "--no-plots")
    assert result.exit_code == 2 and "two.yaml: dropout (entry 2).M: 40" in result.stderr


def test_keys_may_be_spelled_as_options_too(simlab, tmp_path):
    path = tmp_path / "kebab.yaml"
    path.write_text("experiment: dropout\nseed: 3\nsamples: 2000\nN: 8\nM: 4\nsigma-x: 2\n")
    result = simlab("run", str(path), "chunk-size=500", "--out", "r", "--quiet", "--no-plots")
    assert result.exit_code == 0, result.stderr
    config = (tmp_path / "r" / "config.yaml").read_text()
    assert "sigma_x: 2" in config and "chunk_size: 500" in config  # recorded as sigma_x
    result = simlab("run", str(path), "sigma_x=3", "--out", "r2", "--quiet", "--no-plots")
    assert result.exit_code == 0 and "sigma_x: 3" in (tmp_path / "r2" / "config.yaml").read_text()
    path.write_text("experiment: dropout\nsigma-x: 2\nsigma_x: 3\n")
    result = simlab("run", str(path))
    assert result.exit_code == 2 and "sigma_x: given twice" in result.stderr


def test_the_shipped_configs_cite_no_document_the_user_does_not_have():
    for path in (Path(__file__).parents[1] / "configs").glob("*.yaml"):
        text = path.read_text()
        assert "SPEC" not in text and "spec " not in text.lower(), path

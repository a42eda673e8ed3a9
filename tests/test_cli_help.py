"""What --help and 'simlab list' tell a new user: each experiment's own defaults, values as they
are typed (never a Python repr), one metavar per kind of value, kebab-case options (the
parameter's name accepted too), and examples in each experiment's own quantities."""

import re
from pathlib import Path

import pytest

from simlab.cli import CLAIM_EXAMPLES, cli
from simlab.experiments import REGISTRY
from simlab.params import count_text

#: every command's words on the command line
COMMANDS = [name.split() for name in REGISTRY] + [
    ["run"],
    ["check"],
    ["calibrate"],
    ["report"],
    ["list"],
    [],
]
#: an option line of --help: its name and what follows it (the metavar), e.g. --seed INT
_OPTION = re.compile(
    r"^  (?:-\w, )?(--[A-Za-z][\w-]*)(?: / --[\w-]+)?(?: ([A-Z][A-Z=._]*))?(?:\s|$)"
)


def _help(simlab, words: list[str]) -> str:
    result = simlab(*words, "--help")
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _flat(text: str) -> str:
    return " ".join(text.split())


def _option_help(text: str, option: str) -> str:
    """The help of one option: its line and the lines that continue it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^  (-\w, )?{option}\b", line))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if re.match(r"^  -", line) or not line.startswith("   "):
            break
        block.append(line)
    return _flat(" ".join(block))


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_experiment_shows_its_own_samples_alpha_and_claim_example(simlab, name):
    exp = REGISTRY[name]
    text = _help(simlab, name.split())
    samples = _option_help(text, "--samples")
    assert f"[default: {count_text(exp.default_samples)};" in samples, samples
    assert "[default: 0.001;" in _option_help(text, "--alpha")
    assert f"[default: {count_text(exp.default_chunk_size)};" in _option_help(text, "--chunk-size")
    claim = _option_help(text, "--claim")
    example = CLAIM_EXAMPLES[name]
    assert _flat(example) in claim
    quantity = example.partition("=")[0]
    assert quantity in {q.name for q in exp.quantities}
    if name != "dropout":
        assert "var_after" not in claim  # not dropout's example in every command
    # --target-se says how it reads here
    target = _option_help(text, "--target-se")
    kinds = {q.target for q in exp.quantities if q.has_target}
    assert ("absolute" in target) == ("absolute" in kinds)
    assert ("relative" in target) == ("relative" in kinds)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_claim_example_is_a_valid_claim_of_its_experiment(name):
    from simlab.api import experiment_spec

    quantity, _, rest = CLAIM_EXAMPLES[name].partition("=")
    expression = rest.split("'")[1]
    spec = experiment_spec(name, {"samples": 100}, [f"{quantity}={expression}"])
    assert [c.quantity for c in spec.claims] == [quantity]


def test_help_shows_no_python_reprs_and_one_metavar_per_option(simlab):
    metavars: dict[str, set[str]] = {}
    for words in COMMANDS:
        text = _help(simlab, words)
        for bad in ("[default: None", "[default: ]", "['", "True]", "False]", "default: 1.0;"):
            assert bad not in text, (words, bad)
        assert " VALUE" not in text and "RANGE" not in text, words
        for line in text.splitlines():
            match = _OPTION.match(line)
            if match:
                metavars.setdefault(match.group(1), set()).add(match.group(2) or "")
    assert metavars["--seed"] == {"INT"}
    mixed = {option: found for option, found in metavars.items() if len(found) > 1}
    assert mixed == {}, mixed
    # options are kebab-case
    assert not [option for option in metavars if "_" in option]


def test_the_underscore_spelling_of_an_option_is_an_alias(simlab, tmp_path):
    small = ["--samples", "2000", "--N", "16", "--M", "8", "--seed", "1", "--quiet", "--no-plots"]
    for spelling in (["--sigma-x", "2"], ["--sigma_x", "2"], ["--sigma_x=2"]):
        out = tmp_path / spelling[0].replace("=", "")
        assert simlab("dropout", *small, *spelling, "--out", str(out)).exit_code == 0
        assert "sigma_x: 2.0" in (out / "config.yaml").read_text()
    twice = simlab("dropout", *small, "--sigma-x", "2", "--sigma_x", "3")
    assert twice.exit_code == 2 and "--sigma-x: given 2 times" in twice.stderr
    chunk = simlab("dropout", *small, "--chunk_size", "0")
    assert chunk.exit_code == 2 and "--chunk-size: '0' is not allowed" in chunk.stderr


def test_calibrate_describes_budget_and_first_seed(simlab):
    text = _help(simlab, ["calibrate"])
    assert "each rerun is a 'simlab check' at this budget" in _option_help(text, "--budget")
    assert "Root seed of the first rerun" in _option_help(text, "--first-seed")
    assert "[default: 1;" in _option_help(text, "--first-seed")


def test_check_help_points_to_the_readme_for_timings_and_the_readme_has_them(simlab):
    budget = _option_help(_help(simlab, ["check"]), "--budget")
    assert "README, 'Set up'" in budget and " s " not in budget  # one place for the numbers
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    setup = readme.split("## Set up")[1].split("\n## ")[0]
    assert re.search(r"`simlab check`.*about \d+(\.\d+)? s wall", _flat(setup))
    assert re.search(r"--budget\s+standard` about \d+ s", setup)


def test_list_shows_defaults_ranges_quantities_and_how_target_se_reads(simlab, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one line per row: phrases are not cut by wrapping
    result = simlab("list")
    assert result.exit_code == 0
    out = _flat(result.stdout)
    for bad in ("None", "True", "['", "1.0 "):
        assert bad not in out, bad
    for name, exp in REGISTRY.items():
        section = out.split(f"simlab {name} —")[1].split("simlab ")[0]
        assert (
            f"--samples {count_text(exp.default_samples)} per point"
            in out.split(f"simlab {name} —")[1]
        )
        for q in exp.quantities:
            assert q.name in section
        for p in exp.params:
            assert p.allowed().split(" in ")[0] in section
    stats = out.split("simlab batchnorm stats —")[1]
    assert re.search(r"mean_v │ statistical │ relative", stats)
    assert re.search(r"mean_out │ statistical │ absolute", stats)
    assert "sigma_x (--sigma-x)" in out and "relu,tanh" in out and "5,4,6,3;64,128,64,10" in out


def test_cli_is_importable_once():  # the registry and the commands agree
    assert set(cli.commands) >= {"dropout", "kept-units", "run", "check", "list"}

"""Every run replays from its config.yaml, and integers (seeds, sizes) are read exactly.

A run without ``--seed`` draws a 128-bit root seed and records it in config.yaml; replaying that
file must give byte-identical checks, for every experiment. Seeds beyond 2**53 must not be rounded
through a float on the way (``--seed 9007199254740993`` is not ``--seed 9007199254740992``).
"""

import json
from pathlib import Path

import pytest
import yaml

from simlab.experiments import REGISTRY
from simlab.params import Param

# The smallest sizes that still run every check of each experiment (a fraction of a second each).
TINY: dict[str, list[str]] = {
    "dropout": ["--N", "8", "--M", "4", "--samples", "2000"],
    "batchnorm stats": ["--B", "4", "--N", "2", "--M", "3", "--samples", "400"],
    "batchnorm grads": ["--B", "3", "--M", "2", "--samples", "4"],
    "batchnorm whiten": ["--B", "8", "--M", "3", "--samples", "40"],
    "kept-units binomial": ["--M", "10", "--samples", "4000"],
    "kept-units poisson-limit": ["--M", "10,30", "--samples", "4000"],
    "kept-units thinning": ["--lam", "3", "--samples", "4000"],
    "propagation signal": ["--L", "3", "--width", "8", "--inputs", "4", "--samples", "16"],
    "propagation correlation": ["--L", "3", "--width", "8", "--inputs", "4", "--samples", "16"],
    "propagation grads": ["--samples", "3", "--max_entries", "16"],
}

QUIET = ["--no-plots", "--quiet"]


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _checks_bytes(folder: Path) -> str:
    return json.dumps(_results(folder)["checks"], sort_keys=True)


def test_every_experiment_has_a_tiny_setting():
    assert set(TINY) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_run_without_seed_replays_from_its_config(simlab, tmp_path, name):
    first = simlab(*name.split(), *TINY[name], *QUIET, "--out", "first")
    assert first.exit_code in (0, 1), first.stderr
    config = tmp_path / "first" / "config.yaml"
    seed = yaml.safe_load(config.read_text())["seed"]
    assert isinstance(seed, int) and seed > 2**53  # fresh 128-bit entropy, as an exact integer
    assert _results(tmp_path / "first")["seed"] == seed

    replay = simlab("run", str(config), *QUIET, "--out", "replay")
    assert replay.exit_code == first.exit_code, replay.stderr
    assert _results(tmp_path / "replay")["seed"] == seed
    assert _checks_bytes(tmp_path / "replay") == _checks_bytes(tmp_path / "first")


def test_seeds_beyond_two_to_the_53_are_distinct(simlab, tmp_path):
    tiny = [*TINY["dropout"], *QUIET]
    for seed in ("9007199254740992", "9007199254740993"):
        assert simlab("dropout", *tiny, "--seed", seed, "--out", seed).exit_code == 0
        assert _results(tmp_path / seed)["seed"] == int(seed)
    assert _checks_bytes(tmp_path / "9007199254740992") != _checks_bytes(
        tmp_path / "9007199254740993"
    )


def test_a_big_seed_is_the_same_from_option_yaml_and_override(simlab, tmp_path):
    seed = "340282366920938463463374607431768211455"  # 2**128 - 1
    tiny = [*TINY["dropout"], *QUIET]
    assert simlab("dropout", *tiny, "--seed", seed, "--out", "option").exit_code == 0
    config = tmp_path / "option" / "config.yaml"
    assert yaml.safe_load(config.read_text())["seed"] == int(seed)
    base = tmp_path / "base.yaml"
    base.write_text("experiment: dropout\nN: 8\nM: 4\nsamples: 2000\nseed: 1\n")
    assert simlab("run", str(base), f"seed={seed}", *QUIET, "--out", "override").exit_code == 0
    assert simlab("run", str(base), "--seed", seed, *QUIET, "--out", "run-option").exit_code == 0
    expected = _checks_bytes(tmp_path / "option")
    for folder in ("override", "run-option"):
        assert _results(tmp_path / folder)["seed"] == int(seed)
        assert _checks_bytes(tmp_path / folder) == expected


SEED = Param("seed", "int", None, "root seed", low=0)


@pytest.mark.parametrize(
    "raw,value",
    [
        ("12345678901234567890123", 12345678901234567890123),
        (12345678901234567890123, 12345678901234567890123),
        ("9007199254740993", 9007199254740993),
        (" 9007199254740993 ", 9007199254740993),
        ("1e6", 1_000_000),
        ("1E+6", 1_000_000),
        ("2.5e3", 2500),
        ("1e30", 10**30),  # exact, not float(1e30) = 1000000000000000019884624838656
        ("1_000", 1000),
        (1e6, 1_000_000),
        (7.0, 7),
        ("0", 0),
    ],
)
def test_integers_are_parsed_exactly(raw, value):
    converted = SEED.convert_one(raw, "--seed")
    assert converted == value and type(converted) is int


@pytest.mark.parametrize(
    "raw",
    [
        "1.5",
        1.5,
        "1e-3",
        "nan",
        "inf",
        float("inf"),
        1.0e30,  # a YAML float beyond 2**53 is not the integer written: write the digits
        "1e999999999",
        "",
        "0x10",
        "\uff11",  # a fullwidth digit one
        True,
        None,
        [1],
    ],
)
def test_non_integral_or_unreadable_integers_are_refused(raw):
    from simlab.errors import SimlabInputError

    with pytest.raises(SimlabInputError, match=r"^--seed: .* is not allowed; expected an integer"):
        SEED.convert_one(raw, "--seed")

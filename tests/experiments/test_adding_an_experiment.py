"""docs/adding-an-experiment.md's worked example: a fifth experiment from one file plus its
registry line runs through the CLI, a YAML file, the report and --target-se."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from simlab import experiments
from simlab.cli import cli, experiment_command

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "coin_flips.py"


@pytest.fixture
def coin(monkeypatch):
    spec = importlib.util.spec_from_file_location("coin_flips", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "coin_flips", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    exp = module.CoinFlips()
    monkeypatch.setitem(experiments.REGISTRY, exp.name, exp)  # the registry line
    cli.add_command(experiment_command(exp, exp.name))
    yield exp
    cli.commands.pop(exp.name)


def _checks(folder: Path) -> list[dict]:
    return json.loads((folder / "results.json").read_text())["checks"]


def test_the_example_runs_from_the_command_line_with_figure_and_caption(simlab, coin):
    out = simlab.folder / "cli"
    result = simlab("coin-flips", "--r", "0.2,0.5", "--samples", "20000", "--seed", "3",
                    "--claim", "var=n*r", "--out", str(out), "--quiet")  # fmt: skip
    assert result.exit_code == 1, result.stderr  # the wrong variance n r fails, as it must
    checks = _checks(out)
    builtin = [c for c in checks if c["source"] == "builtin"]
    assert [c["verdict"] for c in builtin] == ["pass"] * 4
    assert all(c["verdict"] == "fail" for c in checks if c["source"] == "user")
    assert (out / "coin_flips_moments.png").exists()
    assert "Heads in n flips: E[H] = n r" in (out / "report.html").read_text()


def test_a_yaml_file_gives_the_same_checks_as_the_options(simlab, coin):
    (simlab.folder / "coin.yaml").write_text(
        "experiment: coin-flips\nr: [0.2, 0.5]\nsamples: 20000\nseed: 3\n"
    )
    assert simlab("run", "coin.yaml", "--out", "yaml", "--quiet", "--no-plots").exit_code == 0
    assert simlab("coin-flips", "--r", "0.2,0.5", "--samples", "20000", "--seed", "3",
                  "--out", "opts", "--quiet", "--no-plots").exit_code == 0  # fmt: skip
    assert _checks(simlab.folder / "yaml") == _checks(simlab.folder / "opts")


def test_target_se_stops_at_the_same_chunk_whatever_the_workers(simlab, coin):
    runs = []
    for workers in ("1", "2"):
        out = simlab.folder / f"w{workers}"
        args = ["--samples", "1e6", "--target-se", "0.02", "--seed", "5", "--workers", workers]
        result = simlab("coin-flips", *args, "--out", str(out), "--quiet", "--no-plots")
        assert result.exit_code == 0, result.stderr
        runs.append(json.loads((out / "results.json").read_text()))
    done = runs[0]["experiments"][0]["samples_done"]
    # SE of the mean of H (sd ~2.2 at n = 20) reaches 0.02 after ~12,500 trials: two chunks
    assert 0 < done < 1_000_000
    assert done % 10_000 == 0  # a chunk boundary
    assert runs[0]["checks"] == runs[1]["checks"]
    assert runs[1]["experiments"][0]["samples_done"] == done

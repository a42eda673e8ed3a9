"""Shared fixtures: a CLI runner that works in a temporary folder (outputs/ lands there)."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from simlab.cli import cli


class Simlab:
    """Invoke ``simlab`` in-process; stdout and stderr kept apart."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.runner = CliRunner()

    def __call__(self, *args: str):
        return self.runner.invoke(cli, list(args), catch_exceptions=False)

    def json(self, *args: str) -> dict:
        result = self(*args, "--json")
        assert result.exit_code in (0, 1), result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def simlab(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COLUMNS", raising=False)  # a log is 180 columns, whatever the terminal
    return Simlab(tmp_path)


@pytest.fixture(scope="session")
def quick_check(tmp_path_factory):
    """One real ``simlab check --budget quick`` (seed 3, no figures) in an 80-column log:
    (results.json as a dict, what it printed on stderr). Shared: it takes a few seconds."""
    folder = tmp_path_factory.mktemp("quick_check")
    result = CliRunner().invoke(
        cli,
        [
            "check",
            "--budget",
            "quick",
            "--seed",
            "3",
            "--no-plots",
            "--json",
            "--out",
            str(folder / "run"),
        ],
        env={"COLUMNS": "80"},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), result.stderr

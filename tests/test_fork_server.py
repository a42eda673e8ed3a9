"""When the figure workers' fork server is started before the command line is imported."""

from __future__ import annotations

import os

import pytest

from simlab.fork_server import check_draws_in_workers


@pytest.mark.parametrize(
    ("args", "early"),
    [
        (["check"], True),
        (["check", "--seed", "11", "--out", "here"], True),
        (["check", "--budget", "standard"], True),
        (["check", "--no-plots"], False),  # nothing drawn
        (["check", "--workers", "1"], False),  # decided once parsed: one worker draws here
        (["check", "--workers=4"], False),
        (["check", "--help"], False),
        (["check", "-h"], False),
        (["run", "course.yaml"], False),  # a file decides: parsed first
        (["dropout", "--p", "0.5"], False),
        (["list"], False),
        ([], False),
    ],
)
def test_only_a_check_that_surely_draws_in_workers_starts_it_early(args, early, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert check_draws_in_workers(args) is early


def test_one_core_draws_in_process(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert not check_draws_in_workers(["check"])

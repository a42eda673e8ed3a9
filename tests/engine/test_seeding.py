"""The run's random streams: each purpose apart, each replayable."""

from __future__ import annotations

import numpy as np

from simlab.engine.seeding import (
    chunk_rng,
    run_entropy,
    setup_rng,
    shared_study_rng,
    study_rng,
)


def _draw(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(4)


def test_a_shared_study_depends_on_the_run_and_its_key_only():
    key = (32, 1.0, 1e-5)
    first = _draw(shared_study_rng(run_entropy(setup_rng(7, 0)), 0, key))
    # another point of the same run, the same key: the same numbers
    np.testing.assert_array_equal(
        first, _draw(shared_study_rng(run_entropy(setup_rng(7, 3)), 0, key))
    )
    for other in (
        shared_study_rng(8, 0, key),  # another run
        shared_study_rng(7, 1, key),  # another study
        shared_study_rng(7, 0, (32, 1.0, 1e-4)),  # another eps
        shared_study_rng(7, 0, (16, 1.0, 1e-5)),  # another B
        shared_study_rng(7, 0, (32, -1.0, 1e-5)),  # gamma's sign counts
    ):
        assert not np.array_equal(first, _draw(other))


def test_a_shared_study_is_apart_from_every_other_stream():
    shared = _draw(shared_study_rng(7, 0, (0.0,)))
    for other in (setup_rng(7, 0), chunk_rng(7, 0, 0), study_rng(setup_rng(7, 0), 0)):
        assert not np.array_equal(shared, _draw(other))


def test_run_entropy_is_the_root_entropy():
    assert run_entropy(setup_rng(123456789, 4)) == 123456789

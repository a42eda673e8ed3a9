"""The run's random streams: each purpose apart, each replayable."""

from __future__ import annotations

import numpy as np

from simlab.engine.seeding import (
    SharedStudy,
    chunk_rng,
    run_entropy,
    setup_rng,
    shared_study_rng,
    study_rng,
)

EPS = SharedStudy.BATCHNORM_EPS


def _draw(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(4)


def test_a_shared_study_depends_on_the_run_and_its_key_only():
    key = (32, 1.0, 1e-5)
    first = _draw(shared_study_rng(run_entropy(setup_rng(7, 0)), EPS, key))
    # another point of the same run, the same key: the same numbers
    np.testing.assert_array_equal(
        first, _draw(shared_study_rng(run_entropy(setup_rng(7, 3)), EPS, key))
    )
    for other in (
        shared_study_rng(8, EPS, key),  # another run
        shared_study_rng(7, SharedStudy.WHITENING_RANK, key),  # another study
        shared_study_rng(7, EPS, (32, 1.0, 1e-4)),  # another eps
        shared_study_rng(7, EPS, (16, 1.0, 1e-5)),  # another B
        shared_study_rng(7, EPS, (32, -1.0, 1e-5)),  # gamma's sign counts
    ):
        assert not np.array_equal(first, _draw(other))


def test_a_shared_study_is_apart_from_every_other_stream():
    shared = _draw(shared_study_rng(7, EPS, (0.0,)))
    for other in (setup_rng(7, 0), chunk_rng(7, 0, 0), study_rng(setup_rng(7, 0), 0)):
        assert not np.array_equal(shared, _draw(other))


def test_run_entropy_is_the_root_entropy():
    assert run_entropy(setup_rng(123456789, 4)) == 123456789


def test_a_shared_study_key_is_read_as_its_caches_read_it():
    # -0.0 == 0.0 for the lru_cache that holds a study: the same stream too
    np.testing.assert_array_equal(
        _draw(shared_study_rng(7, EPS, (4, 1.0, -0.0))),
        _draw(shared_study_rng(7, EPS, (4, 1.0, 0.0))),
    )
    # each number is two 32-bit words: keys whose words would run together stay apart (with
    # one 64-bit integer per number, (0.5, 5e-324) and (0.0, x), x spelled 0x000000013FE00000,
    # made the same words: a subnormal's bits fit in fewer words)
    tiny = np.nextafter(0.0, 1.0)
    x = np.frombuffer(np.uint64((1 << 32) | 0x3FE00000).tobytes(), dtype=np.float64)[0]
    assert not np.array_equal(
        _draw(shared_study_rng(7, EPS, (0.5, tiny))), _draw(shared_study_rng(7, EPS, (0.0, x)))
    )

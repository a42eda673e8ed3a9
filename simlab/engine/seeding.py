"""Where every random number of a run comes from.

A run has one root entropy. Stream ``(purpose, point, chunk)`` is the SeedSequence with that entropy
and that spawn key, which is exactly what ``SeedSequence(entropy).spawn`` would hand out as nested
children. So chunk ``i`` of sweep point ``j`` draws the same numbers whichever worker runs it and
whenever it runs: results cannot depend on the number of workers or on the order chunks finish.
"""

from __future__ import annotations

import numpy as np

_SETUP = 0  # fixed parts of the model drawn once per sweep point (a weight matrix, say)
_CHUNK = 1  # the samples themselves, one stream per chunk
_STUDY = 2  # studies a point's figures show beside its checks (an eps sweep, say)


def fresh_entropy() -> int:
    """A new 128-bit root entropy, to be recorded in the run's config so the run replays."""
    return int(np.random.SeedSequence().entropy)


def setup_rng(entropy: int, point: int) -> np.random.Generator:
    """The generator for the fixed, per-point parts of a model."""
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(_SETUP, point)))


def chunk_rng(entropy: int, point: int, chunk: int) -> np.random.Generator:
    """The generator for chunk ``chunk`` of sweep point ``point``."""
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(_CHUNK, point, chunk)))


def study_rng(setup: np.random.Generator, study: int) -> np.random.Generator:
    """The generator for study ``study`` of the sweep point whose setup generator is ``setup``.

    Stream ``(2, point, study)``: apart from the setup and the chunks, so a figure's study (an
    eps sweep, a rank-against-B curve) never shifts the numbers a check is made of. Taking it does
    not draw from ``setup``.
    """
    seq = setup.bit_generator.seed_seq
    _, point = seq.spawn_key
    return np.random.default_rng(
        np.random.SeedSequence(seq.entropy, spawn_key=(_STUDY, point, study))
    )

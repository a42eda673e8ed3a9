"""Where every random number of a run comes from.

A run has one root entropy. Stream ``(purpose, point, chunk)`` is the SeedSequence with that entropy
and that spawn key, which is exactly what ``SeedSequence(entropy).spawn`` would hand out as nested
children. So chunk ``i`` of sweep point ``j`` draws the same numbers whichever worker runs it and
whenever it runs: results cannot depend on the number of workers or on the order chunks finish.
"""

from __future__ import annotations

import enum
import struct

import numpy as np

_SETUP = 0  # fixed parts of the model drawn once per sweep point (a weight matrix, say)
_CHUNK = 1  # the samples themselves, one stream per chunk
_STUDY = 2  # studies a point's figures show beside its checks (an eps sweep, say)
_SHARED_STUDY = 3  # studies that depend on a point only through a few parameters (its key)


def fresh_entropy() -> int:
    """A new 128-bit root entropy, to be recorded in the run's config so the run replays."""
    return int(np.random.SeedSequence().entropy)


def setup_rng(entropy: int, point: int) -> np.random.Generator:
    """The generator for the fixed, per-point parts of a model."""
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(_SETUP, point)))


def chunk_rng(entropy: int, point: int, chunk: int) -> np.random.Generator:
    """The generator for chunk ``chunk`` of sweep point ``point``."""
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(_CHUNK, point, chunk)))


def study_rng(
    setup: np.random.Generator | np.random.SeedSequence, study: int
) -> np.random.Generator:
    """The generator for study ``study`` of the sweep point whose setup generator is ``setup``
    (or that generator's seed sequence, which a point's set-up keeps for its figures' studies).

    Stream ``(2, point, study)``: apart from the setup and the chunks, so a figure's study (an
    eps sweep, a rank-against-B curve) never shifts the numbers a check is made of. Taking it does
    not draw from ``setup``.
    """
    seq = _seed_sequence(setup)
    _, point = seq.spawn_key
    return np.random.default_rng(
        np.random.SeedSequence(seq.entropy, spawn_key=(_STUDY, point, study))
    )


def run_entropy(setup: np.random.Generator | np.random.SeedSequence) -> int:
    """The root entropy of the run whose setup generator (or its seed sequence) is ``setup``."""
    return int(_seed_sequence(setup).entropy)


def _seed_sequence(setup: np.random.Generator | np.random.SeedSequence) -> np.random.SeedSequence:
    return setup if isinstance(setup, np.random.SeedSequence) else setup.bit_generator.seed_seq


class SharedStudy(enum.IntEnum):
    """The studies drawn from :func:`shared_study_rng`, numbered here, in one place: the streams
    are the whole run's (every experiment of a course shares the root entropy)."""

    BATCHNORM_EPS = 0  # simlab.experiments.batchnorm_stats.shared_eps_study
    WHITENING_RANK = 1  # simlab.experiments.batchnorm_whiten.shared_rank_study


def shared_study_rng(
    entropy: int, study: SharedStudy, key: tuple[float, ...]
) -> np.random.Generator:
    """The generator for ``study`` of every sweep point of run ``entropy`` that agrees on ``key``.

    For a study that depends on a point only through the parameters in ``key`` (an eps sweep
    through B, gamma and eps, say): stream ``(3, study, *key)``, each number of the key spelled
    by its float64 bits as two 32-bit words (a fixed length, so two keys never share a stream;
    -0.0 is 0.0, as the caches that hold such studies see it). Every point of a run with the
    same key draws the same numbers, so the study is a pure function of the run and the key,
    computed once and shared by those points whatever order they run in (a resumed run, a
    cluster's workers). Apart from the setup, chunks and per-point studies, so it never shifts
    the numbers a check is made of.
    """
    words: list[int] = []
    for x in key:
        (bits,) = struct.unpack("<Q", struct.pack("<d", float(x) + 0.0))
        words += [bits >> 32, bits & 0xFFFFFFFF]
    return np.random.default_rng(
        np.random.SeedSequence(entropy, spawn_key=(_SHARED_STUDY, int(study), *words))
    )

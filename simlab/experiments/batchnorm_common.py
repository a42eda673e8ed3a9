"""What the three ``simlab batchnorm`` experiments share: the first batches kept for the exact
checks, the ``expect`` of a check whose answer is a certain NaN, the progress label, and studies
shared by several points made read-only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: at most this many random batches (and this many numbers, B * M per batch) feed the exact checks
KEEP_BATCHES = 64
_KEEP_NUMBERS = 2_000_000


def keep_limit(B: int, M: int) -> int:
    """How many of a point's first batches are kept for its exact checks."""
    return int(max(2, min(KEEP_BATCHES, _KEEP_NUMBERS // (B * M))))


@dataclass
class Kept:
    """The first ``limit`` items (batches) of a run, in chunk order: mergeable.

    Once full, merging returns the same object, so whatever is derived from the kept batches is
    computed once (:meth:`derived` remembers it) however often the estimates are asked for.
    """

    limit: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    _derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    def merge(self, other: Kept) -> Kept:
        room = self.limit - self.n
        if room <= 0 or not other.arrays:
            return self
        if not self.arrays:
            return Kept(self.limit, {k: v[:room] for k, v in other.arrays.items()})
        return Kept(
            self.limit,
            {k: np.concatenate([v, other.arrays[k][:room]]) for k, v in self.arrays.items()},
        )

    def derived(self, key: str, compute: Any) -> Any:
        """``compute()`` of these kept batches, computed on first use and then remembered."""
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]


def either_if(undefined: bool) -> str:
    """``expect`` of a built-in prediction: "either" where 0/0 is certain (NaN is the answer)."""
    return "either" if undefined else "pass"


def describe(name: str, point: Mapping[str, Any]) -> str:
    """The progress label of a point: the experiment and the parameters that tell points apart."""
    keys = ("B", "eps", "sigma", "input", "rho", "corr")
    return " ".join(
        [name]
        + [
            f"{k}={point[k]:g}" if isinstance(point[k], float) else f"{k}={point[k]}"
            for k in keys
            if k in point
        ]
    )


def read_only(study: Any) -> Any:
    """``study`` (a dataclass of arrays) with its arrays made read-only: it is shared by the
    points that agree on what it depends on (:func:`simlab.engine.seeding.shared_study_rng`)."""
    for value in vars(study).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return study

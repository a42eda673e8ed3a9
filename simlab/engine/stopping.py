"""``--target-se``: when a point has simulated enough, decided once for every experiment.

Each quantity declares how its target reads: ``absolute`` (the standard error itself, for
quantities of order one such as dropout's moments) or ``relative`` (the standard error over
|estimate|, for quantities that span decades such as q_l across the layers of a Xavier network).
Quantities without a standard error (laws, exact comparisons) have no target. The rule is asked at
every chunk boundary in chunk order, so where a point stops does not depend on the workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

ABSOLUTE = "absolute"
RELATIVE = "relative"


@dataclass(frozen=True)
class TargetSE:
    """Stop once every targeted quantity's standard error is at most ``target``.

    ``targets`` maps each quantity that has a standard error to :data:`ABSOLUTE` or
    :data:`RELATIVE`. At least ``min_samples`` are always simulated, so a lucky first chunk with
    a tiny sample variance cannot end the point.
    """

    target: float
    targets: Mapping[str, str]
    min_samples: int

    def reached(self, estimates: Mapping[str, Any], n_samples: int) -> bool:
        """Whether the estimates (objects with ``value``/``values`` and ``se``) meet the target."""
        if n_samples < self.min_samples or not self.targets:
            return False
        for name, how in self.targets.items():
            estimate = estimates.get(name)
            se = getattr(estimate, "se", None)
            if se is None:
                continue  # this point measured it without a standard error (an exact case)
            limit = self.target
            if how == RELATIVE:
                value = getattr(estimate, "values", getattr(estimate, "value", None))
                limit = self.target * np.maximum(np.abs(np.asarray(value, dtype=float)), 1e-300)
            if np.any(~(np.asarray(se) <= limit)):  # a NaN standard error never meets it
                return False
        return True

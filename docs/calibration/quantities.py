"""Per-quantity p-values of the correct built-in checks of a few experiments over many seeds.

``simlab calibrate`` reruns the whole course; this reruns only the named experiments' budgets
and, unlike it, also shows the quantities calibration leaves out (``calibrated=False``):

    PYTHONPATH=. python3 docs/calibration/quantities.py --seeds 100 \\
        "propagation signal" "kept-units poisson-limit"
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from simlab.course import budget_specs
from simlab.engine.progress import NullProgress
from simlab.simulate import decide_runs, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--budget", default="quick")
    args = parser.parse_args()
    p_values: dict[str, list[float]] = {}
    left_out: set[str] = set()
    start = time.perf_counter()
    for seed in range(1, args.seeds + 1):
        specs = budget_specs(args.budget, seed, workers=1)
        runs = [simulate(s, NullProgress()) for s in specs if s.experiment.name in args.experiments]
        decide_runs(runs, 0.001)
        for c in (c for run in runs for c in run.checks):
            if c.source == "builtin" and c.expected == "pass" and c.kind != "exact":
                if c.p_value is not None:
                    key = f"{c.experiment}/{c.quantity}"
                    p_values.setdefault(key, []).append(c.p_value)
                    if not c.calibrated:
                        left_out.add(key)
    print(f"{args.seeds} seeds of the {args.budget} budget in {time.perf_counter() - start:.0f} s")
    for key, values in sorted(p_values.items()):
        hist = np.histogram(values, bins=10, range=(0, 1))[0]
        ks_p = stats.kstest(values, "uniform").pvalue
        flag = "  (left out of calibration)" if key in left_out else ""
        bins = " ".join(map(str, hist))
        print(f"{key:40s} n={len(values):4d} KS p={ks_p:.2g}  10 bins: {bins}{flag}")


if __name__ == "__main__":
    main()

"""Throughput of the keep-mask counters against a naive binomial-and-sum loop.

Run from the repository root::

    python benchmarks/bench_masks.py [--rounds 7] [--seed 0] [--clock cpu|wall]

For each setting (units per trial M, keep probability q) it times ``simlab.masks.count_kept`` with
``method="auto"`` and the naive loop ``rng.binomial(1, q, size=(batch, M)).sum(1)`` (one Binomial
draw per unit, the baseline of issue 3) in the same process, interleaved round by round
(``benchmarks/timing.py``), and reports unit decisions per second and their ratio: the median over
rounds of the per-round ratios, with their interquartile range. Both sides run on one thread, so
the default clock is this process's CPU time: other processes taking the core away do not count
(``--clock wall`` times elapsed time instead). The target of issue 3 is a ratio of at least 20 for
every setting; the exit status is 1 when a median misses it.

Where the time goes at M = 50, q = 0.7 (``bytes``: one random byte per unit): about 60% is the
bit generator itself (PCG64 words through ``random_raw``, ~2.2 ns per 8 units here), 25% the
compare-and-sum passes over the bytes, 15% the ties (1/256 of the units); the naive loop spends
~12 ns per unit in ``rng.binomial``. So the ratio cannot exceed ~40 on this machine, however
cheap the passes become.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from timing import CLOCKS, Contender, exit_status, load_average, median_rate, speedup, time_rounds

from simlab.masks import choose_method, count_kept

#: (M, q, trials per call of count_kept, calls per timing). The sparse case is the issue's 10^10
#: decisions; the last is few trials of many units (wide byte blocks; tests/test_masks.py counts
#: its draws instead of timing it). Calls are repeated so that each timing lasts about 0.05 s or
#: more on an idle machine: a timing much shorter than a scheduler time slice is all noise on a
#: busy one.
CASES = [
    (50, 0.7, 400_000, 5),
    (100_000, 3e-5, 100_000, 10),
    (1_000, 0.5, 20_000, 10),
    (30_000_017, 0.3, 2, 3),
]

#: Units per call of the naive loop (its (batch, M) int64 matrix is 8 bytes per unit).
NAIVE_UNITS = 2_000_000
NAIVE_CALLS = 4
TARGET = 20.0


def contenders(M: int, q: float, trials: int, calls: int, seed: int) -> list[Contender]:
    """simlab's counter and the naive loop, each doing a known number of unit decisions."""
    rng = np.random.default_rng(seed)
    width = min(M, NAIVE_UNITS)  # the naive loop's rate per unit, on at most NAIVE_UNITS per row
    batch = max(1, NAIVE_UNITS // width)

    def ours() -> None:
        for _ in range(calls):
            count_kept(rng, trials, M, q)

    def naive() -> None:
        for _ in range(NAIVE_CALLS):
            rng.binomial(1, q, size=(batch, width)).sum(1)

    return [
        Contender("simlab", ours, work=calls * trials * M),
        Contender("naive", naive, work=NAIVE_CALLS * batch * width),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timings of each side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: this process's CPU time (both sides run on one thread; default); wall: elapsed",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")

    print(
        f"load average before: {load_average()}; {args.rounds} rounds per setting, "
        f"{args.clock} clock"
    )
    header = (
        f"{'M':>8} {'q':>7} {'method':>17} {'simlab (units/s)':>16} {'naive (units/s)':>15}"
        f" {'ratio':>8} {'IQR':>15}"
    )
    print(header)
    print("-" * len(header))
    ratios = []
    for M, q, trials, calls in CASES:
        times = time_rounds(
            contenders(M, q, trials, calls, args.seed), args.rounds, clock=CLOCKS[args.clock]
        )
        ratio = speedup(times, "simlab", "naive", label=f"M = {M}, q = {q:g}", target=TARGET)
        ratios.append(ratio)
        q1, median, q3 = ratio.quartiles()
        print(
            f"{M:>8} {q:>7.2g} {choose_method(q):>17} {median_rate(times['simlab']):>16.3g}"
            f" {median_rate(times['naive']):>15.3g} {median:>7.1f}x {q1:>6.1f} - {q3:<6.1f}"
        )
    print(f"load average after: {load_average()}")
    print()
    for ratio in ratios:
        print(ratio.describe())
    status = exit_status(ratios)
    worst = min(ratios, key=lambda r: r.median)
    verdict = "MISSES" if status else "meets"
    print(
        f"\nsmallest median ratio {worst.median:.1f}x ({worst.label}) {verdict} the "
        f"{TARGET:.0f}x target"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())

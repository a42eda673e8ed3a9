"""Throughput of simlab's dropout sampler against a naive NumPy loop and the raw floor.

Run:  python benchmarks/bench_dropout.py [--samples 2e5] [--rounds 5] [--workers 2]

All three are timed in this one process, interleaved round by round (``benchmarks/timing.py``),
and compared as ratios formed within each round; the median over rounds is printed with the
interquartile range of the per-round ratios:
- naive: float64 x, ``x @ W.T``, ``rng.binomial`` masks, batches of 10^4, moments by NumPy (BLAS
  free to use every core); it runs a tenth of the samples (at least 10^4) and is compared per
  sample;
- floor: the same random numbers (float32 normals for x, one byte per unit for the masks) and the
  same matrix product as simlab, spread over the same workers, nothing else;
- simlab: ``run_chunks`` with the dropout sampler (statistics, histograms, everything).
Targets (issue 2): at least 3x the naive loop and 0.6x the floor; the exit status is 1 when a
median misses one. Elapsed (wall) time is the clock: simlab's gain comes partly from running on
every core.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np
from timing import Contender, exit_status, load_average, median_rate, speedup, time_rounds

from simlab.engine.executor import ChunkPlan, default_workers, run_chunks
from simlab.experiments.dropout import DropoutSampler, draw_weights

N, M, P = 512, 256, 0.5


def naive(samples: int, weights: np.ndarray, seed: int) -> float:
    """A straightforward loop a student would write, returning Var(h~)."""
    rng = np.random.default_rng(seed)
    q = 1 - P
    s1 = s2 = 0.0
    done = 0
    while done < samples:
        n = min(10_000, samples - done)
        x = rng.standard_normal((n, N))
        h = np.maximum(x @ weights.T, 0.0)
        m = rng.binomial(1, q, size=h.shape)
        ht = m * h / q
        s1 += ht.sum()
        s2 += (ht * ht).sum()
        done += n
    count = samples * M
    return s2 / count - (s1 / count) ** 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=float, default=2e5, help="samples per timed simlab run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timings of each side")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--chunk-size", type=int, default=4096)
    args = parser.parse_args()
    samples = int(args.samples)
    if samples < 1 or args.rounds < 1:
        parser.error("--samples and --rounds must be >= 1")
    weights = draw_weights(np.random.default_rng(0), "orthonormal", M, N)
    point = dict(p=P, N=N, M=M, sigma_x=1.0, bias=0.0, weights="orthonormal", rescale=True)
    edges = np.linspace(np.finfo(np.float32).tiny, 5.0, 61)
    sampler = DropoutSampler(point, weights, (edges, edges / (1 - P)))
    w_t = sampler.w_t
    plan = ChunkPlan(samples, args.chunk_size)
    naive_samples = max(samples // 10, 10_000)  # the naive loop is slow: a tenth, per sample

    def floor_task(rng: np.random.Generator, size: int) -> int:
        x = rng.standard_normal((size, N), dtype=np.float32)
        _ = x @ w_t
        _ = rng.bytes(size * M)
        return size

    def floor() -> None:
        run_chunks(floor_task, plan, entropy=1, point=0, workers=args.workers, fold=sum_sizes)

    results = []

    def simlab() -> None:
        results[:] = [run_chunks(sampler, plan, entropy=1, point=0, workers=args.workers)]

    print(f"load average before: {load_average()}")
    times = time_rounds(
        [
            Contender("naive", lambda: naive(naive_samples, weights, 1), work=naive_samples),
            Contender("floor", floor, work=samples),
            Contender("simlab", simlab, work=samples),
        ],
        args.rounds,
    )
    print(f"load average after: {load_average()}")
    print(
        f"dropout sampler, N={N}, M={M}, p={P}, {samples:,} samples per run "
        f"(naive loop {naive_samples:,}), {args.workers} workers, {args.rounds} rounds, wall clock"
    )
    print(f"{'':8s} {'samples/s':>12s} {'cores used':>11s}   (medians over rounds)")
    for key in ("naive", "floor", "simlab"):
        cores = statistics.median(times.cores[key])
        print(f"{key:8s} {median_rate(times[key]):12,.0f} {cores:11.2f}")
    ratios = [
        speedup(times, "simlab", "naive", label="simlab / naive loop", target=3.0),
        speedup(times, "simlab", "floor", label="simlab / raw floor ", target=0.6),
    ]
    for ratio in ratios:
        print(ratio.describe())
    simlab_cores = statistics.median(times.cores["simlab"])
    if args.workers > 1 and simlab_cores < 0.75 * args.workers:
        print(
            f"note: simlab ran on {simlab_cores:.2f} cores for its {args.workers} workers: the "
            "machine is busy, and the gain over the naive loop that comes from using every core "
            "cannot show (the floor ratio, same workers on both sides, still can)"
        )
    est = results[-1].stats.estimates()["var_after"]
    print(f"check: var_after = {est.value:.5f} ± {est.se:.5f} (theory {1 - 1 / (2 * np.pi):.5f})")
    return exit_status(ratios)


def sum_sizes(a: int, b: int) -> int:
    return a + b


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of simlab's dropout sampler against a naive NumPy loop and the raw floor.

Run:  python benchmarks/bench_dropout.py [--samples 1e6] [--workers 2]

All three are timed in this one process, on the same machine state, and printed as ratios:
- naive: float64 x, ``x @ W.T``, ``rng.binomial`` masks, batches of 10^4, moments by NumPy;
- floor: the same random numbers (float32 normals for x, one byte per unit for the masks) and the
  same matrix product as simlab, spread over the same workers, nothing else;
- simlab: ``run_chunks`` with the dropout sampler (statistics, histograms, everything).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=float, default=1e6)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--chunk-size", type=int, default=4096)
    args = parser.parse_args()
    samples = int(args.samples)
    weights = draw_weights(np.random.default_rng(0), "orthonormal", M, N)
    point = dict(p=P, N=N, M=M, sigma_x=1.0, bias=0.0, weights="orthonormal", rescale=True)
    edges = np.linspace(np.finfo(np.float32).tiny, 5.0, 61)
    sampler = DropoutSampler(point, weights, (edges, edges / (1 - P)))
    w_t = sampler.w_t
    plan = ChunkPlan(samples, args.chunk_size)

    def floor_task(rng: np.random.Generator, size: int) -> int:
        x = rng.standard_normal((size, N), dtype=np.float32)
        _ = x @ w_t
        _ = rng.bytes(size * M)
        return size

    timings = {}
    t0 = time.perf_counter()
    run_chunks(floor_task, plan, entropy=1, point=0, workers=args.workers, fold=lambda a, b: a + b)
    timings["floor"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = run_chunks(sampler, plan, entropy=1, point=0, workers=args.workers)
    timings["simlab"] = time.perf_counter() - t0
    naive_samples = max(samples // 10, 10_000)  # the naive loop is slow: time a tenth, scale
    t0 = time.perf_counter()
    naive(naive_samples, weights, 1)
    timings["naive"] = (time.perf_counter() - t0) * samples / naive_samples

    rate = {k: samples / v for k, v in timings.items()}
    print(f"dropout sampler, N={N}, M={M}, p={P}, {samples:,} samples, {args.workers} workers")
    print(f"{'':8s} {'seconds':>9s} {'samples/s':>12s}")
    for key in ("naive", "floor", "simlab"):
        note = " (scaled from a tenth)" if key == "naive" else ""
        print(f"{key:8s} {timings[key]:9.2f} {rate[key]:12,.0f}{note}")
    print(f"simlab / naive loop : {rate['simlab'] / rate['naive']:.2f}x  (target >= 3)")
    print(f"simlab / raw floor  : {rate['simlab'] / rate['floor']:.2f}x  (target >= 0.6)")
    est = result.stats.estimates()["var_after"]
    print(f"check: var_after = {est.value:.5f} ± {est.se:.5f} (theory {1 - 1 / (2 * np.pi):.5f})")


if __name__ == "__main__":
    main()

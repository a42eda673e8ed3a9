"""Batched forward pass of a deep ReLU MLP against a naive per-input, per-layer loop.

Run as ``python benchmarks/bench_propagation.py [--inputs 100000] [--naive 300]``.

The workload of ``simlab propagation signal`` at its default size: a 50-layer, width-256 Kaiming
network, 10^5 Gaussian inputs, per-layer statistics q_l and A_l per input. The batched version
pushes chunks of inputs through each layer as one matrix product (``simlab.networks.forward``,
reused buffers, float64 statistics); the naive version is a matrix-vector product per input per
layer. The naive loop is timed on a subset and scaled per input (its cost is linear in the
number of inputs); both compute the same numbers, which are compared on that subset.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from simlab import networks as nw


def naive_forward(x: np.ndarray, weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """q_l and A_l per input, one input and one layer at a time."""
    L = len(weights)
    q = np.empty((x.shape[0], L))
    a = np.empty((x.shape[0], L + 1))
    for i in range(x.shape[0]):
        h = x[i]
        a[i, 0] = h @ h / h.size
        for k, w in enumerate(weights):
            z = w @ h
            q[i, k] = z @ z / z.size
            h = np.maximum(z, 0.0)
            a[i, k + 1] = h @ h / h.size
    return q, a


def batched(x: np.ndarray, weights: list[np.ndarray], chunk: int) -> tuple[float, np.ndarray]:
    """Seconds for all inputs in chunks, and the per-layer mean of q (float64 accumulation)."""
    total = np.zeros(len(weights))
    start = time.perf_counter()
    for s in range(0, x.shape[0], chunk):
        total += nw.forward(x[s : s + chunk], weights).q.sum(axis=0)
    return time.perf_counter() - start, total / x.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--naive", type=int, default=300, help="inputs timed in the naive loop")
    parser.add_argument("--L", type=int, default=50)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=4096)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    widths = (args.width,) * (args.L + 1)
    weights, _ = nw.draw_network(rng, widths, "kaiming")
    x = rng.standard_normal((args.inputs, args.width))

    sub = x[: args.naive]
    start = time.perf_counter()
    q_naive, a_naive = naive_forward(sub, weights)
    naive_per_input = (time.perf_counter() - start) / args.naive
    check = nw.forward(sub, weights)
    assert np.allclose(check.q, q_naive, rtol=1e-10) and np.allclose(check.a, a_naive, rtol=1e-10)

    t64, q64 = batched(x, weights, args.chunk)
    w32 = [w.astype(np.float32) for w in weights]
    t32, q32 = batched(x.astype(np.float32), w32, args.chunk)

    flops = 2.0 * args.inputs * args.L * args.width**2
    naive_total = naive_per_input * args.inputs
    print(
        f"network: L = {args.L}, width = {args.width}, {args.inputs:,} inputs, chunks of "
        f"{args.chunk}"
    )
    print(
        f"naive loop (timed on {args.naive} inputs, scaled): {naive_per_input * 1e6:8.1f} us "
        f"per input -> {naive_total:8.1f} s"
    )
    for name, t in (("batched float64", t64), ("batched float32", t32)):
        print(
            f"{name}: {t:8.2f} s  ({args.inputs / t:,.0f} inputs/s, {flops / t / 1e9:.1f} "
            f"GFLOP/s)  speed-up x{naive_total / t:.0f}"
        )
    # One network only: q_L averages to 2 sigma_x^2 over weight draws, but a single 50-layer
    # network at width 256 is far from it (E[(A_L/A_0)^2] = prod(1 + 5/n_l) = 2.6 here).
    print(
        f"q_L of this one network (2 on average over networks): float64 {q64[-1]:.4f}, "
        f"float32 {q32[-1]:.4f}; max |q32 - q64| / q64 over layers "
        f"{np.max(np.abs(q32 - q64) / q64):.1e}"
    )


if __name__ == "__main__":
    main()

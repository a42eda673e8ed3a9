"""The ``simlab propagation signal`` sampler against a naive per-input, per-layer loop.

Run as ``python benchmarks/bench_propagation.py [--networks 8] [--inputs 32] [--L 50]
[--width 256]``.

Workload: independent Kaiming networks (fresh weights each), ``inputs`` Gaussian inputs per
network, and per input the forward statistics q_l, A_l and the backward r_l of ``l = g^T h_L``.

- experiment: :class:`simlab.experiments.propagation_signal.SignalSampler`, i.e. float32
  weights drawn as stacks, every input of a network in one matrix product per layer
  (``networks.forward`` with reused buffers, ``networks.backward_signal``), float64 statistics;
- naive: float64, one weight matrix drawn at a time, then one matrix-vector product per input per
  layer forward and backward.

Both are timed on the same workload (the naive loop on a few networks, scaled linearly: its cost
is proportional to the networks and to their inputs) and the ratio is printed. The naive loop is
also checked against ``networks.forward``/``backward_signal`` on the same weights, so the two
compute the same numbers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from simlab import networks as nw
from simlab.experiments.propagation_signal import PropagationSignal, SignalSampler, SignalSetup


def naive_network(rng: np.random.Generator, widths: tuple[int, ...], inputs: int):
    """One network, its inputs one at a time: q_l, A_l and r_l per input (float64)."""
    L = len(widths) - 1
    weights = [
        np.sqrt(2.0 / widths[k - 1]) * rng.standard_normal((widths[k], widths[k - 1]))
        for k in range(1, L + 1)
    ]
    x = rng.standard_normal((inputs, widths[0]))
    g = rng.standard_normal((inputs, widths[-1]))
    q = np.empty((inputs, L))
    a = np.empty((inputs, L + 1))
    r = np.empty((inputs, L + 1))
    for b in range(inputs):
        h = x[b]
        a[b, 0] = h @ h / h.size
        masks = []
        for k, w in enumerate(weights):
            z = w @ h
            q[b, k] = z @ z / z.size
            masks.append(z > 0)
            h = np.maximum(z, 0.0)
            a[b, k + 1] = h @ h / h.size
        u = g[b]
        r[b, L] = u @ u / u.size
        for k in range(L, 0, -1):
            u = weights[k - 1].T @ (u * masks[k - 1])
            r[b, k - 1] = u @ u / u.size
    return (weights, x, g), (q, a, r)


def check_naive(widths: tuple[int, ...]) -> None:
    """The naive loop computes what networks.forward / backward_signal compute."""
    (weights, x, g), (q, a, r) = naive_network(np.random.default_rng(1), widths, 3)
    fwd = nw.forward(x, weights, keep="masks")
    back = nw.backward_signal(fwd.masks, weights, g).r
    assert np.allclose(fwd.q, q, rtol=1e-9) and np.allclose(fwd.a, a, rtol=1e-9)
    assert np.allclose(back, r, rtol=1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=16, help="networks for the sampler")
    parser.add_argument("--naive-networks", type=int, default=2, help="networks, naive loop")
    parser.add_argument("--inputs", type=int, default=32, help="inputs per network")
    parser.add_argument("--L", type=int, default=50)
    parser.add_argument("--width", type=int, default=256)
    args = parser.parse_args()

    exp = PropagationSignal()
    point = {p.name: p.default for p in exp.params}
    point.update(L=args.L, width=args.width, inputs=args.inputs)
    setup = SignalSetup.from_point(point)
    widths = setup.widths
    check_naive(tuple(min(w, 32) for w in widths[:6]))

    sampler = SignalSampler(setup)
    sampler(np.random.default_rng(0), 1)  # warm-up (BLAS threads, allocations)
    start = time.perf_counter()
    sampler(np.random.default_rng(0), args.networks)
    t_exp = (time.perf_counter() - start) / args.networks

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(args.naive_networks):
        naive_network(rng, widths, args.inputs)
    t_naive = (time.perf_counter() - start) / args.naive_networks

    start = time.perf_counter()
    for _ in range(args.naive_networks):
        nw.draw_network(np.random.default_rng(1), widths, "kaiming", dtype=np.float32)
    t_draw = (time.perf_counter() - start) / args.naive_networks

    flops = 4.0 * args.inputs * sum(widths[k] * widths[k - 1] for k in range(1, len(widths)))
    print(
        f"workload: L = {args.L}, width = {args.width}, {args.inputs} inputs per network, "
        "forward q_l, A_l and backward r_l per input"
    )
    print(
        f"naive per-layer loop (float64, {args.naive_networks} networks): "
        f"{t_naive * 1e3:8.1f} ms per network"
    )
    print(
        f"experiment sampler  (float32, {args.networks} networks):  {t_exp * 1e3:8.1f} ms per "
        f"network ({flops / t_exp / 1e9:.1f} GFLOP/s in the products, weight draws included)"
    )
    print(
        f"  of which drawing the float32 weights: {t_draw * 1e3:.1f} ms per network "
        f"({t_draw / t_exp:.0%}); propagation alone: x{(t_naive - t_draw) / (t_exp - t_draw):.0f}"
        " faster than the naive loop's"
    )
    print(f"speed-up: x{t_naive / t_exp:.1f}")


if __name__ == "__main__":
    main()

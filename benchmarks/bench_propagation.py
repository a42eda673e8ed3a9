"""The ``simlab propagation signal`` sampler against a naive per-input, per-layer loop.

Run as ``python benchmarks/bench_propagation.py [--rounds 5] [--networks 4] [--inputs 32] [--L 50]
[--width 256]``.

Workload: independent Kaiming networks (fresh weights each), ``inputs`` Gaussian inputs per
network, and per input the forward statistics q_l, A_l and the backward r_l of ``l = g^T h_L``.

- experiment: :class:`simlab.experiments.propagation_signal.SignalSampler`, i.e. float32
  weights drawn as stacks, every input of a network in one matrix product per layer
  (``networks.forward`` with reused buffers, ``networks.backward_signal``), float64 statistics;
- naive: float64, one weight matrix drawn at a time, then one matrix-vector product per input per
  layer forward and backward.

Both run on one core with a one-thread BLAS, as each engine worker runs its chunks (simlab adds
workers, one per core, on top of this): the ratio is the gain per core. A two-thread BLAS on a
busy machine spins waiting for a core and made the sampler look ten times slower than it is.
They are timed interleaved round by round (``benchmarks/timing.py``) per network, and the median of
the per-round ratios is printed with their interquartile range; the clock is this process's CPU
time by default (every side is single-threaded). The naive loop is also checked against
``networks.forward``/``backward_signal`` on the same weights, so the two compute the same numbers.
No target is stated for this ratio (issue 5 asks for the ratio); ``--target`` sets one, and the
exit status is then 1 when the median misses it.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from threadpoolctl import threadpool_limits
from timing import CLOCKS, Contender, exit_status, load_average, speedup, time_rounds

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timings of each side")
    parser.add_argument("--networks", type=int, default=4, help="networks per sampler timing")
    parser.add_argument(
        "--naive-networks", type=int, default=1, help="networks per naive-loop timing"
    )
    parser.add_argument("--inputs", type=int, default=32, help="inputs per network")
    parser.add_argument("--L", type=int, default=50)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--target", type=float, default=None, help="minimum median speed-up")
    args = parser.parse_args()
    for name in ("rounds", "networks", "naive_networks", "inputs", "L", "width"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")

    exp = PropagationSignal()
    point = {p.name: p.default for p in exp.params}
    point.update(L=args.L, width=args.width, inputs=args.inputs)
    setup = SignalSetup.from_point(point)
    widths = setup.widths
    check_naive(tuple(min(w, 32) for w in widths[:6]))

    sampler = SignalSampler(setup)
    rngs = {name: np.random.default_rng(seed) for seed, name in enumerate(("exp", "naive", "draw"))}

    def experiment() -> None:
        sampler(rngs["exp"], args.networks)

    def naive() -> None:
        for _ in range(args.naive_networks):
            naive_network(rngs["naive"], widths, args.inputs)

    def draw() -> None:
        for _ in range(args.naive_networks):
            nw.draw_network(rngs["draw"], widths, "kaiming", dtype=np.float32)

    print(f"load average before: {load_average()}")
    with threadpool_limits(limits=1, user_api="blas"):
        times = time_rounds(
            [
                Contender("naive", naive, work=args.naive_networks),
                Contender("experiment", experiment, work=args.networks),
                Contender("draw", draw, work=args.naive_networks),
            ],
            args.rounds,
            clock=CLOCKS[args.clock],
        )
    print(f"load average after: {load_average()}")

    def ms(name: str) -> float:
        return float(np.median(times[name])) * 1e3

    flops = 4.0 * args.inputs * sum(widths[k] * widths[k - 1] for k in range(1, len(widths)))
    print(
        f"workload: L = {args.L}, width = {args.width}, {args.inputs} inputs per network, "
        "forward q_l, A_l and backward r_l per input; one core, one BLAS thread, "
        f"{args.rounds} rounds, {args.clock} clock"
    )
    print(
        f"naive per-layer loop (float64, {args.naive_networks} networks per round): "
        f"{ms('naive'):8.1f} ms per network"
    )
    print(
        f"experiment sampler  (float32, {args.networks} networks per round): "
        f"{ms('experiment'):8.1f} ms per network ({flops / ms('experiment') / 1e6:.1f} GFLOP/s "
        "in the products, weight draws included)"
    )
    naive_t, exp_t, draw_t = (np.asarray(times[k]) for k in ("naive", "experiment", "draw"))
    print(
        f"  of which drawing the float32 weights: {ms('draw'):.1f} ms per network "
        f"({np.median(draw_t / exp_t):.0%}); that draw's time taken off both sides: "
        f"x{np.median((naive_t - draw_t) / (exp_t - draw_t)):.1f}"
    )
    ratio = speedup(
        times, "experiment", "naive", label="speed-up (experiment / naive)", target=args.target
    )
    print(ratio.describe())
    return exit_status([ratio])


if __name__ == "__main__":
    sys.exit(main())

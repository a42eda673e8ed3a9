"""The Dask backend against threads, in one session: throughput ratio and cost per task.

Run:  python benchmarks/bench_dask.py [--samples 1e7] [--calibrate-seeds 200] [--workers 2]

Needs the optional extra (``pip install -e ".[dask]"``). Measured back to back on the same
machine state, printed as ratios (never a timed unit test):

1. dropout (N = 512, M = 256) at ``--samples`` on threads (``run_chunks``), then on a LocalCluster
   of ``--workers`` one-thread processes; the ratio cluster / threads (target >= 0.9 on 2 cores)
   and a check that both give the same bytes;
2. the cost of one task: ``--tasks`` chunks of a sampler that does almost nothing, one chunk per
   task, on the same cluster: wall time x worker slots / tasks;
3. ``simlab calibrate --budget quick --seeds N --cluster local`` against the same command on
   threads, as two subprocesses (``--calibrate-seeds 0`` skips it; ``--only`` narrows it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from distributed import Client, LocalCluster

from simlab.engine.dask_backend import DaskRunner
from simlab.engine.executor import ChunkPlan, default_workers, run_chunks
from simlab.experiments.dropout import DropoutSampler, draw_weights
from simlab.stats import Moments

N, M, P = 512, 256, 0.5


def tiny(rng: np.random.Generator, size: int) -> Moments:
    """Almost no work: what is left of a task's time is the cluster's cost."""
    return Moments.from_batch(rng.standard_normal((2, 1)))


def _calibrate(seeds: int, only: str | None, cluster: bool) -> float:
    cmd = [sys.executable, "-m", "simlab", "calibrate", "--budget", "quick"]
    cmd += ["--seeds", str(seeds), "--no-plots", "--quiet"]
    cmd += ["--only", only] if only else []
    cmd += ["--cluster", "local"] if cluster else []
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([*cmd, "--out", os.path.join(out, "c")], check=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=float, default=1e7)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--calibrate-seeds", type=int, default=200)
    parser.add_argument("--only", choices=["correct", "wrong"], default=None)
    args = parser.parse_args()
    samples = int(args.samples)
    print(f"load average before: {os.getloadavg()}")
    weights = draw_weights(np.random.default_rng(0), "orthonormal", M, N)
    point = dict(p=P, N=N, M=M, sigma_x=1.0, bias=0.0, weights="orthonormal", rescale=True)
    edges = np.linspace(np.finfo(np.float32).tiny, 5.0, 61)
    sampler = DropoutSampler(point, weights, (edges, edges / (1 - P)))
    plan = ChunkPlan(samples, args.chunk_size)

    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        runner = DaskRunner(client, cluster.scheduler_address)
        runner.check_versions()
        runner(tiny, ChunkPlan(64, 1), entropy=1, point=0)  # warm the workers up

        start = time.perf_counter()
        threads = run_chunks(sampler, plan, entropy=7, point=0, workers=args.workers)
        t_threads = time.perf_counter() - start
        before = runner.tasks_submitted
        start = time.perf_counter()
        dask = runner(sampler, plan, entropy=7, point=0)
        t_dask = time.perf_counter() - start
        tasks = runner.tasks_submitted - before
        same = repr(dask.stats.estimates()) == repr(threads.stats.estimates())
        print(
            f"dropout {samples:.0e} samples: threads {samples / t_threads:,.0f}/s "
            f"({t_threads:.1f} s), dask {samples / t_dask:,.0f}/s ({t_dask:.1f} s, {tasks} tasks "
            f"of {runner.batch_sizes[-1]} chunks): ratio {t_threads / t_dask:.2f}x threads; "
            f"same bytes: {same}"
        )

        runner.target_seconds = 0.0  # one chunk per task: measure the per-task cost alone
        slots = runner.slots()
        start = time.perf_counter()
        runner(tiny, ChunkPlan(args.tasks, 1), entropy=2, point=0)
        per_task = (time.perf_counter() - start) * slots / args.tasks
        print(f"overhead: {per_task * 1e3:.1f} ms per task per worker slot ({args.tasks} tasks)")

    if args.calibrate_seeds:
        what = f"calibrate --budget quick --seeds {args.calibrate_seeds}"
        what += f" --only {args.only}" if args.only else ""
        t_threads = _calibrate(args.calibrate_seeds, args.only, cluster=False)
        t_dask = _calibrate(args.calibrate_seeds, args.only, cluster=True)
        print(
            f"{what}: threads {t_threads:.1f} s, --cluster local {t_dask:.1f} s: "
            f"ratio {t_threads / t_dask:.2f}x threads"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

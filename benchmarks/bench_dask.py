"""The Dask backend against threads, in one session: throughput ratio and cost per task.

Run:  python benchmarks/bench_dask.py [--samples 1e7] [--rounds 3] [--workers 2]
      python benchmarks/bench_dask.py --calibrate-seeds 200 [--calibrate-rounds 1] [--only correct]

Needs the optional extra (``pip install -e ".[dask]"``). Like with like: the thread engine on
``--workers`` threads against a LocalCluster of ``--workers`` one-thread worker processes, started
as ``--cluster local`` starts it (:func:`simlab.engine.dask_backend.connect`). The machine may be
shared, so the two sides are timed in interleaved rounds (the order alternates), a ratio is formed
within each round, and the median ratio is reported with its interquartile range (``timing.py``'s
:class:`Ratio`): load that lasts longer than a round slows both sides of the pair. The rounds are
timed here rather than by ``timing.time_rounds``: each side's CPU is counted in other processes
too (the workers), and each round's results are compared byte for byte. Beside the wall clock,
the CPU seconds each side spent (this process, plus the workers for the cluster) give a ratio
that other processes' load does not move: on an idle machine the wall ratio tends to it.

1. dropout (N = 512, M = 256) at ``--samples``: threads (``run_chunks``) against the cluster, the
   ratio threads time / cluster time (target >= ``--target``, 0.9 on 2 cores), and a check that
   both give the same bytes in every round;
2. the cost of one task: ``--tasks`` chunks of a sampler that does almost nothing, one chunk per
   task: wall time x worker slots / tasks, and CPU (client, scheduler and workers) per task;
3. with ``--calibrate-seeds N`` (0, the default, skips it: at N = 200 each side takes 15-25 minutes
   on 2 cores): ``simlab calibrate --budget quick --seeds N --no-plots`` on threads against the
   same command with ``--cluster local``, as subprocesses, in ``--calibrate-rounds`` interleaved
   rounds, and a check that both wrote the same calibration.

Exit status 1 when the dropout median misses the target or any pair of runs differs in a byte.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from timing import Ratio, exit_status, load_average

from simlab.engine.dask_backend import DaskRunner, connect
from simlab.engine.executor import ChunkPlan, default_workers, run_chunks
from simlab.experiments.dropout import DropoutSampler, draw_weights
from simlab.stats import Moments

N, M, P = 512, 256, 0.5


def tiny(rng: np.random.Generator, size: int) -> Moments:
    """Almost no work: what is left of a task's time is the cluster's cost."""
    return Moments.from_batch(rng.standard_normal((2, 1)))


def own_cpu() -> float:
    """CPU seconds of the calling process (user + system): runs on the workers too."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    """CPU seconds of this process's finished children, and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(run: Callable[[], object], cpu: Callable[[], float]) -> tuple[object, float, float]:
    """``run()``'s result, wall seconds and the CPU seconds ``cpu`` counts meanwhile."""
    cpu_before, start = cpu(), time.perf_counter()
    result = run()
    return result, time.perf_counter() - start, cpu() - cpu_before


def dropout_rounds(runner: DaskRunner, samples: int, chunk_size: int, workers: int, rounds: int):
    """Per round: (threads wall, threads CPU, cluster wall, cluster CPU, same bytes)."""
    weights = draw_weights(np.random.default_rng(0), "orthonormal", M, N)
    point = dict(p=P, N=N, M=M, sigma_x=1.0, bias=0.0, weights="orthonormal", rescale=True)
    edges = np.linspace(np.finfo(np.float32).tiny, 5.0, 61)
    sampler = DropoutSampler(point, weights, (edges, edges / (1 - P)))
    plan = ChunkPlan(samples, chunk_size)

    def cluster_cpu() -> float:
        # this process holds the client, the scheduler and the nannies; the workers report theirs
        return own_cpu() + sum(runner.client.run(own_cpu).values())

    def on_threads():
        return run_chunks(sampler, plan, entropy=7, point=0, workers=workers)

    def on_cluster():
        return runner(sampler, plan, entropy=7, point=0)

    # warm both up (first allocations, the sampler's first trip to the workers)
    small = ChunkPlan(8 * chunk_size, chunk_size)
    run_chunks(sampler, small, entropy=1, point=0, workers=workers)
    runner(sampler, small, entropy=1, point=0)
    out = []
    for k in range(rounds):
        sides: dict[str, tuple] = {}
        order = [("threads", on_threads, own_cpu), ("cluster", on_cluster, cluster_cpu)]
        for name, run, cpu in order if k % 2 == 0 else order[::-1]:
            sides[name] = timed(run, cpu)
        (threads, t_wall, t_cpu), (dask, d_wall, d_cpu) = sides["threads"], sides["cluster"]
        same = repr(dask.stats.estimates()) == repr(threads.stats.estimates())
        print(
            f"  round {k + 1}: threads {samples / t_wall:,.0f}/s ({t_wall:.1f} s, CPU "
            f"{t_cpu:.1f} s), cluster {samples / d_wall:,.0f}/s ({d_wall:.1f} s, CPU {d_cpu:.1f} "
            f"s, tasks of {runner.batch_sizes[-1]} chunks); same bytes: {same}; "
            f"load {load_average()}",
            flush=True,
        )
        out.append((t_wall, t_cpu, d_wall, d_cpu, same))
    return out


def task_cost(runner: DaskRunner, tasks: int) -> tuple[float, float]:
    """Wall ms per task per worker slot, and CPU ms per task (this process and the workers)."""
    target = runner.target_seconds
    runner.target_seconds = 0.0  # one chunk per task: the per-task cost alone
    try:
        runner(tiny, ChunkPlan(64, 1), entropy=1, point=0)
        slots = runner.slots()
        workers_before = sum(runner.client.run(own_cpu).values())
        _, wall, cpu = timed(lambda: runner(tiny, ChunkPlan(tasks, 1), entropy=2, point=0), own_cpu)
        cpu += sum(runner.client.run(own_cpu).values()) - workers_before
    finally:
        runner.target_seconds = target
    return wall * slots / tasks * 1e3, cpu / tasks * 1e3


def calibrate_once(seeds: int, only: str | None, cluster: bool, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds (the subprocess and its worker processes) of one calibrate run."""
    cmd = [sys.executable, "-m", "simlab", "calibrate", "--budget", "quick"]
    cmd += ["--seeds", str(seeds), "--no-plots", "--quiet", "--out", str(out)]
    cmd += ["--only", only] if only else []
    cmd += ["--cluster", "local"] if cluster else []
    done, wall, cpu = timed(lambda: subprocess.run(cmd, check=False), children_cpu)
    # 1: it ran to the end and says a calibration target was missed (a verdict, not a failure)
    if done.returncode not in (0, 1) or not (out / "calibration.json").exists():
        raise SystemExit(f"{' '.join(cmd)} failed (exit status {done.returncode})")
    return wall, cpu


def calibration_of(folder: Path) -> str:
    """What must be equal between the two engines: calibration.json without its engine entry
    (which says where it ran, not what it found)."""
    found = json.loads((folder / "calibration.json").read_text())
    found.pop("engine", None)
    return json.dumps(found, sort_keys=True)


def calibrate_rounds(seeds: int, only: str | None, rounds: int) -> list[tuple]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(rounds):
            sides = {}
            order = [("threads", False), ("cluster", True)]
            for name, cluster in order if k % 2 == 0 else order[::-1]:
                folder = Path(tmp) / f"{name}-{k}"
                sides[name] = (*calibrate_once(seeds, only, cluster, folder), folder)
            (t_wall, t_cpu, t_dir), (d_wall, d_cpu, d_dir) = sides["threads"], sides["cluster"]
            same = calibration_of(t_dir) == calibration_of(d_dir)
            print(
                f"  round {k + 1}: threads {t_wall:.1f} s (CPU {t_cpu:.1f} s), --cluster local "
                f"{d_wall:.1f} s (CPU {d_cpu:.1f} s); same calibration: {same}; "
                f"load {load_average()}",
                flush=True,
            )
            out.append((t_wall, t_cpu, d_wall, d_cpu, same))
    return out


def report(label: str, rows: list[tuple], target: float | None = None) -> tuple[Ratio, bool]:
    """Print the ratios, threads' time over the cluster's (wall, then CPU), per round; the wall
    ratio, and whether the two engines gave the same bytes in every round."""
    walls = tuple(t / d for t, _, d, _, _ in rows)
    wall = Ratio(f"{label}: cluster / threads, wall", walls, target)
    cpu = Ratio(f"{label}: cluster / threads, CPU", tuple(t / d for _, t, _, d, _ in rows))
    print(wall.describe())
    print(cpu.describe() + "  (what the wall ratio tends to on an idle machine)")
    same = all(row[-1] for row in rows)
    if not same:
        print(f"{label}: THE ENGINES DIFFER in at least one round")
    return wall, same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=float, default=1e7)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved dropout rounds")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--target", type=float, default=0.9, help="dropout ratio to reach")
    parser.add_argument("--tasks", type=int, default=400, help="tasks timed for their cost")
    parser.add_argument("--calibrate-seeds", type=int, default=0, help="0 skips calibrate")
    parser.add_argument("--calibrate-rounds", type=int, default=1)
    parser.add_argument("--only", choices=["correct", "wrong"], default=None)
    args = parser.parse_args()
    for name in ("samples", "rounds", "workers", "chunk_size", "tasks", "calibrate_rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    if args.calibrate_seeds < 0:
        parser.error(f"--calibrate-seeds: must be >= 0, got {args.calibrate_seeds}")
    samples = int(args.samples)
    ratios: list[Ratio] = []
    same = True
    print(
        f"load average before: {load_average()}; {args.workers} threads against {args.workers} "
        "one-thread worker processes",
        flush=True,
    )
    with connect(cluster="local", workers=args.workers) as runner:
        print(f"dropout {samples:.0e} samples, chunks of {args.chunk_size}:", flush=True)
        rows = dropout_rounds(runner, samples, args.chunk_size, args.workers, args.rounds)
        ratio, same_bytes = report("dropout", rows, args.target)
        ratios.append(ratio)
        same &= same_bytes
        wall_ms, cpu_ms = task_cost(runner, args.tasks)
        print(
            f"cost of a task: {wall_ms:.1f} ms of wall time per worker slot, {cpu_ms:.1f} ms of "
            f"CPU (client, scheduler and workers; {args.tasks} one-chunk tasks)"
        )
    if args.calibrate_seeds:
        what = f"calibrate --budget quick --seeds {args.calibrate_seeds}"
        what += f" --only {args.only}" if args.only else ""
        print(f"{what}:", flush=True)
        rows = calibrate_rounds(args.calibrate_seeds, args.only, args.calibrate_rounds)
        ratio, same_calibration = report(what, rows)
        ratios.append(ratio)
        same &= same_calibration
    print(f"load average after: {load_average()}")
    return exit_status(ratios) if same else 1


if __name__ == "__main__":
    sys.exit(main())

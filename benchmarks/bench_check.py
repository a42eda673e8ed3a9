"""Wall time of the main job, ``simlab check`` (the quick budget), beside a reference workload.

Run:  python benchmarks/bench_check.py [--rounds 5] [--target 8]

Each round runs ``simlab check --seed 11`` as the README installs it (the console script, in a
fresh process: imports, the figure workers' fork server, the figures and the report all count)
and, interleaved (``benchmarks/timing.py``), a fixed reference workload: the dropout sampler's raw
floor (its random numbers and matrix product, nothing else) for 3 x 10^5 samples on every core. The
check's CPU time is that of all its processes, polled from /proc (the fork server's children are
not waited for, so the usual rusage of children undercounts them).

Why the reference: this machine's speed drifts by ~15% from hour to hour (the same check used
13.8-14.7 CPU-s in one series, 14.9-16.4 in the next), so a wall time alone says as much about the
hour as about the code; the check's time in units of the reference's says which moved. Target
(issue 11): the median wall time under ``--target`` seconds; exit status 1 when it is not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import Contender, load_average, time_rounds

from simlab.engine.executor import ChunkPlan, default_workers, run_chunks

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _descendants_cpu(root: int) -> dict[int, float]:
    """CPU seconds of ``root`` and every process below it, from /proc (Linux)."""
    parents, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICK
    found, todo = {root: cpu.get(root, 0.0)}, [root]
    while todo:
        parent = todo.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = cpu[pid]
                todo.append(pid)
    return found


def run_check(out: Path, seed: int) -> tuple[float, float]:
    """Wall seconds of one ``simlab check`` and the CPU seconds of all its processes."""
    shutil.rmtree(out, ignore_errors=True)
    command = [shutil.which("simlab") or "simlab", "check", "--seed", str(seed), "--out", str(out)]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[int, float] = {}
    while process.poll() is None:
        for pid, seconds in _descendants_cpu(process.pid).items():
            seen[pid] = max(seen.get(pid, 0.0), seconds)
        time.sleep(0.05)
    wall = time.perf_counter() - start
    if process.returncode not in (0, 1):  # 1: a verdict not as expected, still a full run
        raise SystemExit(f"simlab check exited {process.returncode}")
    return wall, sum(seen.values())


def reference(samples: int, workers: int) -> None:
    """The dropout sampler's raw floor: its random numbers and matrix product, nothing else."""
    n_in, n_units = 512, 256
    weights = np.ascontiguousarray(
        np.random.default_rng(0).standard_normal((n_in, n_units)), dtype=np.float32
    )

    def floor(rng: np.random.Generator, size: int) -> int:
        x = rng.standard_normal((size, n_in), dtype=np.float32)
        x @ weights  # noqa: B018  (the product is the work)
        rng.integers(0, 256, size=(size, n_units), dtype=np.uint8)  # one byte per unit's mask
        return size

    run_chunks(floor, ChunkPlan(samples, 4096), entropy=1, point=0, workers=workers,
               fold=lambda a, b: a + b)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs of each side")
    parser.add_argument("--target", type=float, default=8.0, help="median wall seconds to beat")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if not Path("/proc/self/stat").exists():
        print("needs /proc (Linux): the check's CPU is read from it", file=sys.stderr)
        return 2
    workers = default_workers()
    cpu: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "check"

        def check() -> None:
            cpu.append(run_check(out, args.seed)[1])

        contenders = [
            Contender("check", check),
            Contender("reference", lambda: reference(300_000, workers)),
        ]
        times = time_rounds(contenders, args.rounds)
    walls, refs = times["check"], times["reference"]
    relative = [w / r for w, r in zip(walls, refs, strict=True)]
    cpu = cpu[1:]  # the untimed warm-up run first

    def spread(values: list[float]) -> str:
        if len(values) == 1:
            return f"{values[0]:.2f}"
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return f"{median:.2f} (IQR {q1:.2f}-{q3:.2f})"

    print(f"simlab check --seed {args.seed}, {args.rounds} rounds, {workers} cores, "
          f"load {load_average()}")  # fmt: skip
    print(f"check wall s     : {spread(walls)}")
    print(f"check CPU s      : {spread(cpu)}  (all its processes)")
    print(f"reference wall s : {spread(refs)}  (raw floor, 3 x 10^5 dropout samples)")
    print(f"check / reference: {spread(relative)}")
    median = statistics.median(walls)
    verdict = "meets" if median < args.target else "MISSES"
    print(f"target: median wall < {args.target:g} s: {verdict}")
    return 0 if median < args.target else 1


if __name__ == "__main__":
    sys.exit(main())

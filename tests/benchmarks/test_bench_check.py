"""benchmarks/bench_check.py's reading of the CPU time of a process and everything below it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench_check():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports ``timing`` from its own folder
    try:
        yield importlib.import_module("bench_check")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_cpu_of_a_grandchild_counts(bench_check):
    # a process whose child burns CPU, says so, then waits: the parent itself barely runs
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n"
    burn += "print('burnt', flush=True)\ntime.sleep(60)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])"
    shell = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    try:
        assert shell.stdout.readline().strip() == "burnt"  # the child's CPU is spent
        seen = bench_check._descendants_cpu(shell.pid)
        assert len(seen) >= 2  # the parent and its child
        assert sum(seen.values()) >= 0.5
        assert seen[shell.pid] < 0.5  # the time is the child's, found below the parent
    finally:
        subprocess.run(["pkill", "-P", str(shell.pid)], check=False)
        shell.kill()
        shell.wait()

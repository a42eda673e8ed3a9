"""When the figure workers' fork server is started before the command line is imported."""

from __future__ import annotations

import os

import pytest

from simlab.fork_server import check_draws_in_workers


@pytest.mark.parametrize(
    ("args", "early"),
    [
        (["check"], True),
        (["check", "--seed", "11", "--out", "here"], True),
        (["check", "--budget", "standard"], True),
        (["check", "--no-plots"], False),  # nothing drawn
        (["check", "--workers", "1"], False),  # decided once parsed: one worker draws here
        (["check", "--workers=4"], False),
        (["check", "--help"], False),
        (["check", "-h"], False),
        (["run", "course.yaml"], False),  # a file decides: parsed first
        (["dropout", "--p", "0.5"], False),
        (["list"], False),
        ([], False),
    ],
)
def test_only_a_check_that_surely_draws_in_workers_starts_it_early(args, early, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert check_draws_in_workers(args) is early


def test_one_core_draws_in_process(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert not check_draws_in_workers(["check"])


_SERVER_MASK = """
import os, signal, threading
from simlab.fork_server import ensure_server, own_this_process, worker_context

own_this_process()
worker_context()  # the forkserver context, preloading simlab.figure_server
started = threading.Thread(target=ensure_server)
started.start()
started.join()
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmdline = open(f"/proc/{pid}/cmdline").read()
        status = open(f"/proc/{pid}/status").read()
    except OSError:
        continue
    ppid = int(next(l for l in status.splitlines() if l.startswith("PPid:")).split()[1])
    if ppid == os.getpid() and "forkserver" in cmdline:
        mask = int(next(l for l in status.splitlines() if l.startswith("SigBlk:")).split()[1], 16)
        print(bool(mask >> (signal.SIGINT - 1) & 1), bool(mask >> (signal.SIGTERM - 1) & 1))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_the_fork_server_warms_up_with_ctrl_c_and_sigterm_blocked():
    # a Ctrl-C during its second of imports must reach simlab's handler, not the server (where
    # it ended in a traceback): multiprocessing's resource tracker unblocks both signals in the
    # thread that starts it, before the server is spawned from that thread
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _SERVER_MASK], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]

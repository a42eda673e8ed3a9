"""The fork server the figure workers fork from: started as early as the command knows it will
draw figures in workers, warmed up on another core while this process imports and simulates.

Light on purpose (no NumPy, no simlab.simulate): ``simlab/__main__.py`` starts the server before
the command line's imports (~0.4 s), so that its own warm-up (~1 CPU-s: matplotlib, simlab, the
font cache) is done on the core that is otherwise idle then, not on the cores the first
experiment simulates on.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from simlab import interrupts

#: imported by the fork server before it forks any figure worker (:func:`worker_context`)
WORKER_PRELOAD = "simlab.figure_server"

#: whether simlab owns this process (the ``simlab`` command, ``python -m simlab``: see
#: :func:`own_this_process`). The fork server is the process's one, shared by every forkserver
#: process started in it (the default start method on Linux from Python 3.14), and its warm-up
#: sets process-wide state its children inherit (Ctrl-C and SIGTERM ignored, BLAS held to one
#: thread, simlab and matplotlib imported): in a notebook or a program that uses simlab's API,
#: its figure workers are spawned instead.
_OWN_PROCESS = {"on": False}


def own_this_process() -> None:
    """Let the figure workers fork from a fork server warmed up for them (the command line)."""
    _OWN_PROCESS["on"] = True


def worker_context() -> Any:
    """How figure workers start: forked from a fork server where available, else spawned.

    Never forked from this process (it runs BLAS and progress-bar threads). A spawned worker
    pays Python's start-up, the imports of numpy, scipy, matplotlib and every experiment, and
    the warm-up (about a CPU-second each on this machine); a fork server pays them once (it
    imports :data:`WORKER_PRELOAD`, which warms up) and every worker forked from it starts warm.
    The fork server is one per process and outlives a run: a second run in the same process
    starts its workers at once. Only in simlab's own process (:data:`_OWN_PROCESS`).
    """
    import multiprocessing

    if not _OWN_PROCESS["on"] or "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")  # a user's process (see above), Windows
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([WORKER_PRELOAD])
    return context


def prestart() -> None:
    """Start the fork server of the figure workers now, without waiting for it: it warms up
    on another core while this process builds the run, and the first worker starts sooner."""
    if worker_context().get_start_method() == "forkserver":
        threading.Thread(target=ensure_server, name="simlab-fork-server", daemon=True).start()


def ensure_server() -> None:
    """Start the fork server, if it is not running, from this (non-main) thread with SIGINT and
    SIGTERM blocked: the server inherits the mask, so a Ctrl-C during its warm-up (a second of
    imports) reaches simlab's handler in this process, not the server as a traceback.

    multiprocessing's resource tracker, started first, unblocks both signals in the thread that
    starts it (CPython 3.11's ``resource_tracker.ensure_running``): it is started here on its own
    and the mask blocked again before the server is."""
    from multiprocessing import forkserver, resource_tracker

    interrupts.block_in_this_thread()
    resource_tracker.ensure_running()
    interrupts.block_in_this_thread()
    forkserver.ensure_running()


def check_draws_in_workers(args: Sequence[str]) -> bool:
    """Whether the command line ``args`` (after ``simlab``) is a ``simlab check`` that will draw
    its figures in workers whatever else it parses: without ``--no-plots``, ``--workers`` (one
    worker draws in-process) or help, on more than one core (as
    :func:`simlab.engine.executor.default_workers` counts them). Asked before the command line
    is imported; ``check`` decides again once its options are parsed, and starts the server
    then if this said no."""
    if not args or args[0] != "check":
        return False
    for arg in args[1:]:
        if arg in ("--no-plots", "-h", "--help") or arg.startswith("--workers"):
            return False
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no fork server anyway
        return False
    return cores > 1

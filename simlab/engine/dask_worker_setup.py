"""Preloaded into the worker processes of ``--cluster local`` (Dask's ``preload``).

Ctrl-C reaches every process of the terminal's group: a worker that took it printed its own
KeyboardInterrupt traceback. As for the figure workers, the parent decides what a signal means:
it keeps the partial run, then stops the cluster itself (a message, then SIGKILL).
"""

from __future__ import annotations

from typing import Any

from simlab import interrupts


def dask_setup(worker: Any) -> None:
    """Called by Dask in each worker process as it starts."""
    interrupts.ignore_in_worker()

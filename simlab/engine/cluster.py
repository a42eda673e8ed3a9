"""Which engine a command runs its chunks on: threads here, or a Dask cluster when asked for.

Dask is imported only when a cluster is asked for (``--scheduler``, ``--cluster local``, or
``DASK_SCHEDULER_ADDRESS`` in the environment): without the optional extra, and without those,
nothing imports it and the thread engine runs as always.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from simlab.errors import SimlabInputError

ENV = "DASK_SCHEDULER_ADDRESS"


def requested(scheduler: str | None, cluster: str | None) -> bool:
    """Whether these options (or the environment) ask for a Dask cluster."""
    return bool(scheduler or cluster or os.environ.get(ENV))


@contextlib.contextmanager
def runner_for(scheduler: str | None, cluster: str | None) -> Iterator[Any]:
    """The Dask runner the options ask for (closed at the end), or None for threads.

    ``--scheduler`` is a ``tcp://host:port`` address or a scheduler file; when neither option
    is given, ``DASK_SCHEDULER_ADDRESS`` is read. A missing extra, an unreachable scheduler or a
    worker with other versions is a one-line input error before any work.
    """
    if not requested(scheduler, cluster):
        yield None
        return
    if scheduler and cluster:
        raise SimlabInputError("--scheduler and --cluster: give one of them, not both")
    if cluster is not None and cluster != "local":
        raise SimlabInputError(f"--cluster: {cluster!r} is not allowed; expected local")
    try:
        import distributed  # noqa: F401
    except ImportError:
        where = "--cluster local" if cluster else f"--scheduler {scheduler or os.environ[ENV]}"
        raise SimlabInputError(
            f"{where}: a Dask cluster needs the optional extra: pip install 'simlab[dask]' "
            "(pip install -e '.[dask]' in a checkout)"
        ) from None
    from simlab.engine.dask_backend import connect

    runner = connect(scheduler or (None if cluster else os.environ[ENV]), cluster)
    with runner:
        yield runner


def describe_threads(workers: int) -> dict[str, Any]:
    """results.json's engine entry for the thread engine."""
    return {"backend": "threads", "workers": workers}

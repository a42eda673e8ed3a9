"""The same chunks on a Dask cluster, folded to the same bytes as :func:`run_chunks` on threads.

Only imported when a run asks for a cluster (``--scheduler``, ``--cluster local`` or
``DASK_SCHEDULER_ADDRESS``): without the optional extra ``simlab[dask]`` nothing imports Dask.

Why each piece is as it is (measured on a loaded 2-core machine, see issue 12):

- A task gets the sampler (scattered once per point to every worker: a dropout sampler pickles to
  about 0.5 MB, and shipping it inside every task cost 16x more than scattering it), the root
  entropy, the point and a list of ``(chunk, size)``. It builds each chunk's generator itself from
  the spawn key: a shipped ``Generator`` would be reused, already advanced, by a retried task.
- Tasks run under a one-thread BLAS limit, as the thread engine's chunks do: without it a
  float64 matrix product on a worker differed from the client's in the last bits.
- A task returns the list of its chunks' statistics, never their merge: the client folds every
  chunk in chunk order, as the thread engine does (merging groups of chunks first changes the
  last bits), and asks ``should_stop`` at every chunk boundary, so ``--target-se`` stops at the
  same chunk.
- A Dask task costs milliseconds of scheduling (about 8 ms of CPU between client, scheduler and
  worker), and some chunks last 1 ms: chunks are batched so that a task does about
  :data:`TARGET_TASK_SECONDS` of work, from the measured CPU time of the point's first chunk.
- The LocalCluster of ``--cluster local`` runs with :data:`LOCAL_CLUSTER_CONFIG`: Dask's
  defaults made its workers spend 10-15% more CPU than the thread engine on the same chunks.
- Task keys carry a fresh token per point run: two submissions under one explicit key with
  different parameters silently return the first result.
- Completion order is not chunk order: results wait in a bounded window (memory stays bounded).
- Workers are checked before the run (simlab, NumPy and Python versions): a worker without
  simlab would otherwise leave its future pending forever, the error only in the worker's log.
"""

from __future__ import annotations

import copy
import math
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dask
import distributed
import numpy as np
from distributed import Client, Future

from simlab import interrupts
from simlab.engine.executor import (
    ChunkPlan,
    ChunkRun,
    Folding,
    RunInterrupted,
    single_threaded_blas,
)
from simlab.engine.progress import NullProgress
from simlab.engine.seeding import chunk_rng
from simlab.errors import SimlabInputError

S = TypeVar("S")
T = TypeVar("T")

#: a task should do at least this many CPU seconds of work: a task costs the client, scheduler and
#: worker about 8 ms of CPU (measured on 2 cores), 1.6% of 0.5 s
TARGET_TASK_SECONDS = 0.5
#: retries of a task that raised (a lost worker is rescheduled by Dask without counting here)
DEFAULT_RETRIES = 2
#: how long to wait for a scheduler, and for its first worker
CONNECT_TIMEOUT = 30.0
#: Dask configuration of the ``--cluster local`` that simlab starts (its scheduler runs in this
#: process, its workers in their own). Each entry was measured on 2 cores (see issue 12):
#:
#: - Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers. Any such setting turns
#:   off glibc's adaptive mmap threshold, so every array above 128 KiB (a dropout chunk allocates
#:   several of 4-8 MiB) is mmapped and unmapped again and its pages fault in anew, chunk after
#:   chunk: 1300-1800 page faults and 4-6 ms of system time on a 36 ms dropout chunk. Unset, the
#:   workers allocate as the thread engine's process does (13 faults per chunk).
#: - The event loops' health check every 20 ms and the workers' statistical profiler (every
#:   10 ms, for a dashboard nobody looks at here) cost an idle two-worker cluster 85-95 ms of CPU
#:   per second, 4-5% of the machine; with a 200 ms check and no profiler, 30 ms.
#:
#: A cluster the user runs (``--scheduler``) keeps its own configuration: docs/dask-slurm.md shows
#: the same settings for its workers.
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "200ms",
}


def run_batch(
    sampler: Callable[[np.random.Generator, int], S],
    entropy: int,
    point: int,
    chunks: list[tuple[int, int]],
) -> tuple[list[S], float]:
    """On a worker: each chunk's statistics, in order, and the CPU seconds the batch took.

    Every generator is built here from its spawn key, so a retried or rescheduled task draws
    exactly the numbers the first attempt did. The time is this thread's CPU time, not the wall
    clock: BLAS runs on this one thread, so it is the batch's whole work, and it does not grow
    when other processes take the core (at load 15-20 on 2 cores, a wall-clock first dropout
    chunk came out 2-5x its CPU time and the tasks shrank to 1-2 chunks, multiplying their cost).
    """
    start = time.thread_time()
    with single_threaded_blas():
        results = [sampler(chunk_rng(entropy, point, i), size) for i, size in chunks]
    return results, time.thread_time() - start


def run_whole(fn: Callable[..., T], *args: Any) -> T:
    """On a worker: ``fn(*args)`` under the one-thread BLAS limit (a whole calibration seed)."""
    with single_threaded_blas():
        return fn(*args)


# The version probe is shipped by value (compiled here, in no importable module), so it runs on a
# worker that lacks simlab and reports that, instead of failing to unpickle.
_PROBE_SOURCE = """
def probe():
    import platform
    found = {"python": platform.python_version()}
    for name in ("simlab", "numpy"):
        try:
            found[name] = str(__import__(name).__version__)
        except Exception:
            found[name] = None
    return found
"""


def _probe_function() -> Callable[[], dict[str, str | None]]:
    namespace: dict[str, Any] = {"__name__": "simlab_version_probe"}
    exec(compile(_PROBE_SOURCE, "<simlab version probe>", "exec"), namespace)  # noqa: S102
    return namespace["probe"]


def local_versions() -> dict[str, str | None]:
    """What this process runs: the versions every worker must match."""
    return _probe_function()()


def _mismatch(where: str, theirs: dict[str, str | None], ours: dict[str, str | None]) -> str:
    """Why ``theirs`` cannot give ours bytes ('' when it can)."""
    if theirs.get("simlab") is None:
        return f"{where} cannot import simlab (install simlab {ours['simlab']} there)"
    for name in ("simlab", "numpy"):
        if theirs.get(name) != ours.get(name):
            return f"{where} has {name} {theirs.get(name)}, this process {ours.get(name)}"
    # pickled code and data travel between them: the same minor version of Python is needed
    if (theirs.get("python") or "").split(".")[:2] != (ours.get("python") or "").split(".")[:2]:
        return f"{where} has Python {theirs.get('python')}, this process {ours.get('python')}"
    return ""


@dataclass
class DaskRunner:
    """A chunk runner (the signature of :func:`simlab.engine.executor.run_chunks`) on ``client``.

    Build it with :func:`connect`. ``retries`` is how often a task that raised is run again.
    """

    client: Client
    address: str
    retries: int = DEFAULT_RETRIES
    target_seconds: float = TARGET_TASK_SECONDS
    cluster: Any = None
    #: the workers' versions as checked before the run (address -> versions)
    worker_versions: dict[str, dict[str, str | None]] = field(default_factory=dict)
    #: tasks submitted, and chunk batch sizes chosen (for the benchmark and the tests)
    tasks_submitted: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    # -- the cluster --------------------------------------------------------------------------
    def slots(self) -> int:
        """Worker threads in the cluster now (at least 1: tasks wait for a worker to join)."""
        info = self.client.scheduler_info(n_workers=-1)
        return max(1, sum(w.get("nthreads", 1) for w in info["workers"].values()))

    def check_versions(self) -> None:
        """Refuse, in one line, a cluster whose workers or scheduler cannot give the same bytes."""
        ours = local_versions()
        probe = _probe_function()
        try:
            found = self.client.run(probe, on_error="return")
            found_scheduler = self.client.run_on_scheduler(probe)
        except Exception as exc:  # noqa: BLE001 - the cluster could not run a probe at all
            raise SimlabInputError(f"{self.where()}: could not check the workers ({exc})") from exc
        checks = [(f"scheduler {self.address}", found_scheduler)]
        checks += [(f"worker {addr}", versions) for addr, versions in sorted(found.items())]
        for where, theirs in checks:
            if isinstance(theirs, BaseException):
                raise SimlabInputError(
                    f"{self.where()}: {where} failed the version check: {theirs}"
                )
            why = _mismatch(where, theirs, ours)
            if why:
                raise SimlabInputError(
                    f"{self.where()}: {why}; every worker needs the same simlab, NumPy and "
                    "Python to give the same numbers"
                )
        self.worker_versions = dict(sorted(found.items()))

    def where(self) -> str:
        return "--cluster local" if self.cluster is not None else f"--scheduler {self.address}"

    def describe(self) -> dict[str, Any]:
        """What results.json records of the engine (never config.yaml: it changes no number)."""
        info = self.client.scheduler_info(n_workers=-1)
        # one entry per distinct set of versions (they are all equal once checked)
        distinct = {tuple(sorted(v.items())) for v in self.worker_versions.values()}
        versions = sorted(distinct, key=repr)
        return {
            "backend": "dask",
            "scheduler": "local cluster" if self.cluster is not None else self.address,
            "workers": len(info["workers"]),
            "threads": sum(w.get("nthreads", 1) for w in info["workers"].values()),
            "dask": distributed.__version__,
            "worker_versions": [dict(v) for v in versions],
        }

    def close(self) -> None:
        """Close the client (and stop the local cluster this runner started)."""
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

    def __enter__(self) -> DaskRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- a point's chunks ---------------------------------------------------------------------
    def __call__(
        self,
        task: Callable[[np.random.Generator, int], S],
        plan: ChunkPlan,
        *,
        entropy: int,
        point: int,
        workers: int = 1,
        fold: Callable[[S, S], S] | None = None,
        should_stop: Callable[[S, int], bool] | None = None,
        on_fold: Callable[[S, int], None] | None = None,
        progress: NullProgress | None = None,
        start: ChunkRun[S] | None = None,
        checkpoint: Callable[[ChunkRun[S]], None] | None = None,
    ) -> ChunkRun[S]:
        """Run ``plan``'s chunks on the cluster; the same result as :func:`run_chunks`.

        ``workers`` is ignored (the cluster's threads are the workers). Stopping early cancels
        the outstanding tasks; Ctrl-C or SIGTERM does too, and raises
        :class:`~simlab.engine.executor.RunInterrupted` with what was folded. ``start`` and
        ``checkpoint`` (a resumed run, and its saves) are as in :func:`run_chunks`.
        """
        token = f"simlab-{uuid.uuid4().hex[:12]}-p{point}"
        folding = Folding(plan, fold, should_stop, on_fold, progress, checkpoint)
        first = folding.resume_from(start)
        pending: dict[int, Future] = {}
        sampler: Future | None = None
        try:
            # a start is asked again: an interruption may have come between its last fold and
            # the stop rule
            if start is not None and (first == plan.n_chunks or folding.stops()):
                return folding.current(first < plan.n_chunks)
            # one copy per worker, not one per task (hash=False: a fresh key, never a stale one)
            sampler = self.client.scatter(task, broadcast=True, hash=False)
            batches = _Batches(plan, self.target_seconds, first)
            window = 2 * self.slots()
            next_submit = 0

            def submit(b: int) -> None:
                pending[b] = self.client.submit(
                    run_batch,
                    sampler,
                    entropy,
                    point,
                    batches.chunks(b),
                    key=f"{token}-b{b}",
                    retries=self.retries,
                    pure=False,
                )
                self.tasks_submitted += 1

            b = 0
            while batches.defined(b):
                # the first batch alone (one chunk, timed): it decides the size of the others
                while batches.defined(next_submit) and (next_submit == 0 or batches.sized):
                    if next_submit >= b + window:
                        break
                    submit(next_submit)
                    next_submit += 1
                results, seconds = pending.pop(b).result()
                if b == 0:
                    batches.size_from(seconds / max(1, len(results)), window)
                    self.batch_sizes.append(batches.batch)
                for i, stats in zip(batches.indices(b), results, strict=True):
                    if folding.absorb(stats, plan.size(i)):
                        return folding.stopped()
                b += 1
            return folding.current(False)
        except KeyboardInterrupt as exc:
            raise RunInterrupted(folding.partial()) from exc
        finally:
            try:
                if pending:
                    self.client.cancel(list(pending.values()))
                if sampler is not None:
                    sampler.release()  # the workers drop their copies: a point's data, once
            except Exception:  # noqa: BLE001 - a closing client: nothing left to cancel
                pass

    # -- independent jobs, in order (calibrate's seeds) ---------------------------------------
    def map_ordered(
        self, fn: Callable[..., T], jobs: Iterable[tuple[Any, ...]], label: str = "job"
    ) -> Iterator[T]:
        """``fn(*job)`` for every job on the cluster, yielded in job order.

        At most two jobs per worker thread are in flight; closing the iterator (a Ctrl-C in
        the consumer, say) cancels the rest.
        """
        token = f"simlab-{label}-{uuid.uuid4().hex[:12]}"
        source = iter(enumerate(jobs))
        pending: dict[int, Future] = {}
        window = 2 * self.slots()

        def fill() -> None:
            while len(pending) < window:
                item = next(source, None)
                if item is None:
                    return
                index, job = item
                pending[index] = self.client.submit(
                    run_whole, fn, *job, key=f"{token}-{index}", retries=self.retries, pure=False
                )
                self.tasks_submitted += 1

        try:
            index = 0
            fill()
            while index in pending:
                result = pending.pop(index).result()
                fill()
                yield result
                index += 1
        finally:
            if pending:
                try:
                    self.client.cancel(list(pending.values()))
                except Exception:  # noqa: BLE001
                    pass


class _Batches:
    """Chunks grouped into tasks: batch 0 is the first chunk alone (chunk 0, or where a resumed
    point goes on); the others ``batch`` chunks each."""

    def __init__(self, plan: ChunkPlan, target_seconds: float, first: int = 0) -> None:
        self.plan = plan
        self.target = target_seconds
        #: the first chunk to run (a resumed point's chunks before it are folded already)
        self.first = first
        self.batch = 1
        self.sized = False

    def size_from(self, chunk_seconds: float, window: int) -> None:
        """Chunks per task so that a task lasts the target, from one chunk's measured time.

        Capped so every worker slot still gets work: at least ``window`` tasks remain when the
        plan has enough chunks.
        """
        rest = self.plan.n_chunks - self.first - 1
        wanted = math.ceil(self.target / max(chunk_seconds, 1e-6))
        self.batch = max(1, min(wanted, rest // max(1, window) or 1))
        self.sized = True

    def first_chunk(self, b: int) -> int:
        return self.first if b == 0 else self.first + 1 + (b - 1) * self.batch

    def defined(self, b: int) -> bool:
        return self.first_chunk(b) < self.plan.n_chunks and (b == 0 or self.sized)

    def indices(self, b: int) -> range:
        start = self.first_chunk(b)
        stop = start + 1 if b == 0 else min(self.plan.n_chunks, start + self.batch)
        return range(start, stop)

    def chunks(self, b: int) -> list[tuple[int, int]]:
        return [(i, self.plan.size(i)) for i in self.indices(b)]


def _is_scheduler_file(address: str) -> bool:
    return "://" not in address and (Path(address).is_file() or address.endswith(".json"))


def connect(
    scheduler: str | None = None,
    cluster: str | None = None,
    *,
    workers: int | None = None,
    retries: int = DEFAULT_RETRIES,
) -> DaskRunner:
    """A :class:`DaskRunner` on ``scheduler`` (an address or a scheduler file) or a new
    LocalCluster (``cluster="local"``, ``workers`` processes of one thread), versions checked.

    Raises SimlabInputError (one line) when the scheduler cannot be reached or a worker differs.
    """
    if cluster is not None:
        if cluster != "local":
            raise SimlabInputError(f"--cluster: {cluster!r} is not allowed; expected local")
        from distributed import LocalCluster

        from simlab.engine.executor import default_workers

        local = client = None
        try:
            # Ctrl-C reaches the whole terminal group: the workers ignore it (the preload) and
            # the parent decides (it keeps the partial run, then stops the cluster itself).
            # Signals are held while the processes start, as for the figure workers.
            with interrupts.blocked(), dask.config.set(LOCAL_CLUSTER_CONFIG):
                # The nannies get their own deep copy: they keep only a shallow one of the
                # global configuration, which this block restores on leaving, and a worker they
                # restart later (after a crash) would start without these settings.
                settings = copy.deepcopy(dask.config.config)
                # one thread per process: BLAS is held to one thread, processes are the cores
                local = LocalCluster(
                    n_workers=workers or default_workers(),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    preload=["simlab.engine.dask_worker_setup"],
                    config=settings,
                )
                client = Client(local)
        except BaseException as exc:
            if client is not None:
                client.close()
            if local is not None:
                local.close()
            signum = interrupts.received()
            if signum is not None and not isinstance(exc, KeyboardInterrupt):
                # a worker that took the Ctrl-C before its preload ran failed to start: the
                # user stopped the start-up, this is no crash
                stop = interrupts.Terminated if signum == signal.SIGTERM else KeyboardInterrupt
                raise stop() from exc
            raise
        runner = DaskRunner(client, local.scheduler_address, retries=retries, cluster=local)
    else:
        assert scheduler is not None
        where = f"--scheduler {scheduler}"
        try:
            if _is_scheduler_file(scheduler):
                if not Path(scheduler).is_file():
                    raise SimlabInputError(f"{where}: no such scheduler file")
                client = Client(scheduler_file=scheduler, timeout=CONNECT_TIMEOUT)
            else:
                client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except SimlabInputError:
            raise
        except (OSError, TimeoutError, ValueError) as exc:
            raise SimlabInputError(
                f"{where}: could not reach the Dask scheduler ({type(exc).__name__}: {exc})"
            ) from exc
        runner = DaskRunner(client, scheduler, retries=retries)
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except TimeoutError as exc:
            raise SimlabInputError(
                f"{runner.where()}: no worker joined the scheduler within {CONNECT_TIMEOUT:g} s"
            ) from exc
        runner.check_versions()
    except BaseException:
        runner.close()
        raise
    return runner

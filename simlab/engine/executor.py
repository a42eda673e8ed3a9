"""Run the chunks of one sweep point on worker threads and fold their statistics in chunk order.

NumPy releases the GIL while it fills arrays with random numbers and while BLAS multiplies
matrices, so threads give real parallelism without pickling anything. Results are folded strictly
in chunk order (a chunk that finishes early waits), which with per-chunk seeding
(:mod:`simlab.engine.seeding`) makes the numbers independent of the number of workers. At most
``2 * workers`` chunks are in flight, so memory is bounded by chunk size times workers.

While chunks run, BLAS is held to one thread: the workers are the parallelism. Left alone, each
worker's matrix product would start its own BLAS threads and ``workers x cores`` threads would
fight over the cores (measured: 107k against 154k dropout samples/s on 2 cores). It also makes a
chunk's arithmetic the same whatever ``--workers`` is.

Because the fold is in chunk order, a point's progress is fully described by the folded
statistics and the number of chunks folded (a :class:`ChunkRun`): ``run_chunks(start=...)``
continues from such a state to the same bytes as a run that was never stopped, and its
``checkpoint`` callback hands the state out after every fold (see :mod:`simlab.engine.checkpoint`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

from simlab.engine.progress import NullProgress
from simlab.engine.seeding import chunk_rng


class Mergeable(Protocol):
    def merge(self, other: Mergeable) -> Mergeable: ...


S = TypeVar("S")


@dataclass(frozen=True)
class ChunkPlan:
    """``n_samples`` samples cut into chunks of ``chunk_size`` (the last one may be shorter)."""

    n_samples: int
    chunk_size: int

    @property
    def n_chunks(self) -> int:
        return -(-self.n_samples // self.chunk_size)

    def size(self, chunk: int) -> int:
        """Number of samples in chunk ``chunk``."""
        return min(self.chunk_size, self.n_samples - chunk * self.chunk_size)


@dataclass
class ChunkRun(Generic[S]):
    """What a run of chunks produced: the folded statistics and how many samples they hold."""

    stats: S
    n_samples: int
    n_chunks: int
    stopped_early: bool


class RunInterrupted(Exception):
    """The run was interrupted (Ctrl-C); carries what had been folded so far."""

    def __init__(self, partial: ChunkRun | None) -> None:
        super().__init__("interrupted")
        self.partial = partial


class ChunkRunner(Protocol):
    """What runs a point's chunks: :func:`run_chunks` (threads) or a Dask cluster's runner.

    Any runner gives the same :class:`ChunkRun`, to the byte, for the same arguments.
    """

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
    ) -> ChunkRun[S]: ...


_THREADPOOLS: ThreadpoolController | None = None


def single_threaded_blas() -> Any:
    """A context in which BLAS uses one thread (the controller is built once, lazily: ~3 ms).

    Everything that makes a run's numbers runs in it, the chunks and a point's set-up,
    estimates and predictions alike: a float64 product may differ in its last bits with the
    number of BLAS threads, so the numbers do not depend on the machine's core count; and a
    multi-threaded OpenBLAS on a busy machine spins: a 1024 x 1024 QR took 24 s with two
    threads on a loaded 2-core machine, 0.6 s with one.
    """
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


_single_threaded_blas = single_threaded_blas  # the name the Dask backend imports


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run_chunks(
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
    """Run ``task(rng, size)`` for every chunk of ``plan`` and fold the results in chunk order.

    Parameters
    ----------
    task
        Simulates ``size`` samples with ``rng`` and returns their mergeable statistics.
    plan
        How many samples, in chunks of what size.
    entropy, point
        Root entropy of the run and index of the sweep point: chunk ``i`` uses
        ``chunk_rng(entropy, point, i)``.
    workers
        Worker threads; ``1`` runs every chunk in the calling thread. BLAS runs single-threaded
        meanwhile, so ``workers`` is the number of cores the run keeps busy.
    fold
        ``fold(accumulated, chunk_stats)``; by default ``accumulated.merge(chunk_stats)``.
    should_stop
        Asked after each fold with the statistics and samples so far; ``True`` ends the run
        there. Asked at every chunk boundary in order, so the stopping point does not depend
        on the number of workers either.
    on_fold
        Called after each fold (to record a convergence trace, say).
    progress
        Advanced by each chunk's size (and at once by the samples of ``start``).
    start
        A state this point reached before (an interrupted run's): its statistics are the start
        of the fold and its ``n_chunks`` first chunks are not run again. ``should_stop`` is asked
        of it first (an interruption may have come between a fold and that question), so a
        resumed point stops at the chunk an uninterrupted one stops at.
    checkpoint
        Called after each fold that does not end the run (nor after the last chunk) with the
        state so far; the caller decides whether to save it (it is called often: it must be
        cheap, and copy or pickle ``stats`` if it keeps them).
    """
    fold = fold or (lambda acc, new: acc.merge(new))
    progress = progress or NullProgress()
    # (statistics, samples, chunks) folded so far, replaced in one assignment: an interruption
    # sees the state before a chunk or after it, never the statistics of one and the count of
    # the other (a resumed run would fold a chunk twice, or skip one)
    state: tuple[S | None, int, int] = (None, 0, 0)
    first = 0
    if start is not None:
        if start.n_chunks > plan.n_chunks or start.n_samples != sum(
            plan.size(i) for i in range(start.n_chunks)
        ):
            raise ValueError(
                f"a start of {start.n_chunks} chunks and {start.n_samples} samples does not fit "
                f"a plan of {plan.n_samples} samples in chunks of {plan.chunk_size}"
            )
        state = (start.stats, start.n_samples, start.n_chunks)
        first = start.n_chunks
        progress.advance(start.n_samples)

    def absorb(result: S, size: int) -> bool:
        nonlocal state
        acc, done, n_folded = state
        state = (result if acc is None else fold(acc, result), done + size, n_folded + 1)
        progress.advance(size)
        if on_fold is not None:
            on_fold(state[0], state[1])
        return should_stop is not None and should_stop(state[0], state[1])

    def current(stopped_early: bool) -> ChunkRun:
        acc, done, n_folded = state
        return ChunkRun(acc, done, n_folded, stopped_early)

    def partial() -> ChunkRun | None:
        return None if state[0] is None else current(True)

    def save() -> None:
        if checkpoint is not None:
            checkpoint(current(False))

    try:
        if start is not None and (
            first == plan.n_chunks
            or (should_stop is not None and should_stop(start.stats, start.n_samples))
        ):
            return current(first < plan.n_chunks)
        with single_threaded_blas():
            if workers <= 1:
                for i in range(first, plan.n_chunks):
                    size = plan.size(i)
                    if absorb(task(chunk_rng(entropy, point, i), size), size):
                        return current(i + 1 < plan.n_chunks)
                    if i + 1 < plan.n_chunks:
                        save()
                return current(False)

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="simlab") as pool:
                pending: dict[int, Future] = {}
                next_submit = first
                try:
                    for i in range(first, plan.n_chunks):
                        while next_submit < plan.n_chunks and next_submit < i + 2 * workers:
                            rng = chunk_rng(entropy, point, next_submit)
                            pending[next_submit] = pool.submit(task, rng, plan.size(next_submit))
                            next_submit += 1
                        result = pending.pop(i).result()
                        if absorb(result, plan.size(i)):
                            return current(i + 1 < plan.n_chunks)
                        if i + 1 < plan.n_chunks:
                            save()  # the next chunks run meanwhile: saving costs them no time
                    return current(False)
                finally:
                    for future in pending.values():
                        future.cancel()
    except KeyboardInterrupt as exc:
        raise RunInterrupted(partial()) from exc

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
    folding = Folding(plan, fold, should_stop, on_fold, progress, checkpoint)
    first = folding.resume_from(start)
    try:
        # a resumed state is asked first: an interruption may have come between its last
        # fold and that question
        if start is not None and (first == plan.n_chunks or folding.stops()):
            return folding.current(first < plan.n_chunks)
        with single_threaded_blas():
            if workers <= 1:
                return _fold_in_turn(task, plan, entropy, point, first, folding)
            return _fold_threaded(task, plan, entropy, point, first, folding, workers)
    except KeyboardInterrupt as exc:
        raise RunInterrupted(folding.partial()) from exc


class Folding(Generic[S]):
    """The fold of one point's chunks, in chunk order: statistics, samples and chunks so far,
    and the rules every runner applies to it (the stop rule, the trace, progress, checkpoints);
    the thread path and the Dask runner differ only in where the chunks run."""

    def __init__(
        self,
        plan: ChunkPlan,
        fold: Callable[[S, S], S] | None = None,
        should_stop: Callable[[S, int], bool] | None = None,
        on_fold: Callable[[S, int], None] | None = None,
        progress: NullProgress | None = None,
        checkpoint: Callable[[ChunkRun[S]], None] | None = None,
    ) -> None:
        self.plan = plan
        self.fold = fold or (lambda acc, new: acc.merge(new))
        self.should_stop = should_stop
        self.on_fold = on_fold
        self.progress = progress or NullProgress()
        self.checkpoint = checkpoint
        self.n_chunks = plan.n_chunks
        # (statistics, samples, chunks) folded so far, replaced in one assignment: an
        # interruption sees the state before a chunk or after it, never the statistics of one
        # and the count of the other (a resumed run would fold a chunk twice, or skip one)
        self.state: tuple[S | None, int, int] = (None, 0, 0)

    def resume_from(self, start: ChunkRun[S] | None) -> int:
        """Begin from ``start`` (an interrupted run's state; None: from nothing); return the
        first chunk left to run."""
        if start is None:
            return 0
        plan = self.plan
        if start.n_chunks > plan.n_chunks or start.n_samples != sum(
            plan.size(i) for i in range(start.n_chunks)
        ):
            raise ValueError(
                f"a start of {start.n_chunks} chunks and {start.n_samples} samples does not fit "
                f"a plan of {plan.n_samples} samples in chunks of {plan.chunk_size}"
            )
        self.state = (start.stats, start.n_samples, start.n_chunks)
        self.progress.advance(start.n_samples)
        return start.n_chunks

    def stops(self) -> bool:
        """Whether ``should_stop`` ends the run at the state so far."""
        acc, done, _ = self.state
        return self.should_stop is not None and self.should_stop(acc, done)

    def absorb(self, result: S, size: int) -> bool:
        """Fold chunk ``result`` of ``size`` samples; return whether the run stops here (else
        the state is offered to the checkpoint, unless it was the last chunk)."""
        acc, done, n_folded = self.state
        self.state = (result if acc is None else self.fold(acc, result), done + size, n_folded + 1)
        self.progress.advance(size)
        if self.on_fold is not None:
            self.on_fold(self.state[0], self.state[1])
        if self.stops():
            return True
        if self.checkpoint is not None and self.state[2] < self.n_chunks:
            self.checkpoint(self.current(False))
        return False

    def current(self, stopped_early: bool) -> ChunkRun[S]:
        acc, done, n_folded = self.state
        return ChunkRun(acc, done, n_folded, stopped_early)

    def stopped(self) -> ChunkRun[S]:
        """The run as ``should_stop`` ended it (early, unless at the last chunk)."""
        return self.current(self.state[2] < self.n_chunks)

    def partial(self) -> ChunkRun[S] | None:
        return None if self.state[0] is None else self.current(True)


def _fold_in_turn(
    task: Callable[[np.random.Generator, int], S],
    plan: ChunkPlan,
    entropy: int,
    point: int,
    first: int,
    folding: Folding[S],
) -> ChunkRun[S]:
    """Chunks ``first``... run one after the other in this thread."""
    for i in range(first, plan.n_chunks):
        size = plan.size(i)
        if folding.absorb(task(chunk_rng(entropy, point, i), size), size):
            return folding.stopped()
    return folding.current(False)


def _fold_threaded(
    task: Callable[[np.random.Generator, int], S],
    plan: ChunkPlan,
    entropy: int,
    point: int,
    first: int,
    folding: Folding[S],
    workers: int,
) -> ChunkRun[S]:
    """Chunks ``first``... run on ``workers`` threads, at most ``2 * workers`` ahead of the fold,
    folded here in chunk order (checkpoints are saved while the next chunks run)."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="simlab") as pool:
        pending: dict[int, Future] = {}
        next_submit = first
        try:
            for i in range(first, plan.n_chunks):
                while next_submit < plan.n_chunks and next_submit < i + 2 * workers:
                    rng = chunk_rng(entropy, point, next_submit)
                    pending[next_submit] = pool.submit(task, rng, plan.size(next_submit))
                    next_submit += 1
                if folding.absorb(pending.pop(i).result(), plan.size(i)):
                    return folding.stopped()
            return folding.current(False)
        finally:
            for future in pending.values():
                future.cancel()

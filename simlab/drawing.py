"""Drawing a run's figures in worker processes, while the run is still simulating.

Drawing is pure-Python matplotlib work that threads cannot share, and at the quick budget it
costs more CPU than the simulation; the simulation, for its part, leaves part of a core idle
(folding, Python between chunks). So the figure workers are started, and their imports, font
cache and mathtext parser warmed up, when the run starts, and each experiment's figures are
drawn as soon as its simulation ends, beside the next experiment's. An experiment whose figures
draw user claims waits for the verdicts (decided once every experiment is simulated: one Holm
family), so it is submitted after them.

Workers ignore Ctrl-C and SIGTERM (the parent decides what a signal means) and are killed
when the run stops; a figure is written under a hidden temporary name and renamed (see
:func:`simlab.figure_layout.save`), so a killed worker never leaves a half-written file that looks
complete.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from simlab import interrupts
from simlab.engine.progress import get_progress
from simlab.figures import draw
from simlab.fork_server import ensure_server, worker_context
from simlab.simulate import ExperimentRun, points_with_claims


def _warm_up() -> None:
    """Initializer of a figure worker: ignore signals, then pay the one-time costs of drawing
    (imports, the font cache, mathtext's parser, the Agg canvas) while the run simulates.

    A worker forked from the warmed fork server (:func:`worker_context`) finds all of that done
    and only sets its signals."""

    interrupts.ignore_in_worker()
    from threadpoolctl import threadpool_limits

    # for good (no context): a figure's theory curve never needs BLAS threads, and they spin
    # on a machine busy with the simulation
    threadpool_limits(limits=1, user_api="blas")
    import simlab.experiments  # noqa: F401  (every experiment's figure module)
    from simlab.figure_layout import PNG_DPI, _pyplot, figure_png

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.set_title(r"$\sigma^2_x\ \sqrt{\lambda}$ warm-up")
    ax.errorbar([0, 1], [0, 1], yerr=[0.1, 0.1], fmt="o")
    ax.legend(["x"])
    figure_png(fig, PNG_DPI)
    plt.close(fig)


def _draw_figure(
    experiment: Any, index: int, points: list, folder: Path, formats: tuple[str, ...]
) -> list[Path]:
    """Figure ``index`` of ``experiment`` (a top-level function, so a worker can run it)."""
    return draw([experiment.figures[index]], points, folder, formats)


def drawable_in_worker(experiment: Any) -> bool:
    """Whether a worker can import ``experiment``'s class to unpickle it: not when it lives in
    ``__main__`` (a notebook, a script read from stdin) or in a module registered by hand that
    no importer finds (an experiment loaded from a file, as the docs' example).

    Asked of every importer on ``sys.meta_path``, as a fresh interpreter would import it, not
    of ``sys.path`` alone: ``pip install -e .`` installs simlab as an import hook, not a path
    entry, and asking the path only had every figure of the installed ``simlab`` command drawn
    in the main process, after the simulation."""
    module = type(experiment).__module__
    if module == "__main__":
        return False
    return _importable_afresh(module.partition(".")[0])


def _importable_afresh(name: str) -> bool:
    """Whether an importer finds top-level module ``name`` (``sys.modules`` aside: a module
    registered there by hand is not importable in another process)."""
    if name in sys.builtin_module_names:
        return True
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            if find_spec(name, None) is not None:
                return True
        except (ImportError, ValueError, AttributeError):  # an importer that cannot say
            continue
    return False


#: below this many figures in a run, spawning workers (about a second of start-up each) costs
#: more than drawing them here
MIN_FIGURES_FOR_WORKERS = 3


def folder_names(names: Sequence[str]) -> list[str]:
    """One folder name per run (spaces become dashes); a name that comes again gets ``-2``,
    ``-3``... so that no run's figures overwrite another's."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        base = str(name).replace(" ", "-")
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def can_spawn() -> bool:
    """Whether a spawned worker can start: it re-imports ``__main__`` from its file, if it has one.

    ``python - < script`` and similar give ``__main__`` a file name that does not exist.
    """
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or Path(main_file).exists()


class FigureDrawer:
    """Draws the figures of a run's experiments into ``root`` (one folder per experiment when
    there are several), in ``workers`` processes (1: in this process, when :meth:`finish` is
    called).

    Use: :meth:`start`, then :meth:`submit` each finished experiment (in any order), then
    :meth:`finish` for the paths in run order; :meth:`stop` on any way out. ``drawn`` lists
    the figures finished so far (relative to ``root``), for a run folder marked partial.
    """

    def __init__(
        self,
        root: Path,
        formats: tuple[str, ...],
        experiments: Sequence[Any],
        workers: int,
        names: Sequence[str] | None = None,
    ) -> None:
        self.root = root
        self.formats = formats
        self.several = len(experiments) > 1
        self.folder_names = folder_names(names or [e.name for e in experiments])
        figures = sum(len(experiment.figures) for experiment in experiments)
        if figures < MIN_FIGURES_FOR_WORKERS or not can_spawn():
            workers = 1
        self.workers = min(workers, figures)
        self.drawn: list[str] = []
        self._pool: Any = None
        self._futures: list[tuple[tuple[int, int], Future]] = []
        self._in_turn: list[tuple[tuple[int, int], tuple]] = []
        self._paths: dict[tuple[int, int], list[Path]] = {}
        self._submitted: set[int] = set()
        self._stopped = False
        self._jobs: queue.SimpleQueue | None = None  # figures for the feeder thread
        self._feeder: threading.Thread | None = None
        self._feed_error: BaseException | None = None

    def start(self) -> None:
        """Start the workers and let them warm up while the run simulates (see
        :func:`worker_context` for how they start). Starting a worker waits for the fork
        server's warm-up (about a second), so a thread starts them and this returns at once."""
        if self.workers <= 1 or self._pool is not None or self._stopped:
            return
        from concurrent.futures import ProcessPoolExecutor

        context = worker_context()
        self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_warm_up)
        self._jobs = queue.SimpleQueue()
        forked = context.get_start_method() == "forkserver"
        self._feeder = threading.Thread(
            target=self._feed,
            args=(self._pool, self._jobs, forked),
            name="simlab-figures",
            daemon=True,
        )
        self._feeder.start()

    def _feed(self, pool: Any, jobs: queue.SimpleQueue, forked: bool) -> None:
        """The one thread that hands figures to the workers, so that the run never waits on a
        submission: it starts the workers first (one trivial task each: the pool starts its
        processes on submission), which waits for the fork server's warm-up, then submits each
        figure queued by :meth:`submit` until :meth:`finish` or :meth:`stop` queues None.

        SIGINT and SIGTERM are blocked in this thread: the workers (and the fork server, started
        from here unless it was already, :func:`~simlab.fork_server.ensure_server`) inherit the
        mask, so a Ctrl-C cannot reach one before its initializer (:func:`_warm_up`) has set it
        to ignore signals."""
        try:
            if forked:
                ensure_server()  # with the signals blocked (the resource tracker unblocks them)
            interrupts.block_in_this_thread()
            for _ in range(self.workers):
                pool.submit(int)
            while (item := jobs.get()) is not None:
                key, job = item
                future = pool.submit(_draw_figure, *job)
                future.add_done_callback(self._record_paths(key))
                self._futures.append((key, future))
        except BaseException as exc:  # a broken pool (BrokenProcessPool, a RuntimeError too):
            if not self._stopped:  # finish() raises it; after stop(), a refused submission
                self._feed_error = exc  # is expected

    def folder(self, index: int, run: ExperimentRun) -> Path:
        """Where experiment ``index``'s figures go (created on first use): a folder named as
        its entry in the run file (or its experiment), numbered when a name comes twice."""
        if not self.several:
            return self.root
        target = self.root / self.folder_names[index]
        target.mkdir(exist_ok=True)
        return target

    def submit(self, index: int, run: ExperimentRun) -> None:
        """Queue the figures of ``run``, experiment ``index`` of the run, unless they are
        queued already (an experiment with no points has none)."""
        if not run.points or index in self._submitted:
            return
        self._submitted.add(index)
        target = self.folder(index, run)
        points = points_with_claims(run)
        for figure in range(len(run.spec.experiment.figures)):
            job = (run.spec.experiment, figure, points, target, self.formats)
            if self._jobs is None or not drawable_in_worker(run.spec.experiment):
                self._in_turn.append(((index, figure), job))
            else:
                self._jobs.put(((index, figure), job))

    def _record_paths(self, key: tuple[int, int]) -> Any:
        def record(future: Future) -> None:
            if not future.cancelled() and future.exception() is None:
                self._done(key, future.result())

        return record

    def _done(self, key: tuple[int, int], paths: list[Path]) -> None:
        self._paths[key] = paths
        self.drawn.extend(str(p.relative_to(self.root)) for p in paths)

    def finish(self, quiet: bool) -> list[str]:
        """Wait for every figure submitted (drawing those left to this process); return the
        figure paths relative to ``root``, in run order."""
        if self._feeder is not None and self._jobs is not None:
            self._jobs.put(None)  # every figure is queued: the feeder submits them and ends
            self._feeder.join()
            if self._feed_error is not None:
                raise self._feed_error
        jobs = len(self._futures) + len(self._in_turn)
        with get_progress(not quiet and bool(jobs)) as progress:
            progress.start("drawing figures", jobs)
            progress.advance(sum(1 for _, f in self._futures if f.done()))
            for key, job in self._in_turn:
                self._done(key, _draw_figure(*job))
                progress.advance(1)
            for _, future in self._futures:
                if not future.done():
                    future.result()
                    progress.advance(1)
                future.result()  # a worker's exception is raised here
        self.stop(wait=True)
        return self.finished()

    def finished(self) -> list[str]:
        """The figures finished so far, relative to ``root``, in run order."""
        paths = dict(self._paths)  # a worker's callback may add one meanwhile
        return [str(p.relative_to(self.root)) for key in sorted(paths) for p in paths[key]]

    def stop(self, wait: bool = False) -> None:
        """Stop the workers; without ``wait``, now: cancel what has not started and kill the
        workers drawing (they ignore Ctrl-C, so they are not left to finish a figure nobody
        will wait for)."""
        pool, self._pool = self._pool, None
        self._stopped = True
        if pool is None:
            return
        if self._jobs is not None:
            self._jobs.put(None)  # the feeder ends (submitting to a pool shut down ends it too)
        if wait:
            pool.shutdown(wait=True)
            return
        # shutdown() drops the pool's reference to its processes: keep the dict (a worker the
        # feeder is starting meanwhile is added to it before shutdown() gets the pool's lock).
        # That lock waits for the feeder's submission, which can wait for the fork server's
        # warm-up: a second Ctrl-C meanwhile is held, not raised out of here, so the workers are
        # killed and the caller still publishes the partial folder.
        processes = getattr(pool, "_processes", None) or {}
        with interrupts.deferred():
            pool.shutdown(wait=False, cancel_futures=True)
            for process in list(processes.values()):
                try:
                    process.kill()
                    process.join(timeout=5)
                except (OSError, ValueError, AttributeError, AssertionError):
                    pass
        for temporary in self.root.rglob(".*.tmp.*"):  # a figure a killed worker was writing
            temporary.unlink(missing_ok=True)

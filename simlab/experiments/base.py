"""The experiment protocol: what every experiment declares, and the one way a point is run.

An experiment is one module: its parameters, its sampler (one chunk of samples -> mergeable
statistics), the theory it checks, and the data its figures draw. :meth:`Experiment.run_point` is
the same template for all of them:

    setup(point, setup_rng)      fixed parts of the model (a weight matrix, the support of a law)
    sampler(point, setup)        a picklable ``(rng, size) -> Stats`` for the engine
    ctx.run(sampler, ...)        chunks on the engine, folded in chunk order (--target-se here)
    stats.estimates()            what was measured, with standard errors
    predict(simulated)           what theory says (never computed by the sampler's own code)
    figure_data(simulated)       a frozen dataclass the experiment's figures draw

The engine knows nothing of dropout; the verdict machinery knows nothing of ReLUs. To add an
experiment, read ``docs/adding-an-experiment.md`` and copy ``dropout.py``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np

from simlab import interrupts
from simlab.engine.checkpoint import PointSlot, PointState
from simlab.engine.executor import ChunkPlan, ChunkRun, ChunkRunner, RunInterrupted, run_chunks
from simlab.engine.progress import NullProgress
from simlab.engine.seeding import setup_rng
from simlab.engine.stopping import ABSOLUTE, TargetSE
from simlab.figures import ClaimMark, FigureSpec, draw
from simlab.params import Param
from simlab.verdicts.estimates import (
    CountsEstimate,
    ExactEstimate,
    JointEstimate,
    Prediction,
    ScalarEstimate,
    VectorEstimate,
)

Estimate = ScalarEstimate | VectorEstimate | CountsEstimate | ExactEstimate
#: built-in predictions by quantity; a list when a quantity has several (each with a label)
Predictions = dict[str, Prediction | list[Prediction]]


class Stats(Protocol):
    """Mergeable statistics of some samples: what a sampler returns for one chunk."""

    def merge(self, other: Any) -> Any:
        """The statistics of both sample sets together (``self`` first, in chunk order)."""

    def estimates(self) -> Mapping[str, Estimate]:
        """Every measured quantity, with its uncertainty."""

    # Optional (experiments that declare ``joint_quantities``):
    #     def joint_estimates(self) -> JointEstimate | None
    # the scalar quantities' estimates with the covariance matrix of the estimates, from the
    # same per-sample features (delta method): what claims between measured quantities need.


StatsT = TypeVar("StatsT", bound=Stats)
SetupT = TypeVar("SetupT")
Sampler = Callable[[np.random.Generator, int], Any]


@dataclass(frozen=True)
class WrongClaim:
    """A known-wrong formula, tempting for a stated reason: the power library of ``calibrate``.

    ``params`` are values (over the budget's) at which the claim is meant, e.g. a small ``M``.
    """

    claim: str
    why: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Quantity:
    """A measured quantity: its name (used in claims), its kind, and what it means.

    ``target`` says how ``--target-se`` reads for it: ``absolute`` (the standard error itself) or
    ``relative`` (standard error over |estimate|). Quantities without a standard error
    (``distribution``, ``exact``) have none.
    """

    name: str
    #: statistical | distribution | exact, or descriptive (shown, never tested or targeted:
    #: a wall time, a condition number whose mean need not exist)
    kind: str
    description: str
    target: str = ABSOLUTE
    #: the claim name of the index of a per-entry quantity (``l`` for per-layer profiles)
    index: str = ""

    @property
    def has_target(self) -> bool:
        return self.kind == "statistical"


@dataclass(frozen=True)
class ConvergenceTrace:
    """Scalar estimates at geometrically spaced sample counts (a convergence figure's data)."""

    samples: tuple[int, ...]
    estimates: tuple[Mapping[str, ScalarEstimate], ...]


@dataclass(frozen=True)
class Simulated(Generic[SetupT, StatsT]):
    """One point after its simulation: what predictions and figure data are computed from."""

    point: Mapping[str, Any]
    setup: SetupT
    stats: StatsT
    estimates: Mapping[str, Estimate]
    n_samples: int
    #: the run's family-wise error rate (to judge what a negative control should do)
    alpha: float
    trace: ConvergenceTrace | None = None


@dataclass
class PointContext:
    """Everything a sweep point needs from the run: seeds, sizes, workers, progress."""

    entropy: int
    point_index: int
    samples: int
    chunk_size: int
    workers: int
    target_se: float | None = None
    alpha: float = 0.001
    progress: NullProgress = field(default_factory=NullProgress)
    #: what runs the chunks: threads here, or a Dask cluster (simlab.engine.dask_backend); the
    #: numbers are the same either way, so experiments never know which
    chunk_runner: ChunkRunner = run_chunks
    #: set when Ctrl-C stopped this point's sampling part-way (see :meth:`run`)
    interrupted: bool = False
    #: where an earlier, interrupted run of this point got to (``simlab run --resume``)
    resume: PointState | None = None
    #: where this point's state is recorded for a later resume (None: nowhere)
    checkpoint: PointSlot | None = None
    #: whether the run draws figures: without (--no-plots, calibrate) no point computes its
    #: figure data, nor the studies only a figure shows
    figures: bool = True

    def setup_rng(self) -> np.random.Generator:
        """The generator for this point's fixed parts (drawn once, before any chunk)."""
        return setup_rng(self.entropy, self.point_index)

    def stop_rule(self, quantities: tuple[Quantity, ...]) -> TargetSE | None:
        """``--target-se`` for these quantities, or None when it was not asked for."""
        targets = {q.name: q.target for q in quantities if q.has_target}
        if self.target_se is None or not targets:
            return None  # nothing to stop on: never compute estimates at every chunk for it
        return TargetSE(self.target_se, targets, min_samples=2 * self.chunk_size)

    def run(
        self,
        sampler: Sampler,
        label: str,
        *,
        stop: TargetSE | None = None,
        on_fold: Callable[[Any, int], None] | None = None,
    ) -> ChunkRun:
        """Run ``sampler`` over this point's chunks, stopping early when ``stop`` is reached.

        On Ctrl-C the chunks folded so far are returned (and ``interrupted`` is set), so the
        point is still evaluated on what was simulated: the run is then kept as partial, its
        standard errors those of the samples it has. With nothing folded yet, the interruption
        propagates.

        With :attr:`resume`, the point goes on from the state an interrupted run saved (a
        finished point is not simulated again); an ``on_fold`` observer with ``state()`` and
        ``restore(state)`` methods gets back what it had recorded by then. With
        :attr:`checkpoint`, the state is recorded when a save is due, when the point ends,
        and when it is interrupted (the run saves that last one as it stops).
        """
        should_stop = None
        if stop is not None:

            def should_stop(acc: Any, n: int) -> bool:
                return stop.reached(acc.estimates(), n)

        def observed() -> Any:
            return on_fold.state() if hasattr(on_fold, "state") else None  # type: ignore[union-attr]

        slot = self.checkpoint
        save = None
        if slot is not None:

            def save(run: ChunkRun) -> None:
                if slot.due():  # one clock reading per chunk; pickling only when due
                    slot.record(PointState(run, False, observed()))
                    slot.maybe_save()

        start = None
        if self.resume is not None:
            start = self.resume.run
            if self.resume.observer is not None and hasattr(on_fold, "restore"):
                on_fold.restore(self.resume.observer)  # type: ignore[union-attr]
        self.progress.start(label, self.samples)
        if self.resume is not None and self.resume.finished:
            self.progress.advance(start.n_samples)  # type: ignore[union-attr]
            return start  # type: ignore[return-value]
        try:
            run = self.chunk_runner(
                sampler,
                ChunkPlan(self.samples, self.chunk_size),
                entropy=self.entropy,
                point=self.point_index,
                workers=self.workers,
                progress=self.progress,
                should_stop=should_stop,
                on_fold=on_fold,
                start=start,
                checkpoint=save,
            )
        except RunInterrupted as exc:
            if exc.partial is None:
                raise
            self.interrupted = True
            if slot is not None:
                slot.record(PointState(exc.partial, False, observed()))
            return exc.partial
        if slot is not None:
            slot.record(PointState(run, True, observed()))
            slot.maybe_save()
        return run


@dataclass
class PointResult:
    """What one sweep point produced."""

    params: dict[str, Any]
    estimates: Mapping[str, Estimate]
    predictions: Predictions
    n_samples: int
    seconds: float
    #: the experiment's figure data for this point (a frozen dataclass of its figures module)
    figure: Any = None
    #: the user claims at this point with their verdicts, for the figures to draw (filled once
    #: the run is decided; see :func:`simlab.simulate.points_with_claims`)
    claims: tuple[ClaimMark, ...] = ()
    #: the scalar estimates with their joint covariance (experiments with ``joint_quantities``)
    joint: JointEstimate | None = None


class _TraceRecorder:
    """Keeps the scalar estimates at sample counts ~1.2x apart (log(samples) entries in all)."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.next_mark = 0.0
        self.points: list[tuple[int, dict[str, ScalarEstimate]]] = []

    def __call__(self, acc: Any, n: int) -> None:
        if n < self.next_mark and n < self.samples:
            return
        self.next_mark = n * 1.2
        scalars = {k: e for k, e in acc.estimates().items() if isinstance(e, ScalarEstimate)}
        self.points.append((n, scalars))

    def state(self) -> tuple[float, list[tuple[int, dict[str, ScalarEstimate]]]]:
        """What was recorded so far (a resumed run goes on from it)."""
        return self.next_mark, list(self.points)

    def restore(self, state: tuple[float, list[tuple[int, dict[str, ScalarEstimate]]]]) -> None:
        self.next_mark, points = state
        self.points = list(points)

    def trace(self) -> ConvergenceTrace:
        return ConvergenceTrace(
            tuple(n for n, _ in self.points), tuple(est for _, est in self.points)
        )


class Experiment(Generic[SetupT, StatsT]):
    """Base class of all experiments (see :mod:`simlab.experiments.dropout` for an example).

    A subclass declares the class attributes below and implements :meth:`setup`,
    :meth:`sampler` and :meth:`predict` (and :meth:`figure_data` when it has figures).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]
    quantities: ClassVar[tuple[Quantity, ...]]
    default_samples: ClassVar[int]
    default_chunk_size: ClassVar[int] = 8192
    #: names a claim may use beyond the parameters (``k`` for pmfs, say)
    claim_names: ClassVar[tuple[str, ...]] = ()
    #: functions a claim may call beyond the base table (``sum`` over a batch, say)
    claim_functions: ClassVar[Mapping[str, Callable]] = {}
    #: per budget: parameter values (sweeps allowed) and samples used by ``simlab check``
    budgets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: the built-in claims' formulas in words, by quantity, for tables and reports
    formulas: ClassVar[Mapping[str, str]] = {}
    #: known-wrong formulas that a run at the standard budget must reject (see ``calibrate``)
    known_wrong: ClassVar[tuple[WrongClaim, ...]] = ()
    #: the figures, as data: each has a file stem, a caption stating its claim, a renderer
    figures: ClassVar[tuple[FigureSpec, ...]] = ()
    #: keep a convergence trace of the scalar estimates (for a convergence figure)
    traced: ClassVar[bool] = False
    #: scalar quantities whose joint covariance the statistics estimate (``joint_estimates()``):
    #: a claim on one of them may name the others (``second_after=second_before/(1-p)``)
    joint_quantities: ClassVar[tuple[str, ...]] = ()

    # -- declared per experiment -------------------------------------------------------------
    def validate(self, point: dict[str, Any], where: Callable[[str], str]) -> None:
        """Raise SimlabInputError for combinations of values that are not allowed.

        ``where(name)`` names the option or key (``--M`` or ``file.yaml: M``) for messages.
        """

    def max_samples(self, point: dict[str, Any]) -> tuple[int, str] | None:
        """The most samples a point may take and why, when memory grows with them (None: no cap).

        Most experiments fold chunks into fixed-size statistics and need none.
        """
        return None

    def memory_bytes(self, point: Mapping[str, Any], chunk_size: int) -> tuple[int, int] | None:
        """Peak memory of a point: (bytes of its setup, bytes one chunk in flight holds).

        The run refuses a point, before any work, whose setup plus ``2 x workers`` chunks in
        flight would not fit the memory budget (see :mod:`simlab.runspec`). None: always small.
        """
        return None

    def claim_trial_values(self, point: Mapping[str, Any], quantity: str) -> dict[str, Any]:
        """Stand-ins, of the right shapes, for every name a claim on ``quantity`` may use.

        A claim is evaluated on these before the simulation, so a shape mismatch, a complex
        result or a name unset at this point is refused up front. Values are arbitrary (ones);
        only shapes and presence matter. Experiments whose claims use arrays beyond ``k`` and
        the per-entry index extend this.
        """
        values = {k: _numeric(v) for k, v in point.items()}
        values = {k: v for k, v in values.items() if v is not None}
        spec = next((q for q in self.quantities if q.name == quantity), None)
        if spec is not None and spec.kind == "distribution":
            values["k"] = np.arange(4.0)
        if spec is not None and spec.index:
            values[spec.index] = np.arange(1.0, 4.0)
        # measured quantities a claim may name (a relation): scalars, as after the run
        values.update({name: 1.0 for name in self.relation_quantities(point)})
        return values

    def relation_quantities(self, point: Mapping[str, Any]) -> tuple[str, ...]:
        """The :attr:`joint_quantities` estimated (with their covariance) at this point.

        An experiment where some points have none (constant features, say) narrows this.
        """
        return self.joint_quantities

    def label(self, point: Mapping[str, Any]) -> str:
        """What the progress bar calls this point."""
        return self.name

    def setup(self, point: Mapping[str, Any], rng: np.random.Generator) -> SetupT:
        """The fixed parts of the model at this point, drawn from ``rng`` (the point's setup
        stream); ``None`` when there are none."""
        return None  # type: ignore[return-value]

    def sampler(self, point: Mapping[str, Any], setup: SetupT) -> Sampler:
        """A picklable ``(rng, size) -> Stats`` simulating ``size`` independent samples."""
        raise NotImplementedError

    def predict(self, sim: Simulated[SetupT, StatsT]) -> Predictions:
        """The built-in predictions at this point, by quantity."""
        raise NotImplementedError

    def figure_data(self, sim: Simulated[SetupT, StatsT]) -> Any:
        """What this point contributes to the figures (a frozen dataclass), or None.

        Only called when the run draws figures: a study that only a figure shows (drawing from
        :func:`simlab.engine.seeding.study_rng`) is made here, not in :meth:`setup`, so that a
        run without figures does not pay for it."""
        return None

    # -- the template ------------------------------------------------------------------------
    def run_point(self, point: dict[str, Any], ctx: PointContext) -> PointResult:
        """Simulate one sweep point and return its estimates, predictions and figure data."""
        start = time.perf_counter()
        setup = self.setup(point, ctx.setup_rng())
        recorder = _TraceRecorder(ctx.samples) if self.traced else None
        run = ctx.run(
            self.sampler(point, setup),
            self.label(point),
            stop=ctx.stop_rule(self.quantities),
            on_fold=recorder,
        )
        # After a Ctrl-C the run is stopping: the point is evaluated on what it has with further
        # signals held, as the folder is written. A second Ctrl-C in the middle of a lazy import
        # (scipy.stats, 0.7 s, is first needed here) left a half-initialised module that every
        # later import tripped over: the run ended in an internal error, not a partial folder.
        with interrupts.deferred() if ctx.interrupted else contextlib.nullcontext():
            joint = None
            if self.joint_quantities and hasattr(run.stats, "joint_estimates"):
                joint = run.stats.joint_estimates()
            sim = Simulated(
                point=point,
                setup=setup,
                stats=run.stats,
                estimates=run.stats.estimates(),
                n_samples=run.n_samples,
                alpha=ctx.alpha,
                trace=recorder.trace() if recorder else None,
            )
            return PointResult(
                params=dict(point),
                estimates=sim.estimates,
                predictions=self.predict(sim),
                n_samples=run.n_samples,
                seconds=time.perf_counter() - start,
                # a point interrupted by Ctrl-C is never drawn: its run stops undrawn
                figure=self.figure_data(sim) if ctx.figures and not ctx.interrupted else None,
                joint=joint,
            )

    def render_figures(
        self, points: list[PointResult], folder: Path, formats: tuple[str, ...]
    ) -> list[Path]:
        """Draw this experiment's figures into ``folder``; return the files written."""
        return draw(self.figures, points, folder, formats)

    def claim_values(self, result: PointResult, quantity: str) -> dict[str, Any]:
        """Values of the names a claim on ``quantity`` may use at this point."""
        values = {k: _numeric(v) for k, v in result.params.items()}
        values = {k: v for k, v in values.items() if v is not None}
        estimate = result.estimates.get(quantity)
        if isinstance(estimate, CountsEstimate):
            values["k"] = estimate.support.astype(float)
        if isinstance(estimate, ExactEstimate):
            values.update(estimate.names)
        if isinstance(estimate, VectorEstimate):
            values[estimate.index_name] = estimate.index.astype(float)
        if result.joint is not None:  # the measured quantities a relation names
            values.update(zip(result.joint.names, map(float, result.joint.values), strict=True))
        return values


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool | int | float):
        return float(value)
    return None

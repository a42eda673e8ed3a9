"""What every experiment provides, and the shared per-point context the runner hands it.

An experiment is one module: its parameters, its sampler (one chunk of samples -> mergeable
statistics), the theory it checks, and its figures. The engine knows nothing of dropout; the
verdict machinery knows nothing of ReLUs. To add an experiment, copy ``dropout.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from simlab.engine.executor import ChunkPlan, ChunkRun, RunInterrupted, run_chunks
from simlab.engine.progress import NullProgress
from simlab.params import Param
from simlab.verdicts.estimates import (
    CountsEstimate,
    ExactEstimate,
    Prediction,
    ScalarEstimate,
    VectorEstimate,
)

Estimate = ScalarEstimate | VectorEstimate | CountsEstimate | ExactEstimate


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
    """A measured quantity: its name (used in claims), its kind, and what it means."""

    name: str
    kind: str  # statistical | distribution | exact
    description: str


@dataclass
class PointContext:
    """Everything a sweep point needs from the run: seeds, sizes, workers, progress."""

    entropy: int
    point_index: int
    samples: int
    chunk_size: int
    workers: int
    target_se: float | None = None
    #: the run's family-wise error rate (to judge what a negative control should do)
    alpha: float = 0.001
    progress: NullProgress = field(default_factory=NullProgress)
    #: set when Ctrl-C stopped this point's sampling part-way (see :meth:`run`)
    interrupted: bool = False

    def run(
        self,
        sampler: Callable[[np.random.Generator, int], Any],
        label: str,
        **options: Any,
    ) -> ChunkRun:
        """Run ``sampler`` over this point's chunks (``options`` go to ``run_chunks``).

        On Ctrl-C the chunks folded so far are returned (and ``interrupted`` is set), so the
        point is still evaluated on what was simulated: the run is then kept as partial, its
        standard errors those of the samples it has. With nothing folded yet, the interruption
        propagates.
        """
        self.progress.start(label, self.samples)
        try:
            return run_chunks(
                sampler,
                ChunkPlan(self.samples, self.chunk_size),
                entropy=self.entropy,
                point=self.point_index,
                workers=self.workers,
                progress=self.progress,
                **options,
            )
        except RunInterrupted as exc:
            if exc.partial is None:
                raise
            self.interrupted = True
            return exc.partial


@dataclass
class PointResult:
    """What one sweep point produced."""

    params: dict[str, Any]
    estimates: dict[str, Estimate]
    #: built-in predictions by quantity; a list when a quantity has several (each with a label)
    predictions: dict[str, Prediction | list[Prediction]]
    n_samples: int
    seconds: float
    extras: dict[str, Any] = field(default_factory=dict)


class Experiment(ABC):
    """Base class of all experiments (see :mod:`simlab.experiments.dropout` for an example)."""

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
    #: by figure file stem: the heading of the figure in the report (the claim and its formula)
    figure_captions: ClassVar[Mapping[str, str]] = {}

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def quantity(self, name: str) -> Quantity | None:
        return next((q for q in self.quantities if q.name == name), None)

    def validate(self, point: dict[str, Any], where: Callable[[str], str]) -> None:  # noqa: B027
        """Raise SimlabInputError for combinations of values that are not allowed.

        ``where(name)`` names the option or key (``--M`` or ``file.yaml: M``) for messages.
        """

    def max_samples(self, point: dict[str, Any]) -> tuple[int, str] | None:
        """The most samples a point may take and why, when memory grows with them (None: no cap).

        Most experiments fold chunks into fixed-size statistics and need none.
        """
        return None

    @abstractmethod
    def run_point(self, point: dict[str, Any], ctx: PointContext) -> PointResult:
        """Simulate one sweep point and return its estimates and built-in predictions."""

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
        return values

    def figures(
        self, points: list[PointResult], folder: Path, formats: tuple[str, ...]
    ) -> list[Path]:
        """Render this experiment's figures into ``folder``; return the files written."""
        return []


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None

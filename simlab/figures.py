"""Figures as data: each experiment lists its figures, and one drawer renders any of them.

A :class:`FigureSpec` names a figure's file stem, the caption the report shows above it (the claim
it illustrates and its formula) and the function that draws it from the run's points. The run
folder and the report read stems and captions from here, so a figure can never go without a
caption. Nothing here imports matplotlib: the renderers do, when they run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FigureSpec:
    """One figure of an experiment.

    ``render(points)`` draws it from the run's :class:`~simlab.experiments.base.PointResult` list
    and returns the matplotlib figure, or None when these points cannot show it (a sweep figure
    of a single point, say). ``quantities`` are those whose user claims it draws (each point
    carries its claims in ``PointResult.claims``); a claim on a quantity no figure lists is
    not drawn, and the run says so (:func:`undrawn_quantities`).
    """

    stem: str
    caption: str
    render: Callable[[Sequence[Any]], Any]
    quantities: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClaimMark:
    """A user claim at one point, as the figures draw it (picklable: figures are drawn in
    worker processes).

    ``value`` is what the claim predicts there: a float for a scalar quantity, an array over the
    layer index for a profile, over the support ``k`` for a pmf. ``verdict`` is the check's
    (None when the run was not decided).
    """

    number: int
    quantity: str
    expression: str
    value: Any
    verdict: str | None
    expect: str = "pass"


def draw(
    specs: Sequence[FigureSpec], points: Sequence[Any], folder: Path, formats: tuple[str, ...]
) -> list[Path]:
    """Render every figure of ``specs`` into ``folder`` in each format; return the files."""
    from simlab.figure_layout import save

    paths: list[Path] = []
    for spec in specs:
        figure = spec.render(points)
        if figure is not None:
            paths.extend(save(figure, folder, spec.stem, formats))
    return paths


def undrawn_quantities(specs: Sequence[FigureSpec], quantities: Sequence[str]) -> list[str]:
    """The claimed ``quantities`` that none of ``specs`` draws, each once, in order."""
    drawn = {q for spec in specs for q in spec.quantities}
    return list(dict.fromkeys(q for q in quantities if q not in drawn))

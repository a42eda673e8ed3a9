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
    of a single point, say).
    """

    stem: str
    caption: str
    render: Callable[[Sequence[Any]], Any]


def draw(
    specs: Sequence[FigureSpec], points: Sequence[Any], folder: Path, formats: tuple[str, ...]
) -> list[Path]:
    """Render every figure of ``specs`` into ``folder`` in each format; return the files."""
    from simlab.plotting import save

    paths: list[Path] = []
    for spec in specs:
        figure = spec.render(points)
        if figure is not None:
            paths.extend(save(figure, folder, spec.stem, formats))
    return paths


def caption_of(specs: Sequence[FigureSpec], stem: str) -> str | None:
    """The caption of the figure saved as ``stem``, if ``specs`` has it."""
    return next((s.caption for s in specs if s.stem == stem), None)

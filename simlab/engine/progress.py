"""A progress bar that is a no-op when there is nothing to show (emcee's ``get_progress_bar``).

On a terminal a run shows the point it simulates (its samples, elapsed time and ETA) and, when it
has several points, a second bar for the whole run with the run's ETA: the ETA of a long sweep
(five initialisations of a deep network, say) is that of the run, not of its current point.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text


class NullProgress:
    """Does nothing; callers never branch on whether a bar is shown."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def plan(self, points: int, samples: int) -> None:
        """The whole run ahead: ``points`` points of ``samples`` samples in all (at most: a
        point may stop early under ``--target-se``)."""

    def start(self, description: str, total: int) -> None:
        """Begin a new task of ``total`` samples."""

    def advance(self, n: int) -> None:
        """Record ``n`` more samples done."""


class AverageTimeRemaining(ProgressColumn):
    """Time left at the task's average rate since it began.

    Rich's own estimate uses the rate of the last 30 s, which a few coarse chunks (64 deep
    networks each, say) make jump: it read 19 s left, a third of what was. The average rate is
    steady, and for a run whose points are alike it is the honest one.
    """

    def render(self, task: Task) -> Text:
        if not task.completed or not task.elapsed or task.total is None:
            return Text("-:--:--", style="progress.remaining")
        left = task.elapsed * max(task.total - task.completed, 0) / task.completed
        hours, rest = divmod(int(left + 0.5), 3600)
        return Text(f"{hours}:{rest // 60:02d}:{rest % 60:02d}", style="progress.remaining")


class RichProgress(NullProgress):
    """A rich bar with ETA on stderr (and one for the whole run, after :meth:`plan`).

    The counts, times and ETA never shrink: on a narrow terminal the description is cut with
    an ellipsis instead.
    """

    def __init__(self) -> None:
        fixed = {"no_wrap": True}
        self._progress = Progress(
            TextColumn(
                "{task.description}",
                table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1, min_width=8),
            ),
            BarColumn(bar_width=20),
            MofNCompleteColumn(table_column=Column(**fixed)),
            TimeElapsedColumn(table_column=Column(**fixed)),
            TextColumn("eta", table_column=Column(**fixed)),
            AverageTimeRemaining(table_column=Column(**fixed)),
            console=Console(stderr=True),
            transient=True,
            expand=True,
        )
        self._task: int | None = None
        self._run: int | None = None
        self._points = 0
        self._point = 0
        self._point_total = 0
        self._point_done = 0

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def plan(self, points: int, samples: int) -> None:
        if points > 1 and samples > 0:
            self._points = points
            self._run = self._progress.add_task(self._run_text(), total=samples)

    def _run_text(self) -> str:
        return f"whole run: point {max(self._point, 1)} of {self._points}"

    def start(self, description: str, total: int) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            if self._run is not None:  # a point that stopped early: its budget is spent
                self._progress.advance(self._run, max(0, self._point_total - self._point_done))
        self._point += 1
        self._point_total, self._point_done = total, 0
        if self._run is not None:
            self._progress.update(self._run, description=self._run_text())
        self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)
            self._point_done += n
            if self._run is not None:
                self._progress.advance(self._run, n)


def get_progress(display: bool) -> NullProgress:
    """A rich bar on stderr when ``display`` and stderr is a terminal, else a no-op."""
    if display and sys.stderr.isatty():
        return RichProgress()
    return NullProgress()

"""Execute run specifications end to end: simulate, decide, write the run folder, report.

Shared by every command that runs something (an experiment, ``run``, ``check``), so they all
produce the same folder, table and JSON.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from simlab import interrupts
from simlab.console import (
    checks_table,
    notes,
    printable,
    safe,
    stderr_console,
    summary_counts,
    summary_line,
)
from simlab.drawing import FigureDrawer, folder_names
from simlab.engine.checkpoint import (
    FILE_NAME,
    Checkpointer,
    interval_from_environment,
)
from simlab.engine.cluster import describe_threads
from simlab.engine.progress import get_progress
from simlab.errors import SimlabInputError
from simlab.figures import undrawn_quantities
from simlab.output import (
    SCHEMA_VERSION,
    RunFolder,
    versions,
    write_checks_csv,
    write_json,
    write_text,
    yaml_text,
)
from simlab.report import write_report
from simlab.resume import Resume, config_document
from simlab.runspec import RunSpec
from simlab.simulate import ExperimentRun, decide_runs, simulate
from simlab.verdicts import format as fmt
from simlab.verdicts.checks import Check
from simlab.verdicts.estimates import ScalarEstimate, VectorEstimate


def results_document(
    runs: list[ExperimentRun],
    started: datetime,
    seconds: float,
    complete: bool,
    engine: dict[str, Any] | None = None,
    resume: Resume | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """The content of results.json (``engine``: what ran the chunks, workers and versions).

    A resumed run's samples per second count only the samples it simulated itself (its wall
    time is its own); ``resumed`` says from where and how many samples it took over.
    """
    checks = [c for run in runs for c in run.checks]
    samples = sum(run.samples_done for run in runs)
    restored = resume.samples_restored if resume is not None else [0] * len(runs)
    experiments = []
    folders = folder_names([run.spec.name or run.spec.experiment.name for run in runs])
    for run, before, folder in zip(runs, restored, folders, strict=False):
        points = []
        for pt in run.points:
            estimates = {}
            for name, est in pt.estimates.items():
                if isinstance(est, ScalarEstimate):
                    estimates[name] = {"value": est.value, "se": est.se, "n": est.n}
                elif isinstance(est, VectorEstimate):
                    estimates[name] = {
                        est.index_name: est.index,
                        "value": est.values,
                        "se": est.se,
                        "n": est.n,
                    }
            points.append(
                {
                    "params": pt.params,
                    "n_samples": pt.n_samples,
                    "seconds": round(pt.seconds, 4),
                    "estimates": estimates,
                }
            )
        experiments.append(
            {
                "experiment": run.spec.experiment.name,
                # where its figures are when the run has several experiments
                "figure_folder": folder if len(runs) > 1 else "",
                # what the report shows about it, so the report needs only this file
                "summary": run.spec.experiment.summary,
                "figure_captions": {f.stem: f.caption for f in run.spec.experiment.figures},
                "seed": run.spec.seed,
                "samples": run.spec.samples,
                "samples_done": run.samples_done,
                "wall_time": round(run.seconds, 4),
                "samples_per_second": (
                    (run.samples_done - before) / run.seconds if run.seconds else None
                ),
                "points": points,
            }
        )
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "status": "complete" if complete else "partial",
        "versions": versions(),
        "engine": engine or describe_threads(max((run.spec.workers for run in runs), default=1)),
        "command": command if command is not None else ["simlab", *sys.argv[1:]],
        "started": started.isoformat(timespec="seconds"),
        "seed": runs[0].spec.seed if len(runs) == 1 else [r.spec.seed for r in runs],
        "alpha": runs[0].spec.alpha,
        "samples": samples,
        "wall_time": round(seconds, 4),
        "samples_per_second": (
            (samples - sum(restored[: len(runs)])) / seconds if seconds else None
        ),
        "summary": summary_counts(checks),
        "experiments": experiments,
        # each check's record, and its words as the console, the report and checks.csv show them
        "checks": [{**c.as_dict(), "text": fmt.row(c)} for c in checks],
    }
    if resume is not None:
        doc["resumed"] = {
            "from": str(resume.folder),
            "samples_restored": sum(restored),
        }
    return doc


def partial_note(
    specs: list[RunSpec],
    runs: list[ExperimentRun],
    why: str,
    folder: Path,
    written: list[str] | None = None,
    resumable: bool = False,
) -> str:
    """The PARTIAL note of an unfinished run: why, what was done per experiment, how to go on.

    ``runs`` are the experiments that started (in ``specs`` order); ``folder`` is where the
    run is published; ``written`` lists the files the run folder holds; ``resumable``: it
    holds a resume state (``simlab run --resume``).
    """
    lines = [f"This run did not finish: {why}.", ""]
    lines.append("What was done:")
    for index, spec in enumerate(specs):
        points = spec.points()
        planned = spec.samples * len(points)
        name = spec.experiment.name
        if index >= len(runs):
            lines.append(f"- {name}: not started (0 of {len(points)} points)")
            continue
        run = runs[index]
        done = len(run.points)
        text = (
            f"- {name}: {done} of {len(points)} points simulated, "
            f"{run.samples_done:,} of {planned:,} samples folded"
        )
        if not run.complete and run.points and run.points[-1].n_samples < spec.samples:
            last = run.points[-1]
            text += (
                f" (point {done} was interrupted after {last.n_samples:,} of "
                f"{spec.samples:,} samples; its checks use what it had)"
            )
        elif not run.complete and done < len(points):
            text += f" (point {done + 1} was interrupted before a chunk was folded; it is dropped)"
        lines.append(text)
    if written is not None:
        lines += ["", "Files: " + (", ".join(written) if written else "none")]
    config = folder / "config.yaml"
    if resumable:
        lines += [
            "",
            "To go on from where it stopped (the checks are then those of an uninterrupted run",
            f"with the same seed; {FILE_NAME} holds every point's folded chunks):",
            "",
            f"    simlab run --resume {shlex.quote(str(folder))}",
        ]
    lines += [
        "",
        "To run it again (from the start, with the same seed, so the finished points repeat",
        "the same numbers):",
        "",
        f"    simlab run {shlex.quote(str(config))}",
    ]
    return "\n".join(lines) + "\n"


def _write_report(folder: RunFolder, title: str) -> None:
    """report.html, written under a temporary name and renamed (never a truncated page)."""
    tmp = folder.path / f".report.{os.getpid()}.tmp"
    try:
        write_report([folder.path], tmp, title, shown_as=[str(folder.final)])
        os.replace(tmp, folder.path / "report.html")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _files(root: Path) -> list[str]:
    """The files of a run folder (relative, sorted; hidden temporary files left out)."""
    try:
        return sorted(
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".") and p.name != "PARTIAL"
        )
    except OSError:
        return []


def execute(
    specs: list[RunSpec],
    *,
    label: str,
    out: Path | None,
    formats: tuple[str, ...],
    plots: bool,
    as_json: bool,
    quiet: bool,
    title: str | None = None,
    runner: Any = None,
    resume: Resume | None = None,
    strict: bool = False,
) -> int:
    """Run ``specs`` as one run (one Holm family, one folder). Returns the exit status
    (:func:`exit_status`; ``strict``: an undecided check gives 1 too).

    The destination is checked and locked first (:meth:`RunFolder.open`): a problem with it is
    an input error before any simulation. Then the specs are simulated, their figures drawn
    beside the simulation (:mod:`simlab.drawing`), and the folder written in order of value
    (:meth:`_Writing.write`). results.json says ``"status": "partial"`` until everything is
    written; an interruption (Ctrl-C or SIGTERM) at any point publishes ``<name>_partial``
    with what was done and a PARTIAL note (:func:`partial_note`). A file system error while
    writing (a full disk) ends with one line that says where the saved files are. ``runner``
    runs the chunks on a Dask cluster (:mod:`simlab.engine.cluster`); None: threads.

    While it simulates, the run keeps every point's state in ``checkpoint.simlab`` (saved
    every few seconds, and as it stops), so an interrupted run can go on with
    ``simlab run --resume`` (``resume``: the run it goes on with, whose folder it replaces once
    published). A complete run removes the file.
    """
    console = stderr_console()
    title = title or f"simlab {label}"
    started = datetime.now()
    t0 = time.perf_counter()
    run_versions = versions()
    config_text = yaml_text(config_document(specs))
    folder = RunFolder(label, out).open()  # the destination is checked before any work
    checkpoint = Checkpointer(
        folder.path / FILE_NAME,
        {
            "versions": run_versions,
            "label": label,
            "title": title,
            "points_per_run": [len(spec.points()) for spec in specs],
            "config": config_text,
        },
        blobs=resume.blobs if resume is not None else None,
        summary=resume.summary if resume is not None else None,
        interval=interval_from_environment(),
    )
    drawer = _drawer(folder, specs, formats) if plots else None
    runs, complete = _simulate_all(specs, folder, checkpoint, drawer, runner, resume, quiet, t0)
    writing = _Writing(
        folder,
        specs,
        runs,
        started,
        time.perf_counter() - t0,
        title,
        config_text,
        checkpoint=checkpoint,
        resume=resume,
        engine=runner.describe() if runner is not None else None,
        drawer=drawer,
    )
    interrupted = None if complete else interrupts.exit_status()
    if complete and not quiet:
        # the verdicts are shown as soon as they are decided, while the last figures draw
        writing.on_decided = lambda: _print_checks(writing, plots)
    try:
        writing.write(complete, quiet)
    except KeyboardInterrupt as exc:
        interrupted = interrupts.exit_status(exc)
        console.print(
            f"[bold yellow]interrupted ({interrupts.describe(interrupted)}) while "
            f"{writing.stage}: what was done is in {safe(folder.final)}[/]"
        )
        return interrupted or 130
    except OSError as exc:
        _print_write_error(folder, writing.stage, exc)
        return 1
    _print_outcome(writing, as_json, quiet, plots)
    if interrupted is not None:
        console.print(
            f"[bold yellow]interrupted ({interrupts.describe(interrupted)}): "
            "the run folder is marked partial (see its PARTIAL note)[/]"
        )
        return interrupted
    return exit_status(writing.checks, strict)


def _drawer(folder: RunFolder, specs: list[RunSpec], formats: tuple[str, ...]) -> FigureDrawer:
    """The run's figure drawer: one worker process per core the run uses."""
    return FigureDrawer(
        folder.path,
        formats,
        [spec.experiment for spec in specs],
        max(spec.workers for spec in specs),
        names=[spec.name or spec.experiment.name for spec in specs],
    )


def _simulate_all(
    specs: list[RunSpec],
    folder: RunFolder,
    checkpoint: Checkpointer,
    drawer: FigureDrawer | None,
    runner: Any,
    resume: Resume | None,
    quiet: bool,
    t0: float,
) -> tuple[list[ExperimentRun], bool]:
    """Simulate ``specs`` in turn; return the runs and whether they all finished.

    Each experiment's figures go to ``drawer`` as soon as it is simulated, unless they draw
    user claims (their verdicts come once every experiment is simulated: one Holm family).
    A Ctrl-C stops the simulation (the runs so far are returned); any other failure removes
    the folder.
    """
    runs: list[ExperimentRun] = []
    try:
        if drawer is not None:
            drawer.start()  # the workers warm up while the first experiment simulates
        try:
            # at once: a run killed outright at any moment leaves a folder it can resume from
            checkpoint.save()
        except OSError as exc:
            raise SimlabInputError(
                f"--out: {str(folder.final)!r} cannot be written: {exc.strerror or exc}"
            ) from None
        if resume is not None:
            folder.supersedes = resume.folder  # the new folder holds all it had, from now on
        with get_progress(not quiet) as progress:
            points = [len(spec.points()) for spec in specs]
            progress.plan(
                sum(points), sum(n * s.samples for n, s in zip(points, specs, strict=True))
            )
            for index, spec in enumerate(specs):
                run = simulate(
                    spec, progress, runner, checkpoint, index, figures=drawer is not None
                )
                runs.append(run)
                if not run.complete:
                    return runs, False
                if drawer is not None and not spec.claims:
                    drawer.submit(index, run)
    except KeyboardInterrupt:  # outside the engine's chunks (a point's set-up, say)
        if len(runs) < len(specs):  # the experiment it stopped keeps no point
            runs.append(ExperimentRun(specs[len(runs)], [], [], time.perf_counter() - t0, False))
        return runs, False
    except BaseException:
        if drawer is not None:
            drawer.stop()
        folder.discard()
        raise
    return runs, True


def _print_write_error(folder: RunFolder, stage: str, exc: OSError) -> None:
    """One line: what could not be written, while doing what, and where the saved files are."""
    where = folder.where
    saved = _files(where)
    sys.stderr.write(
        f"simlab: error: could not write the run folder ({printable(exc.strerror or exc)}"
        f"{': ' + printable(exc.filename) if exc.filename else ''}) while {stage}; "
        f"what was saved is in {printable(where)}"
        + (f" ({', '.join(saved)})" if saved else " (no files)")
        + "\n"
    )


def _print_checks(writing: _Writing, plots: bool) -> None:
    """The verdict table and its notes (once)."""
    if writing.checks_shown:
        return
    writing.checks_shown = True
    console = stderr_console()
    console.print(checks_table(writing.checks, writing.title))
    for line in notes(writing.checks):
        console.print(f"[dim]note[/] {safe(line)}")
    if plots:
        for line in undrawn_claims(writing.specs):
            console.print(f"[dim]note[/] {safe(line)}")


def _print_outcome(writing: _Writing, as_json: bool, quiet: bool, plots: bool) -> None:
    """The results JSON (``as_json``), the verdict table and its notes (unless shown as they
    were decided), the summary line."""
    console = stderr_console()
    checks, specs = writing.checks, writing.specs
    if as_json:
        results = writing.folder.final / "results.json"
        sys.stdout.write(json.dumps(json.loads(results.read_text()), indent=2) + "\n")
    if not quiet:
        _print_checks(writing, plots)
    console.print(summary_line(checks, specs[0].alpha, writing.seconds))
    console.print(f"run folder: {safe(writing.folder.final)}")


def undrawn_claims(specs: list[RunSpec]) -> list[str]:
    """One line per claimed quantity that no figure of its experiment draws (an exact
    comparison, a descriptive quantity, or one only the table shows)."""
    lines = []
    for spec in specs:
        claimed = [c.quantity for c in spec.claims]
        for quantity in undrawn_quantities(spec.experiment.figures, claimed):
            lines.append(
                f"{spec.experiment.name}: the claim on {quantity} is not drawn: no figure shows "
                f"{quantity} against its claims (it is in the table)"
            )
    return lines


def exit_status(checks: list[Check], strict: bool = False) -> int:
    """0 when nothing failed unexpectedly and nothing is otherwise than expected; 1 else.

    An undecided check never hides a failure (a failure elsewhere still gives 1); it gives 1 by
    itself only under ``strict``.
    """
    counts = summary_counts(checks)
    if counts["unexpected"]:
        return 1
    return 1 if strict and counts["undecided"] else 0


def write_folder(
    folder: RunFolder,
    specs: list[RunSpec],
    runs: list[ExperimentRun],
    *,
    started: datetime,
    seconds: float,
    formats: tuple[str, ...],
    plots: bool,
    title: str,
    command: list[str] | None = None,
) -> list[Check]:
    """Write the run folder of finished, simulated runs (what ``simlab.Result.save`` does).

    The same files, in the same order of value, as :func:`execute` writes (config.yaml,
    results.json and checks.csv, the figures, the report), with no checkpoint: there is
    nothing left to simulate. A failure or Ctrl-C while writing leaves ``<name>_partial`` with
    a PARTIAL note, never a folder that looks complete.
    """
    writing = _Writing(
        folder,
        specs,
        runs,
        started,
        seconds,
        title,
        yaml_text(config_document(specs)),
        command=command,
        drawer=_drawer(folder, specs, formats) if plots else None,
    )
    writing.write(complete=True, quiet=True)
    return writing.checks


class _Stop(Exception):
    """The simulation was interrupted: the results are written, the rest is skipped."""


@dataclass
class _Writing:
    """Writing one run's folder: what is written, and how far it got (``stage``)."""

    folder: RunFolder
    specs: list[RunSpec]
    runs: list[ExperimentRun]
    started: datetime
    seconds: float
    title: str
    config_text: str
    checkpoint: Checkpointer | None = None  # None: nothing left to resume
    resume: Resume | None = None
    engine: dict[str, Any] | None = None
    command: list[str] | None = None
    drawer: FigureDrawer | None = None
    figures: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    stage: str = "writing config.yaml"
    #: called once the checks are decided and saved, before the figures are finished
    on_decided: Callable[[], None] | None = None
    checks_shown: bool = False

    def document(self, complete: bool) -> dict[str, Any]:
        """results.json's content as it stands."""
        doc = results_document(
            self.runs,
            self.started,
            self.seconds,
            complete,
            engine=self.engine,
            resume=self.resume,
            command=self.command,
        )
        doc["figures"] = list(self.figures)
        return doc

    def write(self, complete: bool, quiet: bool) -> None:
        """Write the folder in order of value: config.yaml, results.json and checks.csv (whole,
        a Ctrl-C meanwhile stops the run after them), then, for a ``complete`` simulation, the
        figures and the report, results.json last saying complete. Any failure or interruption
        publishes the folder as partial (:meth:`keep_partial`) and is raised again; an
        incomplete simulation ends published as partial, without raising."""
        if self.drawer is not None and not complete:  # the experiments simulated keep theirs
            self.drawer.stop()
            self.figures = self.drawer.finished()
        with self.folder:
            try:
                self._write_results()
                if not complete:
                    self.stage = "writing the report"
                    _write_report(self.folder, self.title)
                    raise _Stop
                if self.on_decided is not None:
                    self.stage = "showing the verdicts"
                    self._show_verdicts(self.on_decided)
                if self.drawer is not None:
                    self.stage = "drawing figures"
                    self.drawer.start()  # nothing to do if it was started for the simulation
                    for index, run in enumerate(self.runs):
                        self.drawer.submit(index, run)  # those not submitted yet
                    self.figures = self.drawer.finish(quiet)
                self.stage = "writing the report"
                write_json(self.folder.path / "results.json", self.document(True))
                _write_report(self.folder, self.title)
                if self.checkpoint is not None:
                    self.checkpoint.remove()  # complete: nothing to resume
            except BaseException as exc:
                if self.drawer is not None:
                    self.drawer.stop()
                    self.figures = self.drawer.finished()
                with interrupts.deferred():  # a further Ctrl-C must not cut this short
                    self.keep_partial(exc)
                if not isinstance(exc, _Stop):
                    raise

    @staticmethod
    def _show_verdicts(show: Callable[[], None]) -> None:
        """``show()``, whose failure to print (stderr closed or full: rich ends a broken pipe
        with SystemExit) is not the folder's: the figures and the report are still written, and
        the run's last lines meet the same failure as they always did."""
        try:
            show()
        except (OSError, SystemExit):
            pass

    def _write_results(self) -> None:
        with interrupts.deferred(reraise=True):
            self.stage = "writing config.yaml"
            write_text(self.folder.path / "config.yaml", self.config_text)
            self.stage = "deciding"
            decide_runs(self.runs, self.specs[0].alpha)
            self.checks = [c for run in self.runs for c in run.checks]
            self.stage = "writing results"
            write_json(self.folder.path / "results.json", self.document(False))
            write_checks_csv(self.folder.path / "checks.csv", self.checks)

    def keep_partial(self, exc: BaseException) -> None:
        """Mark the folder partial: the resume state saved as it stands, results.json rewritten
        as partial, and the PARTIAL note.

        Best effort, on a full disk included: a results.json that cannot be rewritten as
        partial is removed rather than left saying ``complete`` in a ``_partial`` folder; a
        resume state that cannot be saved leaves the last one saved (older, as good to resume
        from).
        """
        stage = self.stage
        if isinstance(exc, _Stop):
            why = f"interrupted ({interrupts.describe()}) before every point was simulated"
        elif isinstance(exc, KeyboardInterrupt):
            why = f"interrupted ({interrupts.describe(interrupts.exit_status(exc))}) while {stage}"
        elif isinstance(exc, OSError):
            why = f"the run folder could not be written while {stage}: {exc.strerror or exc}"
        else:
            why = f"crashed while {stage}: {exc!r}"
        try:
            if self.checkpoint is not None:
                self.checkpoint.save()
        except OSError:
            pass  # the last periodic save stays (if even the first one is gone, it says so)
        results = self.folder.path / "results.json"
        if results.exists() and not isinstance(exc, _Stop):
            try:
                write_json(results, self.document(False))
            except BaseException:
                results.unlink(missing_ok=True)
        note = partial_note(
            self.specs,
            self.runs,
            why,
            self.folder.partial_destination(),
            _files(self.folder.path),
            resumable=self.checkpoint is not None and self.checkpoint.path.exists(),
        )
        self.folder.mark_partial(note)

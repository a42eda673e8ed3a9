"""Execute run specifications end to end: simulate, decide, write the run folder, report.

Shared by every command that runs something (an experiment, ``run``, ``check``), so they all
produce the same folder, table and JSON.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.markup import escape

from simlab.console import checks_table, notes, stderr_console, summary_counts, summary_line
from simlab.engine.progress import get_progress
from simlab.output import (
    SCHEMA_VERSION,
    RunFolder,
    versions,
    write_checks_csv,
    write_json,
    write_yaml,
)
from simlab.report import write_report
from simlab.runner import ExperimentRun, RunSpec, decide_runs, simulate
from simlab.verdicts.estimates import ScalarEstimate, VectorEstimate


def results_document(
    runs: list[ExperimentRun], started: datetime, seconds: float, complete: bool
) -> dict[str, Any]:
    """The content of results.json."""
    checks = [c for run in runs for c in run.checks]
    samples = sum(run.samples_done for run in runs)
    experiments = []
    for run in runs:
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
                "seed": run.spec.seed,
                "samples": run.spec.samples,
                "samples_done": run.samples_done,
                "wall_time": round(run.seconds, 4),
                "samples_per_second": run.samples_done / run.seconds if run.seconds else None,
                "points": points,
            }
        )
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "status": "complete" if complete else "partial",
        "versions": versions(),
        "command": ["simlab", *sys.argv[1:]],
        "started": started.isoformat(timespec="seconds"),
        "seed": runs[0].spec.seed if len(runs) == 1 else [r.spec.seed for r in runs],
        "alpha": runs[0].spec.alpha,
        "samples": samples,
        "wall_time": round(seconds, 4),
        "samples_per_second": samples / seconds if seconds else None,
        "summary": summary_counts(checks),
        "experiments": experiments,
        "checks": [c.as_dict() for c in checks],
    }
    return doc


def _config_document(runs: list[ExperimentRun]) -> dict[str, Any]:
    if len(runs) == 1:
        return runs[0].spec.as_config()
    return {"experiments": [run.spec.as_config() for run in runs]}


def _draw(experiment: Any, points: list, target: Path, formats: tuple[str, ...]) -> list[Path]:
    """One experiment's figures (a top-level function, so a worker process can run it)."""
    return experiment.render_figures(points, target, formats)


def _can_spawn() -> bool:
    """Whether a spawned worker can start: it re-imports ``__main__`` from its file, if it has one.

    ``python - < script`` and similar give ``__main__`` a file name that does not exist.
    """
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or Path(main_file).exists()


def draw_figures(
    runs: list[ExperimentRun], root: Path, formats: tuple[str, ...], quiet: bool
) -> list[str]:
    """Draw every run's figures under ``root`` (one folder per experiment when there are several).

    Drawing is pure-Python matplotlib work that threads cannot share, and it takes longer than
    the quick course's simulation, so the experiments are drawn in worker processes, one per
    core the run uses. Returns the figure paths relative to ``root``, in run order.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    jobs = []
    for run in runs:
        if not run.points:
            continue
        target = root
        if len(runs) > 1:
            target = root / run.spec.experiment.name.replace(" ", "-")
            target.mkdir()
        jobs.append((run.spec.experiment, run.points, target, formats))
    workers = min(max((run.spec.workers for run in runs), default=1), len(jobs))
    if not _can_spawn():
        workers = 1
    paths: list[list[Path]] = []
    with get_progress(not quiet and bool(jobs)) as progress:
        progress.start("drawing figures", len(jobs))
        if workers <= 1:
            for job in jobs:
                paths.append(_draw(*job))
                progress.advance(1)
        else:
            # spawn, not fork: the parent has BLAS and progress-bar threads running
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = [pool.submit(_draw, *job) for job in jobs]
                for future in futures:
                    paths.append(future.result())
                    progress.advance(1)
    return [str(p.relative_to(root)) for group in paths for p in group]


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
) -> int:
    """Run ``specs`` as one run (one Holm family, one folder). Returns the exit status."""
    console = stderr_console()
    started = datetime.now()
    t0 = time.perf_counter()
    folder = RunFolder(label, out)  # validates --out before any work
    runs: list[ExperimentRun] = []
    complete = True
    with get_progress(not quiet) as progress:
        for spec in specs:
            run = simulate(spec, progress)
            runs.append(run)
            if not run.complete:
                complete = False
                break
    seconds = time.perf_counter() - t0
    decide_runs(runs, specs[0].alpha)
    checks = [c for run in runs for c in run.checks]
    doc = results_document(runs, started, seconds, complete)
    with folder:
        if not complete:
            folder.mark_partial("interrupted (Ctrl-C) before every point was simulated")
        write_yaml(folder.path / "config.yaml", _config_document(runs))
        write_checks_csv(folder.path / "checks.csv", checks)
        figures = draw_figures(runs, folder.path, formats, quiet) if plots else []
        doc["figures"] = figures
        write_json(folder.path / "results.json", doc)
        write_report(
            [folder.path],
            folder.path / "report.html",
            title or f"simlab {label}",
            shown_as=[str(folder.final)],
        )
    if as_json:
        sys.stdout.write(
            json.dumps(json.loads((folder.final / "results.json").read_text()), indent=2) + "\n"
        )
    if not quiet:
        console.print(checks_table(checks, title or f"simlab {label}"))
        for line in notes(checks):
            console.print(f"[dim]note[/] {escape(line)}")
    console.print(summary_line(checks, specs[0].alpha, seconds))
    console.print(f"run folder: {folder.final}")
    if not complete:
        console.print("[bold yellow]interrupted: the run folder is marked partial[/]")
        return 130
    counts = summary_counts(checks)
    return 1 if counts["unexpected"] else 0

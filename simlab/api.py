"""simlab from Python: the runs of the command line, returning a result object.

In the manner of ``scipy.stats``: one call with keyword arguments, one result to inspect::

    import simlab

    res = simlab.run("dropout", p=[0.1, 0.5], samples=1e6, seed=1,
                     claims=["var_after=1/(2*(1-p)) - 1/(2*pi)"])
    res.counts            # {'checks': 16, 'pass': 16, 'fail': 0, 'undecided': 0, ...}
    res.records           # one dict per check (the fields of results.json)
    res.figures()         # {stem: matplotlib Figure}
    res.save("runs/dropout")   # the same run folder as `simlab dropout ... --out runs/dropout`

Values are given as in a YAML file (a list is a sweep; counts accept ``1e6``). Bad input raises
:class:`~simlab.errors.SimlabInputError` with the message the command line prints after
``simlab: error:`` (options are named as the command line names them, ``--p``). The command line
builds its run specifications through :func:`experiment_spec` and :func:`file_specs`, so the two
cannot drift apart.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from simlab import params
from simlab.errors import SimlabInputError
from simlab.experiments import REGISTRY
from simlab.experiments.base import Experiment
from simlab.runspec import RUN_OPTIONS, ClaimText, RunSpec, build_spec
from simlab.simulate import ExperimentRun, decide_runs, points_with_claims
from simlab.verdicts import format as fmt
from simlab.verdicts.checks import Check

__all__ = ["Result", "experiment_spec", "file_specs", "run", "run_file"]

_RUN_OPTION_NAMES = {p.name for p in RUN_OPTIONS}


def option_name(key: str) -> str:
    """How the command line names a parameter or run option (``--p``, ``--sigma-x``,
    ``--target-se``): kebab-case, as ``--help`` shows it."""
    return params.option_name(key)


def _experiment(name: str | Experiment) -> Experiment:
    if isinstance(name, Experiment):
        return name
    if not isinstance(name, str) or name not in REGISTRY:
        raise SimlabInputError(
            f"experiment: unknown experiment {name!r}; allowed: {', '.join(REGISTRY)}"
        )
    return REGISTRY[name]


def experiment_spec(
    experiment: str | Experiment,
    values: Mapping[str, Any],
    claims: Iterable[str] = (),
    claims_false: Iterable[str] = (),
) -> RunSpec:
    """The validated run specification of one experiment (what ``simlab EXPERIMENT ...`` runs).

    ``values`` maps parameter and run-option names to values (None: the default); ``claims``
    are ``NAME=EXPR`` texts expected to pass, ``claims_false`` texts expected to fail (negative
    controls, ``--claim-false``).
    """
    exp = _experiment(experiment)
    for name, group in (("claims", claims), ("claims_false", claims_false)):
        if isinstance(group, str):
            raise SimlabInputError(
                f"{name}: expected a list of NAME=EXPR texts, not one string (write [{group!r}])"
            )
    texts: list[ClaimText] = list(claims)
    texts += [(text, "fail") for text in claims_false]
    raw = {k: v for k, v in values.items() if v is not None}
    return build_spec(exp, raw, texts, option_name)


def file_specs(
    path: str | Path, overrides: Sequence[str] = (), **run_options: Any
) -> list[RunSpec]:
    """The validated specifications of a YAML run file (what ``simlab run FILE ...`` runs)."""
    from simlab.config import load_run_file

    return load_run_file(Path(path), list(overrides), **run_options)


@dataclass
class Result:
    """The outcome of :func:`run`: decided checks, the simulated points, and what makes figures.

    Attributes
    ----------
    checks : list of Check
        Every check with its verdict (``pass``, ``fail``, ``undecided``, ``undefined``).
    runs : list of ExperimentRun
        The simulated points of each experiment (estimates, figure data).
    seconds : float
        Wall time of the simulation.
    """

    specs: list[RunSpec]
    runs: list[ExperimentRun]
    started: datetime
    seconds: float
    command: list[str]

    @property
    def checks(self) -> list[Check]:
        return [c for run in self.runs for c in run.checks]

    @property
    def records(self) -> list[dict[str, Any]]:
        """One dict per check: the fields of results.json, with the words of the table."""
        return [{**c.as_dict(), "text": fmt.row(c)} for c in self.checks]

    @property
    def counts(self) -> dict[str, int]:
        """Checks by verdict, negative controls, and verdicts not as expected."""
        return fmt.counts(self.checks)

    @property
    def ok(self) -> bool:
        """True when nothing failed unexpectedly and nothing is otherwise than expected (what
        exit status 0 means on the command line; undecided checks do not count against it)."""
        return self.counts["unexpected"] == 0

    @property
    def summary(self) -> str:
        """The summary line in words."""
        return fmt.summary(self.counts)

    def table(self) -> list[dict[str, str]]:
        """The rows of the table as the console shows them (one dict of words per check)."""
        return [fmt.row(c) for c in self.checks]

    def figures(self) -> dict[str, Any]:
        """Every experiment's figures as matplotlib Figures, by stem (``experiment/stem`` when
        the result holds several experiments). Close them when done (``plt.close(fig)``)."""
        out: dict[str, Any] = {}
        for run in self.runs:
            if not run.points:
                continue
            points = points_with_claims(run)  # each point carries its claims and verdicts
            for spec in run.spec.experiment.figures:
                figure = spec.render(points)
                if figure is None:
                    continue
                key = spec.stem
                if len(self.runs) > 1:
                    key = f"{run.spec.experiment.name.replace(' ', '-')}/{spec.stem}"
                out[key] = figure
        return out

    def save(
        self,
        folder: str | Path,
        *,
        formats: Sequence[str] = ("png",),
        plots: bool = True,
        title: str | None = None,
    ) -> Path:
        """Write the run folder (config.yaml, results.json, checks.csv, figures, report.html)
        exactly as the command line does, at ``folder`` (which must not exist yet, or be empty).

        Returns the folder's path.
        """
        from simlab.execute import write_folder
        from simlab.output import RunFolder

        label = self.specs[0].experiment.name if len(self.specs) == 1 else "run"
        bad = [f for f in formats if f not in ("png", "svg", "pdf")]
        if bad or not formats:
            raise SimlabInputError(
                f"--format: {','.join(formats)!r} is not allowed; expected a comma list of "
                "png, svg, pdf"
            )
        run_folder = RunFolder(label, Path(folder)).open()
        write_folder(
            run_folder,
            self.specs,
            self.runs,
            started=self.started,
            seconds=self.seconds,
            formats=tuple(formats),
            plots=plots,
            title=title or f"simlab {label}",
            command=self.command,
        )
        return run_folder.final

    def __repr__(self) -> str:
        names = ", ".join(spec.experiment.name for spec in self.specs)
        return f"<simlab.Result {names}: {self.summary}>"

    def _repr_html_(self) -> str:
        """The table of checks, as the report shows it (for Jupyter)."""
        head = "".join(f"<th>{html.escape(col)}</th>" for col in fmt.COLUMNS)
        rows = []
        for c in self.checks:
            words = fmt.row(c)
            cells = "".join(f"<td>{html.escape(words[col])}</td>" for col in fmt.COLUMNS)
            rows.append(f"<tr>{cells}</tr>")
        return (
            f"<p><b>{html.escape(self.summary)}</b> — {len(self.checks)} checks, "
            f"{self.seconds:.1f} s</p><table><tr>{head}</tr>{''.join(rows)}</table>"
        )


def _simulate(specs: list[RunSpec], progress: bool, command: list[str]) -> Result:
    from simlab.engine.progress import get_progress
    from simlab.simulate import simulate

    started = datetime.now()
    t0 = time.perf_counter()
    runs = []
    with get_progress(progress) as bar:
        for spec in specs:
            run = simulate(spec, bar)
            if not run.complete:  # Ctrl-C in a notebook: stop, as Python does
                raise KeyboardInterrupt
            runs.append(run)
    decide_runs(runs, specs[0].alpha)
    return Result(specs, runs, started, time.perf_counter() - t0, command)


def run(
    experiment: str,
    *,
    claims: Iterable[str] = (),
    claims_false: Iterable[str] = (),
    progress: bool = False,
    **values: Any,
) -> Result:
    """Run one experiment, as ``simlab EXPERIMENT`` does, and return its :class:`Result`.

    Parameters
    ----------
    experiment : str
        An experiment's name, e.g. ``"dropout"`` or ``"kept-units binomial"`` (``simlab list``).
    claims : list of str
        ``NAME=EXPR`` formulas expected to hold (``--claim``).
    claims_false : list of str
        ``NAME=EXPR`` formulas expected to be rejected: negative controls (``--claim-false``).
    progress : bool
        Show the progress bar on stderr (when it is a terminal).
    **values
        The experiment's parameters (a list is a sweep) and the run options: ``samples``,
        ``seed``, ``workers``, ``chunk_size``, ``alpha``, ``resolution``, ``target_se``.

    Raises
    ------
    SimlabInputError
        For bad input, with the command line's message.
    """
    spec = experiment_spec(experiment, values, claims, claims_false)
    shown = [f"{k}={v!r}" for k, v in values.items()]
    shown += [f"claims={list(claims)!r}"] if claims else []
    shown += [f"claims_false={list(claims_false)!r}"] if claims_false else []
    command = ["simlab.run", repr(spec.experiment.name), *shown]
    return _simulate([spec], progress, command)


def run_file(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    progress: bool = False,
    **run_options: Any,
) -> Result:
    """Run a YAML run file, as ``simlab run FILE [KEY=VALUE ...]`` does (``run_options``:
    ``seed``, ``workers``, ``resolution``)."""
    specs = file_specs(path, overrides, **run_options)
    return _simulate(specs, progress, ["simlab.run_file", str(path), *overrides])

"""The ``simlab`` command: one subcommand per experiment (built from its parameter schema),
plus ``run`` (YAML files), ``check`` (every built-in claim) and ``list``.

Human output (tables, progress) goes to stderr; ``--json`` puts the results on stdout. Bad input
is one line on stderr and exit status 2; a full traceback only with ``--debug``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from simlab import __version__
from simlab.course import BUDGETS, budget_specs
from simlab.errors import SimlabInputError
from simlab.experiments import REGISTRY
from simlab.experiments.base import Experiment
from simlab.runner import RUN_OPTIONS, ExperimentRun, build_spec
from simlab.runs import execute

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
FORMATS = ("png", "svg", "pdf")
_DEBUG = {"on": False}


def _formats(value: str) -> tuple[str, ...]:
    items = tuple(v.strip().lower() for v in value.split(",") if v.strip())
    bad = [v for v in items if v not in FORMATS]
    if bad or not items:
        raise SimlabInputError(
            f"--format: {value!r} is not allowed; expected a comma list of {', '.join(FORMATS)}"
        )
    return items


def output_options(func: Callable) -> Callable:
    """Options that say where and how results are shown, shared by every running command."""
    options = [
        click.option(
            "--out",
            type=click.Path(path_type=Path),
            default=None,
            help="Run folder (default: outputs/<experiment>/<time>_<id>).",
        ),
        click.option(
            "--format",
            "formats",
            default="png",
            show_default=True,
            help="Figure formats, a comma list of png, svg, pdf.",
        ),
        click.option("--no-plots", is_flag=True, help="Do not render figures."),
        click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout."),
        click.option(
            "--quiet", is_flag=True, help="No progress bar, no table (errors still shown)."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run_option_decorators() -> list[Callable]:
    decorators = []
    for p in RUN_OPTIONS:
        decorators.append(
            click.option(
                f"--{p.name.replace('_', '-')}",
                p.name,
                default=None,
                metavar="VALUE",
                help=f"{p.help} [{p.allowed()}]",
            )
        )
    decorators.append(
        click.option(
            "--claim",
            "claims",
            multiple=True,
            metavar="NAME=EXPR",
            help="A formula to check, e.g. var_after='1/(2*(1-p)) - 1/(2*pi)' (repeatable).",
        )
    )
    return decorators


def experiment_command(exp: Experiment, name: str) -> click.Command:
    """A click command whose options are the experiment's parameters and the run options."""

    def callback(**kwargs: Any) -> None:
        claims = list(kwargs.pop("claims"))
        shown = {k: kwargs.pop(k) for k in ("out", "formats", "no_plots", "as_json", "quiet")}
        raw = {k: v for k, v in kwargs.items() if v is not None}

        def where(key: str) -> str:
            return (
                f"--{key.replace('_', '-')}" if key in {p.name for p in RUN_OPTIONS} else f"--{key}"
            )

        spec = build_spec(exp, raw, claims, where)
        _finish(
            execute(
                [spec],
                label=exp.name,
                out=shown["out"],
                formats=_formats(shown["formats"]),
                plots=not shown["no_plots"],
                as_json=shown["as_json"],
                quiet=shown["quiet"],
            )
        )

    params: list[click.Parameter] = []
    for p in exp.params:
        if p.kind == "bool":
            params.append(
                click.Option(
                    [f"--{p.name}/--no-{p.name}", p.name],
                    default=None,
                    help=f"{p.help} [default: {p.default}]",
                )
            )
        else:
            params.append(
                click.Option(
                    [f"--{p.name}", p.name],
                    default=None,
                    metavar="VALUE",
                    help=f"{p.help} [default: {p.default}; {p.allowed()}; {p.sweep_syntax}]",
                )
            )
    command = click.Command(
        name, callback=callback, params=params, help=exp.summary, context_settings=CONTEXT
    )
    for decorate in reversed(_run_option_decorators()):
        command = decorate(command)
    return output_options(command)


def _finish(code: int) -> None:
    if code:
        sys.exit(code)


class SimlabGroup(click.Group):
    """Turns bad input into one line and exit status 2, and a bug into one line and status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SimlabInputError as exc:
            if _DEBUG["on"]:
                raise
            click.echo(f"simlab: error: {exc}", err=True)
            ctx.exit(2)
        except click.UsageError as exc:  # click's own checks (choices, ranges): one line too
            if _DEBUG["on"]:
                raise
            click.echo(f"simlab: error: {exc.format_message()}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("simlab: interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # a bug: say so in one line unless asked for the traceback
            if _DEBUG["on"]:
                raise
            click.echo(
                f"simlab: internal error: {type(exc).__name__}: {exc} "
                "(rerun with --debug for the traceback)",
                err=True,
            )
            ctx.exit(1)


@click.group(cls=SimlabGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="simlab")
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
def cli(debug: bool) -> None:
    """simlab: check the theory of deep learning against massive Monte Carlo simulation."""
    _DEBUG["on"] = debug


def _register_experiments() -> None:
    groups: dict[str, click.Group] = {}
    for full_name, exp in REGISTRY.items():
        parts = full_name.split(" ")
        if len(parts) == 1:
            cli.add_command(experiment_command(exp, full_name))
            continue
        group = groups.get(parts[0])
        if group is None:
            group = click.Group(parts[0], help=f"{parts[0]} experiments.", context_settings=CONTEXT)
            groups[parts[0]] = group
            cli.add_command(group)
        group.add_command(experiment_command(exp, parts[1]))


@cli.command("run", context_settings=CONTEXT)
@click.argument("config", type=click.Path(path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--seed", default=None, help="Override the file's seed.")
@click.option("--workers", default=None, help="Worker threads (never changes the numbers).")
@output_options
def run_command(
    config: Path,
    overrides: tuple[str, ...],
    seed: str | None,
    workers: str | None,
    out: Path | None,
    formats: str,
    no_plots: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run the experiment(s) of a YAML file, with trailing KEY=VALUE overrides."""
    from simlab.config import load_run_file

    specs = load_run_file(config, list(overrides), seed=seed, workers=workers)
    label = specs[0].experiment.name if len(specs) == 1 else config.stem
    _finish(
        execute(
            specs,
            label=label,
            out=out,
            formats=_formats(formats),
            plots=not no_plots,
            as_json=as_json,
            quiet=quiet,
        )
    )


@cli.command("check", context_settings=CONTEXT)
@click.option(
    "--budget",
    type=click.Choice(BUDGETS),
    default="quick",
    show_default=True,
    help="Samples per check: quick (~30 s here), standard (~2 min), thorough.",
)
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Root seed.")
@click.option("--workers", default=None, help="Worker threads (never changes the numbers).")
@output_options
def check_command(
    budget: str,
    seed: int | None,
    workers: str | None,
    out: Path | None,
    formats: str,
    no_plots: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Check every built-in claim of every experiment; exit status 1 if any fails."""
    from simlab.engine.seeding import fresh_entropy

    # one root seed for the whole course: the report shows it, and --seed with it replays all
    specs = budget_specs(budget, fresh_entropy() if seed is None else seed, workers)
    _finish(
        execute(
            specs,
            label="check",
            out=out,
            formats=_formats(formats),
            plots=not no_plots,
            as_json=as_json,
            quiet=quiet,
            title=f"simlab check --budget {budget}",
        )
    )


@cli.command("calibrate", context_settings=CONTEXT)
@click.option("--budget", type=click.Choice(BUDGETS), default="quick", show_default=True)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Independent reruns of the course.",
)
@click.option("--first-seed", type=click.IntRange(min=0), default=1, show_default=True)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.001,
    show_default=True,
    help="The declared family-wise error rate.",
)
@click.option(
    "--alpha-wide",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="A larger rate at which false alarms are frequent enough to measure.",
)
@click.option(
    "--only",
    type=click.Choice(["correct", "wrong"]),
    default=None,
    help="Measure only false alarms on the correct claims, or only power against wrong ones.",
)
@click.option("--workers", default=None, help="Worker threads (never changes the numbers).")
@output_options
def calibrate_command(
    budget: str,
    seeds: int,
    first_seed: int,
    alpha: float,
    alpha_wide: float,
    only: str | None,
    workers: str | None,
    out: Path | None,
    formats: str,
    no_plots: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Measure false alarms on correct claims and power against known-wrong formulas."""
    import json as _json

    from rich.markup import escape
    from rich.table import Table

    from simlab.calibrate import calibrate, figures
    from simlab.console import stderr_console
    from simlab.engine.progress import get_progress
    from simlab.output import RunFolder, versions, write_json

    fmts = _formats(formats)
    folder = RunFolder("calibrate", out)
    with get_progress(not quiet) as progress:
        cal = calibrate(
            budget,
            list(range(first_seed, first_seed + seeds)),
            alpha,
            alpha_wide,
            workers,
            progress,
            parts=(only,) if only else ("correct", "wrong"),
        )
    doc = {"versions": versions(), **cal.as_dict()}
    with folder:
        write_json(folder.path / "calibration.json", doc)
        if not no_plots:
            figures(cal, folder.path, fmts)
    console = stderr_console()
    n = len(cal.seeds)
    table = Table(title=f"simlab calibrate --budget {budget}: {n} seeds", title_justify="left")
    for col in ("what", "measured", "95% CI", "target"):
        table.add_column(col)
    if "correct" in cal.parts:
        _false_alarm_rows(table, doc, alpha, alpha_wide, n)
    for w in doc["wrong_formulas"]:
        lo, hi = w["power_ci95"]
        evidence = []
        if w["min_margin_se"] is not None:
            margin = w["min_margin_se"]
            # p-values underflow near |z| = 38: a larger margin is not resolved
            evidence.append(
                "weakest margin > 30 SE" if margin > 30 else f"weakest margin {margin:+.1f} SE"
            )
        if w["min_error_over_tolerance"] is not None:
            evidence.append(f"weakest error {w['min_error_over_tolerance']:.3g}× tolerance")
        table.add_row(
            f"power: {escape(w['claim'])}  ({w['experiment']})",
            f"{w['rejected']}/{w['runs']}  " + "; ".join(evidence),
            f"[{lo:.3f}, {hi:.3f}]",
            "≥ 0.99 (margin ≥ 2.33 SE)",
        )
    if not quiet:
        console.print(table)
    console.print(f"calibration folder: {folder.final}")
    if as_json:
        click.echo(_json.dumps(doc, indent=2))


def _false_alarm_rows(table: Any, doc: dict, alpha: float, alpha_wide: float, n: int) -> None:
    """The calibration table's rows on correct claims: false alarms and p-value uniformity."""
    lo, hi = doc["false_alarm_rate_ci95"]
    table.add_row(
        f"runs with a false alarm at α={alpha:g}",
        f"{doc['false_alarm_runs']}/{n}",
        f"[{lo:.3f}, {hi:.3f}]",
        f"≤ {alpha:g}",
    )
    lo, hi = doc["false_alarm_rate_wide_ci95"]
    table.add_row(
        f"runs with a false alarm at α={alpha_wide:g}",
        f"{doc['false_alarm_runs_wide']}/{n}",
        f"[{lo:.3f}, {hi:.3f}]",
        f"≈ {alpha_wide:g} or less",
    )
    table.add_row(
        "p-values of correct checks vs uniform (KS)",
        f"D = {doc['p_value_ks_statistic']:.3f}, p = {doc['p_value_ks_p']:.2g}",
        f"{doc['p_values_tested']} p-values",
        "p not tiny",
    )
    for row in doc["p_value_ks_by_check"][:3]:
        table.add_row(
            f"  least uniform: {row['check']}",
            f"D = {row['ks_statistic']:.3f}, p = {row['ks_p']:.2g}",
            f"{row['n']} p-values, {row['fraction_below_0.05']:.0%} below 0.05",
            "",
        )


@cli.command("report", context_settings=CONTEXT)
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(path_type=Path),
    default=None,
    help="The HTML file to write (default: report.html in the only RUN_DIR).",
)
@click.option("--title", default=None, help="The page title.")
def report_command(run_dirs: tuple[Path, ...], output: Path | None, title: str | None) -> None:
    """Write one self-contained HTML report (figures embedded) for one or more run folders."""
    from simlab.report import write_report

    if output is None:
        if len(run_dirs) != 1:
            raise SimlabInputError("-o: required when more than one RUN_DIR is given")
        output = run_dirs[0] / "report.html"
    path = write_report(list(run_dirs), output, title)
    click.echo(f"report: {path}", err=True)


@cli.command("list", context_settings=CONTEXT)
def list_command() -> None:
    """Experiments, their parameters (defaults, allowed values) and quantities."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    for name, exp in REGISTRY.items():
        table = Table(title=f"simlab {name} — {exp.summary}", title_justify="left")
        table.add_column("parameter")
        table.add_column("default")
        table.add_column("allowed")
        table.add_column("meaning")
        for p in exp.params:
            table.add_row(p.name, escape(str(p.default)), escape(p.allowed()), escape(p.help))
        console.print(table)
        quantities = Table(show_header=True, title_justify="left")
        quantities.add_column("quantity")
        quantities.add_column("kind")
        quantities.add_column("meaning")
        for q in exp.quantities:
            quantities.add_row(q.name, q.kind, escape(q.description))
        console.print(quantities)
    console.print(
        "Run options for every experiment: "
        + ", ".join(f"--{p.name.replace('_', '-')}" for p in RUN_OPTIONS)
        + ", --claim, --out, --format, "
        "--json, --quiet, --no-plots"
    )


_register_experiments()


def main() -> None:
    """Entry point of the ``simlab`` console script."""
    cli(prog_name="simlab")


__all__ = ["cli", "main", "ExperimentRun"]

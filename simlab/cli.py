"""The ``simlab`` command: one subcommand per experiment (built from its parameter schema),
plus ``run`` (YAML files), ``check`` (every built-in claim) and ``list``.

Human output (tables, progress) goes to stderr; ``--json`` puts the results on stdout. Bad input
is one line on stderr and exit status 2; a full traceback only with ``--debug``.
"""

from __future__ import annotations

import atexit
import gc
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simlab import interrupts

try:  # NumPy, SciPy and matplotlib load here: Ctrl-C meanwhile ends quietly, not in a traceback
    import click

    from simlab import __version__
    from simlab.api import experiment_spec, file_specs
    from simlab.console import printable
    from simlab.course import BUDGETS, budget_specs
    from simlab.engine.cluster import runner_for
    from simlab.errors import SimlabInputError
    from simlab.execute import execute
    from simlab.experiments import REGISTRY
    from simlab.experiments.base import Experiment
    from simlab.params import Param, count_text
    from simlab.runspec import RUN_OPTIONS
    from simlab.simulate import ExperimentRun
except KeyboardInterrupt as _exc:
    sys.stderr.write("simlab: interrupted\n")
    raise SystemExit(interrupts.exit_status(_exc)) from None

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


def _help(
    p: Param, default: str | None = None, sweep: bool = False, text: str | None = None
) -> str:
    """An option's help: what it is (``text``, else the parameter's own words), then
    ``[default: ...; what is allowed; how to sweep]``."""
    shown = default if default is not None else p.default_text()
    parts = ([f"default: {shown}"] if shown else []) + [p.allowed()]
    if sweep:
        parts.append(p.sweep_syntax)
    return f"{p.help if text is None else text} [{'; '.join(parts)}]"


#: the run options by name (``--seed`` and ``--workers`` read the same in every command)
RUN = {p.name: p for p in RUN_OPTIONS}


def typed_option(p: Param, help: str | None = None, default: str | None = None) -> Callable:
    """An option read as ``p`` reads it (its value is checked by :func:`value_of`): the same
    metavar and the same ``[default: ...; allowed]`` in every command."""
    text = _help(p, default, text=help)
    return click.option(p.option, p.name, default=None, metavar=p.metavar, help=text)


def value_of(p: Param, raw: str | None, default: Any = None) -> Any:
    """The value of a :func:`typed_option`, checked (``default`` when it was not given)."""
    return default if raw is None else p.convert_one(raw, p.option)


def budget_option(help: str) -> Callable:
    """``--budget``: how many samples each check of the course takes."""
    return click.option(
        "--budget",
        type=click.Choice(BUDGETS),
        default="quick",
        metavar="NAME",
        help=f"{help} [default: quick; one of {', '.join(BUDGETS)}]",
    )


#: calibrate's own numbers, read and shown as every other option's
CALIBRATE = {
    p.name: p
    for p in (
        Param("seeds", "int", 20, "Independent reruns of the course.", low=1, sweep=False),
        Param(
            "first_seed",
            "int",
            1,
            "Root seed of the first rerun: the reruns use first-seed, first-seed + 1, ... "
            "(calibrations over ranges that do not overlap are independent).",
            low=0,
            sweep=False,
        ),
        Param(
            "alpha",
            "float",
            0.001,
            "The declared family-wise error rate.",
            low=0.0,
            high=1.0,
            low_open=True,
            high_open=True,
            sweep=False,
        ),
        Param(
            "alpha_wide",
            "float",
            0.05,
            "A larger rate at which false alarms are frequent enough to measure.",
            low=0.0,
            high=1.0,
            low_open=True,
            high_open=True,
            sweep=False,
        ),
    )
}


def output_options(func: Callable) -> Callable:
    """Options that say where and how results are shown, shared by every running command."""
    for option in reversed(_output_options()):
        func = option(func)
    return func


def _output_options() -> list[Callable]:
    return [
        click.option(
            "--out",
            type=click.Path(path_type=Path),
            default=None,
            metavar="DIR",
            help="Run folder [default: outputs/<command>/<time>_<id>].",
        ),
        click.option(
            "--format",
            "formats",
            default="png",
            metavar="LIST",
            help="Figure formats [default: png; a comma list of png, svg, pdf].",
        ),
        click.option("--no-plots", is_flag=True, help="Do not render figures."),
        click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout."),
        click.option(
            "--quiet", is_flag=True, help="No progress bar, no table (errors still shown)."
        ),
    ]


def cluster_options(func: Callable) -> Callable:
    """Where the chunks run: never in config.yaml, since it never changes a number."""
    for option in reversed(_cluster_options()):
        func = option(func)
    return func


def _cluster_options() -> list[Callable]:
    return [
        click.option(
            "--scheduler",
            default=None,
            metavar="ADDRESS",
            help="Run the chunks on this Dask scheduler (tcp://host:8786 or a scheduler file; "
            "default: $DASK_SCHEDULER_ADDRESS). Needs simlab[dask]; never changes the numbers.",
        ),
        click.option(
            "--cluster",
            type=click.Choice(["local"]),
            default=None,
            metavar="NAME",
            help="Start a local Dask cluster of worker processes, to try the cluster path "
            "[one of local].",
        ),
    ]


#: each experiment's --claim example, in its own quantities (a test parses every one)
CLAIM_EXAMPLES = {
    "dropout": "var_after='1/(2*(1-p)) - 1/(2*pi)'",
    "batchnorm stats": "mean_v='(B-1)/B*sigma**2'",
    "batchnorm grads": "jac_diag='gamma*s*(1 - 1/B - xhat**2/B)'",
    "batchnorm whiten": "cross_cov='sqrtm(Sigma)'",
    "kept-units binomial": "pmf='comb(M,k)*(1-p)**k*p**(M-k)'",
    "kept-units poisson-limit": "pmf='comb(M,k)*(lam/M)**k*(1-lam/M)**(M-k)'",
    "kept-units thinning": "pmf='exp(-lam*(1-p))*(lam*(1-p))**k/factorial(k)'",
    "propagation signal": "q='c*sigma_x**2*(c/2)**(l-1)'",
    "propagation correlation": "rho='1 - 9*pi**2/(2*l**2)' (the large-l asymptote: rejected)",
    "propagation grads": "d_hL='ybar - y'",
}


def _claim_help(exp: Experiment) -> str:
    example = CLAIM_EXAMPLES.get(exp.name)
    text = "A formula to check (repeatable)"
    text += f", e.g. {example}." if example else "."
    if exp.joint_quantities:
        text += (
            " It may name the other measured quantities ("
            + ", ".join(exp.joint_quantities)
            + "), tested with their joint covariance."
        )
    return text + " 'simlab list' shows the names a claim may use."


def target_se_help(exp: Experiment) -> str:
    """``--target-se`` in this experiment's terms: absolute or relative, for which quantities."""
    targets = {q.name: q.target for q in exp.quantities if q.has_target}
    base = RUN["target_se"].help
    if not targets:
        return f"{base}; no quantity of {exp.name} has a standard error, so it has no effect"
    relative = [name for name, how in targets.items() if how == "relative"]
    absolute = [name for name, how in targets.items() if how != "relative"]
    if not relative:
        return f"{base}; absolute here: the standard error itself"
    if not absolute:
        return f"{base}; relative here: the standard error over |estimate|"
    return (
        f"{base}; relative (standard error over |estimate|) for {', '.join(relative)}, "
        f"absolute for {', '.join(absolute)}"
    )


def _run_option_decorators(exp: Experiment) -> list[Callable]:
    """The run options of an experiment's command, with this experiment's defaults."""
    defaults = {
        "samples": count_text(exp.default_samples),
        "chunk_size": count_text(exp.default_chunk_size),
    }
    decorators = []
    for p in RUN_OPTIONS:
        help = target_se_help(exp) if p.name == "target_se" else p.help
        text = _help(p, defaults.get(p.name), text=help)
        decorators.append(
            click.option(p.option, p.name, default=None, metavar=p.metavar, help=text)
        )
    decorators.append(
        click.option("--claim", "claims", multiple=True, metavar="NAME=EXPR", help=_claim_help(exp))
    )
    decorators.append(
        click.option(
            "--claim-false",
            "claims_false",
            multiple=True,
            metavar="NAME=EXPR",
            help="A formula expected to be rejected: a negative control of your own; the run "
            "is as expected when it fails (repeatable).",
        )
    )
    decorators.append(strict_option)
    return decorators


strict_option = click.option(
    "--strict",
    is_flag=True,
    help="Exit with status 1 when a check is undecided (by default only a failure, or a verdict "
    "not as expected, does).",
)


def resolution_option(func: Callable) -> Callable:
    """``--resolution`` for the commands that do not take every run option (run, check)."""
    return typed_option(RUN["resolution"])(func)


def experiment_command(exp: Experiment, name: str) -> click.Command:
    """A click command whose options are the experiment's parameters and the run options."""

    def callback(**kwargs: Any) -> None:
        claims = list(kwargs.pop("claims"))
        claims_false = list(kwargs.pop("claims_false"))
        strict = kwargs.pop("strict")
        shown = {k: kwargs.pop(k) for k in ("out", "formats", "no_plots", "as_json", "quiet")}
        scheduler, cluster = kwargs.pop("scheduler"), kwargs.pop("cluster")
        # the same specification as simlab.run(...) builds from the same values
        spec = experiment_spec(exp, kwargs, claims, claims_false)
        formats = _formats(shown["formats"])
        with runner_for(scheduler, cluster) as runner:
            code = execute(
                [spec],
                label=exp.name,
                out=shown["out"],
                formats=formats,
                plots=not shown["no_plots"],
                as_json=shown["as_json"],
                quiet=shown["quiet"],
                runner=runner,
                strict=strict,
            )
        _finish(code)

    params: list[click.Parameter] = []
    for p in exp.params:
        if p.kind == "bool":
            flag = p.option[2:]
            shown = f"--{flag}" if p.default else f"--no-{flag}"
            params.append(
                click.Option(
                    [f"--{flag}/--no-{flag}", p.name],
                    default=None,
                    help=f"{p.help} [default: {shown}]",
                )
            )
        else:
            params.append(
                click.Option(
                    [p.option, p.name],
                    default=None,
                    metavar=p.metavar,
                    help=_help(p, sweep=p.sweep),
                )
            )
    for param, p in zip(params, exp.params, strict=True):
        param.sweepable = p.sweep and p.kind != "bool"  # type: ignore[attr-defined]
    command = OnceCommand(
        name, callback=callback, params=params, help=exp.summary, context_settings=CONTEXT
    )
    # the run options, then where results go and where chunks run, in the order written
    for decorate in [*_run_option_decorators(exp), *_output_options(), *_cluster_options()]:
        command = decorate(command)
    return command


def _finish(code: int) -> None:
    if code:
        sys.exit(code)


def _error(message: str) -> None:
    """The one-line form of every input error: ``simlab: error: ...`` on stderr."""
    click.echo(f"simlab: error: {printable(message)}", err=True)


class _OncePerOption:
    """Each option may be given once: ``--p 0.1 --p 0.2`` is an error, not a silent last-wins.

    A sweep is one comma list (``--p 0.1,0.2``); options meant to repeat (``--claim``) say so
    with ``multiple=True``.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Options are kebab-case; ``--sigma_x`` (the parameter's name in claims and YAML) is
        read as ``--sigma-x``, and ``--sigma_x=1`` as ``--sigma-x=1``."""
        names = {
            name
            for param in self.get_params(ctx)  # type: ignore[attr-defined]
            for name in (*param.opts, *param.secondary_opts)
        }
        spelled = []
        for i, arg in enumerate(args):
            if arg == "--":  # what follows is not an option
                spelled += args[i:]
                break
            if arg.startswith("--") and "_" in arg:
                name, eq, value = arg.partition("=")
                kebab = name.replace("_", "-")
                if name not in names and kebab in names:
                    arg = kebab + eq + value
            spelled.append(arg)
        return super().parse_args(ctx, spelled)  # type: ignore[misc]

    def make_parser(self, ctx: click.Context) -> Any:
        parser = super().make_parser(ctx)  # type: ignore[misc]
        parse = parser.parse_args

        def parse_once(args: list[str]) -> Any:
            opts, largs, order = parse(args=args)
            seen: dict[str, int] = {}
            for param in order:
                if isinstance(param, click.Option) and not (param.multiple or param.count):
                    seen[param.name] = seen.get(param.name, 0) + 1
            for param in order:
                times = seen.get(param.name, 0)
                if times > 1:
                    hint = (
                        f" (a sweep is one comma list: {param.opts[0]} A,B)"
                        if getattr(param, "sweepable", False)
                        else ""
                    )
                    raise click.UsageError(
                        f"{param.opts[0]}: given {times} times; give it once{hint}", ctx
                    )
            return opts, largs, order

        parser.parse_args = parse_once
        return parser


class OnceCommand(_OncePerOption, click.Command):
    """A command whose options may each be given once."""


def _usage_message(exc: click.UsageError) -> str:
    """click's usage errors in one line (a group without its command lists the commands)."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError) and exc.ctx is not None:
        group = exc.ctx.command
        names = group.list_commands(exc.ctx) if isinstance(group, click.Group) else []
        path = exc.ctx.command_path
        where = f"{path.partition(' ')[2]}: " if " " in path else ""
        return (
            f"{where}missing command; one of {', '.join(names)} "
            f"('{path} --help' says what each does)"
        )
    return exc.format_message()


class SubGroup(_OncePerOption, click.Group):
    """A family of experiments (``simlab kept-units binomial``)."""

    command_class = OnceCommand


class SimlabGroup(_OncePerOption, click.Group):
    """Turns bad input into one line and exit status 2, and a bug into one line and status 1.

    Ctrl-C and SIGTERM end with 130 and 143 (what was done is kept by the command itself).
    """

    command_class = OnceCommand
    group_class = SubGroup

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """click's own errors outside a command (``simlab --bogus``, ``simlab`` alone) in one
        line too, and Ctrl-C while the arguments are read without click's ``Aborted!``."""
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            if not standalone_mode or _DEBUG["on"]:
                raise
            _error(_usage_message(exc))
            sys.exit(2)
        except click.ClickException as exc:
            if not standalone_mode:
                raise
            _error(exc.format_message())
            sys.exit(exc.exit_code)
        except click.exceptions.Abort as exc:
            if not standalone_mode:
                raise
            if isinstance(exc.__cause__, KeyboardInterrupt):
                click.echo("simlab: interrupted", err=True)
                sys.exit(interrupts.exit_status(exc.__cause__))
            click.echo("simlab: aborted", err=True)
            sys.exit(1)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SimlabInputError as exc:
            if _DEBUG["on"]:
                raise
            _error(str(exc))
            ctx.exit(2)
        except click.UsageError as exc:  # click's own checks (choices, ranges): one line too
            if _DEBUG["on"]:
                raise
            _error(_usage_message(exc))
            ctx.exit(2)
        except KeyboardInterrupt as exc:
            click.echo("simlab: interrupted", err=True)
            ctx.exit(interrupts.exit_status(exc))
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # a bug: say so in one line unless asked for the traceback
            if _DEBUG["on"]:
                raise
            click.echo(
                printable(
                    f"simlab: internal error: {type(exc).__name__}: {exc} "
                    "(rerun with --debug for the traceback)"
                ),
                err=True,
            )
            ctx.exit(1)


@click.group(cls=SimlabGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="simlab")
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
def cli(debug: bool) -> None:
    """simlab: check the theory of deep learning against massive Monte Carlo simulation.

    'simlab list' shows every experiment's parameters and quantities. Options are written
    kebab-case (--sigma-x); the parameter's own name (--sigma_x, as in claims and YAML files)
    is accepted too.
    """
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
            group = SubGroup(parts[0], help=f"{parts[0]} experiments.", context_settings=CONTEXT)
            groups[parts[0]] = group
            cli.add_command(group)
        group.add_command(experiment_command(exp, parts[1]))


@cli.command("run", context_settings=CONTEXT)
@click.argument("config", type=click.Path(path_type=Path), required=False)
@click.argument("overrides", nargs=-1)
@typed_option(RUN["seed"], "Root seed, instead of the file's", default="the file's")
@typed_option(RUN["workers"])
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="Go on with an interrupted run (its _partial folder, or the hidden .NAME.*.tmp one "
    "a killed run leaves): the checks are those of an uninterrupted run.",
)
@resolution_option
@strict_option
@output_options
@cluster_options
def run_command(
    config: Path | None,
    overrides: tuple[str, ...],
    seed: str | None,
    workers: str | None,
    scheduler: str | None,
    cluster: str | None,
    resume: Path | None,
    resolution: str | None,
    strict: bool,
    out: Path | None,
    formats: str,
    no_plots: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run the experiment(s) of a YAML file, with trailing KEY=VALUE overrides; or go on with
    an interrupted run (--resume DIR)."""
    if resume is not None:
        from simlab.resume import load_resume

        if config is not None or seed is not None or resolution is not None:
            given = (
                "a config file and overrides"
                if config is not None
                else ("--seed" if seed is not None else "--resolution")
            )
            raise SimlabInputError(
                f"--resume: goes on with the run as it was configured; {given} cannot be given "
                "with it (only --workers, --scheduler, --cluster and the output options)"
            )
        res = load_resume(resume, workers)
        fmts = _formats(formats)
        with runner_for(scheduler, cluster) as runner:
            code = execute(
                res.specs,
                label=res.label,
                out=out if out is not None else res.destination,
                formats=fmts,
                plots=not no_plots,
                as_json=as_json,
                quiet=quiet,
                title=res.title,
                runner=runner,
                resume=res,
                strict=strict,
            )
        _finish(code)
        return
    if config is None:
        raise SimlabInputError("run: give a CONFIG.yaml file to run, or --resume DIR")
    specs = file_specs(
        config,
        overrides,
        seed=value_of(RUN["seed"], seed),
        workers=value_of(RUN["workers"], workers),
        resolution=value_of(RUN["resolution"], resolution),
    )
    label = specs[0].experiment.name if len(specs) == 1 else config.stem
    fmts = _formats(formats)
    with runner_for(scheduler, cluster) as runner:
        code = execute(
            specs,
            label=label,
            out=out,
            formats=fmts,
            plots=not no_plots,
            as_json=as_json,
            quiet=quiet,
            runner=runner,
            strict=strict,
        )
    _finish(code)


@cli.command("check", context_settings=CONTEXT)
@budget_option(
    "Samples per check: quick, then standard and thorough with more. How long each takes on a "
    "2-core machine: README, 'Set up'."
)
@typed_option(RUN["seed"], "Root seed of the whole course (in the report: --seed replays it)")
@typed_option(RUN["workers"])
@resolution_option
@strict_option
@output_options
@cluster_options
def check_command(
    budget: str,
    seed: str | None,
    workers: str | None,
    scheduler: str | None,
    cluster: str | None,
    resolution: str | None,
    strict: bool,
    out: Path | None,
    formats: str,
    no_plots: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Check every built-in claim of every experiment; exit status 1 if any fails (or, with
    --strict, is undecided)."""
    from simlab.engine.executor import default_workers
    from simlab.engine.seeding import fresh_entropy
    from simlab.fork_server import prestart

    n_workers = value_of(RUN["workers"], workers)
    if not no_plots and (n_workers or default_workers()) > 1:  # else figures draw in-process
        prestart()  # the figure workers' fork server warms up while the course is built
    # one root seed for the whole course: the report shows it, and --seed with it replays all
    root = value_of(RUN["seed"], seed)
    specs = budget_specs(
        budget,
        fresh_entropy() if root is None else root,
        n_workers,
        resolution=value_of(RUN["resolution"], resolution),
    )
    fmts = _formats(formats)
    with runner_for(scheduler, cluster) as runner:
        code = execute(
            specs,
            label="check",
            out=out,
            formats=fmts,
            plots=not no_plots,
            as_json=as_json,
            quiet=quiet,
            title=f"simlab check --budget {budget}",
            runner=runner,
            strict=strict,
        )
    _finish(code)


@cli.command("calibrate", context_settings=CONTEXT)
@budget_option(
    "The course to rerun: each rerun is a 'simlab check' at this budget (standard and "
    "thorough: more samples per check, more power, longer)."
)
@typed_option(CALIBRATE["seeds"])
@typed_option(CALIBRATE["first_seed"])
@typed_option(CALIBRATE["alpha"])
@typed_option(CALIBRATE["alpha_wide"])
@click.option(
    "--only",
    type=click.Choice(["correct", "wrong"]),
    default=None,
    metavar="NAME",
    help="Measure only false alarms on the correct claims, or only power against wrong ones "
    "[default: both; one of correct, wrong].",
)
@typed_option(RUN["workers"])
@output_options
@cluster_options
def calibrate_command(
    budget: str,
    seeds: str | None,
    first_seed: str | None,
    alpha: str | None,
    alpha_wide: str | None,
    only: str | None,
    workers: str | None,
    scheduler: str | None,
    cluster: str | None,
    out: Path | None,
    formats: str,
    no_plots: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Measure false alarms on correct claims and power against known-wrong formulas."""
    import json as _json

    from simlab.calibrate import calibrate
    from simlab.console import calibration_table, safe, stderr_console
    from simlab.engine.progress import get_progress
    from simlab.output import RunFolder, versions

    n_seeds, first = (
        value_of(CALIBRATE[k], v, CALIBRATE[k].default)
        for k, v in (("seeds", seeds), ("first_seed", first_seed))
    )
    alpha_value = value_of(CALIBRATE["alpha"], alpha, CALIBRATE["alpha"].default)
    wide = value_of(CALIBRATE["alpha_wide"], alpha_wide, CALIBRATE["alpha_wide"].default)
    fmts = _formats(formats)
    folder = RunFolder("calibrate", out).open()  # the destination is checked before any work
    engine: dict[str, Any] = {}
    try:
        # the seeds are independent: on a cluster each seed is one task (calibrate.py)
        with runner_for(scheduler, cluster) as runner, get_progress(not quiet) as progress:
            cal = calibrate(
                budget,
                list(range(first, first + n_seeds)),
                alpha_value,
                wide,
                workers,
                progress,
                parts=(only,) if only else ("correct", "wrong"),
                runner=runner,
            )
            engine = runner.describe() if runner is not None else {"backend": "threads"}
    except BaseException:
        folder.discard()
        raise
    doc = {"versions": versions(), "engine": engine, **cal.as_dict()}
    status = _write_calibration(folder, cal, doc, fmts, plots=not no_plots)
    console = stderr_console()
    n = len(cal.seeds)
    table = calibration_table(doc, budget, cal.complete, len(cal.seeds_requested))
    if not quiet and n:
        console.print(table)
    console.print(f"calibration folder: {safe(folder.where)}")
    saved = folder.where / "calibration.json"
    if as_json and saved.exists():
        click.echo(_json.dumps(_json.loads(saved.read_text()), indent=2))
    if status:
        if status in (130, 143):
            console.print(
                f"[bold yellow]interrupted ({interrupts.describe(status)}): the calibration "
                f"folder is marked partial ({n} of {len(cal.seeds_requested)} seeds)[/]"
            )
        sys.exit(status)
    missing = doc.get("quantities_missing_uniformity", [])
    if missing:
        # an SE too wide (or too narrow) for one quantity hides in the pooled rates: say so
        console.print(
            f"[bold red]calibration target missed: the p-values of {len(missing)} "
            f"quantit{'y is' if len(missing) == 1 else 'ies are'} not uniform (KS p <= "
            f"{doc['uniformity_target']['ks_p_above']:g} over {n} seeds): "
            f"{', '.join(safe(m) for m in missing)}[/]"
        )
        sys.exit(1)


def _write_calibration(
    folder: Any, cal: Any, doc: dict[str, Any], fmts: tuple[str, ...], plots: bool
) -> int:
    """calibration.json (status partial until the figures are drawn), then the figures.

    Returns 0, the exit status of an interruption (130, 143), or 1 when the folder could not be
    written (said in one line with where the saved files are).
    """
    import shlex

    from simlab.calibrate import figures
    from simlab.output import write_json

    status = 0 if cal.complete else interrupts.exit_status()
    stage = "writing calibration.json"
    try:
        with folder:
            try:
                write_json(folder.path / "calibration.json", {**doc, "status": "partial"})
                if not cal.complete:
                    raise _Interrupted
                if plots and cal.seeds:
                    stage = "drawing figures"
                    figures(cal, folder.path, fmts)
                stage = "writing calibration.json"
                write_json(folder.path / "calibration.json", doc)
            except BaseException as exc:
                with interrupts.deferred():
                    if isinstance(exc, KeyboardInterrupt):
                        status = interrupts.exit_status(exc)
                    if stage != "writing calibration.json" or isinstance(exc, _Interrupted):
                        try:
                            write_json(
                                folder.path / "calibration.json", {**doc, "status": "partial"}
                            )
                        except BaseException:
                            (folder.path / "calibration.json").unlink(missing_ok=True)
                    why = (
                        f"interrupted ({interrupts.describe(status)}) while "
                        + ("running the seeds" if isinstance(exc, _Interrupted) else stage)
                        if isinstance(exc, KeyboardInterrupt | _Interrupted)
                        else f"{stage} failed: {exc}"
                    )
                    requested = cal.seeds_requested or cal.seeds
                    folder.mark_partial(
                        f"This calibration did not finish: {why}.\n\n"
                        f"What was done: {len(cal.seeds)} of {len(requested)} seeds "
                        f"(the seeds {requested[0]} to {requested[-1]} were asked for; "
                        "a seed is counted whole or not at all).\n\n"
                        "To run it again:\n\n    " + shlex.join(["simlab", *sys.argv[1:]]) + "\n"
                    )
                if not isinstance(exc, _Interrupted):
                    raise
    except KeyboardInterrupt:
        return status
    except OSError as exc:
        _error(
            f"could not write the calibration folder ({exc.strerror or exc}) while {stage}; "
            f"what was saved is in {folder.where}"
        )
        return 1
    return status


class _Interrupted(Exception):
    """The calibration was stopped before every seed ran: write what it has, then stop."""


@cli.command("report", context_settings=CONTEXT)
@click.argument(
    "run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="RUN_DIR..."
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(path_type=Path),
    default=None,
    metavar="FILE",
    help="The HTML file to write [default: with one RUN_DIR, a new file beside the run's own "
    "report: RUN_DIR/report_2.html, report_3.html, ...; the run's report.html is never "
    "overwritten].",
)
@click.option(
    "--title",
    default=None,
    metavar="TEXT",
    help="The page title [default: with one RUN_DIR, the run's own title, e.g. simlab check "
    "--budget quick; else simlab report].",
)
def report_command(run_dirs: tuple[Path, ...], output: Path | None, title: str | None) -> None:
    """Write one self-contained HTML report (figures embedded) for one or more run folders."""
    from simlab.report import report_destination, run_title, write_report

    destination = report_destination(list(run_dirs), output)
    if title is None and len(run_dirs) == 1:
        title = run_title(run_dirs[0])
    path = write_report(list(run_dirs), destination, title)
    click.echo(f"report: {printable(path)}", err=True)


@cli.command("list", context_settings=CONTEXT)
def list_command() -> None:
    """Experiments: parameters (defaults, allowed values), run defaults, and quantities (what
    they mean, the built-in prediction, how --target-se reads for each)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from simlab.verdicts.claims import BASE_FUNCTIONS

    console = Console()
    for name, exp in REGISTRY.items():
        table = Table(title=f"simlab {name} — {escape(exp.summary)}", title_justify="left")
        table.add_column("parameter")
        table.add_column("default")
        table.add_column("allowed")
        table.add_column("meaning")
        for p in exp.params:
            shown = p.default_text()
            table.add_row(
                p.name if p.option == f"--{p.name}" else f"{p.name} ({p.option})",
                escape(shown) if shown is not None else "[dim]unset[/]",
                escape(p.allowed()),
                escape(p.help),
            )
        console.print(table)
        console.print(
            f"  by default: --samples {count_text(exp.default_samples)} per point, "
            f"--chunk-size {count_text(exp.default_chunk_size)}, "
            f"--alpha {RUN['alpha'].default_text()}, "
            f"--resolution {RUN['resolution'].default_text()}"
        )
        quantities = Table(show_header=True, title_justify="left")
        quantities.add_column("quantity")
        quantities.add_column("kind")
        quantities.add_column("--target-se")
        quantities.add_column("meaning")
        quantities.add_column("built-in prediction")
        for q in exp.quantities:
            quantities.add_row(
                q.name,
                q.kind,
                (
                    f"{q.target} ({'SE' if q.target == 'absolute' else 'SE/|estimate|'})"
                    if q.has_target
                    else "—"
                ),
                escape(q.description),
                escape(exp.formulas.get(q.name, "—")),
            )
        console.print(quantities)
        names = [*exp.claim_names, *exp.claim_functions]
        if exp.joint_quantities:
            names.append("the measured " + ", ".join(exp.joint_quantities))
        console.print(
            "  a claim QUANTITY=EXPRESSION may use the numeric parameters, pi, e and the "
            "functions below" + (f"; here also {escape(', '.join(names))}" if names else "") + "\n"
        )
    console.print("Functions in claims: " + ", ".join(BASE_FUNCTIONS))
    console.print(
        "Run options of every experiment: "
        + ", ".join(p.option for p in RUN_OPTIONS)
        + ", --claim, --claim-false, --strict, --out, --format, "
        "--json, --quiet, --no-plots, --scheduler, --cluster ('simlab EXPERIMENT --help')"
    )


_register_experiments()


def main() -> None:
    """The command line, as ``simlab`` and ``python -m simlab`` enter it through
    :func:`simlab.__main__.main` (which installs the same handlers before these imports)."""
    from simlab.fork_server import own_this_process

    interrupts.install()
    own_this_process()  # the figure workers may fork from a warmed fork server
    # At exit, the interpreter's last garbage collection walked every object the run left (its
    # statistics, figure data, modules): ~0.15 s after the last line was printed, for memory
    # the operating system frees anyway. Frozen objects are left out of that collection.
    atexit.register(gc.freeze)
    cli(prog_name="simlab")


__all__ = ["cli", "main", "ExperimentRun"]

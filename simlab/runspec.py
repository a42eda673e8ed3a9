"""A run specification: parameters and run options, validated before any work is done.

Raw values (command-line options, a YAML file, overrides) become a :class:`RunSpec` only if every
value, every sweep point, the memory it would need and every claim (tried on stand-ins of the
right shapes) are acceptable; otherwise one :class:`~simlab.errors.SimlabInputError` names the
option or key, the value and what is allowed.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simlab.engine.executor import default_workers
from simlab.engine.seeding import fresh_entropy
from simlab.errors import SimlabInputError
from simlab.experiments.base import Experiment
from simlab.params import Param
from simlab.verdicts.checks import DEFAULT_RESOLUTION
from simlab.verdicts.claims import Claim, parse_claim

#: a claim as given: its text (expected to pass), or its text and the verdict it expects
ClaimText = str | tuple[str, str]

DEFAULT_ALPHA = 0.001
#: sweep points in one run (the Cartesian product of every listed parameter)
MAX_POINTS = 10_000

#: run options shared by every experiment (CLI options and YAML keys of the same name)
RUN_OPTIONS: tuple[Param, ...] = (
    Param(
        "samples",
        "int",
        0,
        "independent samples per sweep point (1e6 is fine; a standard error needs 2)",
        low=2,
        high=10**15,
        sweep=False,
        default_words="the experiment's",
    ),
    Param(
        "seed",
        "int",
        None,
        "root seed (recorded in config.yaml: the same seed replays the run)",
        low=0,
        sweep=False,
        default_words="fresh entropy",
    ),
    # Upper bounds: more threads than this only thrash (and thousands of them exhausted memory).
    Param(
        "workers",
        "int",
        0,
        "worker threads (never changes the numbers)",
        low=1,
        high=256,
        sweep=False,
        default_words="one per core",
    ),
    Param(
        "chunk_size",
        "int",
        0,
        "samples per chunk (each chunk has its own random stream)",
        low=1,
        high=10**7,
        sweep=False,
        default_words="the experiment's",
    ),
    Param(
        "alpha",
        "float",
        DEFAULT_ALPHA,
        "family-wise error rate of the run (Holm-Bonferroni)",
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        sweep=False,
    ),
    Param(
        "resolution",
        "float",
        DEFAULT_RESOLUTION,
        "target resolution: a check passes only if it could see a relative deviation this "
        "large (90% power); coarser checks read undecided, with the samples that would decide "
        "(the built-in checks meet the default at the quick budget, bar the Poisson limit's TV "
        "below its noise floor)",
        low=0.0,
        low_open=True,
        sweep=False,
    ),
    Param(
        "target_se",
        "float",
        None,
        "stop a point when every standard error is at most this (--samples is then the hard cap)",
        low=0.0,
        low_open=True,
        sweep=False,
        default_words="off",
    ),
)
_RUN_OPTION_NAMES = {p.name for p in RUN_OPTIONS}


@dataclass
class RunSpec:
    """A fully resolved, validated run of one experiment (what config.yaml records)."""

    experiment: Experiment
    params: dict[str, Any]  # a value or a list (a sweep) per parameter
    samples: int
    seed: int
    alpha: float
    claims: list[Claim] = field(default_factory=list)
    workers: int = 1
    chunk_size: int = 4096
    target_se: float | None = None
    resolution: float = DEFAULT_RESOLUTION
    #: the entry's ``name`` in a run file (its figures' folder; two runs of one experiment
    #: in one file keep theirs apart); None: the experiment's name
    name: str | None = None

    def points(self) -> list[dict[str, Any]]:
        """The sweep: the Cartesian product of every listed parameter, in declaration order."""
        names = list(self.params)
        axes = [v if isinstance(v, list) else [v] for v in self.params.values()]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]

    def as_config(self) -> dict[str, Any]:
        """The replayable configuration (workers are left out: they never change the numbers)."""
        config: dict[str, Any] = {"experiment": self.experiment.name}
        if self.name is not None:
            config["name"] = self.name
        config.update(self.params)
        config.update(
            samples=self.samples,
            seed=self.seed,
            chunk_size=self.chunk_size,
            alpha=self.alpha,
            resolution=self.resolution,
        )
        if self.target_se is not None:
            config["target_se"] = self.target_se
        if self.claims:
            config["claims"] = {}
            for c in self.claims:
                config["claims"].setdefault(c.quantity, [])
                config["claims"][c.quantity].append(
                    c.expression
                    if c.expect == "pass"
                    else {"expr": c.expression, "expect": c.expect}
                )
        return config


def build_spec(
    experiment: Experiment,
    raw: dict[str, Any],
    claims: Sequence[ClaimText],
    where: Callable[[str], str],
    claim_source: str = "--claim",
) -> RunSpec:
    """Validate raw values (from options or YAML) into a :class:`RunSpec`.

    ``raw`` maps parameter and run-option names to values as given (None: default); ``where(name)``
    names the option or key in messages. ``claims`` are ``NAME=EXPR`` texts expected to pass, or
    ``(text, expect)`` pairs (``expect`` "fail": ``--claim-false``, ``expect: fail`` in YAML).
    Raises SimlabInputError on the first bad value.
    """
    known = {p.name for p in experiment.params} | _RUN_OPTION_NAMES
    for key in raw:
        if key not in known:
            raise SimlabInputError(
                f"{where(key)}: unknown key; allowed: {', '.join(sorted(known))}"
            )
    params: dict[str, Any] = {}
    for p in experiment.params:
        value = raw.get(p.name)
        params[p.name] = p.default if value is None else p.convert(value, where(p.name))
    options: dict[str, Any] = {}
    for p in RUN_OPTIONS:
        value = raw.get(p.name)
        options[p.name] = None if value is None else p.convert(value, where(p.name))
    spec = RunSpec(
        experiment=experiment,
        params=params,
        samples=options["samples"] or experiment.default_samples,
        seed=options["seed"] if options["seed"] is not None else fresh_entropy(),
        alpha=options["alpha"] if options["alpha"] is not None else DEFAULT_ALPHA,
        workers=options["workers"] or default_workers(),
        chunk_size=options["chunk_size"] or experiment.default_chunk_size,
        target_se=options["target_se"],
        resolution=options["resolution"] or DEFAULT_RESOLUTION,
    )
    n_points = math.prod(len(v) for v in params.values() if isinstance(v, list))
    if n_points > MAX_POINTS:
        swept = ", ".join(f"{k} ({len(v)})" for k, v in params.items() if isinstance(v, list))
        raise SimlabInputError(
            f"{where(next(k for k, v in params.items() if isinstance(v, list)))}: the sweep "
            f"{swept} has {n_points:,} points; at most {MAX_POINTS:,} are allowed in one run"
        )
    points = spec.points()
    for point in points:
        experiment.validate(point, where)
        limit = experiment.max_samples(point)
        if limit is not None and spec.samples > limit[0]:
            raise SimlabInputError(
                f"{where('samples')}: {spec.samples} is not allowed here; at most {limit[0]:,}: "
                f"{limit[1]}"
            )
        _check_memory(spec, point, where)
    # a choice (a string) has no value in a formula: naming it is an error before any work
    numeric = [p.name for p in experiment.params if p.kind in ("float", "int", "bool")]
    names = numeric + list(experiment.claim_names)
    refused = _refused_quantities(experiment, names)
    spec.claims = []
    for item in claims:
        text, expect = (item, "pass") if isinstance(item, str) else item
        source = claim_source
        if expect == "fail" and claim_source == "--claim":
            source = "--claim-false"
        spec.claims.append(
            parse_claim(
                text,
                quantities=[q.name for q in experiment.quantities],
                names=names,
                functions=dict(experiment.claim_functions),
                source=source,
                expect=expect,
                measured=experiment.joint_quantities,
                refused=refused,
            )
        )
    for claim in spec.claims:
        for point in points:
            _trial_evaluate(experiment, claim, point)
    return spec


def relation_experiments() -> list[str]:
    """The experiments whose claims may name their other measured quantities."""
    from simlab.experiments import REGISTRY  # here: the registry imports every experiment

    return [name for name, exp in REGISTRY.items() if exp.joint_quantities]


def _refused_quantities(experiment: Experiment, names: list[str]) -> dict[str, str]:
    """Why each quantity a claim cannot name is refused (the parser's message for it)."""
    joint = set(experiment.joint_quantities)
    refused = {}
    for q in experiment.quantities:
        if q.name in names or q.name in joint:
            continue
        if joint:
            refused[q.name] = (
                f"'{q.name}' is a measured quantity whose joint covariance with the others is "
                f"not estimated; a claim may name only {', '.join(experiment.joint_quantities)}"
            )
        else:
            refused[q.name] = (
                f"'{q.name}' is a measured quantity; claims between measured quantities need the "
                f"joint covariance of the estimates, which {experiment.name} does not estimate "
                f"(supported by: {', '.join(relation_experiments())})"
            )
    return refused


def memory_budget() -> int:
    """Bytes a run may plan to hold: half of this machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 8 * 2**30


def _check_memory(spec: RunSpec, point: dict[str, Any], where: Callable[[str], str]) -> None:
    """Refuse, before any work, a point whose setup and chunks in flight would not fit."""
    estimate = spec.experiment.memory_bytes(point, min(spec.chunk_size, spec.samples))
    if estimate is None:
        return
    setup, per_chunk = estimate
    in_flight = 2 * spec.workers if spec.workers > 1 else 1  # the executor's window
    need = setup + in_flight * per_chunk
    budget = memory_budget()
    if need > budget:
        setting = ", ".join(f"{k}={_short(v)}" for k, v in point.items())
        raise SimlabInputError(
            f"too large: the point {setting} needs about {need / 2**30:.3g} GiB "
            f"(setup {setup / 2**30:.3g} GiB + {in_flight} chunks in flight x "
            f"{per_chunk / 2**30:.3g} GiB), more than the {budget / 2**30:.3g} GiB allowed "
            "(half this machine's memory); use smaller sizes, --chunk-size or --workers"
        )


def _short(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _trial_evaluate(exp: Experiment, claim: Claim, point: dict[str, Any]) -> None:
    """Evaluate ``claim`` on stand-ins of the right shapes: fail before simulating, not after.

    A claim written in the parameters alone is evaluated exactly as it will be after the run,
    so a value that is not a finite number (``sqrt(-p)``) is refused too.
    """
    values = exp.claim_trial_values(point, claim.quantity)
    setting = ", ".join(f"{k}={_short(v)}" for k, v in point.items())
    involved = claim.measured | {claim.quantity} if claim.measured else set()
    missing = sorted(involved - set(exp.relation_quantities(point)))
    if missing:
        raise SimlabInputError(
            f"{claim.source} '{claim.quantity}={claim.expression}': a claim between measured "
            f"quantities needs their joint covariance, which is not estimated at {setting} "
            f"for {', '.join(missing)} (exact there, not measured)"
        )
    try:
        value = claim.evaluate(values)
    except SimlabInputError as exc:
        raise SimlabInputError(f"{exc} (at {setting})") from None
    if claim.measured and np.ndim(value) != 0:
        raise SimlabInputError(
            f"{claim.source} '{claim.quantity}={claim.expression}': evaluates to an array of "
            f"shape {np.shape(value)} at {setting}; a claim between measured quantities must "
            "give one number"
        )
    if set(claim.names) <= set(point) and not np.all(np.isfinite(value)):
        raise SimlabInputError(
            f"{claim.source} '{claim.quantity}={claim.expression}': evaluates to {value} at "
            f"{setting}; a prediction must be a finite number"
        )

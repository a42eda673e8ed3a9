"""From a validated run specification to decided checks: the flow every command shares.

sweep points -> per-point simulation (the experiment protocol on the engine) -> estimates and
predictions -> checks (built-in and user claims) -> Holm-Bonferroni verdicts over the whole run.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from typing import Any

from simlab import interrupts
from simlab.engine.checkpoint import Checkpointer
from simlab.engine.executor import ChunkRunner, RunInterrupted, run_chunks, single_threaded_blas
from simlab.engine.progress import NullProgress
from simlab.experiments.base import PointContext, PointResult
from simlab.figures import ClaimMark
from simlab.runspec import RunSpec
from simlab.verdicts.checks import Check, decide, make_check
from simlab.verdicts.claims import Claim
from simlab.verdicts.estimates import Prediction
from simlab.verdicts.relations import relation_check


@dataclass
class ExperimentRun:
    """The simulated points of one spec and their undecided checks."""

    spec: RunSpec
    points: list[PointResult]
    checks: list[Check]
    seconds: float
    complete: bool = True
    #: True once :func:`decide_runs` has filled the verdicts (deciding again would repeat notes)
    decided: bool = False

    @property
    def samples_done(self) -> int:
        return sum(p.n_samples for p in self.points)


def simulate(
    spec: RunSpec,
    progress: NullProgress | None = None,
    runner: ChunkRunner | None = None,
    checkpoint: Checkpointer | None = None,
    run_index: int = 0,
    *,
    figures: bool = True,
) -> ExperimentRun:
    """Run every sweep point of ``spec`` and build its checks (verdicts come from :func:`decide`).

    On Ctrl-C the points finished so far, and the interrupted point evaluated on the chunks it
    had, are returned with ``complete=False``. ``runner`` runs the chunks (default: threads);
    it never changes a number.

    With ``checkpoint``, each point's state is recorded under ``(run_index, point)``, and a
    point that already has one there (a run being resumed) goes on from it.

    ``figures``: whether the points compute their figure data (and the studies only figures
    show); a run that draws no figures skips them. The checks are the same either way.
    """
    progress = progress or NullProgress()
    start = time.perf_counter()
    results: list[PointResult] = []
    complete = True
    for index, point in enumerate(spec.points()):
        ctx = PointContext(
            entropy=spec.seed,
            point_index=index,
            samples=spec.samples,
            chunk_size=spec.chunk_size,
            workers=spec.workers,
            target_se=spec.target_se,
            alpha=spec.alpha,
            progress=progress,
            chunk_runner=runner or run_chunks,
            figures=figures,
        )
        if checkpoint is not None:
            ctx.resume = checkpoint.state((run_index, index))
            ctx.checkpoint = checkpoint.slot((run_index, index))
        try:
            with single_threaded_blas():  # the set-up and predictions too, not only the chunks
                result = spec.experiment.run_point(point, ctx)
        except RunInterrupted:
            complete = False
            break
        except Exception:
            if not ctx.interrupted:
                raise
            complete = False  # too few samples to evaluate the interrupted point: drop it
            break
        results.append(result)
        if ctx.interrupted:
            complete = False
            break
    # stopping after a Ctrl-C: the checks are made with further signals held (see run_point)
    holding = interrupts.deferred() if not complete else contextlib.nullcontext()
    with holding, single_threaded_blas():
        checks = checks_for(spec, results)
    return ExperimentRun(spec, results, checks, time.perf_counter() - start, complete)


def checks_for(spec: RunSpec, results: list[PointResult]) -> list[Check]:
    """Built-in checks for every predicted quantity, then every user claim, at every point."""
    exp = spec.experiment
    swept = [k for k, v in spec.params.items() if isinstance(v, list)]
    checks: list[Check] = []
    for result in results:
        setting = {k: result.params[k] for k in swept}
        for quantity, predictions in result.predictions.items():
            if not isinstance(predictions, list):
                predictions = [predictions]
            for prediction in predictions:
                checks.append(
                    make_check(
                        experiment=exp.name,
                        quantity=quantity,
                        params=setting,
                        estimate=result.estimates[quantity],
                        prediction=prediction,
                        source="builtin",
                        expression=prediction.label or exp.formulas.get(quantity, ""),
                        id_suffix=f"~{prediction.label}" if prediction.label else "",
                    )
                )
        for number, claim in enumerate(spec.claims, start=1):
            values = exp.claim_values(result, claim.quantity)
            if claim.measured and result.joint is not None:
                checks.append(
                    relation_check(
                        experiment=exp.name,
                        params=setting,
                        claim=claim,
                        values=values,
                        joint=result.joint,
                        estimate=result.estimates[claim.quantity],
                        id_suffix=f"#{number}",
                    )
                )
                continue
            value = claim_value(spec, result, claim)
            checks.append(
                make_check(
                    experiment=exp.name,
                    quantity=claim.quantity,
                    params=setting,
                    estimate=result.estimates[claim.quantity],
                    prediction=Prediction(value, "as claimed", expect=claim.expect),
                    source="user",
                    expression=claim.expression,
                    id_suffix=f"#{number}",
                )
            )
    return checks


def decide_runs(runs: list[ExperimentRun], alpha: float) -> None:
    """Decide every check of ``runs`` as one family (one Holm-Bonferroni over all of them),
    each against its own run's target resolution. Runs already decided together are left as
    they are (a result saved after it was shown keeps its verdicts)."""
    if runs and all(run.decided for run in runs):
        return
    flat = [c for run in runs for c in run.checks]
    targets = [run.spec.resolution for run in runs for _ in run.checks]
    with single_threaded_blas():
        decided = iter(decide(flat, alpha, targets))
    for run in runs:
        run.checks = [next(decided) for _ in run.checks]
        run.decided = True


def claim_value(spec: RunSpec, result: PointResult, claim: Claim) -> Any:
    """What ``claim`` predicts at ``result``'s point (a float, or an array over ``l`` or ``k``)."""
    return claim.evaluate(spec.experiment.claim_values(result, claim.quantity))


def points_with_claims(run: ExperimentRun) -> list[PointResult]:
    """``run``'s points, each carrying its user claims with their verdicts (for the figures).

    A claim's verdict at a point is that of its user check there (same quantity, expression and
    swept setting: two identical claims share their verdict); a claim that cannot be evaluated
    at a point is left off there.
    """
    claims = run.spec.claims
    if not claims:
        return list(run.points)
    swept = [k for k, v in run.spec.params.items() if isinstance(v, list)]
    verdicts = {}
    for check in run.checks:
        if check.source == "user":
            setting = tuple(sorted(map(str, check.params.items())))
            verdicts[(check.quantity, check.expression, setting)] = check.verdict
    out = []
    for result in run.points:
        setting = tuple(sorted(map(str, ((k, result.params[k]) for k in swept))))
        marks = []
        for number, claim in enumerate(claims, start=1):
            try:
                value = claim_value(run.spec, result, claim)
            except Exception:  # the check records why; a figure simply leaves it off
                continue
            marks.append(
                ClaimMark(
                    number=number,
                    quantity=claim.quantity,
                    expression=claim.expression,
                    value=value,
                    verdict=verdicts.get((claim.quantity, claim.expression, setting)),
                    expect=claim.expect,
                )
            )
        out.append(replace(result, claims=tuple(marks)))
    return out

"""Every registered experiment follows the one protocol (simlab/experiments/base.py)."""

import pickle

import pytest

from simlab.engine.seeding import chunk_rng, setup_rng
from simlab.engine.stopping import ABSOLUTE, RELATIVE
from simlab.experiments import REGISTRY
from simlab.experiments.base import Experiment

EXPERIMENTS = sorted(REGISTRY)


def _default_point(exp: Experiment) -> dict:
    point = {p.name: p.default for p in exp.params}
    return {k: (v[0] if isinstance(v, list) else v) for k, v in point.items()}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_run_point_is_the_template_never_rewritten(name):
    assert type(REGISTRY[name]).run_point is Experiment.run_point


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_figure_has_a_caption_that_states_its_claim(name):
    figures = REGISTRY[name].figures
    assert figures, f"{name} has no figures"
    stems = [f.stem for f in figures]
    assert len(set(stems)) == len(stems), f"{name}: two figures share a file stem"
    for figure in figures:
        assert len(figure.caption) > 30, f"{name}/{figure.stem}: caption missing or too short"
        assert figure.caption != figure.stem.replace("_", " ")
        assert callable(figure.render)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_quantities_declare_kinds_and_how_target_se_reads(name):
    for q in REGISTRY[name].quantities:
        assert q.kind in ("statistical", "distribution", "exact", "descriptive"), q
        assert q.target in (ABSOLUTE, RELATIVE), q


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_the_sampler_pickles_and_replays_a_chunk(name):
    """A cluster backend ships the sampler: it must pickle and give the same statistics."""
    exp = REGISTRY[name]
    point = _default_point(exp)
    sampler = exp.sampler(point, exp.setup(point, setup_rng(7, 0)))
    clone = pickle.loads(pickle.dumps(sampler))
    a = sampler(chunk_rng(7, 0, 0), 64).estimates()
    b = clone(chunk_rng(7, 0, 0), 64).estimates()
    assert a.keys() == b.keys()
    timed = {q.name for q in exp.quantities if q.kind == "descriptive" and q.name == "seconds"}
    assert repr({k: v for k, v in a.items() if k not in timed}) == repr(
        {k: v for k, v in b.items() if k not in timed}
    )


def test_a_second_ctrl_c_while_an_interrupted_point_is_evaluated_is_held():
    """After a Ctrl-C the point is evaluated on the chunks it has; a second one meanwhile (it
    could land in the middle of a lazy import, leaving a half-initialised module) is held and
    recorded, not raised."""
    import os
    import signal

    from simlab import interrupts
    from simlab.engine.executor import ChunkPlan, RunInterrupted, run_chunks
    from simlab.experiments.base import PointContext
    from simlab.experiments.dropout import Dropout

    class CtrlCWhileEvaluated(Dropout):
        def predict(self, sim):
            os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C
            return super().predict(sim)

    def one_chunk_then_ctrl_c(task, plan, *, entropy, point, **_):
        done = run_chunks(
            task, ChunkPlan(plan.chunk_size, plan.chunk_size), entropy=entropy, point=point
        )
        raise RunInterrupted(done)  # the first Ctrl-C, after one chunk

    exp = CtrlCWhileEvaluated()
    point = {**_default_point(exp), "N": 16, "M": 8}
    ctx = PointContext(1, 0, 4000, 1000, 1, chunk_runner=one_chunk_then_ctrl_c)
    held_before = len(interrupts._received)

    def reached(signum, frame):  # a Ctrl-C let through fails the test, not the whole session
        raise RuntimeError("the second Ctrl-C reached the point's evaluation")

    previous = signal.signal(signal.SIGINT, reached)
    try:
        result = exp.run_point(point, ctx)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert ctx.interrupted and result.n_samples == 1000
    assert result.predictions  # the point was evaluated to the end
    assert len(interrupts._received) == held_before + 1  # the second Ctrl-C, recorded

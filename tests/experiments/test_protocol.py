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

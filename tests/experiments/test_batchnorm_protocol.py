"""The three batch-norm experiments on the experiment protocol: --target-se, figures as data,
studies drawn from their own streams, memory estimates and claim stand-ins."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from simlab.engine.progress import NullProgress
from simlab.engine.seeding import setup_rng
from simlab.experiments.base import PointContext
from simlab.experiments.batchnorm_grads import BatchnormGrads
from simlab.experiments.batchnorm_stats import BatchnormStats, shared_eps_study
from simlab.experiments.batchnorm_whiten import BatchnormWhiten, shared_rank_study
from simlab.verdicts.estimates import ExactEstimate, ScalarEstimate

STATS = dict(B=32, N=8, M=16, gamma=1.5, beta=-0.5, eps=1e-5, input="gaussian", sigma=1.0)
GRADS = dict(B=16, M=4, gamma=1.0, beta=0.3, eps=1e-5, sigma=1.0)
WHITEN = dict(B=64, M=8, rho=0.5, corr="equi", eps=1e-5)


def _run(exp, point, samples, chunk, *, workers=1, target_se=None, index=0, seed=5):
    ctx = PointContext(
        entropy=seed,
        point_index=index,
        samples=samples,
        chunk_size=chunk,
        workers=workers,
        target_se=target_se,
        progress=NullProgress(),
    )
    return exp.run_point(point, ctx)


def _same(a, b) -> bool:
    """Estimates equal entry by entry (a wall time is a measurement: not compared)."""
    for name, ea in a.estimates.items():
        eb = b.estimates[name]
        if name == "seconds":
            continue
        if isinstance(ea, ExactEstimate):
            if not np.array_equal(ea.reference, eb.reference, equal_nan=True):
                return False
        elif ea != eb and not (np.isnan(ea.value) and np.isnan(eb.value)):
            return False
    return True


@pytest.mark.parametrize(
    "exp, point, target",
    [(BatchnormStats(), STATS, 0.005), (BatchnormWhiten(), WHITEN, 0.003)],
    ids=["stats", "whiten"],
)
def test_target_se_stops_early_at_a_chunk_boundary_whatever_the_workers(exp, point, target):
    samples, chunk = 40_000, 200
    one = _run(exp, point, samples, chunk, target_se=target)
    assert 2 * chunk <= one.n_samples < samples, one.n_samples
    assert one.n_samples % chunk == 0
    for q in exp.quantities:
        if q.has_target:
            est = one.estimates[q.name]
            limit = target * (abs(est.value) if q.target == "relative" else 1.0)
            assert isinstance(est, ScalarEstimate) and est.se <= limit, (q.name, est)
    two = _run(exp, point, samples, chunk, target_se=target, workers=2)
    assert two.n_samples == one.n_samples and _same(one, two)


def test_exact_only_grads_run_every_sample_under_a_target():
    result = _run(BatchnormGrads(), GRADS, 40, 10, target_se=0.1)
    assert result.n_samples == 40  # nothing statistical to reach the target with


@pytest.mark.parametrize(
    "exp, points, samples, chunk",
    [
        (BatchnormStats(), [{**STATS, "sigma": 1.0}, {**STATS, "sigma": 0.003}], 600, 300),
        (BatchnormStats(), [{**STATS, "sigma": 0.0, "eps": 0.0}], 100, 100),
        (BatchnormGrads(), [{**GRADS, "B": 2}, {**GRADS, "eps": 0.0}], 10, 10),
        (BatchnormWhiten(), [{**WHITEN, "B": 8}, WHITEN], 60, 30),
        (BatchnormWhiten(), [{**WHITEN, "B": 6, "eps": 0.0}], 30, 30),
    ],
    ids=["stats", "stats-constant", "grads", "whiten", "whiten-singular"],
)
def test_every_figure_has_a_caption_and_renders(exp, points, samples, chunk, tmp_path):
    assert exp.figures
    for spec in exp.figures:
        assert len(spec.caption) > 60 and "=" in spec.caption, spec.stem
    results = [_run(exp, p, samples, chunk, index=i) for i, p in enumerate(points)]
    paths = exp.render_figures(results, tmp_path, ("png",))
    assert sorted(p.name for p in paths) == sorted(f"{s.stem}.png" for s in exp.figures)
    assert all(p.stat().st_size > 10_000 for p in paths)


def _figure(exp, point, *, seed=3, index=1):
    """The figure data of a small run of ``point`` (sweep point ``index`` of run ``seed``)."""
    samples = 100 if isinstance(exp, BatchnormStats) else 30
    return _run(exp, point, samples, samples, index=index, seed=seed).figure


def test_studies_come_from_their_own_stream_and_replay():
    exp = BatchnormStats()
    a = _figure(exp, STATS)
    b = _figure(exp, STATS)
    # the eps study depends on a point only through B, gamma and eps: the points of a run that
    # agree on them share one (computed once); another run or another B has its own
    shared = _figure(exp, {**STATS, "sigma": 0.5, "input": "student_t"}, index=2)
    other_run = _figure(exp, STATS, seed=4)
    other_B = _figure(exp, {**STATS, "B": STATS["B"] + 1})
    assert a.eps_study is shared.eps_study
    assert np.array_equal(a.eps_study.jac, b.eps_study.jac, equal_nan=True)
    assert not np.array_equal(a.eps_study.ratio, other_run.eps_study.ratio, equal_nan=True)
    assert other_B.eps_study.B == STATS["B"] + 1
    # a pure function of the run and the key: computed afresh, the same numbers
    shared_eps_study.cache_clear()
    again = _figure(exp, STATS, index=2)
    assert again.eps_study is not a.eps_study
    for name in ("ratio", "ratio_se", "xmax", "v", "jac"):
        assert np.array_equal(
            getattr(a.eps_study, name), getattr(again.eps_study, name), equal_nan=True
        )
    # the study draws nothing from the setup stream: W and b are those of a bare setup stream
    rng = setup_rng(3, 1)
    W = rng.standard_normal((STATS["M"], STATS["N"]))
    setup = exp.setup(STATS, setup_rng(3, 1))
    np.testing.assert_array_equal(setup.W, W / np.linalg.norm(W, axis=1, keepdims=True))
    whiten = _figure(BatchnormWhiten(), {**WHITEN, "corr": "random"})
    again = _figure(BatchnormWhiten(), {**WHITEN, "corr": "random"})
    assert np.array_equal(whiten.rank_study.cond, again.rank_study.cond)
    # a random C is the point's own, and so is its rank study
    elsewhere = _figure(BatchnormWhiten(), {**WHITEN, "corr": "random"}, index=2)
    assert not np.array_equal(whiten.rank_study.cond, elsewhere.rank_study.cond)
    # an equicorrelated C depends on rho and M only: the points of a run share one study
    equi = _figure(BatchnormWhiten(), WHITEN)
    other_B = _figure(BatchnormWhiten(), {**WHITEN, "B": 2 * WHITEN["B"]}, index=2)
    other_rho = _figure(BatchnormWhiten(), {**WHITEN, "rho": 0.25})
    assert equi.rank_study is other_B.rank_study
    assert not np.array_equal(equi.rank_study.cond, other_rho.rank_study.cond)
    shared_rank_study.cache_clear()
    fresh = _figure(BatchnormWhiten(), WHITEN, index=4).rank_study
    assert fresh is not equi.rank_study
    assert np.array_equal(fresh.dev, equi.rank_study.dev, equal_nan=True)


@pytest.mark.parametrize(
    "exp, point, samples",
    [(BatchnormStats(), STATS, 100), (BatchnormWhiten(), {**WHITEN, "corr": "random"}, 30)],
    ids=["stats", "whiten"],
)
def test_a_run_without_figures_makes_no_study_and_the_same_numbers(
    exp, point, samples, monkeypatch
):
    import simlab.experiments.batchnorm_stats as stats_module
    import simlab.experiments.batchnorm_whiten as whiten_module

    def refuse(*args, **kwargs):
        raise AssertionError("a study only a figure shows was made for a run without figures")

    drawn = _run(exp, point, samples, samples, index=7)
    for module, name in [
        (stats_module, "shared_eps_study"),
        (whiten_module, "rank_study"),
        (whiten_module, "shared_rank_study"),
        (whiten_module, "wall_times"),
    ]:
        monkeypatch.setattr(module, name, refuse)
    ctx = PointContext(
        entropy=5, point_index=7, samples=samples, chunk_size=samples, workers=1, figures=False
    )
    plain = exp.run_point(point, ctx)
    assert plain.figure is None and drawn.figure is not None
    assert _same(plain, drawn)
    assert plain.predictions.keys() == drawn.predictions.keys()
    for name, prediction in plain.predictions.items():
        other = drawn.predictions[name]
        assert np.array_equal(prediction.value, other.value, equal_nan=True), name
        assert prediction.holds == other.holds, name


def test_figure_modules_import_neither_their_experiment_nor_matplotlib():
    import ast
    from pathlib import Path

    import simlab.experiments

    folder = Path(simlab.experiments.__file__).parent
    for kind in ("stats", "grads", "whiten"):
        tree = ast.parse((folder / f"batchnorm_{kind}_figures.py").read_text())
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        names = [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        names += [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in names if m.startswith("matplotlib")], kind
        assert f"simlab.experiments.batchnorm_{kind}" not in names, kind


@pytest.mark.parametrize(
    "exp, point, chunk",
    [
        (BatchnormStats(), {**STATS, "M": 64, "N": 32}, 2000),
        (BatchnormGrads(), {**GRADS, "B": 32, "M": 8}, 50),
        (BatchnormWhiten(), {**WHITEN, "B": 96, "M": 16}, 200),
    ],
    ids=["stats", "grads", "whiten"],
)
def test_memory_estimate_bounds_the_measured_peak(exp, point, chunk):
    """memory_bytes is within a factor of 2 of what the setup and one chunk really allocate."""
    tracemalloc.start()
    try:
        setup = exp.setup(point, setup_rng(1, 0))
        setup_peak = tracemalloc.get_traced_memory()[1]
        sampler = exp.sampler(point, setup)
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        sampler(np.random.default_rng(1), chunk)
        chunk_peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    setup_bytes, chunk_bytes = exp.memory_bytes(point, chunk)
    assert 0.5 < chunk_bytes / chunk_peak < 2.0, (chunk_bytes, chunk_peak)
    if setup_peak > 1 << 20:  # a setup of a few arrays is noise
        assert 0.5 < setup_bytes / setup_peak < 2.0, (setup_bytes, setup_peak)


@pytest.mark.parametrize(
    "exp, point, quantities",
    [
        (BatchnormStats(), STATS, ("batch_var", "jac_norm", "mean_v")),
        (BatchnormStats(), {**STATS, "sigma": 0.0}, ("mean_out",)),
        (BatchnormGrads(), GRADS, ("d_Y", "d_m")),
        (BatchnormWhiten(), WHITEN, ("white_cov", "cross_cov", "rank")),
    ],
    ids=["stats", "stats-constant", "grads", "whiten"],
)
def test_claim_stand_ins_have_the_shapes_of_the_real_values(exp, point, quantities):
    samples = {"batchnorm grads": 4}.get(exp.name, 256)
    result = _run(exp, point, samples, samples)
    for q in quantities:
        trial = exp.claim_trial_values(point, q)
        real = exp.claim_values(result, q)
        assert set(trial) == set(real), (q, set(trial) ^ set(real))
        for name, value in real.items():
            if isinstance(value, np.ndarray):
                # the per-entry shape is real; the number of instances is a stand-in's
                assert np.shape(trial[name])[1:] == value.shape[1:], (q, name)

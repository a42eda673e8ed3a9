"""The dropout sampler against theory, and the experiment's invariants."""

import numpy as np
import pytest

from simlab.engine.progress import NullProgress
from simlab.experiments.base import PointContext
from simlab.experiments.dropout import Dropout, DropoutSampler, draw_weights

DEFAULTS = dict(p=0.5, N=64, M=32, sigma_x=1.0, bias=0.0, weights="orthonormal", rescale=True)


def _run(samples=40_000, seed=11, workers=1, **overrides):
    point = {**DEFAULTS, **overrides}
    ctx = PointContext(
        entropy=seed,
        point_index=0,
        samples=samples,
        chunk_size=2048,
        workers=workers,
        progress=NullProgress(),
    )
    return Dropout().run_point(point, ctx)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"p": 0.8, "bias": 0.4, "sigma_x": 2.0},
        {"rescale": False, "p": 0.3},
        {"weights": "gaussian", "bias": -0.3, "M": 48},
    ],
)
def test_every_quantity_agrees_with_theory_within_five_standard_errors(overrides):
    result = _run(**overrides)
    for name, est in result.estimates.items():
        predicted = float(result.predictions[name].value)
        assert est.se > 0, name
        assert abs(est.value - predicted) < 5 * est.se, (name, est.value, predicted, est.se)


def test_a_wrong_formula_is_far_outside_the_error_bars():
    result = _run()
    est = result.estimates["var_after"]
    wrong = (0.5 - 1 / (2 * np.pi)) / (1 - 0.5)  # forgets the mean term
    assert abs(est.value - wrong) > 20 * est.se


def test_orthonormal_weights_are_orthonormal_and_gaussian_are_not():
    rng = np.random.default_rng(0)
    w = draw_weights(rng, "orthonormal", 20, 50)
    np.testing.assert_allclose(w @ w.T, np.eye(20), atol=1e-12)
    g = draw_weights(rng, "gaussian", 20, 50)
    assert np.abs(g @ g.T - np.eye(20)).max() > 0.05


def test_standard_errors_are_honest_when_units_of_a_sample_are_correlated():
    # With Gaussian weights the units of one sample are correlated (shared input, non-orthogonal
    # rows). Over independent repetitions, (estimate - prediction) / SE must have spread ~ 1.
    z = []
    for seed in range(40):
        r = _run(samples=4000, seed=seed, weights="gaussian", N=4, M=48, bias=0.2)
        for name in ("mean_before", "var_after", "cov_after"):
            z.append(
                (r.estimates[name].value - float(r.predictions[name].value)) / r.estimates[name].se
            )
    spread = np.std(z, ddof=1)
    assert 0.75 < spread < 1.3, spread


def test_sampler_draws_the_network_not_the_answer():
    point = {**DEFAULTS, "p": 0.5}
    weights = draw_weights(np.random.default_rng(1), "orthonormal", 32, 64)
    edges = np.linspace(1e-30, 5, 11)
    sampler = DropoutSampler(point, weights, (edges, edges * 2))
    stats = sampler(np.random.default_rng(2), 1000)
    # a ReLU of a Gaussian is exactly 0 about half the time: the point mass comes from the network
    assert 0.45 < stats.hist_before.below / stats.hist_before.total < 0.55
    # after dropout at p = 0.5 about three quarters are 0
    assert 0.70 < stats.hist_after.below / stats.hist_after.total < 0.80


def test_workers_do_not_change_the_numbers():
    a = _run(samples=20_000, workers=1)
    b = _run(samples=20_000, workers=2)
    for name in a.estimates:
        assert a.estimates[name] == b.estimates[name]


def test_memory_estimate_bounds_the_measured_peak():
    """memory_bytes is within a factor of 2 of the peak a chunk really allocates."""
    import tracemalloc

    from simlab.engine.seeding import chunk_rng, setup_rng

    exp = Dropout()
    point = {"p": 0.5, "N": 300, "M": 200, "sigma_x": 1.0, "bias": 0.0,
             "weights": "orthonormal", "rescale": True}  # fmt: skip
    setup_bytes, chunk_bytes = exp.memory_bytes(point, 2000)
    tracemalloc.start()
    setup = exp.setup(point, setup_rng(1, 0))
    setup_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    exp.sampler(point, setup)(chunk_rng(1, 0, 0), 2000)
    chunk_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert setup_peak / 2 <= setup_bytes <= 2 * setup_peak, (setup_bytes, setup_peak)
    assert chunk_peak / 2 <= chunk_bytes <= 2 * chunk_peak, (chunk_bytes, chunk_peak)


def test_an_oversize_point_is_refused_before_any_work(simlab):
    result = simlab("dropout", "--N", "1e9", "--M", "100", "--quiet")
    assert result.exit_code == 2, result.output
    assert "needs about" in result.stderr and "GiB" in result.stderr
    assert not (simlab.folder / "outputs").exists()  # refused before the run folder

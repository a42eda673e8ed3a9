"""The runner: Ctrl-C keeps the interrupted point when it can be evaluated, drops it otherwise."""

from typing import ClassVar

import pytest

from simlab.experiments.base import Experiment, PointResult, Quantity
from simlab.params import Param
from simlab.runspec import build_spec
from simlab.simulate import simulate
from simlab.stats import Moments
from simlab.verdicts.estimates import Prediction, ScalarEstimate


class _Interrupted(Experiment):
    """Samples normals; Ctrl-C arrives in chunk ``stop``; evaluating needs ``need`` samples."""

    name = "interrupted"
    summary = "test double"
    params = (Param("stop", "int", 3, "chunk at which Ctrl-C arrives"),)
    quantities = (Quantity("mean", "statistical", "mean of N(0, 1)"),)
    default_samples = 10_000
    default_chunk_size = 1000
    need: ClassVar[int] = 0

    def run_point(self, point, ctx):
        def sampler(rng, size):
            if sampler.calls == point["stop"]:
                raise KeyboardInterrupt
            sampler.calls += 1
            return Moments.from_batch(rng.standard_normal((size, 1)))

        sampler.calls = 0
        run = ctx.run(sampler, "test")
        if run.n_samples < self.need:
            raise ValueError("too few samples to evaluate")
        estimate = ScalarEstimate(0.0, 1.0 / run.n_samples**0.5, run.n_samples)
        return PointResult(point, {"mean": estimate}, {"mean": Prediction(0.0)}, run.n_samples, 0.0)

    def figures(self, points, folder, formats):
        return []


@pytest.mark.parametrize("need, kept", [(0, [2000]), (5000, [])])
def test_ctrl_c_keeps_the_point_it_interrupted_when_it_can_be_evaluated(need, kept):
    exp = _Interrupted()
    exp.need = need
    spec = build_spec(exp, {"stop": 2, "workers": 1, "seed": 1}, [], lambda k: k)
    run = simulate(spec)
    assert run.complete is False
    assert [p.n_samples for p in run.points] == kept


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dropout", "--claim", "var_after=sqrt(-p)"], "a prediction must be a finite number"),
        (["propagation", "signal", "--claim", "q=gain"], "no value given for 'gain'"),
    ],
)
def test_claims_that_cannot_evaluate_are_refused_before_any_work(simlab, args, message):
    result = simlab(*args, "--quiet", "--samples", "1000")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (simlab.folder / "outputs").exists()  # nothing simulated, nothing written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dropout", "--samples", "1"], "expected an integer in [2,"),
        (["dropout", "--sigma_x", "1e-37"], "--sigma-x: '1e-37' is not allowed"),
        (["dropout", "--bias", "1e308"], "--bias: '1e308' is not allowed"),
        (["propagation", "signal", "--sigma_x", "1e-300"], "expected a number in [1e-12, 1e+12]"),
        (["propagation", "signal", "--sigma_b", "1e300"], "expected a number in [0, 1e+12]"),
        (["propagation", "grads", "--sigma_x", "100"], "expected a number in [1e-06, 30]"),
        (["propagation", "signal", "--L", "1e9"], "expected an integer in [1, 10000]"),
        (["batchnorm", "stats", "--sigma", "1e-300"], "expected 0 (constant features) or"),
        (["batchnorm", "stats", "--gamma", "1e300"], "expected a number in [-1e+12, 1e+12]"),
        (["dropout", "--p", ",".join(["0.5"] * 101), "--M", ",".join(["8"] * 100)],
         "at most 10,000 are allowed"),
    ],
)  # fmt: skip
def test_values_the_run_cannot_honour_are_refused_up_front(simlab, args, message):
    result = simlab(*args, "--quiet")
    assert result.exit_code == 2, result.output
    assert message in result.stderr

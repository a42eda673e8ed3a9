"""``simlab coin-flips``: the worked example of docs/adding-an-experiment.md.

The number of heads H in ``n`` fair-or-not coin flips: E[H] = n r and Var(H) = n r (1 - r), with
``r`` the probability of heads. Each flip is simulated (uniforms compared with r); the count is
never drawn from a binomial sampler, which would assume the law being checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simlab.experiments.base import Experiment, Predictions, Quantity, Simulated
from simlab.figure_layout import new_figure
from simlab.figures import FigureSpec
from simlab.params import Param, count
from simlab.plotting import finish_axes, simulated_vs_theory, sweep_axis
from simlab.stats import Moments
from simlab.verdicts.estimates import EXACT_IN_EXPECTATION, Prediction, ScalarEstimate


# -- 1. statistics: what one chunk returns, mergeable in chunk order -----------------------------
@dataclass
class HeadsStats:
    moments: Moments  # of H over the chunk's trials

    def merge(self, other: HeadsStats) -> HeadsStats:
        return HeadsStats(self.moments.merge(other.moments))

    def estimates(self) -> dict[str, ScalarEstimate]:
        m = self.moments
        n = m.n
        mean = ScalarEstimate(float(m.mean[0]), float(m.sem[0]), n)
        # Var(H) by the sample variance; its SE from the fourth central moment
        var = float(m.var[0])
        mu4 = float(m.m4[0]) / n
        var_se = float(np.sqrt(max(mu4 - var * var, 0.0) / n))
        return {"mean": mean, "var": ScalarEstimate(var, var_se, n)}


# -- 2. the sampler: a picklable (rng, size) -> Stats -------------------------------------------
class FlipsSampler:
    def __init__(self, n: int, r: float) -> None:
        self.n, self.r = n, r

    def __call__(self, rng: np.random.Generator, size: int) -> HeadsStats:
        heads = (rng.random((size, self.n)) < self.r).sum(axis=1)
        return HeadsStats(Moments.from_batch(heads[:, None].astype(np.float64)))


# -- 3. figures: typed data per point, and renderers that only draw ------------------------------
@dataclass(frozen=True)
class CoinFigureData:
    n: int


def mean_figure(points: Sequence[Any]):
    axis = sweep_axis(points, "r")
    xs = np.array([float(pt.params[axis]) for pt in points])
    fig, axes = new_figure()
    ax = axes[0, 0]
    for name, color in (("mean", "C0"), ("var", "C1")):
        simulated_vs_theory(
            ax,
            xs,
            np.array([pt.estimates[name].value for pt in points]),
            np.array([pt.estimates[name].se for pt in points]),
            np.array([pt.predictions[name].value for pt in points]),
            color=color,
            label=name,
        )
    finish_axes(ax, xlabel=axis, ylabel="heads", title="E[H] = n r, Var(H) = n r (1 - r)")
    return fig


FIGURES = (
    FigureSpec("coin_flips_moments", "Heads in n flips: E[H] = n r and Var(H) = n r (1 − r)",
               mean_figure),
)  # fmt: skip


# -- 4. the experiment: declarations, then setup / sampler / predict / figure_data --------------
class CoinFlips(Experiment[None, HeadsStats]):
    name = "coin-flips"
    summary = "Heads in n coin flips: mean n r and variance n r (1 - r)."
    params = (
        Param("r", "float", 0.5, "probability of heads", low=0.0, high=1.0),
        count("n", 20, "flips per trial"),
    )
    quantities = (
        Quantity("mean", "statistical", "E[H], H the number of heads"),
        Quantity("var", "statistical", "Var(H)"),
    )
    default_samples = 100_000
    default_chunk_size = 10_000
    formulas = {"mean": "n r", "var": "n r (1 - r)"}
    budgets = {"quick": {"r": [0.2, 0.5], "samples": 50_000}}
    figures = FIGURES

    def label(self, point: Mapping[str, Any]) -> str:
        return f"coin-flips r={point['r']:g}"

    def memory_bytes(self, point: Mapping[str, Any], chunk_size: int) -> tuple[int, int]:
        return 0, chunk_size * point["n"] * 9  # the uniforms and their comparison

    def sampler(self, point: Mapping[str, Any], setup: None) -> FlipsSampler:
        return FlipsSampler(point["n"], point["r"])

    def predict(self, sim: Simulated[None, HeadsStats]) -> Predictions:
        n, r = sim.point["n"], sim.point["r"]
        return {
            "mean": Prediction(n * r, EXACT_IN_EXPECTATION),
            "var": Prediction(n * r * (1 - r), EXACT_IN_EXPECTATION),
        }

    def figure_data(self, sim: Simulated[None, HeadsStats]) -> CoinFigureData:
        return CoinFigureData(sim.point["n"])

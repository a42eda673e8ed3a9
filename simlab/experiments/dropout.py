"""``simlab dropout``: moments of ReLU units before and after dropout (SPEC 1.1).

The simulation is the network itself: ``x ~ N(0, sigma_x^2 I_N)``, ``z = W x + b`` with a fixed
``W`` (orthonormal rows, or Gaussian entries N(0, 1/N)), ``h = relu(z)``, a Bernoulli(q) mask per
unit per sample, ``h~ = m h / q`` (or ``m h``). Each sample contributes per-sample averages over its
units, so standard errors stay honest even when units of one sample are correlated.

Numerics: the network runs in float32 (a float32 matrix product is twice as fast and its rounding,
~1e-7 relative and unbiased, is far below any standard error simlab can reach); every statistic is
accumulated in float64.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simlab.errors import SimlabInputError
from simlab.experiments.base import (
    Experiment,
    PointResult,
    Predictions,
    Quantity,
    Simulated,
    WrongClaim,
)
from simlab.experiments.dropout_figures import FIGURES, DropoutFigureData
from simlab.masks import bernoulli_mask
from simlab.params import Param, count
from simlab.stats import CoMoments, Histogram, Moments
from simlab.theory.relu import dropout_moments
from simlab.verdicts.estimates import (
    EXACT_IN_EXPECTATION,
    JointEstimate,
    Prediction,
    ScalarEstimate,
)

# Per-sample features, each an average over the sample's units (or neighbour pairs).
_FEATURES = ("h", "h2", "ht", "ht2", "ht_next")
# Each quantity is a smooth function of the feature means (``quantity_values_and_gradients``
# gives the values and the gradients the delta method needs).
QUANTITIES = (
    "mean_before",
    "second_before",
    "var_before",
    "mean_after",
    "second_after",
    "var_after",
    "cov_after",
)
_HIST_ROWS = 128  # rows per chunk that feed the histograms (a figure, not a check)
_HIST_BINS = 60


def quantity_values_and_gradients(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The seven quantities from feature means ``f`` and their gradients (7 x 5)."""
    h, h2, ht, ht2, cross = f
    values = np.array([h, h2, h2 - h * h, ht, ht2, ht2 - ht * ht, cross - ht * ht])
    grads = np.zeros((7, 5))
    grads[0, 0] = 1.0
    grads[1, 1] = 1.0
    grads[2, :2] = (-2.0 * h, 1.0)
    grads[3, 2] = 1.0
    grads[4, 3] = 1.0
    grads[5, 2:4] = (-2.0 * ht, 1.0)
    grads[6, 2] = -2.0 * ht
    grads[6, 4] = 1.0
    return values, grads


@dataclass(frozen=True)
class DropoutSetup:
    """The fixed parts of a point: W, each unit's pre-activation scale, the histogram bins."""

    weights: np.ndarray
    s: np.ndarray  # sigma_x ||w_i||: unit i's pre-activation is N(bias, s_i^2)
    pair_rho: np.ndarray | None  # correlation of neighbouring pre-activations (Gaussian W)
    edges_before: np.ndarray
    edges_after: np.ndarray


@dataclass
class DropoutStats:
    """Mergeable statistics of a chunk: feature co-moments, feature moments, histograms."""

    features: CoMoments
    tails: Moments
    hist_before: Histogram
    hist_after: Histogram

    def merge(self, other: DropoutStats) -> DropoutStats:
        return DropoutStats(
            self.features.merge(other.features),
            self.tails.merge(other.tails),
            self.hist_before.merge(other.hist_before),
            self.hist_after.merge(other.hist_after),
        )

    def estimates(self) -> dict[str, ScalarEstimate]:
        """Each quantity with its delta-method standard error over independent samples."""
        values, grads = quantity_values_and_gradients(self.features.mean)
        cov = self.features.cov_of_mean()
        ses = np.sqrt(np.maximum(np.einsum("qi,ij,qj->q", grads, cov, grads), 0.0))
        kurt = self.tails.excess_kurtosis
        # The kurtosis that matters is that of the per-sample value each quantity averages.
        feature_of = (0, 1, 1, 2, 3, 3, 4)
        return {
            name: ScalarEstimate(float(v), float(se), self.features.n, float(kurt[feature_of[i]]))
            for i, (name, v, se) in enumerate(zip(QUANTITIES, values, ses, strict=True))
        }

    def joint_estimates(self) -> JointEstimate:
        """The seven quantities with the covariance of their estimates, ``G C G^T`` (``G`` their
        gradients in the feature means, ``C`` the covariance of those means): one sample's
        features feed every quantity, so e.g. mean_before and mean_after move together."""
        values, grads = quantity_values_and_gradients(self.features.mean)
        cov = grads @ self.features.cov_of_mean() @ grads.T
        return JointEstimate(QUANTITIES, values, cov, self.features.n)


class DropoutSampler:
    """Simulates chunks of the network for one sweep point (W fixed for the point)."""

    def __init__(self, point: dict[str, Any], weights: np.ndarray, edges: tuple) -> None:
        self.q = 1.0 - point["p"]
        self.scale = 1.0 / self.q if point["rescale"] else 1.0
        # sigma_x folded into W: x = sigma_x * standard normal, so W x = (sigma_x W) e.
        self.w_t = np.ascontiguousarray((point["sigma_x"] * weights).T, dtype=np.float32)
        self.bias = np.float32(point["bias"])
        self.edges_before, self.edges_after = edges

    def __call__(self, rng: np.random.Generator, size: int) -> DropoutStats:
        n_in, n_units = self.w_t.shape
        x = rng.standard_normal((size, n_in), dtype=np.float32)
        h = x @ self.w_t
        del x
        if self.bias:
            h += self.bias
        np.maximum(h, 0.0, out=h)
        mask = bernoulli_mask(rng, h.shape, self.q)
        kept = h * mask  # m h; the 1/q of inverted dropout is applied to the float64 sums
        del mask
        features = np.empty((size, 5))
        features[:, 0] = h.sum(axis=1, dtype=np.float64)
        features[:, 1] = np.einsum("ij,ij->i", h, h, dtype=np.float64)
        features[:, 2] = kept.sum(axis=1, dtype=np.float64)
        features[:, 3] = np.einsum("ij,ij->i", kept, kept, dtype=np.float64)
        features[:, 4] = np.einsum("ij,ij->i", kept[:, :-1], kept[:, 1:], dtype=np.float64)
        features[:, :4] /= n_units
        features[:, 4] /= max(n_units - 1, 1)
        features[:, 2] *= self.scale
        features[:, 3:] *= self.scale * self.scale
        rows = min(size, _HIST_ROWS)
        return DropoutStats(
            CoMoments.from_batch(features),
            Moments.from_batch(features),
            Histogram.from_batch(h[:rows], self.edges_before),
            Histogram.from_batch(kept[:rows] * np.float32(self.scale), self.edges_after),
        )


def draw_weights(rng: np.random.Generator, kind: str, n_units: int, n_in: int) -> np.ndarray:
    """``W`` (M x N): Haar-random orthonormal rows (QR with the sign fix), or N(0, 1/N) entries."""
    if kind == "orthonormal":
        q, r = np.linalg.qr(rng.standard_normal((n_in, n_units)))
        q *= np.sign(np.diag(r))  # makes the QR factor Haar-distributed
        return q.T
    return rng.standard_normal((n_units, n_in)) / np.sqrt(n_in)


class Dropout(Experiment[DropoutSetup, DropoutStats]):
    name = "dropout"
    summary = "Moments of ReLU units before and after (inverted) dropout."
    params = (
        Param(
            "p",
            "float",
            0.5,
            "drop probability (q = 1 - p keeps)",
            low=0.0,
            high=1.0,
            high_open=True,
        ),
        count("N", 512, "input width"),
        count("M", 256, "number of ReLU units (M <= N for orthonormal weights)"),
        # The network runs in float32: scales far from 1 would under- or overflow its units.
        Param("sigma_x", "float", 1.0, "standard deviation of the inputs", low=1e-6, high=1e6),
        Param("bias", "float", 0.0, "bias of every unit (mu)", low=-1e6, high=1e6),
        Param(
            "weights",
            "choice",
            "orthonormal",
            "W with orthonormal rows, or N(0, 1/N) entries",
            choices=("orthonormal", "gaussian"),
        ),
        Param("rescale", "bool", True, "inverted dropout (divide kept units by q)"),
    )
    quantities = (
        Quantity("mean_before", "statistical", "E[h], pooled over units"),
        Quantity("second_before", "statistical", "E[h^2]"),
        Quantity("var_before", "statistical", "Var(h) = E[h^2] - E[h]^2"),
        Quantity("mean_after", "statistical", "E[h~] after dropout"),
        Quantity("second_after", "statistical", "E[h~^2]"),
        Quantity("var_after", "statistical", "Var(h~)"),
        Quantity("cov_after", "statistical", "Cov(h~_i, h~_{i+1}), pooled over neighbour pairs"),
    )
    default_samples = 200_000
    default_chunk_size = 4096
    formulas = {
        "mean_before": "mu Phi(mu/s) + s phi(mu/s)",
        "second_before": "(mu^2 + s^2) Phi(mu/s) + mu s phi(mu/s)",
        "var_before": "E[h^2] - E[h]^2",
        "mean_after": "E[h] (inverted) or q E[h]",
        "second_after": "E[h^2]/q (inverted) or q E[h^2]",
        "var_after": "E[h^2]/q - E[h]^2 (inverted)",
        "cov_after": "0 (independent masks and units)",
    }
    known_wrong = (
        WrongClaim(
            "var_after=(1/2 - 1/(2*pi))/(1-p)",
            "Var(h)/(1-p): scales the variance like the second moment and ignores the mean term",
        ),
        WrongClaim(
            "second_after=(1/2)/(1-p)**2",
            "divides by q twice: forgets that E[m^2] = E[m] = 1-p for a Bernoulli mask",
        ),
    )
    figures = FIGURES
    traced = True
    claim_names = ("q",)  # the keep probability 1 - p
    joint_quantities = QUANTITIES
    budgets = {
        "quick": {"p": [0.1, 0.5, 0.8], "samples": 100_000},
        "standard": {"p": [0.1, 0.3, 0.5, 0.7], "samples": 1_000_000},
        "thorough": {"p": [0.1, 0.3, 0.5, 0.7, 0.9], "samples": 10_000_000},
    }

    def validate(self, point: dict[str, Any], where) -> None:
        if point["weights"] == "orthonormal" and point["M"] > point["N"]:
            raise SimlabInputError(
                f"{where('M')}: {point['M']} is not allowed with orthonormal weights and "
                f"N = {point['N']}; M must be at most N (W W^T = I needs M <= N)"
            )

    def memory_bytes(self, point: Mapping[str, Any], chunk_size: int) -> tuple[int, int]:
        n_in, n_units = point["N"], point["M"]
        # W in float64, the QR factorisation's copies of it, and its float32 copy in the sampler
        setup = 8 * 4 * n_in * n_units
        # per chunk: float32 inputs (size x N); h, kept and the float32 histogram copy (size x M);
        # the mask bytes; the five float64 features
        per_chunk = chunk_size * (4 * n_in + 13 * n_units + 5 * 8 * 3)
        return setup, per_chunk

    def label(self, point: Mapping[str, Any]) -> str:
        return f"dropout p={point['p']:g}"

    def claim_values(self, result: PointResult, quantity: str) -> dict[str, Any]:
        values = super().claim_values(result, quantity)
        values["q"] = 1.0 - result.params["p"]
        return values

    def claim_trial_values(self, point: Mapping[str, Any], quantity: str) -> dict[str, Any]:
        values = super().claim_trial_values(point, quantity)
        values["q"] = 1.0 - point["p"]
        return values

    def setup(self, point: Mapping[str, Any], rng: np.random.Generator) -> DropoutSetup:
        weights = draw_weights(rng, point["weights"], point["M"], point["N"])
        # Each unit's pre-activation is N(bias, sigma_x^2 ||w_i||^2); neighbours correlate
        # through w_i . w_{i+1} (zero for orthonormal rows).
        norms = np.linalg.norm(weights, axis=1)
        pair_rho = None
        if point["weights"] == "gaussian":
            pair_rho = np.einsum("ij,ij->i", weights[:-1], weights[1:]) / (norms[:-1] * norms[1:])
        s = point["sigma_x"] * norms
        top = max(point["bias"], 0.0) + 5.0 * float(s.max())
        edges_before = np.linspace(0.0, top, _HIST_BINS + 1)
        edges_before[0] = np.finfo(np.float32).tiny  # exact zeros land in "below": the point mass
        q = 1.0 - point["p"]
        edges_after = edges_before / q if point["rescale"] else edges_before
        return DropoutSetup(weights, s, pair_rho, edges_before, edges_after)

    def sampler(self, point: Mapping[str, Any], setup: DropoutSetup) -> DropoutSampler:
        return DropoutSampler(point, setup.weights, (setup.edges_before, setup.edges_after))

    def predict(self, sim: Simulated[DropoutSetup, DropoutStats]) -> Predictions:
        point = sim.point
        predicted = dropout_moments(
            point["bias"], sim.setup.s, 1.0 - point["p"], point["rescale"], sim.setup.pair_rho
        )
        return {k: Prediction(v, EXACT_IN_EXPECTATION) for k, v in predicted.as_dict().items()}

    def figure_data(self, sim: Simulated[DropoutSetup, DropoutStats]) -> DropoutFigureData:
        return DropoutFigureData(
            hist_before=sim.stats.hist_before,
            hist_after=sim.stats.hist_after,
            law_s=sim.setup.s,
            q=1.0 - sim.point["p"],
            trace=sim.trace,
        )


__all__ = ["Dropout", "DropoutSampler", "DropoutSetup", "DropoutStats", "draw_weights"]

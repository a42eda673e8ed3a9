"""``simlab batchnorm grads``: the batch-norm backward pass against finite differences (SPEC 1.3).

Random instances (Y with random per-feature mean and spread, gamma of either sign, beta, upstream
gradient G) are drawn by the sampler, which measures central finite differences in float64
(:mod:`simlab.theory.bn_finite_diff`), kink-crossing entries skipped. The prediction is the
analytic backward (:mod:`simlab.theory.bn_grads`), computed from the instances apart from the
sampler. Every instance is kept (claims are array expressions over the batches), joined once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from simlab.experiments.base import Experiment, Predictions, Quantity, Simulated, WrongClaim
from simlab.experiments.batchnorm_common import describe
from simlab.experiments.batchnorm_grads_figures import FIGURES, GradsFigureData
from simlab.params import Param, count
from simlab.stats import Collected
from simlab.theory.bn_finite_diff import (
    fd_resolution,
    fd_tolerance,
    finite_difference_grads,
    kink_mask,
    relative_error,
)
from simlab.theory.bn_forward import batch_sum, bn_forward
from simlab.theory.bn_grads import GRAD_QUANTITIES, bn_backward, claim_namespace
from simlab.verdicts.estimates import ExactEstimate, Prediction

#: bytes a grads instance keeps per batch entry (measured: ~70 over 30 arrays) and the budget
GRAD_BYTES_PER_ENTRY = 72
GRAD_MEMORY = 2 * 2**30

#: wrong formulas shown beside the analytic backward in the error figure (name, quantity, fn)
WRONG_FORMULAS = (
    (
        "jac_diag = s - (Y-m)^2 s^3/B (forgets gamma and -1/B)",
        "jac_diag",
        lambda n: n["s"] - (n["Y"] - n["m"]) ** 2 * n["s"] ** 3 / n["B"],
    ),
    (
        "d_Y = gamma s D (diagonal only)",
        "d_Y",
        lambda n: n["gamma"] * n["s"] * n["D"],
    ),
)


def claim_sum(x: Any) -> np.ndarray:
    """The claim language's ``sum``: over the batch axis (-2), keeping it (a float is one entry)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2:
        return a
    return batch_sum(a)


class BatchSum:
    """``sum`` bound to one point's batch shape: a scalar or a per-feature value broadcasts over
    the batch first, so ``sum(1) = B`` and ``sum(s) = B s``, as written on paper."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def __call__(self, x: Any) -> np.ndarray:
        a = np.asarray(x, dtype=np.float64)
        full = np.broadcast_shapes(a.shape, self.shape)
        return batch_sum(np.broadcast_to(a, full))


class GradStats(Collected):
    """Every instance and its finite-difference reference, in chunk order (joined once).

    Arrays: the instance (``Y``, ``gamma``, ``beta``, ``G``) and per quantity ``numeric_q`` (the
    central difference), ``skip_q`` (its stencil crosses the ReLU kink) and ``res_q`` (its
    absolute resolution).
    """

    def __init__(self, arrays: dict[str, np.ndarray], eps: float) -> None:
        super().__init__(arrays)
        self.eps = eps

    def forward(self):
        """The forward pass of every instance."""
        a = self.arrays
        return bn_forward(a["Y"], a["gamma"], a["beta"], self.eps)

    def names(self) -> dict[str, Any]:
        """The names a gradient claim may use (SPEC: D, G, Y, Yhat, m, v, s, xhat, ...)."""
        a = self.arrays
        names = claim_namespace(a["G"], self.forward(), a["gamma"], a["beta"])
        names["B"] = float(names["B"])
        return names

    def estimates(self) -> dict[str, ExactEstimate]:
        """Each gradient's finite difference, broadcast to the batch shape, kinks masked.

        Every reference is broadcast to the batch shape, so a claim that varies along the batch
        (a forgotten sum, say) is compared entry by entry instead of failing to fit.
        """
        a = self.arrays
        names = self.names()
        full = a["Y"].shape
        tol = fd_tolerance()
        out = {}
        for q in GRAD_QUANTITIES:
            ref = np.broadcast_to(a[f"numeric_{q}"], full).copy()
            keep = ~np.broadcast_to(a[f"skip_{q}"], full)
            floor = np.broadcast_to(a[f"res_{q}"] / tol, full)[keep]
            out[q] = ExactEstimate(ref, tol, floor, names, keep)
        return out


class GradsSampler:
    """Random instances and their central finite differences."""

    def __init__(self, point: Mapping[str, Any]) -> None:
        self.point = dict(point)

    def instances(self, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
        p = self.point
        B, M, sigma = p["B"], p["M"], p["sigma"]
        mu = rng.standard_normal((size, 1, M))
        spread = np.exp(rng.uniform(math.log(0.3), math.log(3.0), (size, 1, M)))
        Y = sigma * (mu + spread * rng.standard_normal((size, B, M)))
        magnitude = p["gamma"] * np.exp(rng.uniform(math.log(0.5), math.log(2.0), (size, 1, M)))
        gamma = magnitude * rng.choice([-1.0, 1.0], (size, 1, M))
        beta = p["beta"] + 0.5 * magnitude * rng.standard_normal((size, 1, M))
        G = rng.standard_normal((size, B, M))
        return {"Y": Y, "gamma": gamma, "beta": beta, "G": G}

    def __call__(self, rng: np.random.Generator, size: int) -> GradStats:
        inst = self.instances(rng, size)
        Y, gamma, beta, G = inst["Y"], inst["gamma"], inst["beta"], inst["G"]
        eps = self.point["eps"]
        numeric = finite_difference_grads(Y, gamma, beta, eps, G)
        skip = kink_mask(Y, gamma, beta, eps)
        resolution = fd_resolution(G, bn_forward(Y, gamma, beta, eps), gamma, beta)
        out = dict(inst)
        for q in GRAD_QUANTITIES:
            out[f"numeric_{q}"] = getattr(numeric, q)
            out[f"skip_{q}"] = getattr(skip, q)
            out[f"res_{q}"] = getattr(resolution, q)
        return GradStats(out, eps)


class BatchnormGrads(Experiment[None, GradStats]):
    name = "batchnorm grads"
    summary = "The batch-norm backward pass against central finite differences."
    params = (
        count("B", 32, "batch size", low=2),
        count("M", 8, "features per instance"),
        Param(
            "gamma",
            "float",
            1.0,
            "typical |gamma|: each feature draws gamma x U-log(0.5, 2) with a random sign",
            low=0.0,
            low_open=True,
        ),
        Param("beta", "float", 0.0, "centre of beta (each feature: beta + 0.5 |gamma| N(0,1))"),
        Param("eps", "float", 1e-5, "added to the batch variance", low=0.0),
        Param(
            "sigma",
            "float",
            1.0,
            "scale of Y (per feature: sigma (mu + spread z), spread log-uniform in [0.3, 3])",
            low=0.0,
            low_open=True,
        ),
    )
    quantities = tuple(
        Quantity(q, "exact", text)
        for q, text in (
            ("d_gamma", "dl/dgamma = sum_i D xhat"),
            ("d_beta", "dl/dbeta = sum_i D"),
            ("d_v", "dl/dv (m, v independent inputs)"),
            ("d_m", "dl/dm (m, v independent inputs)"),
            ("d_Y", "dl/dY through the full forward"),
            ("jac_diag", "dYhat_ij/dY_ij (no ReLU)"),
        )
    )
    default_samples = 300
    default_chunk_size = 50
    claim_names = ("D", "G", "Y", "Yhat", "m", "v", "s", "xhat")
    known_wrong = (
        WrongClaim(
            "d_Y=gamma*s*D",
            "the diagonal-only Jacobian: treats BN as elementwise gamma (Y - m) s and forgets "
            "that m and v depend on every sample of the batch",
        ),
    )
    claim_functions = {"sum": claim_sum}
    formulas = {
        "d_gamma": "sum(D*xhat)",
        "d_beta": "sum(D)",
        "d_v": "-gamma/2 (v+eps)^(-3/2) sum(D*(Y-m))",
        "d_m": "-gamma*s*sum(D)",
        "d_Y": "gamma*s/B*(B*D - sum(D) - xhat*sum(D*xhat))",
        "jac_diag": "gamma*s*(1 - 1/B - xhat**2/B)",
    }
    figures = FIGURES
    budgets = {
        "quick": {"B": [2, 32], "eps": [0.0, 1e-5], "samples": 100},
        "standard": {"B": [2, 3, 32], "eps": [0.0, 1e-5, 0.1], "beta": 0.5, "samples": 400},
        "thorough": {
            "B": [2, 3, 32, 128],
            "eps": [0.0, 1e-5, 0.1],
            "beta": 0.5,
            "sigma": [1e-3, 1.0],
            "samples": 1000,
        },
    }

    def max_samples(self, point: dict[str, Any]) -> tuple[int, str] | None:
        # every instance is kept (claims are evaluated on the batch arrays): bound the memory
        per_instance = GRAD_BYTES_PER_ENTRY * point["B"] * point["M"]
        return (
            max(GRAD_MEMORY // per_instance, 1),
            f"every instance is kept for claims (~{per_instance / 1024:.0f} KiB each at "
            f"B = {point['B']}, M = {point['M']}; at most {GRAD_MEMORY / 2**30:g} GiB)",
        )

    def memory_bytes(self, point: Mapping[str, Any], chunk_size: int) -> tuple[int, int]:
        # per chunk: the kept instance and its references (~GRAD_BYTES_PER_ENTRY per entry) and
        # the finite differences' working arrays (~7 batch-shaped float64 arrays at a time)
        return 0, chunk_size * point["B"] * point["M"] * (GRAD_BYTES_PER_ENTRY + 7 * 8)

    def label(self, point: Mapping[str, Any]) -> str:
        return describe(self.name, point)

    def sampler(self, point: Mapping[str, Any], setup: None) -> GradsSampler:
        return GradsSampler(point)

    def predict(self, sim: Simulated[None, GradStats]) -> Predictions:
        """The analytic backward of every instance, broadcast to the batch shape."""
        full = sim.stats.arrays["Y"].shape
        return {
            q: Prediction(
                np.broadcast_to(value, full).copy(), "identity (to the finite-difference error)"
            )
            for q, value in _analytic(sim.stats).items()
        }

    def figure_data(self, sim: Simulated[None, GradStats]) -> GradsFigureData:
        a = sim.stats.arrays
        tol = fd_tolerance()
        analytic = _analytic(sim.stats)
        rel_errors, skipped = {}, {}
        for q in GRAD_QUANTITIES:
            own = ~a[f"skip_{q}"]
            floor = a[f"res_{q}"] / tol
            rel_errors[q] = relative_error(analytic[q], a[f"numeric_{q}"], floor)[own]
            skipped[q] = float(1.0 - own.mean())
        names = sim.stats.names()
        wrong = {}
        for label, q, formula in WRONG_FORMULAS:
            value = np.broadcast_to(formula(names), a[f"numeric_{q}"].shape)
            own = ~a[f"skip_{q}"]
            wrong[label] = (q, relative_error(value, a[f"numeric_{q}"], a[f"res_{q}"] / tol)[own])
        return GradsFigureData(rel_errors, skipped, wrong, tol)

    def claim_values(self, result, quantity: str) -> dict[str, Any]:
        values = super().claim_values(result, quantity)
        values["sum"] = BatchSum(np.shape(values["Y"]))
        return values

    def claim_trial_values(self, point: Mapping[str, Any], quantity: str) -> dict[str, Any]:
        values = super().claim_trial_values(point, quantity)
        # two stand-in instances: per entry (n, B, M), per feature (n, 1, M), as claim_namespace
        entry, feature = np.ones((2, point["B"], point["M"])), np.ones((2, 1, point["M"]))
        values.update({k: entry for k in ("D", "G", "Y", "Yhat", "xhat")})
        values.update({k: feature for k in ("m", "v", "s", "gamma", "beta")})
        values["sum"] = BatchSum(entry.shape)
        return values


def _analytic(stats: GradStats) -> dict[str, np.ndarray]:
    """The analytic backward (bn_backward) of every instance, by quantity."""
    a = stats.arrays
    return bn_backward(a["G"], stats.forward(), a["gamma"]).as_dict()


__all__ = ["BatchSum", "BatchnormGrads", "GradStats", "GradsSampler", "claim_sum"]

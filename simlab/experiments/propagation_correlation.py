"""``simlab propagation correlation``: two inputs through one ReLU network (SPEC 1.4).

Two inputs of equal norm and cosine ``rho0`` go through the same network (zero bias); the cosine
of their activations at layer l is compared with the iterated arc-cosine map of
:func:`simlab.theory.meanfield.iterate_arccos` (Cho & Saul 2009), the infinite-width limit.

One **sample is one independent network**, pushed with ``inputs`` pairs of its own; it contributes
its mean cosine per layer, so standard errors come from the spread between networks.

Example (2-core machine): ``simlab propagation correlation --rho0 0.0,0.5,0.9 --L 30`` (width 256,
128 networks of 16 pairs): ~13 s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simlab import networks as nw
from simlab.errors import SimlabInputError
from simlab.experiments.base import Experiment, Predictions, Quantity, Simulated, WrongClaim
from simlab.experiments.propagation_correlation_figures import FIGURES, CorrelationFigureData
from simlab.experiments.propagation_network import (
    describe,
    network_params,
    network_widths,
    stack_size,
    validate_network,
    weight_floats,
)
from simlab.params import Param
from simlab.stats import CoMoments
from simlab.theory import meanfield as mf
from simlab.verdicts.estimates import IDENTITY, ExactEstimate, Prediction, VectorEstimate

#: the finite-width bias of the cosine, measured at most 0.5 / width (n >= 8), is allowed as
#: this many over the narrowest width of layers 1..l
CORRELATION_BIAS_COEFFICIENT = 0.75
#: float32 rounding allowed on a cosine
COSINE_ROUNDING = 1e-5


@dataclass(frozen=True)
class CorrelationSetup:
    """The widths, the init's gain and the per-layer float32 unit changes of the weights."""

    widths: tuple[int, ...]
    gain: float | None
    w_scale: tuple[np.float32, ...]


@dataclass
class CorrelationStats:
    """Per-network mean cosines ``rho_l`` (l = 1..L) over the network's input pairs."""

    features: CoMoments

    def merge(self, other: CorrelationStats) -> CorrelationStats:
        return CorrelationStats(self.features.merge(other.features))

    def free_layers(self) -> np.ndarray:
        """Layers whose cosine varies between networks (beyond double rounding).

        Where every network gives the same cosine the layer is an identity, not a statistic
        (rho0 = 1: every layer is 1; rho0 = -1: layer 1 is exactly 0): it is tested exactly.
        """
        return np.sqrt(np.clip(np.diag(self.features.cov), 0.0, None)) > 1e-9

    def full_estimate(self) -> VectorEstimate:
        """The cosine at every layer l = 1..L."""
        f = self.features
        L = f.mean.size
        return VectorEstimate(f.mean.copy(), f.cov_of_mean(), f.n, np.arange(1, L + 1), "l")

    def estimates(self) -> dict[str, Any]:
        """``rho`` over the free layers, ``rho_exact`` over the fixed ones."""
        f = self.features
        free = self.free_layers()
        if np.all(free):
            return {"rho": self.full_estimate()}
        out: dict[str, Any] = {}
        if np.any(free):
            idx = np.flatnonzero(free)
            out["rho"] = VectorEstimate(
                f.mean[idx], f.cov_of_mean()[np.ix_(idx, idx)], f.n, idx + 1, "l"
            )
        out["rho_exact"] = ExactEstimate(
            reference=f.mean[~free], tolerance=COSINE_ROUNDING, floor=1.0
        )
        return out


def equal_norm_pair(rng: np.random.Generator, shape: tuple[int, ...], rho0: float) -> np.ndarray:
    """Pairs ``(x_a, x_b)`` with ``||x_a|| = ||x_b||`` and cosine exactly ``rho0``.

    ``x_a ~ N(0, I)``; ``x_b = rho0 x_a + sqrt(1 - rho0^2) ||x_a|| v``, with ``v`` a Gaussian vector
    made orthogonal to ``x_a`` and of unit norm. Returns ``(..., 2, B, n_0)``-shaped data as
    ``(*shape[:-2], 2 * B, n_0)``: the first B rows are the ``x_a``, the next B their partners.
    """
    u = rng.standard_normal(shape)
    v = rng.standard_normal(shape)
    if abs(rho0) == 1.0:
        return np.concatenate([u, rho0 * u], axis=-2)
    uu = np.einsum("...i,...i->...", u, u)
    v -= (np.einsum("...i,...i->...", u, v) / uu)[..., None] * u
    v *= np.sqrt(uu / np.einsum("...i,...i->...", v, v))[..., None]
    xb = rho0 * u + math.sqrt(1.0 - rho0 * rho0) * v
    return np.concatenate([u, xb], axis=-2)


def _cosines(h: np.ndarray, B: int) -> np.ndarray:
    """Per network, the mean over its B pairs of ``h_a . h_b / (||h_a|| ||h_b||)`` (0 if dead)."""
    dot = np.einsum("sbi,sbi->sb", h[:, :B], h[:, B:], dtype=np.float64)
    na = np.einsum("sbi,sbi->sb", h[:, :B], h[:, :B], dtype=np.float64)
    nb = np.einsum("sbi,sbi->sb", h[:, B:], h[:, B:], dtype=np.float64)
    live = (na > 0) & (nb > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(live, dot / np.sqrt(na * nb), 0.0)
    return c.mean(axis=1)


class CorrelationSampler:
    """Pushes ``inputs`` equal-norm pairs through each of a chunk of independent networks.

    Zero bias; the weights are rescaled per layer (exact, the cosine is scale-free anyway). The
    cosine of a pair at layer l is ``h_a . h_b / (||h_a|| ||h_b||)``, and 0 by convention when a
    side is all zero (a dead layer, probability ~2^-n per layer: nothing at widths >= 12).
    """

    def __init__(self, point: Mapping[str, Any], setup: CorrelationSetup) -> None:
        self.widths = setup.widths
        self.init, self.dist = point["init"], point["dist"]
        self.gain = setup.gain
        self.rho0 = float(point["rho0"])
        self.B = int(point["inputs"])
        self.w_scale = setup.w_scale

    def __call__(self, rng: np.random.Generator, size: int) -> CorrelationStats:
        widths, B = self.widths, self.B
        L = len(widths) - 1
        stack = stack_size(widths, 2 * B, size)
        rows = []
        for start in range(0, size, stack):
            S = min(stack, size - start)
            weights, _ = nw.draw_network(
                rng, widths, self.init, self.dist, self.gain, 0.0, size=S, dtype=np.float32
            )
            for k in range(L):
                weights[k] *= self.w_scale[k]
            x = equal_norm_pair(rng, (S, B, widths[0]), self.rho0).astype(np.float32)
            fwd = nw.forward(x, weights, keep="z")
            rows.append(np.stack([_cosines(np.maximum(z, 0.0), B) for z in fwd.z], axis=1))
            del weights, x, fwd  # not alive while the next stack is drawn
        return CorrelationStats(CoMoments.from_batch(np.concatenate(rows)))


def correlation_tolerance(widths: tuple[int, ...]) -> np.ndarray:
    """Allowed |E[cosine_l] - rho_l|: ``0.75 / min(n_1..n_l)`` plus float32 rounding."""
    narrowest = np.minimum.accumulate(np.asarray(widths[1:], dtype=float))
    return CORRELATION_BIAS_COEFFICIENT / narrowest + COSINE_ROUNDING


class PropagationCorrelation(Experiment[CorrelationSetup, CorrelationStats]):
    name = "propagation correlation"
    summary = (
        "Cosine of two inputs' activations per layer against the iterated arc-cosine map "
        "(a sample is one network)."
    )
    params = (
        *network_params(30, 256, "", 16, "input pairs per network (averaged inside the network)"),
        Param(
            "rho0",
            "float",
            0.5,
            "cosine of the two inputs (equal norms)",
            low=-1.0,
            high=1.0,
        ),
    )
    quantities = (
        Quantity(
            "rho",
            "statistical",
            "rho_l = E[cos(h_l(x_a), h_l(x_b))], l = 1..L, for inputs of cosine rho0",
            target="relative",
            index="l",
        ),
    )
    default_samples = 128
    default_chunk_size = 32
    claim_names = ("l",)
    formulas = {
        "rho": "rho_l = f(rho_{l-1}), f(r) = (sqrt(1 - r^2) + (pi - arccos r) r)/pi",
    }
    known_wrong = (
        WrongClaim(
            "rho=1-9*pi**2/(2*l**2)",
            "the large-depth tail 9π²/(2l²) used as the iterate: 2.5x too large at l = 10, "
            "negative at l = 1",
        ),
        WrongClaim(
            "rho=(sqrt(1-rho0**2)+(pi-arccos(rho0))*rho0)/pi",
            "applies the arc-cosine map once instead of l times",
        ),
    )
    figures = FIGURES
    budgets = {
        "quick": {"L": 10, "width": 64, "rho0": [0.0, 0.9], "samples": 300, "chunk_size": 75},
        "standard": {
            "L": 30,
            "width": [32, 128],
            "rho0": [-0.5, 0.0, 0.5, 0.9],
            "samples": 400,
            "chunk_size": 50,
        },
        "thorough": {
            "L": 30,
            "width": [16, 64, 256],
            "rho0": [-0.5, 0.0, 0.5, 0.9],
            "init": ["kaiming", "orthogonal"],
            "samples": 400,
            "chunk_size": 50,
        },
    }

    def validate(self, point: dict[str, Any], where) -> None:
        widths = validate_network(point, where)
        if widths[0] < 2 and abs(point["rho0"]) < 1:
            raise SimlabInputError(
                f"{where('width')}: two inputs of cosine {point['rho0']:g} need an input width "
                "n_0 of at least 2"
            )

    def label(self, point: Mapping[str, Any]) -> str:
        return f"propagation correlation {describe(point, ('rho0', 'init', 'L', 'width'))}"

    def setup(self, point: Mapping[str, Any], rng: np.random.Generator) -> CorrelationSetup:
        widths = network_widths(point)
        gain = mf.resolve_gain(point["init"], point.get("gain"))
        q = mf.forward_q(widths, point["init"], 1.0, 0.0, gain)
        s = np.concatenate([[1.0], np.sqrt(q)])
        return CorrelationSetup(
            widths, gain, tuple(np.float32(s[k - 1] / s[k]) for k in range(1, len(s)))
        )

    def sampler(self, point: Mapping[str, Any], setup: CorrelationSetup) -> CorrelationSampler:
        return CorrelationSampler(point, setup)

    def predict(self, sim: Simulated[CorrelationSetup, CorrelationStats]) -> Predictions:
        widths = network_widths(sim.point)
        pred = mf.iterate_arccos(float(sim.point["rho0"]), len(widths) - 1)[1:]
        tol = correlation_tolerance(widths)
        free = sim.stats.free_layers()
        holds = (
            f"the infinite-width limit (Cho & Saul 2009), zero bias: O(1/width) corrections, "
            f"measured at most 0.5/n for n >= 8; tolerance {CORRELATION_BIAS_COEFFICIENT}/min "
            "width of layers 1..l"
        )
        predictions: dict[str, Prediction] = {}
        if np.any(free):
            predictions["rho"] = Prediction(pred[free], holds, tolerance=tol[free])
        if not np.all(free):
            fixed = np.flatnonzero(~free)
            predictions["rho_exact"] = Prediction(
                pred[fixed], IDENTITY + f" (layers {', '.join(str(i + 1) for i in fixed)})"
            )
        return predictions

    def figure_data(
        self, sim: Simulated[CorrelationSetup, CorrelationStats]
    ) -> CorrelationFigureData:
        widths = sim.setup.widths
        return CorrelationFigureData(
            widths=widths,
            prediction=mf.iterate_arccos(float(sim.point["rho0"]), len(widths) - 1)[1:],
            tolerance=correlation_tolerance(widths),
            estimate=sim.stats.full_estimate(),
        )

    def memory_bytes(self, point: Mapping[str, Any], chunk_size: int) -> tuple[int, int]:
        """Per stack of S networks: float32 weights, the float64 input pairs (u, v and their
        combinations) and every z_l kept (float32) with its mask and its relu; per chunk the
        float64 cosine rows and the co-moment copy."""
        widths = network_widths(point)
        L, B = len(widths) - 1, int(point["inputs"])
        S = stack_size(widths, 2 * B, chunk_size)
        per_net = 4 * weight_floats(widths) + 2 * B * (5 * sum(widths[1:]) + 24 * widths[0])
        per_net += 2 * B * 4 * max(widths[1:]) + 8 * 4 * B
        return 64 * L * L, S * per_net + 8 * chunk_size * L * 3

    def claim_trial_values(self, point: Mapping[str, Any], quantity: str) -> dict[str, Any]:
        values = super().claim_trial_values(point, quantity)
        if quantity == "rho":
            values["l"] = np.arange(1.0, len(network_widths(point)))
        return values


__all__ = ["CorrelationSampler", "CorrelationStats", "PropagationCorrelation", "equal_norm_pair"]

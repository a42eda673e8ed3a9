"""``simlab propagation grads``: back-propagation with softmax cross-entropy (SPEC 1.4, eqs. 9-11).

A sample is one random instance: a network (float64, drawn by :mod:`simlab.networks`), one input
and a one-hot label. Its analytic gradients (:func:`simlab.networks.mlp_loss_and_grads`) are
checked against Richardson-extrapolated central finite differences
(:func:`simlab.networks.mlp_finite_differences`), entry by entry, relu and tanh. Every entry is
kept (for the exact check and the figure), so the statistics are a :class:`simlab.stats.Collected`.

Example (2-core machine): ``simlab propagation grads`` (relu and tanh; widths 5,4,6,3 and
64,128,64,10): ~1 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from simlab import networks as nw
from simlab.experiments.base import Experiment, Predictions, Quantity, Simulated, WrongClaim
from simlab.experiments.propagation_grads_figures import (
    FIGURES,
    GRAD_QUANTITIES,
    GradsFigureData,
    QuantityErrors,
)
from simlab.experiments.propagation_network import (
    describe,
    network_params,
    network_widths,
    validate_network,
    weight_floats,
)
from simlab.params import Param, count
from simlab.stats import Collected
from simlab.theory import meanfield as mf
from simlab.verdicts.estimates import ExactEstimate, Prediction

#: per quantity, the arrays a claim may be written in (besides the parameters)
CLAIM_NAMES = {
    "d_hL": ("y", "ybar"),
    "delta": ("dh", "dsigma"),
    "d_W": ("delta", "h_prev"),
    "d_b": ("delta",),
    "d_h": (),
}
_FIELDS = ("analytic", "numeric", "valid", "layer", "rounding")


class GradsStats(Collected):
    """Every instance's entries, flat per quantity, joined once (see :class:`Collected`).

    Keys ``"<quantity>.<field>"`` for the fields analytic (back-propagation), numeric (finite
    differences), valid (no kink crossed, entry checked), layer (l of ``W_l``, ``b_l``,
    ``delta_l``; ``l - 1`` of ``dl/dh_{l-1}``; L for ``dl/dh_L``) and rounding (the finite
    differences' rounding bound), and ``"<quantity>.name.<name>"`` for the claim names.
    ``tolerance`` is the point's allowed relative error.
    """

    def __init__(self, arrays: dict[str, np.ndarray], tolerance: float) -> None:
        super().__init__(arrays)
        self.tolerance = tolerance

    def field(self, quantity: str, name: str) -> np.ndarray:
        return self.arrays[f"{quantity}.{name}"]

    def names(self, quantity: str) -> dict[str, np.ndarray]:
        return {n: self.arrays[f"{quantity}.name.{n}"] for n in CLAIM_NAMES[quantity]}

    def estimates(self) -> dict[str, ExactEstimate]:
        """Per quantity, the finite differences the back-propagated gradients must reproduce."""
        out = {}
        for q in GRAD_QUANTITIES:
            mask = self.field(q, "valid")
            out[q] = ExactEstimate(
                reference=self.field(q, "numeric"),
                tolerance=self.tolerance,
                floor=self.field(q, "rounding")[mask] / self.tolerance,
                names=self.names(q),
                mask=mask,
            )
        return out


def _layer_entries(an: nw.MLPGradients, fd: nw.MLPGradients, k: int) -> dict[str, tuple]:
    """Layer k's entries of delta, d_W, d_b and d_h: (analytic, numeric, valid, layer, names)."""
    d = an.delta[k - 1][0]
    n_out, n_in = an.dW[k - 1].shape
    h_prev = an.h[k - 1][0]
    return {
        "delta": (
            d,
            fd.delta[k - 1][0],
            fd.valid["delta"][k - 1][0],
            np.full(d.size, k),
            {"dh": an.dh[k][0], "dsigma": an.dsigma[k - 1][0]},
        ),
        "d_W": (
            an.dW[k - 1].ravel(),
            fd.dW[k - 1].ravel(),
            fd.valid["dW"][k - 1].ravel(),
            np.full(n_out * n_in, k),
            {"delta": np.repeat(d, n_in), "h_prev": np.tile(h_prev, n_out)},
        ),
        "d_b": (an.db[k - 1], fd.db[k - 1], fd.valid["db"][k - 1], np.full(n_out, k), {"delta": d}),
        "d_h": (
            an.dh[k - 1][0],
            fd.dh[k - 1][0],
            fd.valid["dh"][k - 1][0],
            np.full(h_prev.size, k - 1),
            {},
        ),
    }


def instance_arrays(an: nw.MLPGradients, fd: nw.MLPGradients, y: np.ndarray) -> dict:
    """One instance's flat arrays, keyed as in :class:`GradsStats`."""
    L = len(an.delta)
    parts: dict[str, list[tuple]] = {
        "d_hL": [
            (
                an.dh[L][0],
                fd.dh[L][0],
                fd.valid["dh"][L][0],
                np.full(an.dh[L].shape[1], L),
                {"y": y[0], "ybar": an.ybar[0]},
            )
        ]
    }
    for k in range(1, L + 1):
        for q, entry in _layer_entries(an, fd, k).items():
            parts.setdefault(q, []).append(entry)
    out = {}
    for q, items in parts.items():
        for i, name in enumerate(_FIELDS[:4]):
            out[f"{q}.{name}"] = np.concatenate([item[i] for item in items])
        out[f"{q}.rounding"] = np.full(out[f"{q}.analytic"].size, fd.rounding)
        for name in CLAIM_NAMES[q]:
            out[f"{q}.name.{name}"] = np.concatenate([item[4][name] for item in items])
    return out


class GradsSampler:
    """Random instances: a network (float64), one input, a one-hot label; backprop and FD."""

    def __init__(self, point: Mapping[str, Any]) -> None:
        self.widths = network_widths(point)
        self.point = dict(point)
        self.gain = mf.resolve_gain(point["init"], point.get("gain"))

    def __call__(self, rng: np.random.Generator, size: int) -> GradsStats:
        p, widths = self.point, self.widths
        instances = []
        for _ in range(size):
            weights, biases = nw.draw_network(
                rng, widths, p["init"], p["dist"], self.gain, p["sigma_b"]
            )
            x = p["sigma_x"] * rng.standard_normal((1, widths[0]))
            y = np.zeros((1, widths[-1]))
            y[0, rng.integers(widths[-1])] = 1.0
            act = p["activation"]
            an = nw.mlp_loss_and_grads(x, y, weights, biases, act)
            fd = nw.mlp_finite_differences(
                x, y, weights, biases, act, eps=p["eps"], max_entries=p["max_entries"], rng=rng
            )
            instances.append(instance_arrays(an, fd, y))
        arrays = {k: np.concatenate([a[k] for a in instances]) for k in instances[0]}
        return GradsStats(arrays, float(p["tolerance"]))


def _per_instance_entries(widths: tuple[int, ...]) -> int:
    """Entries one instance contributes over the five quantities."""
    return widths[-1] + 2 * sum(widths[1:]) + weight_floats(widths) + sum(widths[:-1])


class PropagationGrads(Experiment[None, GradsStats]):
    name = "propagation grads"
    summary = "Back-propagation with softmax cross-entropy against central finite differences."
    params = (
        *network_params(3, 16, ["5,4,6,3", "64,128,64,10"], None),
        Param(
            "activation",
            "choice",
            ["relu", "tanh"],
            "activation of every layer (the logits too)",
            choices=nw.ACTIVATIONS,
        ),
        # beyond ~30, saturated tanh units leave central differences without a valid tolerance
        Param("sigma_x", "float", 1.0, "standard deviation of the inputs", low=1e-6, high=30.0),
        Param("sigma_b", "float", 0.1, "standard deviation of the biases", low=0.0),
        Param(
            "eps",
            "float",
            1e-5,
            "finite-difference step",
            low=0.0,
            high=0.1,
            low_open=True,
        ),
        count("max_entries", 512, "entries of each W_l checked (a random subset when larger)"),
        Param(
            "tolerance",
            "float",
            1e-6,
            "allowed relative error (below the FD rounding bound errors are absolute)",
            low=0.0,
            low_open=True,
        ),
    )
    quantities = (
        Quantity("d_hL", "exact", "dl/dh_L (gradient at the logits)"),
        Quantity("delta", "exact", "delta_l = dl/dz_l = sigma'(z_l) * dl/dh_l"),
        Quantity("d_W", "exact", "dl/dW_l = delta_l h_{l-1}^T"),
        Quantity("d_b", "exact", "dl/db_l = delta_l"),
        Quantity("d_h", "exact", "dl/dh_{l-1} = W_l^T delta_l"),
    )
    default_samples = 20
    default_chunk_size = 5
    claim_names = ("y", "ybar", "dh", "dsigma", "delta", "h_prev")
    formulas = {
        "d_hL": "ybar - y (the SPEC's y - ybar is -dl/dh_L, the descent direction)",
        "delta": "sigma'(z_l) * dl/dh_l",
        "d_W": "delta_l h_{l-1}^T",
        "d_b": "delta_l",
        "d_h": "W_l^T delta_l",
    }
    known_wrong = (
        WrongClaim(
            "d_hL=y - ybar",
            "the SPEC's sign: y - ybar is -dl/dh_L, the descent direction, not the gradient",
        ),
        WrongClaim("delta=dh", "forgets the activation's derivative sigma'(z_l)"),
        WrongClaim("d_W=delta", "forgets the input h_{l-1} of the layer"),
    )
    figures = FIGURES
    budgets = {
        "quick": {"widths": ["5,4,6,3", "32,48,32,10"], "samples": 6, "chunk_size": 3},
        "standard": {"samples": 20},
        "thorough": {
            "widths": ["5,4,6,3", "64,128,64,10", "256,256,256,10"],
            "sigma_b": [0.0, 0.5],
            "samples": 40,
        },
    }

    def validate(self, point: dict[str, Any], where) -> None:
        validate_network(point, where)

    def label(self, point: Mapping[str, Any]) -> str:
        return f"propagation grads {describe(point, ('activation', 'widths', 'width'))}"

    def sampler(self, point: Mapping[str, Any], setup: None) -> GradsSampler:
        return GradsSampler(point)

    def predict(self, sim: Simulated[None, GradsStats]) -> Predictions:
        """The back-propagated gradients (computed by the chain rule, not by differencing)."""
        holds = (
            "identity (chain rule), to the finite-difference error: central differences in "
            f"float64 with step {sim.point['eps']:g}; entries whose step crosses a ReLU kink are "
            "skipped"
        )
        return {q: Prediction(sim.stats.field(q, "analytic"), holds) for q in GRAD_QUANTITIES}

    def figure_data(self, sim: Simulated[None, GradsStats]) -> GradsFigureData:
        st = sim.stats
        return GradsFigureData(
            tolerance=st.tolerance,
            errors={
                q: QuantityErrors(*(st.field(q, name) for name in _FIELDS)) for q in GRAD_QUANTITIES
            },
        )

    def memory_bytes(self, point: Mapping[str, Any], chunk_size: int) -> tuple[int, int]:
        """Per chunk: about 50 bytes per kept entry (five fields and up to two claim names),
        twice (the instances' arrays, then joined); the float64 network; the finite
        differences' stacks (up to ``max_entries`` perturbed copies of a layer's
        pre-activations, both ways, and the layers above them)."""
        widths = network_widths(point)
        entries = _per_instance_entries(widths)
        network = 8 * 3 * weight_floats(widths)
        largest = max(widths[k] * widths[k - 1] for k in range(1, len(widths)))
        copies = min(int(point["max_entries"]), largest)
        fd = 8 * 6 * min(2**21, copies * max(widths))
        return 0, 2 * 50 * entries * chunk_size + network + fd + 2**16

    def claim_trial_values(self, point: Mapping[str, Any], quantity: str) -> dict[str, Any]:
        """The claim names of ``quantity`` as ones of one instance's length."""
        values = super().claim_trial_values(point, quantity)
        widths = network_widths(point)
        L = len(widths) - 1
        size = {
            "d_hL": widths[L],
            "delta": sum(widths[1:]),
            "d_W": weight_floats(widths),
            "d_b": sum(widths[1:]),
            "d_h": sum(widths[:-1]),
        }.get(quantity, 1)
        values.update({name: np.ones(size) for name in CLAIM_NAMES.get(quantity, ())})
        return values


__all__ = ["GradsSampler", "GradsStats", "PropagationGrads", "instance_arrays"]

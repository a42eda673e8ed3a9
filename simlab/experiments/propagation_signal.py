"""``simlab propagation signal``: forward q_l, backward r_l and the norm ratio (SPEC 1.4).

The network is :mod:`simlab.experiments.propagation_network`'s, drawn by :mod:`simlab.networks`
and predicted by :mod:`simlab.theory.meanfield`: per layer ``q_l = E[mean_i z_l[i]^2]`` and
``r_l = E[mean_i (dl/dh_l[i])^2]`` for ``l = g^T h_L``, ``g ~ N(0, I)``; the norm ratio
``A_L / A_0`` with ``A_l = ||h_l||^2 / n_l`` and its second moment (Hanin & Rolnick).

Samples
-------
One **sample is one independent network** (fresh weights and biases), pushed with ``inputs``
inputs of its own; what the sample contributes is the average over those inputs. Inputs that
share a network are not independent (deep layers of one network map all inputs alike), so every
standard error and every covariance between layers comes from the spread between networks, never
from the inputs or units inside one.

Numerics
--------
The networks run in float32 with float64 statistics. A ReLU network without bias is positively
homogeneous, and with bias ``relu(s z) = s relu(z)`` still lets every layer be rescaled exactly:
with ``s_0 = sigma_x`` and ``s_l = sqrt(q_l)`` (the predicted root mean square of ``z_l``) the
simulated network has weights ``W_l s_{l-1} / s_l`` and biases ``b_l / s_l``, which is the drawn
network expressed in units of ``s_l``; likewise the backward pass runs in units of
``sqrt(r_l)``. The statistics are multiplied back in float64. Nothing is approximated (the scales
are constants), but Xavier's ``2^-(l-1)`` or torch_default's ``6^-l`` no longer underflow float32
at depth, and the per-network features are O(1) whatever the init.

Heavy tails
-----------
A network's gain fluctuates: ``A_L/A_0`` has relative variance ``prod(1 + 5/n_l) - 1`` per input
(Hanin & Rolnick), so deep, narrow networks give heavy-tailed per-network values, whose sample
means and sample SEs are skewed together. Measured consequence: a true q or r is rejected at
p < 0.001 in 0.5-6% of runs with ~40x that relative variance in networks, and in 0-0.3% with
~300x. So q and r are held to their verdict only with ``networks >= 300 (prod(1 + 5/n_l) - 1)``;
below, the check carries a note and ``expect="either"``. The norm-ratio moments, by the same
rule on their own per-input spread, are tested with Hall's skewness correction of the studentized
mean (calibrated); below it their SEs are bounded below by the exact per-input spread
(conservative, marked uncalibrated; see :meth:`SignalStats.estimates`), which makes Hanin &
Rolnick's moment expensive to resolve at depth.

Examples (times on this 2-core machine)
---------------------------------------
- ``simlab propagation signal`` (L 20, width 128, 1024 networks of 32 inputs): ~7 s.
- ``simlab propagation signal --L 50 --width 256 --init
  kaiming,xavier,lecun,torch_default,kaiming_fan_out --samples 512``: ~70 ms per network per
  core, so ~90 s; with ``--samples 128`` ~25 s, and the q and r checks are then flagged.
- ``simlab propagation signal --L 10 --width 20 --inputs 4 --samples 3e5 --claim
  'norm_ratio_second=exp(5*L/width)' --claim 'norm_ratio_second=(1+5/width)**L'``: the
  exponential (12.18) is rejected, the product (9.313) passes; ~35 s. With 2e4 networks the
  conservative SE (~0.45 at best) cannot separate them reliably.
- ``simlab propagation signal --L 8 --width 4,6,8,12,24 --samples 3000 --inputs 8``: r's deficit
  against width (the dead-network figure).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from simlab import networks as nw
from simlab.experiments.base import (
    Experiment,
    PointResult,
    Predictions,
    Quantity,
    Simulated,
    WrongClaim,
)
from simlab.experiments.propagation_network import (
    describe,
    network_params,
    network_widths,
    stack_size,
    validate_network,
    weight_floats,
)
from simlab.experiments.propagation_signal_figures import FIGURES, SignalFigureData
from simlab.params import Param
from simlab.stats import CoMoments, Histogram, Moments
from simlab.theory import meanfield as mf
from simlab.verdicts.estimates import (
    EXACT_IN_EXPECTATION,
    Prediction,
    ScalarEstimate,
    VectorEstimate,
)

#: inits whose weights are i.i.d. Gaussian when dist = normal (Hanin & Rolnick's moment is exact)
GAUSSIAN_INITS = ("kaiming", "kaiming_fan_out", "xavier", "lecun", "gain")
#: below this many networks per tested layer the joint (Hotelling) check is flagged as optimistic
FEW_NETWORKS_PER_LAYER = 10
#: q and r are held to their verdict only with this many networks per unit of the relative
#: variance of A_L/A_0 (prod(1 + 5/n_l) - 1): measured p < 0.001 rates for a true q or r at
#: ~40x: 0.5-5.6% (widths 16-64, L 8-20); at ~300x: 0 to 0.3% (widths 32-64, L 8-20)
HEAVY_TAIL_NETWORKS = 300.0
#: the exp(5 sum 1/n) negative control is expected to fail when it is this many SE bounds away
NEGATIVE_CONTROL_SES = 8.0
_HIST_BINS = 80
_LOG_Z_RANGE = (-3.5, 1.0)  # log10 |z_l| / sqrt(q_l): the bulk of a Gaussian and its tails
_LOG_RATIO_HALF_RANGE = 3.0  # decades around E[A_L/A_0] for the histogram of the norm ratio


def shown_layers(L: int) -> list[int]:
    """A few depths for the activation histograms: 1, about L/4, L/2 and L."""
    return sorted({1, max(1, round(L / 4)), max(1, round(L / 2)), L})


@dataclass(frozen=True)
class SignalSetup:
    """What a signal sweep point needs, computed once: widths, predictions and unit scales.

    The predictions are the simulation's units (see the module notes), not what it is judged by:
    :meth:`PropagationSignal.predict` states those again from :mod:`simlab.theory.meanfield`.
    """

    widths: tuple[int, ...]
    init: str
    dist: str
    gain: float | None
    sigma_x: float
    sigma_b: float
    inputs: int
    q_pred: np.ndarray  # (L,)
    r_pred: np.ndarray  # (L + 1,)
    c: np.ndarray  # (L,)
    #: unit of A_L/A_0: q_L / (2 sigma_x^2), which is prod_l c_l/2 = E[A_L / A_0] with zero bias
    m1: float
    layers: tuple[int, ...]

    @classmethod
    def from_point(cls, point: Mapping[str, Any]) -> SignalSetup:
        widths = network_widths(point)
        gain = mf.resolve_gain(point["init"], point.get("gain"))
        c = mf.gains_c(widths, point["init"], gain)
        q_pred = mf.forward_q(widths, point["init"], point["sigma_x"], point["sigma_b"], gain)
        return cls(
            widths=widths,
            init=point["init"],
            dist=point["dist"],
            gain=gain,
            sigma_x=float(point["sigma_x"]),
            sigma_b=float(point["sigma_b"]),
            inputs=int(point["inputs"]),
            q_pred=q_pred,
            r_pred=mf.backward_r(widths, point["init"], gain),
            c=c,
            m1=float(q_pred[-1] / (2.0 * float(point["sigma_x"]) ** 2)),
            layers=tuple(shown_layers(len(widths) - 1)),
        )

    @property
    def L(self) -> int:
        return len(self.widths) - 1

    @property
    def gaussian_law(self) -> bool:
        """Whether Hanin & Rolnick's law of A_L/A_0 holds: Gaussian i.i.d. weights, zero bias."""
        return self.sigma_b == 0 and self.dist == "normal" and self.init in GAUSSIAN_INITS

    def forward_scales(self) -> np.ndarray:
        """``s_0 = sigma_x``, ``s_l = sqrt(q_l^pred)``: the units of each layer's z."""
        return np.concatenate([[self.sigma_x], np.sqrt(self.q_pred)])

    def z_edges(self) -> np.ndarray:
        return np.linspace(*_LOG_Z_RANGE, _HIST_BINS + 1)

    def ratio_edges(self) -> np.ndarray:
        return np.linspace(-_LOG_RATIO_HALF_RANGE, _LOG_RATIO_HALF_RANGE, 2 * _HIST_BINS + 1)


def _vector(mean: np.ndarray, cov: np.ndarray, scale: np.ndarray, n: int, index) -> VectorEstimate:
    """A VectorEstimate in true units from per-network features in units of ``scale``."""
    return VectorEstimate(
        values=mean * scale,
        cov=cov * np.outer(scale, scale),
        n=n,
        index=np.asarray(index),
        index_name="l",
    )


@dataclass
class SignalStats:
    """Mergeable statistics of a chunk of networks.

    ``features`` holds one row per network, in the units of :class:`SignalSetup`:
    ``q_l / q_l^pred`` (l = 1..L), ``r_l / r_l^pred`` (l = 0..L), ``R = (A_L/A_0) / m1`` and
    ``R^2``, each averaged over the network's inputs (``m1 = q_L / (2 sigma_x^2)``: ``prod_l
    c_l / 2``, the mean of A_L/A_0, with zero bias).
    ``hist_z[j]`` counts ``log10 |z_l| / sqrt(q_l^pred)`` at the j-th shown layer (inputs of the
    first network of each stack); ``hist_ratio`` counts ``log10 R`` over every (network, input).
    ``setup`` carries the units back to true values.
    """

    features: CoMoments
    tails: Moments
    hist_z: list[Histogram]
    hist_ratio: Histogram
    setup: SignalSetup

    def merge(self, other: SignalStats) -> SignalStats:
        return SignalStats(
            self.features.merge(other.features),
            self.tails.merge(other.tails),
            [a.merge(b) for a, b in zip(self.hist_z, other.hist_z, strict=True)],
            self.hist_ratio.merge(other.hist_ratio),
            self.setup,
        )

    def estimates(self) -> dict[str, Any]:
        """q, r (vectors over layers), norm_ratio and norm_ratio_second.

        The two norm-ratio moments are means of heavy-tailed, right-skewed per-network values:
        a low sample mean comes with a low sample SE, so the studentized mean leans left. With
        enough networks (:func:`norm_ratio_resolved`) their test is the studentized mean over
        networks with Hall's (1992) skewness correction (:func:`skewed_law`), calibrated
        (measured over 100 seeds of the quick budget: KS p 0.56 and 0.29 for the two, against
        1e-21 and 1e-23 with the bound below).

        With fewer networks, where Hanin & Rolnick's law holds
        (:attr:`SignalSetup.gaussian_law`), the SE is at least ``sqrt(Var / n)``, ``Var`` the
        exact variance of one input's value (from ``norm_ratio_moment``): a network's average
        over its inputs can be no more variable than one input, so this bounds the true SE from
        above whatever the correlation between inputs. Conservative on purpose (its check is
        marked uncalibrated): ``(A_L/A_0)^2`` is so heavy-tailed that the sample SE collapses
        whenever the tail goes unsampled, and a z-test on it rejects the true value far too
        often (measured at width 32, L 10, 1000 networks of 32 inputs: 2.3% of runs at
        |z| > 3.29 instead of 0.1%, every one from a low mean with a low SE; with the bound:
        none low, 0.5% high).
        """
        setup = self.setup
        L = setup.L
        f = self.features
        n = f.n
        mean, cov = f.mean, f.cov_of_mean()
        iq, ir = slice(0, L), slice(L, 2 * L + 1)
        kurt = self.tails.excess_kurtosis
        m1 = setup.m1
        estimates: dict[str, Any] = {
            "q": _vector(mean[iq], cov[iq, iq], setup.q_pred, n, np.arange(1, L + 1)),
            "r": _vector(mean[ir], cov[ir, ir], setup.r_pred, n, np.arange(0, L + 1)),
        }
        for name, order, i in (("norm_ratio", 1, 2 * L + 1), ("norm_ratio_second", 2, 2 * L + 2)):
            unit = m1**order
            se = math.sqrt(max(cov[i, i], 0.0))
            bias = skewness = 0.0
            if not setup.gaussian_law:
                bias, skewness = skewed_law(self.tails, i)
            elif norm_ratio_resolved(setup.widths, order, n):
                cap = per_input_skewness(setup.widths, order)
                bias, skewness = skewed_law(self.tails, i, cap)
            elif n > 0:
                # one input's sd, in units of m1^order like the features
                sd = math.sqrt(per_input_relative_variance(setup.widths, order))
                se = max(se, sd * mf.norm_ratio_moment(setup.widths, order) / math.sqrt(n))
            estimates[name] = ScalarEstimate(
                float(mean[i] * unit),
                se * unit,
                n,
                float(kurt[i]),
                bias=bias * se * unit,
                skewness=skewness,
            )
        return estimates


def skewed_law(tails: Moments, i: int, cap: float | None = None) -> tuple[float, float]:
    """Mean and skewness of the studentized mean of feature ``i`` (Hall 1992, first order).

    With ``gamma`` the skewness of one value and ``n`` values, ``(mean - mu) / SE`` has mean
    ``-gamma / (2 sqrt n)`` and skewness ``-2 gamma / sqrt n``, both O(1/sqrt n): for
    right-skewed values a low mean comes with a low SE. ``gamma`` is the sample skewness, at
    most ``cap``: a sample skewness far above the law's comes from one sampled tail value (the
    run whose mean and SE it already raised), and uncapped it cost the wrong formula
    exp(5 L / width) half its margin on the weakest of 100 seeds. Both 0 when ``n < 3`` or the
    values do not vary.
    """
    n = tails.n
    m2 = float(tails.m2[i]) / max(n, 1)
    if n < 3 or not m2 > 0:
        return 0.0, 0.0
    gamma = float(tails.m3[i]) / n / m2**1.5
    if cap is not None:
        gamma = min(gamma, cap)
    return -gamma / (2.0 * math.sqrt(n)), -2.0 * gamma / math.sqrt(n)


def per_input_skewness(widths: tuple[int, ...], order: int) -> float:
    """The skewness of ``R^order`` for one input, exact from Hanin & Rolnick's moments.

    A network's average over its inputs lies between one input (inputs moving together) and
    ``1/sqrt(inputs)`` of it (independent inputs): this is the cap on its sample skewness.
    """
    m1, m2, m3 = (mf.norm_ratio_moment(widths, k * order) for k in (1, 2, 3))
    var = m2 - m1 * m1
    return (m3 - 3.0 * m1 * m2 + 2.0 * m1**3) / var**1.5 if var > 0 else 0.0


def per_input_relative_variance(widths: tuple[int, ...], order: int) -> float:
    """``Var(R^order) / E[R^order]^2`` for one input, ``R = A_L/A_0`` (Hanin & Rolnick's law)."""
    m = mf.norm_ratio_moment(widths, order)
    return max(mf.norm_ratio_moment(widths, 2 * order) / (m * m) - 1.0, 0.0)


def norm_ratio_resolved(widths: tuple[int, ...], order: int, networks: int) -> bool:
    """Whether ``networks`` suffice for the skewness-corrected test of ``E[R^order]``.

    The same rule as for q and r (:data:`HEAVY_TAIL_NETWORKS` networks per unit of one input's
    relative variance), with the variance of ``R^order`` exact from Hanin & Rolnick's law: at
    the quick budget (L 3, widths 10 and 24, 20,000 networks) both moments qualify; at the
    default point (L 20, width 128, 1024 networks) the first does and the second (5,300
    needed) keeps its conservative bound.
    """
    return networks >= HEAVY_TAIL_NETWORKS * per_input_relative_variance(widths, order)


class SignalSampler:
    """Simulates chunks of independent networks for one sweep point.

    Per stack of networks: draw the weights (and biases) with :func:`simlab.networks.draw_network`
    in float32, rescale them to the units of :class:`SignalSetup` (exact, see the module notes),
    push ``inputs`` Gaussian inputs per network through :func:`simlab.networks.forward`, draw
    ``g ~ N(0, I)`` per input and back-propagate with :func:`simlab.networks.backward_signal`.
    """

    def __init__(self, setup: SignalSetup) -> None:
        self.setup = setup
        s = setup.forward_scales()
        t = np.sqrt(setup.r_pred)
        L = setup.L
        # forward: W~_l = W_l s_{l-1}/s_l, b~_l = b_l/s_l; backward (units sqrt(r_l)):
        # u~_{l-1} = (relu'(z_l) u~_l) @ W~_l * (s_l t_l)/(s_{l-1} t_{l-1})
        self.w_scale = [np.float32(s[k - 1] / s[k]) for k in range(1, L + 1)]
        self.b_scale = [np.float32(1.0 / s[k]) for k in range(1, L + 1)]
        self.back_scale = [np.float32(s[k] * t[k] / (s[k - 1] * t[k - 1])) for k in range(1, L + 1)]
        self.z_edges = setup.z_edges()
        self.ratio_edges = setup.ratio_edges()
        # R = (A_L/A_0)/m1 = (A~_L/A~_0) * s_L^2 / (sigma_x^2 m1)
        self.ratio_unit = float(s[L] ** 2 / (setup.sigma_x**2 * setup.m1))

    def __call__(self, rng: np.random.Generator, size: int) -> SignalStats:
        st = self.setup
        stack = stack_size(st.widths, st.inputs, size)
        rows = []
        hist_z = [Histogram.empty(self.z_edges) for _ in st.layers]
        hist_ratio = Histogram.empty(self.ratio_edges)
        for start in range(0, size, stack):
            feats, z_logs, log_ratio = self._stack(rng, min(stack, size - start))
            rows.append(feats)
            for j, z_log in enumerate(z_logs):
                hist_z[j] = hist_z[j].merge(Histogram.from_batch(z_log, self.z_edges))
            hist_ratio = hist_ratio.merge(Histogram.from_batch(log_ratio, self.ratio_edges))
        features = np.concatenate(rows)
        return SignalStats(
            CoMoments.from_batch(features), Moments.from_batch(features), hist_z, hist_ratio, st
        )

    def _stack(self, rng: np.random.Generator, S: int):
        """S networks: their feature rows, log10 |z| at the shown layers, log10 R per input."""
        st = self.setup
        widths, B, L = st.widths, st.inputs, st.L
        weights, biases = nw.draw_network(
            rng, widths, st.init, st.dist, st.gain, st.sigma_b, size=S, dtype=np.float32
        )
        for k in range(L):
            weights[k] *= self.w_scale[k]
            if biases is not None:
                biases[k] *= self.b_scale[k]
        x = rng.standard_normal((S, B, widths[0]), dtype=np.float32)
        fwd = nw.forward(x, weights, biases, keep="z")
        back_w = [
            w if self.back_scale[k] == 1 else w * self.back_scale[k] for k, w in enumerate(weights)
        ]
        del weights
        g = rng.standard_normal((S, B, widths[-1]), dtype=np.float32)
        r = nw.backward_signal(fwd.z, back_w, g).r  # (S, B, L + 1)
        del back_w
        ratio = fwd.a[..., L] / fwd.a[..., 0] * self.ratio_unit  # (S, B)
        feats = np.concatenate(
            [
                fwd.q.mean(axis=1),
                r.mean(axis=1),
                ratio.mean(axis=1)[:, None],
                (ratio * ratio).mean(axis=1)[:, None],
            ],
            axis=1,
        )
        with np.errstate(divide="ignore"):
            z_logs = [np.log10(np.abs(fwd.z[layer - 1][0])) for layer in st.layers]
            return feats, z_logs, np.log10(ratio)


def dead_probability(widths: tuple[int, ...]) -> float:
    """``P(h_{L-1} = 0)`` with zero bias: some layer 1..L-1 has every unit off.

    Given a live ``h_{k-1}``, the ``z_k[i]`` are symmetric and a.s. nonzero, and the sign flips of
    the rows of ``W_k`` show that the pattern of signs is uniform: ``P(h_k = 0) = 2^-n_k``.
    """
    alive = 1.0
    for n in widths[1:-1]:
        alive *= 1.0 - 2.0 ** (-n)
    return 1.0 - alive


def signal_predictions(point: Mapping[str, Any], networks: int = 0) -> dict[str, Any]:
    """Built-in predictions, each only where it holds (see the holds texts).

    Stated from :mod:`simlab.theory.meanfield` and the point alone: nothing the sampler computed.
    """
    widths = network_widths(point)
    L = len(widths) - 1
    init, sigma_b = point["init"], float(point["sigma_b"])
    gain = mf.resolve_gain(init, point.get("gain"))
    q_pred = mf.forward_q(widths, init, point["sigma_x"], sigma_b, gain)
    r_pred = mf.backward_r(widths, init, gain)
    m1 = float(q_pred[-1] / (2.0 * float(point["sigma_x"]) ** 2))
    gaussian = sigma_b == 0 and point["dist"] == "normal" and init in GAUSSIAN_INITS
    preds: dict[str, Any] = {
        "q": Prediction(
            q_pred,
            EXACT_IN_EXPECTATION
            + " at any width (symmetric weights, zero or symmetric random bias: "
            "E[relu(z)^2] = E[z^2]/2 given h_{l-1})",
        )
    }
    if sigma_b == 0:
        p_dead = dead_probability(widths)
        tol = r_pred * p_dead
        tol[L] = 0.0
        preds["r"] = Prediction(
            r_pred,
            "exact in expectation at any width for ReLU with symmetric weights (Hanin's sign "
            "flips, no gradient independence), except on a dead network: with zero bias "
            "h_{L-1} = 0 with probability 1 - prod_{k<L}(1 - 2^-n_k) = "
            f"{p_dead:.2g}, which zeroes r_{{l<L}}; r_{{L-1}} is low by exactly that "
            "fraction, lower layers by less (measured): allowed as a tolerance",
            tolerance=tol,
        )
        preds["norm_ratio"] = Prediction(
            m1,
            EXACT_IN_EXPECTATION + " at any width (zero bias, symmetric weights; "
            "E[A_l | h_{l-1}] = (c_l/2) A_{l-1})",
            # below the networks its skewness correction needs, the SE is a cautious bound
            calibrated=not gaussian or norm_ratio_resolved(widths, 1, networks),
        )
    else:
        preds["r"] = Prediction(
            r_pred,
            EXACT_IN_EXPECTATION + " at any width (ReLU, symmetric weights and symmetric random "
            "bias: no z is exactly 0, so Hanin's sign flips apply to every layer)",
        )
    if gaussian:
        preds["norm_ratio_second"] = _norm_ratio_second(widths, m1, networks)
    return preds


def _norm_ratio_second(widths: tuple[int, ...], m1: float, networks: int) -> list[Prediction]:
    """Hanin & Rolnick's exact moment, and the large-width exponential as a negative control."""
    hr = mf.hanin_rolnick_second_moment(widths) * m1**2
    m4 = mf.norm_ratio_moment(widths, 4) * m1**4
    sd = math.sqrt(max(m4 - hr * hr, 0.0))
    expo = math.exp(5.0 * sum(1.0 / w for w in widths[1:])) * m1**2
    resolved = networks > 0 and expo - hr >= NEGATIVE_CONTROL_SES * sd / math.sqrt(networks)
    corrected = norm_ratio_resolved(widths, 2, networks)
    return [
        Prediction(
            hr,
            "exact at any width (Hanin & Rolnick 2018): Gaussian i.i.d. weights, zero bias, "
            "ReLU on every layer, A_0 of the realised input; = prod (1 + 5/n_l) for Kaiming "
            f"(times prod (c_l/2)^2 otherwise). Heavy-tailed: per-input sd {sd:.3g} (from "
            "E[(A_L/A_0)^4]); "
            + (
                "tested by the studentized mean over networks with Hall's skewness correction"
                if corrected
                else "too few networks for a skewness correction: the SE is at least "
                "sd/sqrt(networks), a conservative bound"
            ),
            calibrated=corrected,
            note=_budget_note(sd, hr),
        ),
        Prediction(
            expo,
            "only as every width -> infinity: exp(5 sum 1/n_l) exceeds the exact moment by a "
            "relative O(sum 1/n_l^2)",
            expect="fail" if resolved else "either",
            label="exp(5 sum 1/n_l)",
            calibrated=False,
            note="negative control (the large-width approximation): must be rejected where "
            f"it is {NEGATIVE_CONTROL_SES:g} conservative SEs away"
            + ("" if resolved else "; not resolvable with this many networks"),
        ),
    ]


def _budget_note(sd: float, mean: float) -> str:
    """How many networks the heavy-tailed second moment needs (SE bound sd / sqrt(n))."""
    need = (4.0 * sd / (0.1 * mean)) ** 2 if mean > 0 else float("inf")
    return (
        f"(A_L/A_0)^2 is heavy-tailed (per-input sd / mean = {sd / mean:.3g}): resolving a 10% "
        f"error needs about {need:.2g} networks"
    )


def _flag_few_networks(preds: dict[str, Any], widths: tuple[int, ...], n: int) -> None:
    """Notes (and ``expect="either"`` under heavy tails) on q and r when n networks are few."""
    k = len(widths)  # layers of r: L + 1
    spread = mf.hanin_rolnick_second_moment(widths) - 1.0  # Var(A_L/A_0) / mean^2
    notes = []
    if n < FEW_NETWORKS_PER_LAYER * k:
        notes.append(
            f"only {n} networks for one test over {k} layers (use at least "
            f"{FEW_NETWORKS_PER_LAYER * k})"
        )
    heavy = n < HEAVY_TAIL_NETWORKS * spread
    if heavy:
        notes.append(
            f"heavy tails: A_L/A_0 has relative variance {spread:.3g} per input, and with "
            f"fewer than {HEAVY_TAIL_NETWORKS:g} x that many networks "
            f"({HEAVY_TAIL_NETWORKS * spread:.3g}) the normal approximation behind "
            "this test is optimistic (measured: p < 0.001 in ~1% of runs at 40x); the "
            "verdict is shown but not held against the recursion"
        )
    if notes:
        for name in ("q", "r"):
            preds[name] = replace(
                preds[name],
                note="; ".join(notes),
                expect="either" if heavy else preds[name].expect,
            )


def _layer_names(point: Mapping[str, Any], quantity: str) -> dict[str, Any]:
    """``c`` and ``n`` per layer (and ``width`` for a width list): see ``claim_values``."""
    widths = network_widths(point)
    ws = np.asarray(widths, dtype=float)
    c = mf.gains_c(widths, point["init"], mf.resolve_gain(point["init"], point.get("gain")))
    uniform_c = bool(np.allclose(c, c[0], rtol=1e-12))
    uniform_w = bool(np.all(ws == ws[0]))
    values: dict[str, Any] = {}
    if quantity == "r":
        values["n"] = ws
        values["c"] = float(c[0]) if uniform_c else np.append(c, c[-1])
        if not uniform_w:
            values["width"] = ws
        return values
    values["n"] = ws[1:]
    values["c"] = float(c[0]) if uniform_c else c
    if not uniform_w:
        values["width"] = ws[1:] if quantity == "q" else float("nan")
    return values


class PropagationSignal(Experiment[SignalSetup, SignalStats]):
    name = "propagation signal"
    summary = (
        "Forward q_l and backward r_l through deep ReLU MLPs, and the finite-width norm ratio "
        "(a sample is one network)."
    )
    params = (
        *network_params(20, 128, "", 32, "inputs per network (averaged inside the network)"),
        # its square and fourth powers (q_l, the norm ratios) must stay inside float64's range
        Param("sigma_x", "float", 1.0, "standard deviation of the inputs", low=1e-12, high=1e12),
        Param("sigma_b", "float", 0.0, "standard deviation of the biases (0: none)", low=0.0),
    )
    # Relative targets: q_l and r_l span decades across layers (Xavier halves q_l per layer) and
    # the norm-ratio moments scale like prod (c_l/2) and its square.
    quantities = (
        Quantity(
            "q",
            "statistical",
            "q_l = E[mean_i z_l[i]^2], l = 1..L (one check over l)",
            target="relative",
            index="l",
        ),
        Quantity(
            "r",
            "statistical",
            "r_l = E[mean_i (dl/dh_l[i])^2], l = 0..L, loss g^T h_L with g ~ N(0, I)",
            target="relative",
            index="l",
        ),
        Quantity(
            "norm_ratio",
            "statistical",
            "E[A_L / A_0], A_l = ||h_l||^2 / n_l",
            target="relative",
        ),
        Quantity(
            "norm_ratio_second",
            "statistical",
            "E[(A_L / A_0)^2] (heavy-tailed)",
            target="relative",
        ),
    )
    default_samples = 1024
    default_chunk_size = 64
    claim_names = ("l", "c", "n")
    claim_functions = {"prod": np.prod, "sum": np.sum}
    formulas = {
        "q": "q_1 = c_1 sigma_x^2 + sigma_b^2, q_l = (c_l/2) q_{l-1} + sigma_b^2",
        "r": "r_L = 1, r_{l-1} = (n_l Var(W_l)/2) r_l",
        "norm_ratio": "prod_l c_l/2 (= 1 for Kaiming)",
        "norm_ratio_second": "prod_l (1 + 5/n_l) (c_l/2)^2 (Hanin & Rolnick)",
    }
    known_wrong = (
        WrongClaim(
            "q=c*sigma_x**2",
            "the ReLU gain 1/sqrt(1/2 - 1/(2 pi)) = 1.713 (one over the std of relu(z)) instead "
            "of sqrt 2 preserves Var(relu(z)), not E[relu(z)^2] = q/2, which is what the next "
            "layer sums: q grows by c/2 = 1.47 per layer instead of staying c sigma_x^2",
            params={"init": "gain", "gain": 1.0 / math.sqrt(0.5 - 0.5 / math.pi)},
        ),
        WrongClaim(
            "q=c*sigma_x**2*c**(l-1)",
            "forgets the ReLU's 1/2 (E[relu(z)^2] = E[z^2]/2): q_l = c_l q_{l-1}",
        ),
        WrongClaim(
            "r=(c/2)**(L-l)",
            "uses fan_in for the backward factor, n_{l-1} Var(W_l)/2 instead of n_l Var(W_l)/2 "
            "(the same at equal widths, so checked on alternating widths)",
            params={"L": 4, "widths": "8,32,8,32,8", "init": "kaiming"},
        ),
        WrongClaim(
            "norm_ratio_second=exp(5*L/width)",
            "the large-width approximation exp(5 sum 1/n_l) instead of prod(1 + 5/n_l) "
            "(33% too large at width 10, L 3)",
            params={
                "L": 3,
                "width": 10,
                "init": "kaiming",
                "inputs": 4,
                "samples": 50_000,  # margin +2.3 SE on the weakest of 100 seeds at 20,000
                "chunk_size": 5000,
            },
        ),
    )
    figures = FIGURES
    # One Hotelling check over all layers needs many more networks than layers: the per-network
    # values are heavy-tailed (relative spread ~ sqrt(5 L / width)); measured at width 32, L 10,
    # 128 networks give p < 0.001 in 0.9% of runs for a true q, 1000 networks in none of 600.
    budgets = {
        "quick": {  # small enough for exp(5 sum 1/n) to be rejected (33% off at width 10)
            "L": 3,
            "width": [10, 24],
            "init": ["kaiming", "xavier"],
            "inputs": 4,
            "samples": 20000,
            "chunk_size": 5000,
        },
        "standard": {
            "L": 12,
            "width": [24, 96],
            "init": ["kaiming", "xavier", "lecun", "torch_default", "kaiming_fan_out"],
            "samples": 3000,
            "chunk_size": 375,
        },
        "thorough": {
            "L": 50,
            "width": 256,
            "init": ["kaiming", "xavier", "lecun", "torch_default", "kaiming_fan_out"],
            "samples": 512,
        },
    }

    def validate(self, point: dict[str, Any], where) -> None:
        validate_network(point, where)

    def label(self, point: Mapping[str, Any]) -> str:
        return f"propagation signal {describe(point, ('init', 'L', 'width', 'widths'))}"

    def setup(self, point: Mapping[str, Any], rng: np.random.Generator) -> SignalSetup:
        return SignalSetup.from_point(point)

    def sampler(self, point: Mapping[str, Any], setup: SignalSetup) -> SignalSampler:
        return SignalSampler(setup)

    def predict(self, sim: Simulated[SignalSetup, SignalStats]) -> Predictions:
        preds = signal_predictions(sim.point, sim.n_samples)
        _flag_few_networks(preds, network_widths(sim.point), sim.n_samples)
        return preds

    def figure_data(self, sim: Simulated[SignalSetup, SignalStats]) -> SignalFigureData:
        st = sim.setup
        return SignalFigureData(
            widths=st.widths,
            sigma_b=st.sigma_b,
            q_pred=st.q_pred,
            r_pred=st.r_pred,
            m1=st.m1,
            ratio_fourth=mf.norm_ratio_moment(st.widths, 4),
            layers=st.layers,
            hist_z=tuple(sim.stats.hist_z),
            hist_ratio=sim.stats.hist_ratio,
        )

    def memory_bytes(self, point: Mapping[str, Any], chunk_size: int) -> tuple[int, int]:
        """Per stack of S networks: float32 weights and, for the layers whose backward unit
        differs, their rescaled copies; every z_l kept (float32); inputs and g; float64
        per-input statistics. Per chunk: the float64 feature rows and the copies the moment sums
        make of them."""
        widths = network_widths(point)
        L, B = len(widths) - 1, int(point["inputs"])
        S = stack_size(widths, B, chunk_size)
        units = sum(widths[1:])
        per_net = 6 * weight_floats(widths) + B * (4 * units + 4 * (widths[0] + widths[-1]))
        per_net += B * 8 * (3 * L + 4)
        features = 8 * chunk_size * (2 * L + 3) * 4
        return 64 * (2 * L + 3) ** 2, S * per_net + features

    def claim_values(self, result: PointResult, quantity: str) -> dict[str, Any]:
        """Parameters, ``l``; ``c`` and ``n`` per layer; ``width`` per layer for a width list.

        For ``q`` (l = 1..L), ``c`` is ``c_l = n_{l-1} Var(W_l)`` and ``n`` is ``n_l``. For ``r``
        (l = 0..L), ``n`` is ``n_l`` and ``c`` is ``c_{l+1}``, the gain of the layer that reads
        ``h_l`` (``c_L`` at l = L). For the scalar quantities ``n`` is the vector ``n_1..n_L``
        (so ``prod(1 + 5/n)`` and ``exp(5*sum(1/n))`` work for any widths) and ``c`` is
        ``c_1..c_L``. ``c`` and ``width`` are plain numbers when every layer has the same.
        """
        values = super().claim_values(result, quantity)
        values.update(_layer_names(result.params, quantity))
        return values

    def claim_trial_values(self, point: Mapping[str, Any], quantity: str) -> dict[str, Any]:
        values = super().claim_trial_values(point, quantity)
        L = len(network_widths(point)) - 1
        if quantity in ("q", "r"):
            values["l"] = np.arange(0.0 if quantity == "r" else 1.0, L + 1)
        values.update(_layer_names(point, quantity))
        return values


__all__ = ["PropagationSignal", "SignalSampler", "SignalSetup", "SignalStats"]

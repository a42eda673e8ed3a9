"""Claims between measured quantities: ``Q = f(other quantities, parameters)``.

Such a claim (``second_after=second_before/(1-p)``) is the check of one scalar,
``D = Q_hat - f(others_hat)``, against 0. The estimates come from the same samples, so they are
correlated; the standard error of ``D`` is the delta method over their joint covariance ``C``:

    se(D)^2 = g^T C g,   g = (1, -df/dx_1, ..., -df/dx_k)

with ``df/dx_i`` by central differences. Treating the estimates as independent (dropping the
off-diagonal of ``C``) would be wrong both ways: far too wide when the two sides move together
(``mean_after`` and ``mean_before`` share every sample's units), too narrow when they move
against each other. The check record shows the claimed quantity's estimate, the prediction
``f(others_hat)`` and the joint standard error, so ``z = D / se(D)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from simlab.verdicts.checks import Check, make_check
from simlab.verdicts.claims import Claim
from simlab.verdicts.estimates import ExactEstimate, JointEstimate, Prediction, ScalarEstimate

#: relative step of the central differences: about the cube root of the float64 epsilon, which
#: balances the step's truncation error (~h^2) against rounding (~1e-16 / h)
_STEP = 6e-6

HOLDS = (
    "as claimed; a relation between measured quantities: its SE is that of estimate - "
    "prediction, from their joint covariance (delta method over the same samples)"
)


def relation_gradient(
    claim: Claim, values: Mapping[str, Any], joint: JointEstimate, names: list[str]
) -> tuple[float, np.ndarray]:
    """``f(others_hat)`` and its gradient in the named quantities (central differences).

    Each step is relative to the quantity's size, or to its standard error when it is near 0
    (a covariance estimated at 0, say), so that it is small against the quantity's scale.
    """
    predicted = float(claim.evaluate(values))
    grad = np.empty(len(names))
    for i, name in enumerate(names):
        x = float(values[name])
        j = joint.names.index(name)
        sd = math.sqrt(max(float(joint.cov[j, j]), 0.0))
        h = _STEP * max(abs(x), sd, 1e-300)
        up = float(claim.evaluate({**values, name: x + h}))
        down = float(claim.evaluate({**values, name: x - h}))
        grad[i] = (up - down) / (2.0 * h)
    return predicted, grad


def relation_check(
    *,
    experiment: str,
    params: dict[str, Any],
    claim: Claim,
    values: Mapping[str, Any],
    joint: JointEstimate,
    estimate: Any,
    id_suffix: str,
) -> Check:
    """The check of ``claim.quantity = f(...)``, its SE from the joint covariance (module doc).

    ``values`` are what the claim is evaluated on (parameters and the measured quantities'
    estimates); ``estimate`` is the claimed quantity's own estimate (for its kurtosis note).
    """
    quantity = claim.quantity
    others = sorted(claim.measured)
    names = [quantity, *others]
    index = [joint.names.index(n) for n in names]
    cov = joint.cov[np.ix_(index, index)]
    value = float(joint.values[index[0]])
    predicted, grad = relation_gradient(claim, values, joint, others)
    g = np.concatenate([[1.0], -grad])
    var = float(g @ cov @ g)
    se = math.sqrt(var) if var > 0 else (0.0 if var == 0 else math.nan)
    independent = math.sqrt(max(float(np.sum(g * g * np.diag(cov))), 0.0))
    shown = ", ".join(others)
    note = (
        f"SE {se:.3g} is joint: of {quantity} - f({shown}) by the delta method over the same "
        f"samples (as if independent it would be {independent:.3g})"
    )
    prediction = Prediction(predicted, HOLDS, expect=claim.expect, note=note)
    if not np.any(cov) and math.isfinite(predicted):
        # nothing random (every unit kept, say): the two sides are compared exactly
        est: Any = ExactEstimate(np.array([value]), tolerance=1e-9, floor=1e-12)
        prediction = Prediction(predicted, HOLDS, expect=claim.expect)
    else:
        kurtosis = estimate.excess_kurtosis if isinstance(estimate, ScalarEstimate) else None
        est = ScalarEstimate(value, se, joint.n, kurtosis)
    return make_check(
        experiment=experiment,
        quantity=quantity,
        params=params,
        estimate=est,
        prediction=prediction,
        source="user",
        expression=claim.expression,
        id_suffix=id_suffix,
    )

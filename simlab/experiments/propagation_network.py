"""The network the three ``simlab propagation`` experiments share: its parameters and widths.

``h_0 = x``, ``z_l = W_l h_{l-1} + b_l``, ``h_l = relu(z_l)`` (or tanh, for ``grads``) for
``l = 1..L``, drawn by :mod:`simlab.networks` and predicted by :mod:`simlab.theory.meanfield`.

Widths
------
``--width N`` gives every layer (input included) the width N. A per-layer list is its own
parameter, ``--widths 5,4,6,3``: L numbers (``n_1..n_L``, the input width is then ``n_1``) or
L + 1 numbers (``n_0..n_L``), as :func:`simlab.theory.meanfield.widths_from` reads them; it
overrides ``width``. A comma list of ``--width`` is a sweep, like every other parameter; to sweep
width lists, separate them with ``;`` (``--widths '5,4,6,3;64,128,64,10'``; in YAML a list of
lists or of strings).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from simlab import networks as nw
from simlab.errors import SimlabInputError
from simlab.params import Param, count
from simlab.theory import meanfield as mf

#: floats of weights (and of kept activations) per stack of networks pushed together
STACK_FLOATS = 2**22


@dataclass(frozen=True)
class WidthsParam(Param):
    """Per-layer widths as text: ``"5,4,6,3"`` (or a YAML list of integers); ``""`` for none.

    A comma list here is one value (a list of widths), not a sweep; a sweep of width lists
    separates them with ``;`` (or is a YAML list of lists / strings). The value is kept as the
    canonical text ``"5,4,6,3"``, so config.yaml replays it as is.
    """

    sweep_syntax: ClassVar[str] = "';' separates a sweep of lists, e.g. 8,32,8;16,16,16"

    def allowed(self) -> str:
        return (
            "a comma list of positive integers: n_1..n_L or n_0..n_L (empty: every width is "
            "--width)"
        )

    def convert_one(self, raw: Any, where: str) -> str:
        bad = SimlabInputError(f"{where}: {raw!r} is not allowed; expected {self.allowed()}")
        if isinstance(raw, bool):
            raise bad
        if isinstance(raw, int | float):
            items: list[Any] = [raw]
        elif isinstance(raw, list | tuple):
            items = list(raw)
        elif isinstance(raw, str):
            text = raw.strip()
            if not text:
                return ""
            items = [part.strip() for part in text.replace(" ", ",").split(",") if part.strip()]
        else:
            raise bad
        out = []
        for item in items:
            if isinstance(item, bool):
                raise bad
            try:
                number = float(item)
            except (TypeError, ValueError):
                raise bad from None
            if not math.isfinite(number) or number != int(number) or number < 1:
                raise bad
            out.append(int(number))
        if not out:
            raise bad
        return ",".join(str(n) for n in out)

    def convert(self, raw: Any, where: str) -> Any:
        if (
            isinstance(raw, list | tuple)
            and raw
            and all(isinstance(item, list | tuple | str) for item in raw)
        ):
            return [self.convert_one(item, where) for item in raw]
        if isinstance(raw, str) and ";" in raw:
            parts = [p for p in raw.split(";") if p.strip()]
            if not parts:
                raise SimlabInputError(f"{where}: {raw!r} is not allowed; give at least one list")
            return [self.convert_one(p, where) for p in parts]
        return self.convert_one(raw, where)


def network_params(
    L: int, width: int, widths: str | list[str], inputs: int | None, per_sample: str = ""
) -> tuple[Param, ...]:
    """The parameters of the network (``inputs`` per sample unless None)."""
    params = (
        # per-layer profiles, predictions and memory estimates are built layer by layer: a
        # billion layers hung before any check could refuse them
        Param("L", "int", L, "number of layers (weight matrices) l = 1..L", low=1, high=10_000),
        count("width", width, "width of every layer, input included (see widths for a list)"),
        WidthsParam(
            "widths",
            "widths",
            widths,
            "per-layer widths, e.g. 5,4,6,3: L values (n_1..n_L; n_0 = n_1) or L+1 (n_0..n_L); "
            "overrides width",
        ),
        Param("init", "choice", "kaiming", "weight initialisation", choices=mf.INITS),
        Param(
            "dist",
            "choice",
            "normal",
            "law of the i.i.d. weight entries, of the init's variance (torch_default is always "
            "uniform, orthogonal always Haar)",
            choices=nw.DISTS,
        ),
        Param(
            "gain",
            "float",
            None,
            "g for init=gain (Var W = g^2/fan_in; required there) and orthogonal (default sqrt 2)",
            low=0.0,
            low_open=True,
        ),
    )
    if inputs is None:
        return params
    return (*params, count("inputs", inputs, per_sample))


def network_widths(point: Mapping[str, Any]) -> tuple[int, ...]:
    """``(n_0, ..., n_L)`` of a (validated) point."""
    text = point.get("widths") or ""
    if text:
        return mf.widths_from(point["L"], [int(n) for n in text.split(",")])
    return mf.widths_from(point["L"], point["width"])


def validate_network(point: Mapping[str, Any], where: Callable[[str], str]) -> tuple[int, ...]:
    """Refuse widths that do not fit L, a missing gain, and depths beyond double precision."""
    text = point.get("widths") or ""
    if text:
        n = len(text.split(","))
        L = point["L"]
        if n not in (L, L + 1):
            raise SimlabInputError(
                f"{where('widths')}: {text!r} has {n} widths, which does not fit L = {L}; give L "
                f"= {L} widths (n_1..n_L, input width n_0 = n_1) or L + 1 = {L + 1} (n_0..n_L); "
                "an empty widths gives every layer the same width"
            )
    if point["init"] == "gain" and point.get("gain") is None:
        raise SimlabInputError(
            f"{where('gain')}: init 'gain' needs a value (Var W = gain^2 / fan_in), e.g. 1.414"
        )
    widths = network_widths(point)
    gain = mf.resolve_gain(point["init"], point.get("gain"))
    q = mf.forward_q(widths, point["init"], 1.0, float(point.get("sigma_b", 0.0)), gain)
    r = mf.backward_r(widths, point["init"], gain)
    tiny = np.finfo(np.float64).tiny * 1e10
    finite = np.all(np.isfinite(q)) and np.all(np.isfinite(r))
    if not (finite and q.min() > tiny and r.min() > tiny):
        raise SimlabInputError(
            f"{where('L')}: {point['L']} layers with init {point['init']} take the predicted "
            "second moments beyond double precision; use fewer layers"
        )
    return widths


def describe(point: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    """``init=kaiming L=20 width=128``: the set keys of a point, for a progress label."""
    parts = []
    for k in keys:
        v = point.get(k)
        if v is None or v == "":
            continue
        parts.append(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


def weight_floats(widths: tuple[int, ...]) -> int:
    """Weight entries of one network."""
    return sum(widths[k] * widths[k - 1] for k in range(1, len(widths)))


def stack_size(widths: tuple[int, ...], inputs: int, size: int) -> int:
    """Networks pushed together: as many as keep weights and kept activations near 4M floats."""
    per_net_acts = inputs * sum(widths[1:])
    return max(1, min(size, STACK_FLOATS // max(weight_floats(widths), per_net_acts)))

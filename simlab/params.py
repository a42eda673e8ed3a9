"""Parameter schemas: one declaration gives a CLI option, a YAML key, validation and a sweep.

A value may be one value or a list (a comma list on the command line, a YAML list): a list makes a
sweep. Every conversion failure is a :class:`~simlab.errors.SimlabInputError` naming where the value
came from (``--p`` or ``configs/x.yaml: p``), the value, and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from simlab.errors import SimlabInputError


@dataclass(frozen=True)
class Param:
    """One parameter of an experiment.

    ``kind`` is ``float``, ``int`` (accepts ``1e6``), ``bool`` or ``choice``. Bounds: ``low`` and
    ``high`` with ``low_open``/``high_open`` for open ends. ``sweep=False`` forbids lists.
    """

    name: str
    kind: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    sweep: bool = True
    #: how a sweep is written on the command line, for the option's help
    sweep_syntax: ClassVar[str] = "a comma list sweeps"

    def allowed(self) -> str:
        """What values are allowed, in words."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        what = "an integer" if self.kind == "int" else "a number"
        if self.low is None and self.high is None:
            return what
        lo = "(-inf" if self.low is None else ("(" if self.low_open else "[") + f"{self.low:g}"
        hi = "inf)" if self.high is None else f"{self.high:g}" + (")" if self.high_open else "]")
        return f"{what} in {lo}, {hi}"

    def convert_one(self, raw: Any, where: str) -> Any:
        """Convert and validate one value (not a list)."""
        bad = SimlabInputError(f"{where}: {raw!r} is not allowed; expected {self.allowed()}")
        if self.kind == "choice":
            value = str(raw).strip()
            if value not in self.choices:
                raise bad
            return value
        if self.kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("true", "yes", "1", "on"):
                return True
            if text in ("false", "no", "0", "off"):
                return False
            raise bad
        if isinstance(raw, bool):
            raise bad
        try:
            number = float(raw) if isinstance(raw, str) else raw
            number = float(number)
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(number):
            raise bad
        if self.kind == "int":
            if number != int(number):
                raise bad
            value: float | int = int(number)
        else:
            value = number
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise bad
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise bad
        return value

    def convert(self, raw: Any, where: str) -> Any | list[Any]:
        """Convert a value or a sweep (list, or comma-separated text)."""
        items: Sequence[Any] | None = None
        if isinstance(raw, list | tuple):
            items = raw
        elif isinstance(raw, str) and "," in raw:
            items = [part for part in raw.split(",")]
        if items is None:
            return self.convert_one(raw, where)
        if not self.sweep:
            raise SimlabInputError(
                f"{where}: {raw!r} is not allowed; this parameter takes one value"
            )
        if len(items) == 0:
            raise SimlabInputError(
                f"{where}: an empty list is not allowed; give at least one value"
            )
        return [self.convert_one(item, where) for item in items]


def count(name: str, default: int, help: str, low: int = 1) -> Param:
    """An integer count such as a size or a number of samples (``1e6`` accepted)."""
    return Param(name, "int", default, help, low=low)

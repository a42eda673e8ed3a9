"""Parameter schemas: one declaration gives a CLI option, a YAML key, validation and a sweep.

A value may be one value or a list (a comma list on the command line, a YAML list): a list makes a
sweep. Every conversion failure is a :class:`~simlab.errors.SimlabInputError` naming where the value
came from (``--p`` or ``configs/x.yaml: p``), the value, and what is allowed.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from simlab.errors import SimlabInputError

#: Longest value shown in a message, in characters; a longer one is cut with "...".
SHOWN_CHARS = 80
#: the largest magnitude a float parameter may take: simulations square and multiply them in
#: float64 (float32 for dropout's network), and values near 1e300 overflowed into internal errors
MAGNITUDE = 1e12

#: Longest number accepted as text, in characters (Python's own limit for int() is 4300 digits).
_MAX_NUMBER_CHARS = 4000

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = SHOWN_CHARS + 10
_REPR.maxother = SHOWN_CHARS + 10
for _attr in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque", "maxarray"):
    setattr(_REPR, _attr, 8)


def shorten(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` for a one-line message, at most ``limit`` characters (cut with "...").

    Bounded whatever the value: a nested list of a billion items (a YAML alias bomb) or an integer
    of thousands of digits is never rendered in full.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    try:
        text = _REPR.repr(value)
    except Exception:  # a hostile __repr__ cannot come from YAML, but never fail on a message
        text = f"<{type(value).__name__}>"
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def show_text(text: str, limit: int = SHOWN_CHARS) -> str:
    """User text (a key, a path) for a one-line message: control characters escaped, cut."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _exact_int(raw: Any) -> int | None:
    """``raw`` as an exact integer (from an int, an integral float or text), else None.

    Text is read with :func:`int` (``"12345678901234567890123"``, ``"-3"``, ``"1_000"``), else as
    an exact decimal (``"1e6"``, ``"2.5e3"``), never through a float. Only ASCII text is read. A
    float (from YAML ``1.0e+6``) must be integral and at most 2**53, where floats are exact.
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, numbers.Integral):
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if not text or not text.isascii() or len(text) > _MAX_NUMBER_CHARS:
            return None
        try:
            return int(text, 10)
        except ValueError:
            pass
        try:
            number = Decimal(text)
        except (InvalidOperation, ValueError):
            return None
        if not number.is_finite() or number.adjusted() > _MAX_NUMBER_CHARS:
            return None
        if number != number.to_integral_value():
            return None
        return int(number)
    if isinstance(raw, numbers.Real):
        value = float(raw)
        # beyond 2**53 a float is not the integer that was written (1.0e+30 is 10**30 + 2**46...)
        if not math.isfinite(value) or value != math.floor(value) or abs(value) > 2.0**53:
            return None
        return int(value)
    return None


def _finite_float(raw: Any) -> float | None:
    """``raw`` as a finite float (from a number or ASCII text), else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        text = raw.strip()
        if not text.isascii() or len(text) > _MAX_NUMBER_CHARS:
            return None
        try:
            value = float(text)
        except ValueError:
            return None
    elif isinstance(raw, numbers.Real):
        try:
            value = float(raw)
        except OverflowError:  # an integer beyond the float range
            return None
    else:
        return None
    return value if math.isfinite(value) else None


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
    #: the default in words, where it is not a value (``one per core``, ``fresh entropy``)
    default_words: str = ""
    #: how a sweep is written on the command line, for the option's help
    sweep_syntax: ClassVar[str] = "a comma list sweeps"

    @property
    def option(self) -> str:
        """The command-line option: kebab-case (``--sigma-x``; ``--sigma_x`` is accepted too)."""
        return option_name(self.name)

    @property
    def metavar(self) -> str:
        """What ``--help`` shows after the option, one word per kind of value."""
        return METAVARS.get(self.kind, "VALUE")

    def default_text(self) -> str | None:
        """The default as it is written on the command line (``0.5``, ``relu,tanh``, ``2e5``),
        or in words; None when there is nothing to show (the option is unset by default)."""
        if self.default_words:
            return self.default_words
        value = self.default
        if value is None or value == "":
            return None
        if isinstance(value, list | tuple):  # a sweep; of lists of widths, ';' separates them
            return (";" if self.kind == "widths" else ",").join(value_text(v) for v in value)
        return value_text(value)

    def allowed(self) -> str:
        """What values are allowed, in words."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        what = "an integer" if self.kind == "int" else "a number"
        if self.kind == "float":  # every float has a finite range (see MAGNITUDE)
            low, high = self._float_range()
            lo = ("(" if self.low_open and self.low is not None else "[") + f"{low:g}"
            hi = f"{high:g}" + (")" if self.high_open and self.high is not None else "]")
            return f"{what} in {lo}, {hi}"
        if self.low is None and self.high is None:
            return what
        lo = "(-inf" if self.low is None else ("(" if self.low_open else "[") + f"{self.low:g}"
        hi = "inf)" if self.high is None else f"{self.high:g}" + (")" if self.high_open else "]")
        return f"{what} in {lo}, {hi}"

    def _float_range(self) -> tuple[float, float]:
        low = -MAGNITUDE if self.low is None else max(self.low, -MAGNITUDE)
        high = MAGNITUDE if self.high is None else min(self.high, MAGNITUDE)
        return low, high

    def convert_one(self, raw: Any, where: str) -> Any:
        """Convert and validate one value (not a list).

        Integers are exact: ``12345678901234567890123`` (a 128-bit seed, say) stays that integer,
        from text, YAML or an override; ``1e6`` and ``1_000`` are accepted, a non-integral value
        is refused. Numbers are never passed through ``float`` on the way to an integer.
        """
        bad = SimlabInputError(f"{where}: {shorten(raw)} is not allowed; expected {self.allowed()}")
        if self.kind == "choice":
            if not isinstance(raw, str | int | float) or isinstance(raw, bool):
                raise bad
            value = str(raw).strip()
            if value not in self.choices:
                raise bad
            return value
        if self.kind == "bool":
            if isinstance(raw, bool):
                return raw
            if not isinstance(raw, str | int):
                raise bad
            text = str(raw).strip().lower()
            if text in ("true", "yes", "1", "on"):
                return True
            if text in ("false", "no", "0", "off"):
                return False
            raise bad
        if isinstance(raw, bool):
            raise bad
        if self.kind == "int":
            number = _exact_int(raw)
            if number is None:
                raise bad
            value: float | int = number
        else:
            number = _finite_float(raw)
            if number is None or abs(number) > MAGNITUDE:
                raise bad
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
                f"{where}: {shorten(raw)} is not allowed; this parameter takes one value"
            )
        if len(items) == 0:
            raise SimlabInputError(
                f"{where}: an empty list is not allowed; give at least one value"
            )
        return [self.convert_one(item, where) for item in items]


#: the metavar ``--help`` shows for each kind of value, the same in every command
METAVARS = {"int": "INT", "float": "NUMBER", "choice": "NAME", "widths": "LIST", "bool": ""}


def option_name(name: str) -> str:
    """``sigma_x`` -> ``--sigma-x``: options are kebab-case; the names in claims, YAML keys and
    Python keywords stay ``sigma_x``."""
    return "--" + name.replace("_", "-")


def value_text(value: Any) -> str:
    """A value as a person types it: ``0.5``, ``1e-05``, ``true``, ``kaiming``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def count_text(n: int) -> str:
    """A count of samples as it is written on the command line: ``2e5`` for a round count of
    10,000 or more (``--samples 1e6`` is accepted), else its digits."""
    digits = str(n).rstrip("0")
    zeros = len(str(n)) - len(digits)
    return f"{digits}e{zeros}" if n >= 10_000 and len(digits) == 1 else str(n)


def count(name: str, default: int, help: str, low: int = 1) -> Param:
    """An integer count such as a size or a number of samples (``1e6`` accepted)."""
    return Param(name, "int", default, help, low=low)

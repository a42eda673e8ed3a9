"""How a check reads, in words: one formatter for the console table, the report and checks.csv.

Every function takes a check as a :class:`~simlab.verdicts.checks.Check` or as its dictionary
(``Check.as_dict()``, what results.json holds), and returns plain text; the console and the report
add their own markup around it, so the two can never disagree on what a check says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the columns every table of checks shows, in order
COLUMNS = (
    "claim",
    "setting",
    "source",
    "measured",
    "predicted",
    "statistic",
    "p-value",
    "resolution",
    "verdict",
)


def _get(check: Any, key: str, default: Any = None) -> Any:
    if isinstance(check, Mapping):
        return check.get(key, default)
    return getattr(check, key, default)


def number(x: float | None, digits: int = 5) -> str:
    """A number to ``digits`` significant digits; an em dash for none."""
    return "—" if x is None else f"{x:.{digits}g}"


def value_text(value: Any) -> str:
    """A parameter value as a person writes it (``0.3``, ``50``, ``kaiming``)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting(check: Any) -> str:
    """``p=0.3, M=50``: the swept parameters of the check's point."""
    params = _get(check, "params") or {}
    return ", ".join(f"{k}={value_text(v)}" for k, v in params.items()) or "—"


def claim(check: Any) -> str:
    """The quantity, with its formula when it is a user's claim or one of several built-ins."""
    quantity = _get(check, "quantity")
    labelled = _get(check, "source") == "user" or "~" in (_get(check, "id") or "")
    expression = _get(check, "expression")
    return f"{quantity} = {expression}" if labelled and expression else quantity


def measured(check: Any) -> str:
    """What the simulation measured: estimate ± SE, a total variation, or the largest error."""
    kind = _get(check, "kind")
    if kind == "statistical":
        return f"{number(_get(check, 'estimate'))} ± {number(_get(check, 'se'), 2)}"
    if kind == "distribution":
        return f"TV {number(_get(check, 'estimate'), 3)}"
    return f"max rel. error {number(_get(check, 'estimate'), 2)}"


def predicted(check: Any) -> str:
    """What theory predicted (with the tolerance a limit allows), or the tolerance of an
    exact comparison."""
    kind = _get(check, "kind")
    tolerance = _get(check, "tolerance")
    if kind == "statistical":
        text = number(_get(check, "predicted"))
        if tolerance:
            text += f" (±{tolerance:.2g})"
        return text
    if kind == "distribution":
        return "pmf"
    return f"≤ {number(tolerance, 2)}"


def statistic(check: Any) -> str:
    """The test statistic: z, or chi-square with its degrees of freedom."""
    kind = _get(check, "kind")
    if kind == "statistical":
        z = _get(check, "z")
        return "—" if z is None else f"z = {z:+.2f}"
    if kind == "distribution":
        stat = _get(check, "statistic")
        return "—" if stat is None else f"χ² = {stat:.1f} ({_get(check, 'dof'):g} dof)"
    return "—"


def p_value(check: Any) -> str:
    p = _get(check, "p_value")
    return "—" if p is None else f"{p:.2g}"


def resolution(check: Any) -> str:
    """The smallest deviation the check detects with 90% power, in its own units."""
    kind = _get(check, "kind")
    r = _get(check, "resolution")
    if kind == "exact":
        return f"tol {number(_get(check, 'tolerance'), 2)}"
    if r is None:
        return "—"
    if kind == "statistical" and _get(check, "resolution_kind") == "relative":
        return f"{r:.2%}"
    if kind == "distribution":
        return f"w = {r:.2g}"
    return f"{r:.2g} (abs.)"


def verdict(check: Any) -> str:
    """The verdict, and what was expected of a negative control."""
    shown = _get(check, "verdict") or "undefined"
    expected = _get(check, "expected", "pass")
    if expected == "fail":
        shown += " (expected)" if shown == "fail" else " (expected fail)"
    elif expected == "either":
        shown += " (either expected)"
    return shown


def row(check: Any) -> dict[str, str]:
    """Every column of :data:`COLUMNS` for one check, as text."""
    return {
        "claim": claim(check),
        "setting": setting(check),
        "source": _get(check, "source"),
        "measured": measured(check),
        "predicted": predicted(check),
        "statistic": statistic(check),
        "p-value": p_value(check),
        "resolution": resolution(check),
        "verdict": verdict(check),
    }

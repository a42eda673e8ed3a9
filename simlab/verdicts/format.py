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


def _at(check: Any) -> str:
    """`` at l = 3`` for a profile check (the entry its numbers belong to); empty otherwise."""
    name, index = _get(check, "index_name"), _get(check, "index")
    return "" if name is None or index is None else f" at {name} = {value_text(index)}"


def measured(check: Any) -> str:
    """What the simulation measured: estimate ± SE (at which layer, for a profile), a total
    variation, or the largest error."""
    kind = _get(check, "kind")
    if kind == "statistical":
        if _get(check, "estimate") is None:
            return "—"
        text = f"{number(_get(check, 'estimate'))} ± {number(_get(check, 'se'), 2)}"
        return text + _at(check)
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


def _tolerance_text(check: Any) -> str:
    """A limit's deviation as a fraction of the tolerance it allows (``|dev| = 38% of tol``)."""
    used = _get(check, "tolerance_used")
    if used is None:
        return ""
    if used <= 1:
        return f"|dev| = {used:.0%} of tol"
    return f"|dev| = {used:.3g}× tol"


def statistic(check: Any) -> str:
    """The test statistic: z (beyond a tolerance, with the deviation as a fraction of it);
    Hotelling's T² with its dof and the worst entry's z for a profile; chi-square with its dof."""
    kind = _get(check, "kind")
    if kind == "statistical":
        z = _get(check, "z")
        tol = _tolerance_text(check)
        if _get(check, "index_name") is not None:  # a profile: all entries tested at once
            t2 = _get(check, "statistic")
            dof = _get(check, "dof")
            head = (
                f"T² = {t2:.3g} ({dof:g} dof)"
                if t2 is not None and dof is not None
                else "max |z| (Bonferroni)"
            )
            worst = "" if z is None else f"; z = {z:+.2f}{_at(check)}"
            if tol and (z is None or z == 0):
                worst = f"; {tol}"
            elif tol:
                worst += f" ({tol})"
            return head + worst
        if z is None:
            return "—"
        if tol:
            return tol if z == 0 else f"{tol}; z beyond tol = {z:+.2f}"
        return f"z = {z:+.2f}"
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
    target = _get(check, "target")
    coarser = _get(check, "verdict") == "undecided" and target is not None
    if kind == "statistical" and _get(check, "resolution_kind") == "relative":
        return f"{r:.2%}" + (f" > {target:.0%}" if coarser else "")
    if kind == "distribution":
        return f"w = {r:.2g}" + (f" > {target:.2g}" if coarser else "")
    return f"{r:.2g} (abs.)"


def _times(factor: float) -> str:
    """``4.2×``, ``310×``, ``2e+07×``: how many times the samples."""
    if factor < 10:
        return f"{factor:.2g}×"
    if factor < 1e5:
        return f"{factor:,.0f}×"
    return f"{factor:.0e}×"


def verdict(check: Any) -> str:
    """The verdict, what was expected of a negative control, and what would decide an
    undecided check."""
    shown = _get(check, "verdict") or "undefined"
    expected = _get(check, "expected", "pass")
    if shown == "undecided":
        needed = _get(check, "samples_needed")
        n = _get(check, "n")
        if needed is not None and n:
            shown += f" (needs {_times(needed / n)} the samples)"
        elif _get(check, "target") is not None:
            shown += " (tol > target)"
        if expected == "fail":
            shown += ", expected fail"
        return shown
    if expected == "fail":
        shown += " (expected)" if shown == "fail" else " (expected fail)"
    elif expected == "either":
        shown += " (either expected)"
    return shown


def summary(counts: Mapping[str, int], unexpected: bool = True) -> str:
    """The verdict counts in words (console summary line and report): ``5 passed, 1 failed,
    2 undecided (1 negative control; 0 not as expected)``."""
    text = f"{counts.get('pass', 0)} passed, {counts.get('fail', 0)} failed"
    if counts.get("undecided"):
        text += f", {counts['undecided']} undecided"
    if counts.get("undefined"):
        text += f", {counts['undefined']} undefined"
    extra = []
    if counts.get("controls"):
        n = counts["controls"]
        extra.append(f"{n} negative control{'s' if n != 1 else ''}")
    if counts.get("either"):
        extra.append(f"{counts['either']} either way by design")
    if unexpected and (extra or counts.get("unexpected")):
        extra.append(f"{counts.get('unexpected', 0)} not as expected")
    if extra:
        text += f" ({'; '.join(extra)})"
    return text


def counts(checks: Any) -> dict[str, int]:
    """Checks by verdict, negative controls (expected to fail), checks built to accept either
    verdict, and how many ended otherwise than they were built to (``unexpected``; an undecided
    check contradicts nothing)."""
    out = {
        "checks": 0,
        "pass": 0,
        "fail": 0,
        "undecided": 0,
        "undefined": 0,
        "controls": 0,
        "either": 0,
        "unexpected": 0,
    }
    for c in checks:
        shown = _get(c, "verdict") or "undefined"
        expected = _get(c, "expected", "pass")
        out["checks"] += 1
        out[shown] = out.get(shown, 0) + 1
        out["controls"] += expected == "fail"
        out["either"] += expected == "either"
        out["unexpected"] += not as_expected(c)
    return out


def as_expected(check: Any) -> bool:
    """Whether the verdict agrees with what the check was built to give (the same rule as
    :attr:`Check.as_expected`, for a check read back from results.json)."""
    shown = _get(check, "verdict")
    if not shown:
        return False
    if shown == "undecided":
        return True
    expected = _get(check, "expected", "pass")
    return expected == "either" or shown == expected


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

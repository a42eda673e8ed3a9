"""What a person reads in the terminal: the table of checks and the summary line (on stderr)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simlab.verdicts import format as fmt
from simlab.verdicts.checks import Check

_VERDICT_STYLE = {
    "pass": "bold green",
    "fail": "bold red",
    "undecided": "bold yellow",
    "undefined": "bold magenta",
}

#: C0 and C1 control characters (escape sequences start with one) and DEL
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """``text`` with every control character shown as its escape (``\\x1b``), never sent raw.

    User text (a path, a claim, a file name) echoed raw could move the cursor, recolour or
    retitle the terminal, or break a one-line message over several lines.
    """
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def safe(text: object) -> str:
    """User text to print through rich: control characters escaped, then rich markup escaped
    (``a[/]b`` is a path, not a closing tag)."""
    return escape(printable(text))


def stderr_console() -> Console:
    """Rich console on stderr; wide when not a terminal, so logs keep one row per check."""
    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=True, highlight=False, width=180)
    return console


def checks_table(checks: Iterable[Check], title: str = "checks") -> Table:
    """One row per check: claim, setting, measured, predicted, statistic, p, resolution, verdict."""
    table = Table(title=safe(title), title_justify="left", header_style="bold")
    for col in fmt.COLUMNS:
        table.add_column(col, overflow="fold")
    last = None
    checks = list(checks)
    topics = len({c.experiment for c in checks}) > 1
    for c in checks:
        if c.experiment != last:
            if last is not None:
                table.add_section()
            if topics:  # a course run: each experiment's checks under its name
                table.add_row(f"[bold]{safe(c.experiment)}[/]", end_section=True)
        last = c.experiment
        text = fmt.row(c)
        table.add_row(
            safe(text["claim"]),
            safe(text["setting"]),
            text["source"],
            text["measured"],
            text["predicted"],
            text["statistic"],
            text["p-value"],
            text["resolution"],
            f"[{_VERDICT_STYLE.get(c.verdict or '', 'dim')}]{text['verdict']}[/]",
        )
    return table


def summary_counts(checks: Iterable[Check]) -> dict[str, int]:
    """Checks by verdict, negative controls, and how many ended otherwise than they were built
    to (``unexpected``): :func:`simlab.verdicts.format.counts`."""
    return fmt.counts(checks)


def summary_line(checks: list[Check], alpha: float, seconds: float) -> str:
    """One line: verdict counts, negative controls, and how many verdicts were not as expected."""
    counts = summary_counts(checks)
    # a control failing is success; undecided is neither (yellow: more samples would tell)
    colour = "red" if counts["unexpected"] else ("yellow" if counts["undecided"] else "green")
    return (
        f"[bold {colour}]{fmt.summary(counts)}[/]"
        + f" — {counts['checks']} checks, family-wise alpha {alpha:g} (Holm), "
        + f"simulated in {seconds:.1f} s"
    )


def notes(checks: Iterable[Check]) -> list[str]:
    """Notes worth a line each: failures explained, too-noisy checks, heavy tails."""
    return [f"{c.id}: {c.note}" for c in checks if c.note]


def calibration_table(doc: dict[str, Any], budget: str, complete: bool, requested: int) -> Table:
    """What ``simlab calibrate`` measured (calibration.json's content), one row per finding."""
    n = len(doc["seeds"])
    title = f"simlab calibrate --budget {budget}: {n} seeds"
    if not complete:
        title += f" (interrupted: {n} of {requested})"
    table = Table(title=title, title_justify="left")
    for col in ("what", "measured", "95% CI", "target"):
        table.add_column(col)
    if not n:
        return table
    if "correct" in doc["parts"]:
        _false_alarm_rows(table, doc, n)
    for w in doc["wrong_formulas"]:
        lo, hi = w["power_ci95"]
        evidence = []
        if w["min_margin_se"] is not None:
            margin = w["min_margin_se"]
            # p-values underflow near |z| = 38: a larger margin is not resolved
            evidence.append(
                "weakest margin > 30 SE" if margin > 30 else f"weakest margin {margin:+.1f} SE"
            )
        if w["min_error_over_tolerance"] is not None:
            evidence.append(f"weakest error {w['min_error_over_tolerance']:.3g}× tolerance")
        if w.get("undecided_runs"):  # escaped rejection only because the sample could not tell
            evidence.append(f"undecided on {w['undecided_runs']}")
        table.add_row(
            f"power: {safe(w['claim'])}  ({safe(w['experiment'])})",
            f"{w['rejected']}/{w['runs']}  " + "; ".join(evidence),
            f"[{lo:.3f}, {hi:.3f}]",
            "≥ 0.99 (margin ≥ 2.33 SE)",
        )
    return table


def _false_alarm_rows(table: Table, doc: dict[str, Any], n: int) -> None:
    """The calibration table's rows on correct claims: false alarms and p-value uniformity."""
    alpha, alpha_wide = doc["alpha"], doc["alpha_wide"]
    lo, hi = doc["false_alarm_rate_ci95"]
    table.add_row(
        f"runs with a false alarm at α={alpha:g}",
        f"{doc['false_alarm_runs']}/{n}",
        f"[{lo:.3f}, {hi:.3f}]",
        f"≤ {alpha:g}",
    )
    lo, hi = doc["false_alarm_rate_wide_ci95"]
    table.add_row(
        f"runs with a false alarm at α={alpha_wide:g}",
        f"{doc['false_alarm_runs_wide']}/{n}",
        f"[{lo:.3f}, {hi:.3f}]",
        f"≈ {alpha_wide:g} or less",
    )
    if doc.get("undecided_rate") is not None:
        total = n * doc["correct_checks_per_run"]
        table.add_row(
            "correct checks undecided (resolution coarser than the target)",
            f"{doc['undecided_checks']}/{total} ({doc['undecided_rate']:.1%})",
            "",
            "neither a pass nor a false alarm",
        )
    table.add_row(
        "p-values of correct checks vs uniform (KS)",
        f"D = {doc['p_value_ks_statistic']:.3f}, p = {doc['p_value_ks_p']:.2g}",
        f"{doc['p_values_tested']} p-values",
        "p not tiny",
    )
    target = doc["uniformity_target"]
    rows = doc["p_value_ks_by_check"]
    missing = doc["quantities_missing_uniformity"]
    judged = target["judged"]
    table.add_row(
        "quantities with uniform p-values (KS per quantity)",
        f"{len(rows) - len(missing)}/{len(rows)}"
        if judged
        else f"not judged: {n} < {target['min_seeds']} seeds",
        "",
        f"all: KS p > {target['ks_p_above']:g} at ≥ {target['min_seeds']} seeds",
    )
    # every quantity that misses the target, else the three least uniform
    shown = [r for r in rows if r["meets_target"] is False] or rows[:3]
    for row in shown:
        miss = row["meets_target"] is False
        label = "MISSES the target" if miss else "least uniform"
        table.add_row(
            f"  {'[bold red]' if miss else ''}{label}: {safe(row['check'])}"
            + ("[/]" if miss else ""),
            f"D = {row['ks_statistic']:.3f}, p = {row['ks_p']:.2g}",
            f"{row['n']} p-values, {row['fraction_below_0.05']:.0%} below 0.05",
            "histogram " + " ".join(str(k) for k in row["histogram_10"]),
        )
    if doc["excluded_from_uniformity"]:
        table.add_row(
            "  left out (conservative by design)",
            ", ".join(safe(q) for q in doc["excluded_from_uniformity"]),
            "",
            "",
        )

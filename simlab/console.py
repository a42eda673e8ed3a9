"""What a person reads in the terminal: the table of checks and the summary line (on stderr)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

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
    """Rich console on stderr. Not a terminal (a log, a pipe): as wide as ``$COLUMNS`` says, else
    180 columns, so logs keep one row per check."""
    console = Console(stderr=True, highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit():
        console = Console(stderr=True, highlight=False, width=180)
    return console


# -- the table of checks, at any width ---------------------------------------------------------
#
# The table shows every column of simlab.verdicts.format.COLUMNS when they fit side by side at
# their full width. On a narrower terminal it narrows in these steps, in this order, taking only
# as many as it needs (README, "Tour", says the same):
#
#   1. compact: no outer frame, short headers (p for p-value, resol. for resolution, ...), and
#      cells wrap between words; a number is never cut (nor a word like "builtin"), and a claim's
#      formula wraps after an operator, never inside a number;
#   2. the setting goes under the claim, in the same cell;
#   3. the source column goes (a user's claim still shows its formula, a built-in one only its
#      quantity);
#   4. the statistic column goes (z, chi-square and T^2 stay in results.json and checks.csv; the
#      p-value column shows the test's outcome);
#   5. the resolution column goes (an undecided verdict still says how many times the samples
#      would decide it);
#   6. the predicted column goes.
#
# Below that (54 columns for a simlab check) rich folds the cells where it must.
NARROWING = ("compact", "setting under claim", "source", "statistic", "resolution", "predicted")

#: headers in the compact steps
SHORT_HEADERS = {"source": "src", "statistic": "stat.", "p-value": "p", "resolution": "resol."}
#: the least width a claim column narrows to, whatever its content
CLAIM_MIN_WIDTH = 12
#: the order in which columns above their least width get room, up to their full width:
#: numbers first, so that an estimate and its standard error share a line when they can
_FILL_ORDER = (
    "p-value",
    "measured",
    "predicted",
    "resolution",
    "statistic",
    "verdict",
    "source",
    "setting",
    "claim",
)
#: the columns whose words may also break after an operator (never inside a number)
_FORMULAS = ("claim", "setting")
#: a cell word after which the line never breaks (``± 0.00012``, ``at l = 3``, ``tol 1e-10``)
_GLUE_AFTER = frozenset({"±", "≤", "≥", "<", ">", "≈", "=", "at", "err", "TV", "w"})
#: numbers, identifiers, and any other single character: the pieces a formula breaks between
_UNITS = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?%?|[A-Za-z_]\w*|\*\*|\S")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
#: after these a + or - is a number's sign (``(-0.5``, ``**-2``), not an operator
_BEFORE_SIGN = frozenset({"(", "*", "/", ",", "=", "^", "**"})


def _atoms(text: str) -> list[str]:
    """The words of a cell that never split over two lines: ``z = +0.11``, ``± 0.00012``."""
    atoms: list[str] = []
    glue = False
    for word in text.split():
        if atoms and (glue or word == "=" or word.startswith("dof")):
            atoms[-1] += " " + word
        else:
            atoms.append(word)
        glue = word in _GLUE_AFTER or word.endswith("=")
    return atoms


def _units(word: str) -> list[str]:
    """A formula's pieces; a sign stays with the number it starts (``(-0.5``)."""
    units = _UNITS.findall(word)
    out: list[str] = []
    for unit in units:
        signed = out and out[-1] in "+-" and _NUMBER.match(unit)
        if signed and (len(out) == 1 or out[-2] in _BEFORE_SIGN):
            out[-1] += unit
        else:
            out.append(unit)
    return out


def _split_long(word: str, width: int) -> list[str]:
    """A formula word wider than ``width`` in lines, broken between its pieces; a number wider
    than the column stands alone (the column is never narrower than its numbers), a name wider
    than it is cut."""
    lines: list[str] = []
    current = ""
    for unit in _units(word):
        if len(unit) > width and not _NUMBER.match(unit):
            pieces = [unit[i : i + width] for i in range(0, len(unit), width)]
        else:
            pieces = [unit]
        for piece in pieces:
            if current and len(current) + len(piece) > width:
                lines.append(current)
                current = ""
            current += piece
    if current:
        lines.append(current)
    return lines


def wrap_cell(text: str, width: int, formula: bool = False) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken between words, never inside a
    number. ``formula``: a claim or a setting, whose words may also break after an operator."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for atom in paragraph.split() if formula else _atoms(paragraph):
            if len(atom) > width and formula:
                pieces = _split_long(atom, width)
                if current:
                    lines.append(current)
                lines.extend(pieces[:-1])
                current = pieces[-1]
            elif not current:
                current = atom
            elif len(current) + 1 + len(atom) <= width:
                current += " " + atom
            else:
                lines.append(current)
                current = atom
        lines.append(current)
    return lines


def _least_width(text: str, formula: bool) -> int:
    """The narrowest a column may be for this cell: its widest unbreakable piece."""
    if not formula:
        return max((len(a) for a in _atoms(text.replace("\n", " "))), default=1)
    widest = max((len(w) for w in text.split()), default=1)
    units = max((len(u) for w in text.split() for u in _units(w)), default=1)
    return min(widest, max(CLAIM_MIN_WIDTH, units))


def _get(check: Any, key: str) -> Any:
    return check.get(key) if isinstance(check, dict) else getattr(check, key, None)


class ChecksTable:
    """One row per check, laid out for the width it is printed at (see :data:`NARROWING`).

    ``checks`` are :class:`~simlab.verdicts.checks.Check` objects or their dictionaries (what
    results.json holds). Rich renders it through :meth:`table` at the console's width.
    """

    def __init__(self, checks: Iterable[Any], title: str = "checks") -> None:
        self.title = title
        #: whether the last layout fitted its width (else rich folds the cells)
        self.fits = True
        self.rows: list[tuple[str | None, dict[str, str], str]] = []
        checks = list(checks)
        topics = len({_get(c, "experiment") for c in checks}) > 1
        last = None
        for c in checks:
            experiment = _get(c, "experiment")
            if topics and experiment != last:  # a course run: each experiment under its name
                self.rows.append((experiment, {}, ""))
            last = experiment
            self.rows.append((None, fmt.row(c), _get(c, "verdict") or ""))

    def __rich_console__(self, console: Console, options: Any) -> Any:
        yield self.table(options.max_width)

    def columns(self, width: int) -> tuple[int, list[str], dict[str, int]]:
        """The narrowing step the table takes at ``width`` (0: none), the columns it shows and
        their widths: the first step at which every column fits."""
        texts = [t for heading, t, _ in self.rows if heading is None]
        full = {col: max([len(col)] + [len(t[col]) for t in texts] + [0]) for col in fmt.COLUMNS}
        headings = [len(h) for h, _, _ in self.rows if h is not None]
        full["claim"] = max([full["claim"], *headings])
        if sum(full.values()) + 3 * len(full) + 1 <= width:
            self.fits = True
            return 0, list(fmt.COLUMNS), full
        return next(self._layouts(texts, width))

    def _layouts(
        self, texts: list[dict[str, str]], width: int
    ) -> Iterator[tuple[int, list[str], dict[str, int]]]:
        """Every narrowing step at which the columns fit ``width`` (the last one whatever the
        width: below it, rich folds the cells)."""
        columns = list(fmt.COLUMNS)
        if all(t["setting"] == "—" for t in texts):  # nothing swept: no setting to show
            columns.remove("setting")
        for step in range(1, len(NARROWING) + 1):
            if step == 2 and "setting" in columns:
                columns.remove("setting")
            elif step > 2:
                columns.remove(NARROWING[step - 1])
            cells = {col: [self._cell(t, col, step) for t in texts] for col in columns}
            least = {
                col: max(
                    [len(SHORT_HEADERS.get(col, col))]
                    + [_least_width(text, col in _FORMULAS) for text in cells[col]]
                )
                for col in columns
            }
            natural = {
                col: max(
                    [len(SHORT_HEADERS.get(col, col))]
                    + [len(line) for text in cells[col] for line in text.split("\n")]
                )
                for col in columns
            }
            for heading, _, _ in self.rows:  # a topic's name wraps between its words
                if heading is not None:
                    least["claim"] = max(least["claim"], *(len(w) for w in heading.split()))
            spare = width - 3 * (len(columns) - 1) - sum(least.values())
            if spare < 0 and step < len(NARROWING):
                continue
            self.fits = spare >= 0
            widths = dict(least)
            for col in _FILL_ORDER:
                if col in widths and spare > 0:
                    grow = min(spare, natural[col] - widths[col])
                    widths[col] += grow
                    spare -= grow
            yield step, list(columns), widths

    @staticmethod
    def _cell(text: dict[str, str], col: str, step: int) -> str:
        if col == "claim" and step >= 2 and text["setting"] != "—":
            return f"{ChecksTable._words(text['claim'])}\n{text['setting']}"
        return ChecksTable._words(text[col]) if step else text[col]

    @staticmethod
    def _words(text: str) -> str:
        """A cell's text in the compact steps: control characters shown as escapes, and the
        longest phrase abbreviated (``max rel. error`` reads ``max err``)."""
        return printable(text).replace("max rel. error ", "max err ")

    def table(self, width: int) -> Table:
        """The rich table at ``width`` columns."""
        step, columns, widths = self.columns(width)
        if step == 0:
            table = Table(title=safe(self.title), title_justify="left", header_style="bold")
        else:
            table = Table(
                title=safe(self.title),
                title_justify="left",
                header_style="bold",
                box=box.MINIMAL_HEAVY_HEAD,
                show_edge=False,
                pad_edge=False,
            )
        for col in columns:
            header = col if step == 0 or len(col) <= widths[col] else SHORT_HEADERS.get(col, col)
            # laid out to fit, the cells are already wrapped; too narrow even at the last step,
            # rich folds them
            table.add_column(header, width=widths[col], no_wrap=self.fits, overflow="fold")
        first = True
        for heading, text, verdict in self.rows:
            if heading is not None:
                if not first:
                    table.add_section()
                name = printable(heading)
                if step:
                    name = "\n".join(wrap_cell(name, widths[columns[0]]))
                table.add_row(Text(name, style="bold"), end_section=True)
                first = False
                continue
            first = False
            cells = []
            for col in columns:
                if step == 0:
                    value = Text(printable(text[col]))
                elif col == "claim" and step >= 2 and text["setting"] != "—":
                    # the setting under the claim, dimmed: the row's second line
                    value = Text(
                        "\n".join(wrap_cell(self._words(text["claim"]), widths[col], True))
                    )
                    value.append("\n")
                    value.append(
                        "\n".join(wrap_cell(self._words(text["setting"]), widths[col], True)),
                        style="dim",
                    )
                else:
                    formula = col in _FORMULAS
                    value = Text("\n".join(wrap_cell(self._words(text[col]), widths[col], formula)))
                if col == "verdict":
                    value.stylize(_VERDICT_STYLE.get(verdict, "dim"))
                cells.append(value)
            table.add_row(*cells)
        return table


def checks_table(checks: Iterable[Any], title: str = "checks") -> ChecksTable:
    """The table of checks (claim, setting, source, measured, predicted, statistic, p,
    resolution, verdict), laid out at the width it is printed at: see :data:`NARROWING`."""
    return ChecksTable(checks, title)


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

"""The HTML report: one self-contained page (figures embedded) per run, or over several runs.

It reads only what a run folder holds (results.json and the figure files), so a report can be made
again later from kept folders: ``simlab report RUN_DIR... -o report.html``. No script, font or
image is fetched from anywhere: the page opens in a browser with no network.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

from simlab.errors import SimlabInputError
from simlab.verdicts import format as fmt

_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".pdf": None}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;
color:#1b1f24;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.summary{font-size:1.15em;padding:.6em 1em;border-radius:6px;margin:1em 0}
.ok{background:#e7f6ea;border:1px solid #6cc17a}.bad{background:#fdecea;border:1px solid #e0736a}
table{border-collapse:collapse;font-size:.85em;width:100%}
th,td{border-bottom:1px solid #e4e4e4;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f4f5f7;position:sticky;top:0}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.pass{color:#137b2c;font-weight:600}.fail{color:#b3261e;font-weight:600}
.undecided{color:#946200;font-weight:600}.undefined{color:#8a2be2;font-weight:600}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.95em;margin:.4em 0;color:#333}
.meta{color:#666;font-size:.85em}.note{color:#555;font-size:.85em}
code{background:#f4f5f7;padding:0 .25em;border-radius:3px}
"""


def _load(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "results.json"
    try:
        return json.loads(path.read_text())
    except OSError:
        raise SimlabInputError(f"RUN_DIR: {str(run_dir)!r} has no readable results.json") from None
    except json.JSONDecodeError as exc:
        raise SimlabInputError(f"{path}: not valid JSON ({exc.msg})") from None


def _fmt(x: Any, digits: int = 5) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return html.escape(str(x))


def _checks_table(checks: list[dict[str, Any]]) -> str:
    rows = []
    for c in checks:
        text = {k: html.escape(v) for k, v in fmt.row(c).items()}
        claim = html.escape(c["quantity"])
        if c.get("expression"):
            claim += f" = <code>{html.escape(c['expression'])}</code>"
        verdict = c.get("verdict") or "undefined"
        cells = "".join(
            f"<td class=num>{text[col]}</td>"
            for col in ("measured", "predicted", "statistic", "p-value", "resolution")
        )
        rows.append(
            f"<tr><td>{claim}</td><td>{text['setting']}</td><td>{text['source']}</td>{cells}"
            f"<td class={verdict}>{text['verdict']}</td>"
            f"<td class=note>{html.escape(c.get('holds') or '')}"
            f"{'<br>' + html.escape(c['note']) if c.get('note') else ''}</td></tr>"
        )
    head = "".join(f"<th>{col}</th>" for col in fmt.COLUMNS) + "<th>holds / notes</th>"
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _embed(path: Path) -> str | None:
    mime = _MIME.get(path.suffix.lower())
    if mime is None or not path.exists():
        return None
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:{mime};base64,{data}"


def _about(doc: dict[str, Any], figure: str) -> dict[str, Any]:
    """What results.json says of the experiment ``figure`` belongs to (its summary, its figure
    captions): the one whose figure folder holds it (older files: the one of that name)."""
    experiments = doc.get("experiments", [])
    if len(experiments) == 1:
        return experiments[0]
    folder = Path(figure).parts[0] if len(Path(figure).parts) > 1 else ""
    for e in experiments:
        if e.get("figure_folder", e["experiment"].replace(" ", "-")) == folder:
            return e
    return {}


def _caption(about: dict[str, Any], stem: str) -> str:
    return about.get("figure_captions", {}).get(stem) or stem.replace("_", " ")


def _counts(checks: list[dict[str, Any]]) -> str:
    counts = fmt.counts(checks)
    text = html.escape(fmt.summary(counts, unexpected=False))
    if counts["unexpected"]:
        text += f" — <span class=fail>{counts['unexpected']} not as expected</span>"
    return text


def _seed(seed: Any) -> str:
    """One seed, or the distinct seeds of a multi-experiment run."""
    if isinstance(seed, list):
        distinct = list(dict.fromkeys(seed))
        return str(distinct[0]) if len(distinct) == 1 else ", ".join(map(str, distinct))
    return str(seed)


def _anchor(name: str) -> str:
    return "x-" + "".join(ch if ch.isalnum() else "-" for ch in name)


def render_html(
    run_dirs: list[Path], title: str | None = None, shown_as: list[str] | None = None
) -> str:
    """The report page for one or more run folders (``shown_as``: the names to print for them).

    One section per experiment (topic): its checks, then its figures under their claims.
    """
    docs = [(Path(d), _load(Path(d))) for d in run_dirs]
    # a page is read elsewhere: an absolute path would only show this machine's folders
    names = [
        Path(n).name if Path(n).is_absolute() else n
        for n in (shown_as or [str(d) for d in run_dirs])
    ]
    checks = [c for _, doc in docs for c in doc.get("checks", [])]
    counts = fmt.counts(checks)
    unexpected = counts["unexpected"]
    ok = unexpected == 0
    title = title or "simlab report"
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    verdict = "every verdict as expected" if ok else f"{unexpected} verdicts not as expected"
    parts.append(
        f"<div class='summary {'ok' if ok else 'bad'}'><b>"
        f"{html.escape(fmt.summary(counts, unexpected=False))}</b> — {len(checks)} checks; "
        f"{verdict}.</div>"
    )
    for name, (_, doc) in zip(names, docs, strict=True):
        v = doc.get("versions", {})
        parts.append(
            f"<p class=meta>run <code>{html.escape(name)}</code> · status "
            f"{doc.get('status')} · started {doc.get('started')} · {doc.get('samples', 0):,} "
            f"samples simulated in {doc.get('wall_time', 0):.1f} s · family-wise "
            f"α = {doc.get('alpha')} (Holm) · seed {html.escape(_seed(doc.get('seed')))} · "
            f"simlab {v.get('simlab')}, numpy {v.get('numpy')}, scipy {v.get('scipy')}</p>"
        )
    # topics in the order they ran; figures go with the experiment that drew them
    topics: dict[str | None, tuple[list, list]] = {}
    about: dict[str | None, dict[str, Any]] = {}
    for _, doc in docs:
        for entry in doc.get("experiments", []):
            about.setdefault(entry["experiment"], entry)
    for c in checks:
        topics.setdefault(c["experiment"], ([], []))[0].append(c)
    for run_dir, doc in docs:
        for figure in doc.get("figures", []):
            figure_about = _about(doc, figure)
            topics.setdefault(figure_about.get("experiment"), ([], []))[1].append(
                (run_dir, figure, figure_about)
            )
    if len(topics) > 1:
        links = " · ".join(
            f"<a href='#{_anchor(str(t))}'>{html.escape(str(t or 'other figures'))}</a>"
            for t in topics
        )
        parts.append(f"<p>Topics: {links}</p>")
    for topic, (topic_checks, figures) in topics.items():
        heading = html.escape(topic or "other figures")
        parts.append(f"<h2 id='{_anchor(str(topic))}'>{heading}</h2>")
        summary = about.get(topic, {}).get("summary")
        if summary:
            parts.append(f"<p>{html.escape(summary)}</p>")
        if topic_checks:
            parts.append(f"<p class=meta>{_counts(topic_checks)}</p>")
            parts.append(_checks_table(topic_checks))
        for run_dir, figure, figure_about in figures:
            src = _embed(run_dir / figure)
            if src is None:
                continue
            stem = Path(figure).stem
            caption = html.escape(_caption(figure_about, stem))
            parts.append(
                f"<figure><h3>{caption}</h3><img alt='{html.escape(stem)}' "
                f"src='{src}'><figcaption class=meta>{html.escape(figure)}"
                f"</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    run_dirs: list[Path], out: Path, title: str | None = None, shown_as: list[str] | None = None
) -> Path:
    """Write the report for ``run_dirs`` to ``out``."""
    out = Path(out)
    out.write_text(render_html(run_dirs, title, shown_as))
    return out


#: the report a run writes into its own folder (``simlab report`` never overwrites it)
RUN_REPORT = "report.html"
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)


def run_title(run_dir: Path) -> str | None:
    """The title the run gave its own report (``simlab check --budget quick``), if it has one."""
    try:
        with open(Path(run_dir) / RUN_REPORT, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)  # the title is in the page's head
    except OSError:
        return None
    match = _TITLE.search(head)
    if match is None:
        return None
    return html.unescape(match.group(1)).strip() or None


def report_destination(run_dirs: list[Path], output: Path | None) -> Path:
    """Where ``simlab report`` writes: ``output``, else a new file beside the only run's own
    report (``report_2.html``, ``report_3.html``, ...). Never a run's own report.html."""
    if output is None:
        if len(run_dirs) != 1:
            raise SimlabInputError("-o: required when more than one RUN_DIR is given")
        folder = Path(run_dirs[0])
        n = 2
        while (folder / f"report_{n}.html").exists():
            n += 1
        return folder / f"report_{n}.html"
    output = Path(output)
    for run_dir in run_dirs:
        own = Path(run_dir) / RUN_REPORT
        if output.exists() and own.exists() and output.resolve() == own.resolve():
            raise SimlabInputError(
                f"-o: {str(output)!r} is the run's own report; it is kept as the run wrote it "
                "(give another file, or leave -o out for one beside it)"
            )
    return output

"""The HTML report: self-contained, every figure embedded, every check listed."""

import re

from simlab.report import render_html


def test_report_embeds_every_figure_and_lists_every_check(simlab, tmp_path):
    result = simlab(
        "dropout",
        "--samples",
        "5000",
        "--N",
        "16",
        "--M",
        "8",
        "--p",
        "0.2,0.6",
        "--quiet",
        "--out",
        "run",
        "--claim",
        "var_after=(1/2 - 1/(2*pi))/(1-p)",
    )
    assert result.exit_code == 1
    page = (tmp_path / "run" / "report.html").read_text()
    images = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,", page)
    assert sorted(images) == ["dropout_convergence", "dropout_laws", "dropout_moments"]
    assert page.count("<tr>") == 1 + 16  # header + 14 built-in + 2 user checks
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert "Var(h̃) = 1/(2(1−p)) − 1/(2π)" in page
    assert "2 failed" in page


def test_report_command_combines_run_folders(simlab, tmp_path):
    for name in ("a", "b"):
        assert (
            simlab(
                "dropout",
                "--samples",
                "3000",
                "--N",
                "8",
                "--M",
                "4",
                "--quiet",
                "--out",
                name,
                "--no-plots",
            ).exit_code
            == 0
        )
    result = simlab("report", "a", "b", "-o", "both.html")
    assert result.exit_code == 0
    assert render_html([tmp_path / "a", tmp_path / "b"]).count("<tr>") == 1 + 14
    assert (tmp_path / "both.html").exists()
    bad = simlab("report", "nowhere")
    assert bad.exit_code == 2 and "no readable results.json" in bad.stderr


def test_a_course_report_has_one_section_per_topic_with_its_checks(tmp_path):
    import json

    def check(experiment, verdict, expected="pass"):
        return {
            "id": f"{experiment}/q[]/builtin",
            "experiment": experiment,
            "quantity": "q",
            "params": {},
            "kind": "statistical",
            "source": "builtin",
            "expression": "",
            "holds": "",
            "estimate": 1.0,
            "se": 0.1,
            "predicted": 1.0,
            "z": 0.0,
            "p_value": 1.0,
            "verdict": verdict,
            "expected": expected,
        }

    doc = {
        "seed": [7, 7, 7],
        "checks": [
            check("dropout", "pass"),
            check("kept-units binomial", "fail", expected="fail"),
            check("kept-units binomial", "pass"),
        ],
        "experiments": [{"experiment": "dropout"}, {"experiment": "kept-units binomial"}],
    }
    (tmp_path / "results.json").write_text(json.dumps(doc))
    page = render_html([tmp_path])
    sections = re.findall(r"<h2 id='([^']+)'>([^<]+)</h2>", page)
    assert [title for _, title in sections] == ["dropout", "kept-units binomial"]
    assert all(f"href='#{anchor}'" in page for anchor, _ in sections)
    binomial = page.split("<h2 id='x-kept-units-binomial'>")[1]
    assert binomial.count("<tr>") == 1 + 2 and "fail (expected)" in binomial
    assert "1 passed, 1 failed (1 negative control)" in binomial  # was "1 negative controls"
    assert "seed 7 ·" in page


def test_the_report_needs_only_the_run_folder(simlab, monkeypatch):
    """Captions and summaries come from results.json: the report reads no experiment code."""
    import sys

    out = simlab.folder / "run"
    result = simlab("dropout", "--p", "0.3", "--samples", "5000", "--seed", "1", "--out", str(out),
                    "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    monkeypatch.setitem(sys.modules, "simlab.experiments", None)  # importing it would now fail
    from simlab.report import write_report

    write_report([out], out / "again.html", "again")
    page = (out / "again.html").read_text()
    assert "Moments of h = relu(z) before and after inverted dropout" in page
    assert "Moments of ReLU units before and after (inverted) dropout." in page


def test_report_of_one_run_keeps_its_report_and_its_title(simlab, tmp_path):
    small = ("--samples", "3000", "--N", "8", "--M", "4", "--quiet", "--no-plots")
    run = tmp_path / "run"
    assert simlab("dropout", *small, "--out", str(run)).exit_code == 0
    own = (run / "report.html").read_bytes()
    # the run's own title, its path shown as the folder's name only (no machine path)
    assert b"<title>simlab dropout</title>" in own and str(tmp_path).encode() not in own
    result = simlab("report", str(run))
    assert result.exit_code == 0, result.stderr
    assert (run / "report.html").read_bytes() == own  # not overwritten
    again = (run / "report_2.html").read_text()
    assert "<title>simlab dropout</title>" in again and str(tmp_path) not in again
    assert simlab("report", str(run)).exit_code == 0 and (run / "report_3.html").exists()
    assert simlab("report", str(run), "-o", "mine.html", "--title", "x").exit_code == 0
    assert "<title>x</title>" in (tmp_path / "mine.html").read_text()
    refused = simlab("report", str(run), "-o", str(run / "report.html"))
    assert refused.exit_code == 2 and "the run's own report" in refused.stderr
    assert (run / "report.html").read_bytes() == own
